-- PHOENIX_DB_ROLES is on by default: a process whose DATABASE_URL logs in as the migration
-- role itself (a single-login install, `phoenix serve` next to `phoenix migrate`) must be
-- able to `SET ROLE phoenix_<domain>`. A superuser can already; a non-superuser migration
-- login (it holds CREATEROLE: it created the roles) is made a member of every domain role
-- and of the gateway's. That gives it nothing it did not have: it owns every schema and
-- table. Production Deployments log in as the domain roles themselves (docs/database.md).
DO $$
DECLARE
    r text;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOREACH r IN ARRAY ARRAY['phoenix_auth', 'phoenix_users', 'phoenix_education', 'phoenix_facilities',
        'phoenix_activities', 'phoenix_active', 'phoenix_schedule', 'phoenix_iot', 'phoenix_feedback',
        'phoenix_config', 'phoenix_audit', 'phoenix_gateway']
    LOOP
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;
END
$$;
