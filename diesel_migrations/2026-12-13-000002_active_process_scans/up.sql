-- active.process_scans: several reader scans in one transaction (group commit, issue 17;
-- services/active/src/scan/batch.rs says when the active service batches and why;
-- docs/performance.md has the figures).
--
-- Each scan is one call of active.process_scan, in the order given, so a batch applies its
-- scans exactly as one transaction each would in that order: the same steps, locks and
-- receipts (a scan repeated in the batch is answered `duplicate` from the receipt its first
-- copy wrote). Settings and `now` are the batch's (read when it starts). There is no
-- savepoint per scan: an error in any scan fails the call, the caller rolls the whole batch
-- back and applies its scans one transaction each, so one scan's failure answers that scan
-- only. Returns the Results in the order of the arguments (an element NULL where
-- active.process_scan returned NULL).
CREATE FUNCTION active.process_scans(
    p_devices text[],
    p_scan_ids text[],
    p_tags text[],
    p_scanned_at timestamptz[],
    p_now timestamptz,
    p_max_age interval,
    p_max_ahead interval,
    p_time_zone text,
    p_daily_checkout time
) RETURNS jsonb[]
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = '' AS $$
DECLARE
    n integer := pg_catalog.cardinality(p_devices);
    results jsonb[] := '{}';
BEGIN
    IF pg_catalog.cardinality(p_scan_ids) <> n OR pg_catalog.cardinality(p_tags) <> n
        OR pg_catalog.cardinality(p_scanned_at) <> n THEN
        RAISE EXCEPTION 'active.process_scans: % devices, % scan ids, % tags, % times', n,
            pg_catalog.cardinality(p_scan_ids), pg_catalog.cardinality(p_tags), pg_catalog.cardinality(p_scanned_at);
    END IF;
    FOR i IN 1 .. n LOOP
        results := pg_catalog.array_append(results, active.process_scan(p_devices[i], p_scan_ids[i], p_tags[i],
            p_scanned_at[i], p_now, p_max_age, p_max_ahead, p_time_zone, p_daily_checkout));
    END LOOP;
    RETURN results;
END
$$;

REVOKE ALL ON FUNCTION active.process_scans(text[], text[], text[], timestamptz[], timestamptz, interval, interval,
    text, time) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'phoenix_active') THEN
        GRANT EXECUTE ON FUNCTION active.process_scans(text[], text[], text[], timestamptz[], timestamptz, interval,
            interval, text, time) TO phoenix_active;
    END IF;
END
$$;
