DROP FUNCTION active.process_scan(text, text, text, timestamptz, timestamptz, interval, interval, text, time);
DROP INDEX active.idx_active_scan_receipts_device_id_received_at;
