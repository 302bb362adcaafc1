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
        IF EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = r AND u.rolname = current_user) THEN
            EXECUTE format('REVOKE %I FROM %I', r, current_user);
        END IF;
    END LOOP;
END
$$;
