-- The school-year rollover (services/education/src/rollover.rs) runs in the education
-- domain and writes, in its one transaction: users.students (group, class, deactivation;
-- FOR UPDATE locks), users.persons (a leaver's card released) and audit.data_changes (one row
-- per pupil). With one PostgreSQL role per domain (2026-12-09-000001_domain_roles), the
-- education role needs exactly these cross-schema writes. Skipped where the domain roles do
-- not exist.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_education') THEN
        GRANT UPDATE (group_id, school_class, deactivated_at, updated_at) ON users.students TO phoenix_education;
        GRANT UPDATE (tag_id, updated_at) ON users.persons TO phoenix_education;
        GRANT USAGE ON SCHEMA audit TO phoenix_education;
        GRANT INSERT ON audit.data_changes TO phoenix_education;
    END IF;
END
$$;
