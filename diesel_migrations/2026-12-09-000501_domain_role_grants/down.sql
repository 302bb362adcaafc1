DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_users') THEN
        REVOKE INSERT, UPDATE, DELETE ON schedule.student_pickup_schedules, schedule.student_pickup_exceptions,
            schedule.student_pickup_notes FROM phoenix_users;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_config') THEN
        REVOKE pg_monitor FROM phoenix_config;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_active') THEN
        REVOKE SELECT (id) ON audit.data_changes FROM phoenix_active;
    END IF;
END $$;
