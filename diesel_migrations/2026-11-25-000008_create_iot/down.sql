DROP TABLE iot.device_logs;

DROP TRIGGER set_updated_at ON iot.devices;
DROP TABLE iot.devices;
