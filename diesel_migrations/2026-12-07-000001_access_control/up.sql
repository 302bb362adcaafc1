-- Access control that takes effect (docs/access.md):
-- 1. auth.accounts.access_changed_at: moved forward by every change of what an account may do
--    (roles, direct grants/denies, a role's permissions, activation). Access tokens issued
--    before it are refused at their next call and open streams end (TokenVerifier's session
--    check), so a revocation never waits for the token's 15 minutes.
-- 2. Permissions for the guardian self-service (family:read), the presence board and stream
--    (presence:read) and managing other people's room sessions (sessions:manage); the seeded
--    guardian role keeps only what its own children need.

ALTER TABLE auth.accounts ADD COLUMN access_changed_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION auth.touch_account_access() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE auth.accounts SET access_changed_at = now() WHERE id = NEW.account_id;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE auth.accounts SET access_changed_at = now() WHERE id = OLD.account_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION auth.touch_role_access() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth.accounts SET access_changed_at = now()
    WHERE id IN (SELECT ar.account_id FROM auth.account_roles ar
                 WHERE ar.role_id = CASE WHEN TG_OP = 'DELETE' THEN OLD.role_id ELSE NEW.role_id END);
    RETURN NULL;
END $$;

CREATE FUNCTION auth.touch_activation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.active IS DISTINCT FROM OLD.active THEN
        NEW.access_changed_at = now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER account_roles_touch_access AFTER INSERT OR UPDATE OR DELETE ON auth.account_roles
    FOR EACH ROW EXECUTE FUNCTION auth.touch_account_access();
CREATE TRIGGER account_permissions_touch_access AFTER INSERT OR UPDATE OR DELETE ON auth.account_permissions
    FOR EACH ROW EXECUTE FUNCTION auth.touch_account_access();
CREATE TRIGGER role_permissions_touch_access AFTER INSERT OR UPDATE OR DELETE ON auth.role_permissions
    FOR EACH ROW EXECUTE FUNCTION auth.touch_role_access();
CREATE TRIGGER accounts_touch_activation BEFORE UPDATE OF active ON auth.accounts
    FOR EACH ROW EXECUTE FUNCTION auth.touch_activation();

INSERT INTO auth.permissions (name, resource, action, description, is_system) VALUES
    ('family:*',        'family',   '*',      'Every family permission', true),
    ('family:read',     'family',   'read',   'A guardian''s own children: presence, today''s visits, consents, pickup', true),
    ('presence:*',      'presence', '*',      'Every presence permission', true),
    ('presence:read',   'presence', 'read',   'The presence board and its live stream (scoped to the caller)', true),
    ('sessions:*',      'sessions', '*',      'Every sessions permission', true),
    ('sessions:manage', 'sessions', 'manage', 'End or change room sessions the caller does not supervise', true)
ON CONFLICT DO NOTHING;

DELETE FROM auth.role_permissions rp
USING auth.roles r, auth.permissions p
WHERE rp.role_id = r.id AND rp.permission_id = p.id
  AND r.name = 'guardian' AND p.name IN ('users:read', 'groups:read', 'visits:read');

INSERT INTO auth.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM (VALUES
    ('guardian', 'family:read'),
    ('guardian', 'presence:read'),
    ('staff',    'presence:read')
) AS v (role_name, permission_name)
JOIN auth.roles r ON r.name = v.role_name
JOIN auth.permissions p ON p.name = v.permission_name
ON CONFLICT DO NOTHING;
