-- Reverses up.sql. audit.auth_events is append-only (its trigger refuses DELETE), so the
-- service-token rows are kept by disabling that trigger only for this clean-up.
ALTER TABLE audit.auth_events DISABLE TRIGGER append_only;
DELETE FROM audit.auth_events WHERE client_id IS NOT NULL AND account_id IS NULL AND email_hash IS NULL;
DELETE FROM audit.auth_events WHERE event_type = 'service_token';
ALTER TABLE audit.auth_events ENABLE TRIGGER append_only;

DROP INDEX audit.idx_audit_auth_events_client_id_created_at;
ALTER TABLE audit.auth_events DROP CONSTRAINT ck_audit_auth_events_client_id;
ALTER TABLE audit.auth_events DROP CONSTRAINT ck_audit_auth_events_subject;
ALTER TABLE audit.auth_events ADD CONSTRAINT ck_audit_auth_events_subject
    CHECK (account_id IS NOT NULL OR email_hash IS NOT NULL);
ALTER TABLE audit.auth_events DROP CONSTRAINT ck_audit_auth_events_event_type;
ALTER TABLE audit.auth_events ADD CONSTRAINT ck_audit_auth_events_event_type CHECK (event_type IN
    ('login', 'logout', 'token_refresh', 'token_expired', 'token_reuse_detected',
     'password_reset_requested', 'password_reset', 'password_changed', 'account_locked',
     'pin_failed', 'pin_locked', 'invitation_accepted'));
ALTER TABLE audit.auth_events DROP COLUMN client_id;
