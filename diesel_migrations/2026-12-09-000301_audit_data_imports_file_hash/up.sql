-- The pupil import (phoenix.users.v1.ImportService, `phoenix import students`, docs/import.md):
-- the permission of both RPCs, held by admins through `*:*` only, and the SHA-256 of the
-- imported file on its audit.data_imports row (which file was imported, without its contents).

INSERT INTO auth.permissions (name, resource, action, description, is_system)
VALUES ('students:import', 'students', 'import', 'Import pupils, guardians and RFID cards from a file', true)
ON CONFLICT DO NOTHING;

ALTER TABLE audit.data_imports
    ADD COLUMN file_sha256 bytea,
    ADD CONSTRAINT ck_audit_data_imports_file_sha256 CHECK (octet_length(file_sha256) = 32);

-- The users domain writes the row (and reads back its id). Its own PostgreSQL role exists
-- where the per-domain roles are set up (docs/database.md); elsewhere there is nothing to grant.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_users') THEN
        GRANT USAGE ON SCHEMA audit TO phoenix_users;
        GRANT INSERT, SELECT (id) ON audit.data_imports TO phoenix_users;
    END IF;
END $$;
