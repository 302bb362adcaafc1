DROP TABLE audit.data_imports;

DROP TRIGGER append_only ON audit.auth_events;
DROP TABLE audit.auth_events;

DROP TRIGGER append_only ON audit.data_deletions;
DROP TABLE audit.data_deletions;

DROP FUNCTION meta.reject_update_delete();
