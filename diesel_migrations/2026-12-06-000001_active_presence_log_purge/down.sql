DROP INDEX active.idx_active_visits_open_active_group_id;
DROP TABLE active.presence_log_purge;
