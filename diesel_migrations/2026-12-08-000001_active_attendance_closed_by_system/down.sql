ALTER TABLE active.attendance DROP COLUMN closed_by_system;
