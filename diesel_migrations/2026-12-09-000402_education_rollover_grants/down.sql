DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_education') THEN
        REVOKE INSERT ON audit.data_changes FROM phoenix_education;
        REVOKE UPDATE (tag_id, updated_at) ON users.persons FROM phoenix_education;
        REVOKE UPDATE (group_id, school_class, deactivated_at, updated_at) ON users.students FROM phoenix_education;
    END IF;
END
$$;
