-- Removes exactly the rows the seed inserts, in reverse order.

DELETE FROM config.settings
WHERE key IN ('privacy.default_visit_retention_days');

DELETE FROM iot.devices
WHERE device_id = 'WEB-MANUAL-001';

DELETE FROM activities.categories
WHERE name IN ('Sport', 'Kreativ', 'Musik', 'Spiele', 'Lernen', 'Hausaufgaben', 'Draußen', 'Gruppenraum', 'Mensa');

DELETE FROM auth.role_permissions rp
USING auth.roles r, auth.permissions p,
    (VALUES
        ('admin',    '*:*'),
        ('staff',    'users:read'),
        ('staff',    'users:list'),
        ('staff',    'users:create'),
        ('staff',    'users:update'),
        ('staff',    'groups:read'),
        ('staff',    'groups:update'),
        ('staff',    'groups:list'),
        ('staff',    'activities:create'),
        ('staff',    'activities:read'),
        ('staff',    'activities:update'),
        ('staff',    'activities:delete'),
        ('staff',    'activities:list'),
        ('staff',    'activities:manage'),
        ('staff',    'activities:enroll'),
        ('staff',    'activities:assign'),
        ('staff',    'visits:create'),
        ('staff',    'visits:read'),
        ('staff',    'visits:update'),
        ('staff',    'visits:delete'),
        ('staff',    'visits:list'),
        ('staff',    'rooms:read'),
        ('staff',    'rooms:list'),
        ('staff',    'schedules:read'),
        ('staff',    'schedules:list'),
        ('staff',    'feedback:read'),
        ('staff',    'feedback:list'),
        ('staff',    'feedback:create'),
        ('staff',    'substitutions:read'),
        ('staff',    'config:read'),
        ('guest',    'users:read'),
        ('guest',    'users:list'),
        ('guest',    'rooms:read'),
        ('guest',    'activities:read'),
        ('guardian', 'users:read'),
        ('guardian', 'groups:read'),
        ('guardian', 'visits:read')
    ) AS v (role_name, permission_name)
WHERE rp.role_id = r.id AND r.name = v.role_name
  AND rp.permission_id = p.id AND p.name = v.permission_name;

DELETE FROM auth.permissions
WHERE name IN (
    '*:*', 'admin:*',
    'users:*', 'roles:*', 'permissions:*', 'system:*', 'auth:*', 'activities:*', 'rooms:*',
    'groups:*', 'substitutions:*', 'visits:*', 'schedules:*', 'iot:*', 'feedback:*', 'config:*',
    'scans:*',
    'users:create', 'users:read', 'users:update', 'users:delete', 'users:list', 'users:manage',
    'roles:create', 'roles:read', 'roles:update', 'roles:delete', 'roles:manage',
    'permissions:create', 'permissions:read', 'permissions:update', 'permissions:delete',
    'system:manage', 'auth:manage',
    'activities:create', 'activities:read', 'activities:update', 'activities:delete',
    'activities:list', 'activities:manage', 'activities:enroll', 'activities:assign',
    'rooms:create', 'rooms:read', 'rooms:update', 'rooms:delete', 'rooms:list', 'rooms:manage',
    'groups:create', 'groups:read', 'groups:update', 'groups:delete', 'groups:list',
    'groups:manage', 'groups:assign',
    'substitutions:create', 'substitutions:read', 'substitutions:update', 'substitutions:delete',
    'substitutions:list', 'substitutions:manage',
    'visits:create', 'visits:read', 'visits:update', 'visits:delete', 'visits:list', 'visits:manage',
    'schedules:create', 'schedules:read', 'schedules:update', 'schedules:delete', 'schedules:list',
    'schedules:manage',
    'iot:read', 'iot:update', 'iot:manage',
    'feedback:create', 'feedback:read', 'feedback:delete', 'feedback:list', 'feedback:manage',
    'config:read', 'config:update', 'config:manage',
    'scans:process'
);

DELETE FROM auth.roles
WHERE name IN ('admin', 'staff', 'guest', 'guardian');
