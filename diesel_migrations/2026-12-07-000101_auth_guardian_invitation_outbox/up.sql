-- Guardian invitations travel through auth.outbox like staff invitations (issue #12): a
-- row of kind 'guardian_invitation' names its auth.guardian_invitations row, and the mail
-- sender reads the address from the guardian record (users.guardians.email) at delivery.
ALTER TABLE auth.outbox ADD COLUMN guardian_invitation_id bigint NULL;
ALTER TABLE auth.outbox ADD CONSTRAINT fk_auth_outbox_guardian_invitation_id FOREIGN KEY (guardian_invitation_id)
    REFERENCES auth.guardian_invitations (id) ON DELETE CASCADE;
CREATE INDEX idx_auth_outbox_guardian_invitation_id ON auth.outbox (guardian_invitation_id);

ALTER TABLE auth.outbox DROP CONSTRAINT ck_auth_outbox_kind;
ALTER TABLE auth.outbox ADD CONSTRAINT ck_auth_outbox_kind
    CHECK (kind IN ('password_reset', 'invitation', 'guardian_invitation'));
-- exactly one recipient, and the one its kind needs
ALTER TABLE auth.outbox DROP CONSTRAINT ck_auth_outbox_recipient;
ALTER TABLE auth.outbox ADD CONSTRAINT ck_auth_outbox_recipient CHECK (
    (kind = 'password_reset' AND account_id IS NOT NULL AND invitation_id IS NULL AND guardian_invitation_id IS NULL)
    OR (kind = 'invitation' AND invitation_id IS NOT NULL AND account_id IS NULL AND guardian_invitation_id IS NULL)
    OR (kind = 'guardian_invitation' AND guardian_invitation_id IS NOT NULL
        AND account_id IS NULL AND invitation_id IS NULL));
