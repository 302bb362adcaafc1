-- active.presence_log_purge: how far the presence event log has been purged.
--
-- active.presence_events is a resume buffer for WatchPresence, not history: the active
-- service deletes events older than the retention (48 hours) as a prefix in stream order
-- (tx_id, id) and records the last deleted position here in the same transaction, so a
-- resume cursor at or before it is answered CURSOR_EXPIRED exactly (never a silent gap).
-- One row only.
CREATE TABLE active.presence_log_purge (
    id           smallint PRIMARY KEY DEFAULT 1,
    -- last deleted position (tx_id, event id); (0, 0) = nothing purged yet
    tx_id        bigint NOT NULL DEFAULT 0,
    event_id     bigint NOT NULL DEFAULT 0,
    purged_at    timestamptz,
    -- events deleted by the last purge that deleted any
    deleted      bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_active_presence_log_purge_single_row CHECK (id = 1),
    CONSTRAINT ck_active_presence_log_purge_position CHECK (tx_id >= 0 AND event_id >= 0),
    CONSTRAINT ck_active_presence_log_purge_deleted CHECK (deleted >= 0)
);
INSERT INTO active.presence_log_purge (id) VALUES (1);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON active.presence_log_purge
    FOR EACH ROW EXECUTE FUNCTION meta.set_updated_at();

-- The presence board and the scan's capacity check count a session's open visits: without
-- this, PostgreSQL walks every (closed) visit of the session's history.
CREATE INDEX idx_active_visits_open_active_group_id ON active.visits (active_group_id) WHERE exit_time IS NULL;
