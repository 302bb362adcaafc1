DROP TRIGGER set_updated_at ON active.scheduled_checkouts;
DROP TABLE active.scheduled_checkouts;

DROP TRIGGER set_updated_at ON active.attendance;
DROP TABLE active.attendance;

DROP TRIGGER set_updated_at ON active.group_mappings;
DROP TABLE active.group_mappings;

DROP TRIGGER set_updated_at ON active.combined_groups;
DROP TABLE active.combined_groups;

DROP TRIGGER set_updated_at ON active.group_supervisors;
DROP TABLE active.group_supervisors;

DROP TRIGGER set_updated_at ON active.visits;
DROP TABLE active.visits;

DROP TRIGGER set_updated_at ON active.groups;
DROP TABLE active.groups;

DROP TABLE active.scan_receipts;
