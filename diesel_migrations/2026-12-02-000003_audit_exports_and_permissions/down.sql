-- Reverses up.sql.
DROP TABLE audit.data_exports;
DELETE FROM auth.permissions WHERE name IN ('audit:*', 'audit:read', 'audit:export', 'audit:erase');
