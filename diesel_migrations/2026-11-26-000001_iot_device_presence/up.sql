-- Reader pipeline (issue #4): explicit offline marking of readers, and the device-log event
-- for scans refused because the reader is not active.

-- A reader is online when seen within 5 minutes and not marked offline since (behaviour.md
-- "Devices": status messages and the Last Will mark it offline at once). Cleared by the next
-- authenticated message or `online` status. Kept apart from `status`, which is the
-- administrative state (a reader that lost Wi-Fi is still `active`).
ALTER TABLE iot.devices ADD COLUMN offline_since timestamptz;

ALTER TABLE iot.device_logs DROP CONSTRAINT ck_iot_device_logs_event;
ALTER TABLE iot.device_logs ADD CONSTRAINT ck_iot_device_logs_event CHECK (event IN
    ('registered', 'key_rotated', 'status_changed', 'online', 'offline', 'bad_signature',
     'malformed', 'stale_scan', 'rate_limited', 'session_started', 'session_ended',
     'device_inactive'));
