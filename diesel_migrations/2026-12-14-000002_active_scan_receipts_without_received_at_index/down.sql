CREATE INDEX idx_active_scan_receipts_received_at ON active.scan_receipts (received_at);
