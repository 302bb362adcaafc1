DROP INDEX IF EXISTS auth.idx_auth_outbox_unsent;
DROP INDEX IF EXISTS auth.idx_auth_outbox_invitation_id;
DROP INDEX IF EXISTS auth.idx_auth_outbox_account_id;
DROP TABLE IF EXISTS auth.outbox;
