-- Seed data, declarative and idempotent (every INSERT is ON CONFLICT DO NOTHING, so applying
-- this file twice changes nothing): system roles, the permission catalogue, role grants,
-- activity categories, the virtual device for manual web check-ins, default config settings.
-- The first admin account is NOT created here (CLI / first start, see api.md).

-- Roles ---------------------------------------------------------------------------------------
INSERT INTO auth.roles (name, description, is_system) VALUES
    ('admin',    'School administration: every permission',             true),
    ('staff',    'Supervisors and teachers (Betreuer)',                   true),
    ('guest',    'Visiting helpers: read-only, redacted',                 true),
    ('guardian', 'Parent account: only their own children',               true)
ON CONFLICT DO NOTHING;

-- Permission catalogue (`resource:action`; name is built from resource and action) -----------
INSERT INTO auth.permissions (name, resource, action, description, is_system)
SELECT v.resource || ':' || v.action, v.resource, v.action, v.description, true
FROM (VALUES
    -- wildcards
    ('*',             '*',       'Every permission'),
    ('admin',         '*',       'Administrator: every permission'),
    ('users',         '*',       'Every users permission'),
    ('roles',         '*',       'Every roles permission'),
    ('permissions',   '*',       'Every permissions permission'),
    ('system',        '*',       'Every system permission'),
    ('auth',          '*',       'Every auth permission'),
    ('activities',    '*',       'Every activities permission'),
    ('rooms',         '*',       'Every rooms permission'),
    ('groups',        '*',       'Every groups permission'),
    ('substitutions', '*',       'Every substitutions permission'),
    ('visits',        '*',       'Every visits permission'),
    ('schedules',     '*',       'Every schedules permission'),
    ('iot',           '*',       'Every iot permission'),
    ('feedback',      '*',       'Every feedback permission'),
    ('config',        '*',       'Every config permission'),
    ('scans',         '*',       'Every scans permission'),
    -- users: persons, staff, teachers, students, guardians, RFID cards, consents
    ('users',         'create',  'Create users'),
    ('users',         'read',    'Read users'),
    ('users',         'update',  'Update users'),
    ('users',         'delete',  'Delete users'),
    ('users',         'list',    'List users'),
    ('users',         'manage',  'Manage users'),
    -- roles and permissions
    ('roles',         'create',  'Create roles'),
    ('roles',         'read',    'Read roles'),
    ('roles',         'update',  'Update roles'),
    ('roles',         'delete',  'Delete roles'),
    ('roles',         'manage',  'Manage roles and role assignments'),
    ('permissions',   'create',  'Create permissions'),
    ('permissions',   'read',    'Read permissions'),
    ('permissions',   'update',  'Update permissions'),
    ('permissions',   'delete',  'Delete permissions'),
    -- system and auth administration
    ('system',        'manage',  'Manage the system'),
    ('auth',          'manage',  'Manage accounts, invitations, signing keys and service clients'),
    -- activities
    ('activities',    'create',  'Create activities'),
    ('activities',    'read',    'Read activities'),
    ('activities',    'update',  'Update activities'),
    ('activities',    'delete',  'Delete activities'),
    ('activities',    'list',    'List activities'),
    ('activities',    'manage',  'Manage activities'),
    ('activities',    'enroll',  'Enroll students in activities'),
    ('activities',    'assign',  'Assign supervisors to activities'),
    -- facilities
    ('rooms',         'create',  'Create rooms'),
    ('rooms',         'read',    'Read rooms'),
    ('rooms',         'update',  'Update rooms'),
    ('rooms',         'delete',  'Delete rooms'),
    ('rooms',         'list',    'List rooms'),
    ('rooms',         'manage',  'Manage rooms, buildings and locations'),
    -- education groups and substitutions
    ('groups',        'create',  'Create groups'),
    ('groups',        'read',    'Read groups'),
    ('groups',        'update',  'Update groups'),
    ('groups',        'delete',  'Delete groups'),
    ('groups',        'list',    'List groups'),
    ('groups',        'manage',  'Manage groups'),
    ('groups',        'assign',  'Assign teachers to groups'),
    ('substitutions', 'create',  'Create substitutions'),
    ('substitutions', 'read',    'Read substitutions'),
    ('substitutions', 'update',  'Update substitutions'),
    ('substitutions', 'delete',  'Delete substitutions'),
    ('substitutions', 'list',    'List substitutions'),
    ('substitutions', 'manage',  'Manage substitutions'),
    -- active: sessions, visits, attendance
    ('visits',        'create',  'Create visits'),
    ('visits',        'read',    'Read visits'),
    ('visits',        'update',  'Update visits'),
    ('visits',        'delete',  'Delete visits'),
    ('visits',        'list',    'List visits'),
    ('visits',        'manage',  'Manage visits'),
    -- schedule
    ('schedules',     'create',  'Create schedules'),
    ('schedules',     'read',    'Read schedules'),
    ('schedules',     'update',  'Update schedules'),
    ('schedules',     'delete',  'Delete schedules'),
    ('schedules',     'list',    'List schedules'),
    ('schedules',     'manage',  'Manage schedules'),
    -- iot
    ('iot',           'read',    'Read devices'),
    ('iot',           'update',  'Update devices'),
    ('iot',           'manage',  'Manage devices (register, rotate keys)'),
    -- feedback
    ('feedback',      'create',  'Create feedback'),
    ('feedback',      'read',    'Read feedback'),
    ('feedback',      'delete',  'Delete feedback'),
    ('feedback',      'list',    'List feedback'),
    ('feedback',      'manage',  'Manage feedback'),
    -- config
    ('config',        'read',    'Read settings'),
    ('config',        'update',  'Update settings'),
    ('config',        'manage',  'Manage settings'),
    -- gateway service credential
    ('scans',         'process', 'Process reader scans (gateway service credential)')
) AS v (resource, action, description)
ON CONFLICT DO NOTHING;

-- Role grants (api.md "Roles and permissions") -----------------------------------------------
INSERT INTO auth.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM (VALUES
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
    ('guest',    'activities:read')
    -- guardian: only their own children (family:read, presence:read: migration
    -- 2026-12-07-000001_access_control, which also takes back what earlier seeds granted)
) AS v (role_name, permission_name)
JOIN auth.roles r ON r.name = v.role_name
JOIN auth.permissions p ON p.name = v.permission_name
ON CONFLICT DO NOTHING;

-- Activity categories (final state of the original; "Schulhof" is created by the service) ----
INSERT INTO activities.categories (name, description) VALUES
    ('Sport',        'Bewegung und Sport'),
    ('Kreativ',      'Basteln, Malen, Gestalten'),
    ('Musik',        'Singen und Musizieren'),
    ('Spiele',       'Gesellschafts- und Gruppenspiele'),
    ('Lernen',       'Lern- und Förderangebote'),
    ('Hausaufgaben', 'Hausaufgabenbetreuung'),
    ('Draußen',      'Angebote im Freien'),
    ('Gruppenraum',  'Freie Zeit im Gruppenraum'),
    ('Mensa',        'Mittagessen in der Mensa')
ON CONFLICT DO NOTHING;

-- Virtual device for check-ins made in the web UI ---------------------------------------------
INSERT INTO iot.devices (device_id, device_type, name, status) VALUES
    ('WEB-MANUAL-001', 'virtual', 'Manual check-in (web)', 'active')
ON CONFLICT DO NOTHING;

-- Default settings (only keys Phoenix reads) ---------------------------------------------------
INSERT INTO config.settings (key, value, category, description) VALUES
    ('privacy.default_visit_retention_days', '30', 'privacy',
     'Visit retention in days (1-31) for students without an accepted privacy consent')
ON CONFLICT DO NOTHING;
