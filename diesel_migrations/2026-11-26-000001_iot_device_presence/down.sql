-- Reverses up.sql. Log rows with the added event are removed first, or the old CHECK fails.
DELETE FROM iot.device_logs WHERE event = 'device_inactive';
ALTER TABLE iot.device_logs DROP CONSTRAINT ck_iot_device_logs_event;
ALTER TABLE iot.device_logs ADD CONSTRAINT ck_iot_device_logs_event CHECK (event IN
    ('registered', 'key_rotated', 'status_changed', 'online', 'offline', 'bad_signature',
     'malformed', 'stale_scan', 'rate_limited', 'session_started', 'session_ended'));

ALTER TABLE iot.devices DROP COLUMN offline_since;
