-- Service credentials (the gateway's client-credentials exchange) are audited like logins:
-- an event names the client id instead of an account or an email hash.
ALTER TABLE audit.auth_events ADD COLUMN client_id varchar(64);

ALTER TABLE audit.auth_events DROP CONSTRAINT ck_audit_auth_events_event_type;
ALTER TABLE audit.auth_events ADD CONSTRAINT ck_audit_auth_events_event_type CHECK (event_type IN
    ('login', 'logout', 'token_refresh', 'token_expired', 'token_reuse_detected',
     'password_reset_requested', 'password_reset', 'password_changed', 'account_locked',
     'pin_failed', 'pin_locked', 'invitation_accepted', 'service_token'));

ALTER TABLE audit.auth_events DROP CONSTRAINT ck_audit_auth_events_subject;
ALTER TABLE audit.auth_events ADD CONSTRAINT ck_audit_auth_events_subject
    CHECK (account_id IS NOT NULL OR email_hash IS NOT NULL OR client_id IS NOT NULL);
ALTER TABLE audit.auth_events ADD CONSTRAINT ck_audit_auth_events_client_id
    CHECK (client_id IS NULL OR char_length(client_id) BETWEEN 1 AND 64);
CREATE INDEX idx_audit_auth_events_client_id_created_at ON audit.auth_events (client_id, created_at)
    WHERE client_id IS NOT NULL;
