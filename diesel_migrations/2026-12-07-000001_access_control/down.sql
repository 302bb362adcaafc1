DELETE FROM auth.role_permissions rp
USING auth.roles r, auth.permissions p
WHERE rp.role_id = r.id AND rp.permission_id = p.id
  AND p.name IN ('family:read', 'presence:read', 'sessions:manage', 'family:*', 'presence:*', 'sessions:*');

INSERT INTO auth.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM (VALUES ('guardian', 'users:read'), ('guardian', 'groups:read'), ('guardian', 'visits:read')) AS v (role_name, permission_name)
JOIN auth.roles r ON r.name = v.role_name
JOIN auth.permissions p ON p.name = v.permission_name
ON CONFLICT DO NOTHING;

DELETE FROM auth.account_permissions ap USING auth.permissions p
WHERE ap.permission_id = p.id
  AND p.name IN ('family:read', 'presence:read', 'sessions:manage', 'family:*', 'presence:*', 'sessions:*');
DELETE FROM auth.permissions
WHERE name IN ('family:read', 'presence:read', 'sessions:manage', 'family:*', 'presence:*', 'sessions:*');

DROP TRIGGER accounts_touch_activation ON auth.accounts;
DROP TRIGGER role_permissions_touch_access ON auth.role_permissions;
DROP TRIGGER account_permissions_touch_access ON auth.account_permissions;
DROP TRIGGER account_roles_touch_access ON auth.account_roles;
DROP FUNCTION auth.touch_activation();
DROP FUNCTION auth.touch_role_access();
DROP FUNCTION auth.touch_account_access();
ALTER TABLE auth.accounts DROP COLUMN access_changed_at;
