-- Grants the per-domain roles (2026-12-09-000001_domain_roles, docs/database.md) were missing,
-- found by running the suite with the roles on (PHOENIX_TEST_DB_ROLES=on):
-- - a correction (CorrectionService) writes its audit.data_changes row with INSERT … RETURNING
--   id, which needs SELECT on that column;
-- - the users domain's care API manages a pupil's pickup schedules, exceptions and notes, which
--   live in `schedule`;
-- - the database statistics (ConfigService.GetDatabaseStats, served by config) count every
--   role's sessions and read replication state, which only pg_monitor may see.
-- Granted where the roles exist.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_active') THEN
        GRANT SELECT (id) ON audit.data_changes TO phoenix_active;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_config') THEN
        GRANT pg_monitor TO phoenix_config;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_users') THEN
        GRANT INSERT, UPDATE, DELETE ON schedule.student_pickup_schedules, schedule.student_pickup_exceptions,
            schedule.student_pickup_notes TO phoenix_users;
    END IF;
END $$;
