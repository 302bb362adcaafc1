-- Revokes every grant of the domain roles in this database (DROP OWNED BY also removes their
-- default privileges; they own nothing), then drops each role unless another database of
-- the cluster still grants it something.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['phoenix_auth', 'phoenix_users', 'phoenix_education', 'phoenix_facilities',
        'phoenix_activities', 'phoenix_active', 'phoenix_schedule', 'phoenix_iot', 'phoenix_feedback',
        'phoenix_config', 'phoenix_audit', 'phoenix_gateway', 'phoenix_service']
    LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I', r);
            BEGIN
                EXECUTE format('DROP ROLE %I', r);
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % is still used by another database; kept', r;
            END;
        END IF;
    END LOOP;
END
$$;
