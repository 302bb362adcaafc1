DELETE FROM auth.outbox WHERE kind = 'guardian_invitation';
ALTER TABLE auth.outbox DROP CONSTRAINT ck_auth_outbox_recipient;
ALTER TABLE auth.outbox ADD CONSTRAINT ck_auth_outbox_recipient CHECK (
    (kind = 'password_reset' AND account_id IS NOT NULL AND invitation_id IS NULL)
    OR (kind = 'invitation' AND invitation_id IS NOT NULL AND account_id IS NULL));
ALTER TABLE auth.outbox DROP CONSTRAINT ck_auth_outbox_kind;
ALTER TABLE auth.outbox ADD CONSTRAINT ck_auth_outbox_kind CHECK (kind IN ('password_reset', 'invitation'));
DROP INDEX IF EXISTS auth.idx_auth_outbox_guardian_invitation_id;
ALTER TABLE auth.outbox DROP CONSTRAINT IF EXISTS fk_auth_outbox_guardian_invitation_id;
ALTER TABLE auth.outbox DROP COLUMN IF EXISTS guardian_invitation_id;
