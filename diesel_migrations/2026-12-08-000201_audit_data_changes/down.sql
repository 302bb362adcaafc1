DELETE FROM auth.role_permissions rp
USING auth.roles r, auth.permissions p
WHERE rp.role_id = r.id AND rp.permission_id = p.id AND r.name = 'staff' AND p.name = 'visits:manage';

DROP TABLE audit.data_changes;
