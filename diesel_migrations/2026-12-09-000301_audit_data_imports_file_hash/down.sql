DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_users') THEN
        REVOKE INSERT, SELECT (id) ON audit.data_imports FROM phoenix_users;
    END IF;
END $$;

ALTER TABLE audit.data_imports
    DROP CONSTRAINT ck_audit_data_imports_file_sha256,
    DROP COLUMN file_sha256;

DELETE FROM auth.permissions WHERE name = 'students:import';
