DROP FUNCTION active.process_scans(text[], text[], text[], timestamptz[], timestamptz, interval, interval, text, time);
