-- A scan's writes without the rewrites (issue 17, docs/performance.md "Fewer writes per scan").
--
-- Measured with pg_stat_statements (track = all) under reader-bench at 16 readers: of the
-- statements inside active.process_scan, the receipt's finishing UPDATE was the largest
-- (1.0 ms a scan with its clock-evidence trigger), and the session's `last_activity` UPDATE
-- cost 0.4 ms. Both rewrote a row whose indexed columns change, so neither could be a HOT
-- update: every index of the table took a second entry.
--
-- 1. The receipt is written once, at the end, with its Result. The claim that made a
--    repeat of (device, scan_id) wait for the first copy's transaction was the unique
--    index's insert wait; it is now a transaction advisory lock on the pair (first key
--    "PHSR", second the pair's hash; a collision only makes two scans wait for each
--    other), taken at the same point, so the locks keep their order. Under it the receipt
--    is read: a repeat returns the stored Result. A second copy waits until the first
--    transaction ends and its next statement sees the committed receipt (read committed:
--    each statement of a volatile function takes its own snapshot); a repeat inside a
--    batch (active.process_scans) sees its own transaction's receipt. The unique
--    constraint stays as the backstop. Nothing the function reads changes: the claim row
--    had no pupil, no `scanned_at` and outcome `rejected`, which every read of receipts
--    left out, and `received_at` is still the transaction's now().
-- 2. idx_active_groups_running_last_activity goes: the abandoned-sessions job reads running
--    sessions by `end_time IS NULL` (uq_active_groups_running_per_room covers them) and
--    compares an expression of `last_activity`, which the index never served; without it a
--    scan's touch of the session is a HOT update.
-- 3. idx_active_visits_student_id goes: idx_active_visits_student_id_entry_time leads with
--    the same column (the foreign key stays indexed), one index fewer for every visit
--    opened and closed.

CREATE OR REPLACE FUNCTION active.process_scan(
    p_device text,
    p_scan_id text,
    p_tag text,
    p_scanned_at timestamptz,
    p_now timestamptz,
    p_max_age interval,
    p_max_ahead interval,
    p_time_zone text,
    p_daily_checkout time
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = '' AS $$
DECLARE
    max_clock_ahead CONSTANT interval := interval '5 minutes';
    clock_skew_bound CONSTANT double precision := 120;
    clock_evidence_span CONSTANT interval := interval '10 minutes';
    pickup_grace CONSTANT interval := interval '15 minutes';
    white_space CONSTANT text := E'\u0009\u000A\u000B\u000C\u000D\u0020\u0085\u00A0\u1680\u2000\u2001\u2002'
        '\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000';
    dev record;
    -- First key of the claim's advisory lock: "PHSR" in ASCII (jobs use "PHNX").
    receipt_lock_space CONSTANT integer := 1346917202;
    stored jsonb;
    result_code text;
    result_outcome text := 'rejected';
    result_message text;
    card_active boolean;
    student bigint;
    first_name text;
    last_name text;
    who jsonb;
    room_json jsonb;
    min_lag double precision;
    first_received timestamptz;
    lag double precision;
    order_at timestamptz;
    newer boolean;
    room_name text;
    room_capacity integer;
    sess record;
    open_visit record;
    inside bigint;
    activity_max integer;
    school_day date;
    present record;
    local_time time;
    pickup time;
    event_kind text;
    event_session bigint;
    event_room bigint;
    event_from_room bigint;
    event_id bigint;
    result_json jsonb;
BEGIN
    SELECT d.id, d.status, d.kind, d.room_id INTO dev FROM iot.devices d WHERE d.device_id = p_device LIMIT 1;
    IF NOT FOUND THEN
        RETURN pg_catalog.jsonb_build_object('scan_id', p_scan_id, 'outcome', 'rejected', 'code', 'unknown_device',
            'message', 'Leser unbekannt', 'duplicate', false);
    END IF;

    -- The scan's claim: a second copy of (device, scan_id) waits here until the first one's
    -- transaction ends, then reads the receipt it wrote (each statement its own snapshot).
    PERFORM pg_catalog.pg_advisory_xact_lock(receipt_lock_space, pg_catalog.hashtext(dev.id::text || ' ' || p_scan_id));
    SELECT r.result INTO stored FROM active.scan_receipts r
    WHERE r.device_id = dev.id AND r.scan_id = p_scan_id LIMIT 1;
    IF FOUND THEN
        RETURN stored || '{"duplicate": true}'::jsonb;
    END IF;

    -- The decision: `result_code` set once a rejection is decided, else `event_kind` once applied.
    IF dev.status <> 'active' THEN
        result_code := 'device_inactive';
    ELSIF p_scanned_at < p_now - p_max_age OR p_scanned_at > p_now + p_max_ahead THEN
        result_code := 'stale_scan';
    ELSIF p_tag IS NULL THEN
        result_code := 'unknown_tag';
    ELSE
        SELECT c.active, st.id, p.first_name, p.last_name INTO card_active, student, first_name, last_name
        FROM users.rfid_cards c
        LEFT JOIN users.persons p ON p.tag_id = c.id
        LEFT JOIN users.students st ON st.person_id = p.id
        WHERE c.id = p_tag LIMIT 1;
        IF NOT FOUND THEN
            result_code := 'unknown_tag';
        ELSIF NOT card_active THEN
            result_code := 'tag_inactive';
        ELSIF first_name IS NULL THEN
            -- A card in the catalogue that nobody holds is not a known card.
            result_code := 'unknown_tag';
        ELSIF student IS NULL THEN
            result_code := 'not_a_student';
        END IF;
        IF result_code IS NOT NULL THEN
            student := NULL;
        END IF;
    END IF;

    IF result_code IS NULL THEN
        -- phoenix_reader_protocol::display_name; the characters trimmed are Rust's White_Space.
        first_name := pg_catalog.btrim(first_name, white_space);
        last_name := pg_catalog.btrim(last_name, white_space);
        who := pg_catalog.jsonb_build_object('id', student, 'display_name', CASE WHEN last_name = '' THEN first_name
            ELSE first_name || ' ' || pg_catalog.upper(pg_catalog.left(last_name, 1) COLLATE "und-x-icu") || '.' END);
        PERFORM 1 FROM users.students s WHERE s.id = student LIMIT 1 FOR NO KEY UPDATE OF s;

        -- The reader's clock error: migration 2026-12-13-000001_active_reader_clock_evidence.
        SELECT pg_catalog.min(e.lag_seconds) INTO min_lag FROM active.reader_clock_evidence e
        WHERE e.device_id = dev.id AND e.received_at >= p_now - p_max_age;
        SELECT r.received_at INTO first_received FROM active.scan_receipts r
        WHERE r.device_id = dev.id AND r.received_at >= p_now - p_max_age AND r.scanned_at IS NOT NULL
          AND r.code <> 'stale_scan'
        ORDER BY r.received_at LIMIT 1;
        order_at := p_scanned_at;
        IF first_received IS NOT NULL AND p_now - first_received >= clock_evidence_span THEN
            lag := LEAST(min_lag, pg_catalog.date_part('epoch', p_now - p_scanned_at));
            IF pg_catalog.abs(lag) > clock_skew_bound THEN
                order_at := p_scanned_at + pg_catalog.make_interval(secs => lag);
            END IF;
        END IF;

        SELECT EXISTS (
                   SELECT 1 FROM active.scan_receipts r
                   WHERE r.student_id = student AND r.outcome <> 'rejected'
                     AND r.received_at > LEAST(p_scanned_at, order_at) - max_clock_ahead
                     AND CASE WHEN r.device_id = dev.id THEN r.scanned_at > p_scanned_at
                              ELSE COALESCE((r.result ->> 'ordered_at')::timestamptz, r.scanned_at) > order_at END)
               OR EXISTS (
                   SELECT 1 FROM active.presence_events p
                   WHERE p.student_id = student AND p.occurred_at > order_at
                     AND p.kind IN ('checked_in', 'checked_out', 'transferred', 'gone_home', 'arrived')
                     AND NOT EXISTS (SELECT 1 FROM active.scan_receipts s
                                     WHERE s.student_id = p.student_id AND s.received_at = p.occurred_at
                                       AND s.outcome <> 'rejected'))
        INTO newer;

        IF newer THEN
            result_code := 'superseded';
        ELSIF dev.kind = 'entrance' THEN
            school_day := (order_at AT TIME ZONE p_time_zone)::date;
            SELECT a.id, a.check_out_time INTO present FROM active.attendance a
            WHERE a.student_id = student AND a.date = school_day LIMIT 1;
            IF FOUND AND present.check_out_time IS NULL THEN
                local_time := (order_at AT TIME ZONE p_time_zone)::time;
                IF local_time < p_daily_checkout THEN
                    SELECT e.pickup_time INTO pickup FROM schedule.student_pickup_exceptions e
                    WHERE e.student_id = student AND e.exception_date = school_day LIMIT 1;
                    IF NOT FOUND THEN
                        SELECT w.pickup_time INTO pickup FROM schedule.student_pickup_schedules w
                        WHERE w.student_id = student AND w.weekday = pg_catalog.date_part('isodow', school_day)::smallint
                        LIMIT 1;
                    END IF;
                    IF pickup IS NOT NULL AND local_time < pickup - pickup_grace THEN
                        result_code := 'pickup_not_allowed';
                    END IF;
                END IF;
                IF result_code IS NULL THEN
                    -- Going home: close any open visit and the school_day's attendance.
                    SELECT v.id, v.entry_time, g.room_id INTO open_visit FROM active.visits v
                    JOIN active.groups g ON g.id = v.active_group_id
                    WHERE v.student_id = student AND v.exit_time IS NULL LIMIT 1;
                    IF FOUND THEN
                        UPDATE active.visits v SET exit_time = GREATEST(v.entry_time, order_at)
                        WHERE v.id = open_visit.id AND v.entry_time = open_visit.entry_time;
                        event_from_room := open_visit.room_id;
                    END IF;
                    UPDATE active.attendance a
                    SET check_out_time = GREATEST(a.check_in_time, order_at), check_out_device_id = dev.id,
                        check_out_destination = 'zuhause', closed_by_system = false
                    WHERE a.id = present.id;
                    result_outcome := 'checked_out';
                    result_message := 'Auf Wiedersehen!';
                    event_kind := 'gone_home';
                END IF;
            ELSE
                IF NOT FOUND THEN
                    INSERT INTO active.attendance (student_id, date, check_in_time, check_in_device_id)
                    VALUES (student, school_day, order_at, dev.id) ON CONFLICT (student_id, date) DO NOTHING;
                ELSE
                    UPDATE active.attendance a
                    SET check_out_time = NULL, checked_out_by = NULL, check_out_device_id = NULL,
                        check_out_destination = NULL, closed_by_system = false
                    WHERE a.id = present.id;
                END IF;
                result_outcome := 'checked_in';
                result_message := 'Willkommen!';
                event_kind := 'arrived';
            END IF;
        ELSE
            IF dev.room_id IS NOT NULL THEN
                SELECT r.name, r.capacity INTO room_name, room_capacity FROM facilities.rooms r
                WHERE r.id = dev.room_id LIMIT 1;
                IF FOUND THEN
                    room_json := pg_catalog.jsonb_build_object('id', dev.room_id, 'name', room_name);
                    SELECT g.id, g.activity_id, g.start_time INTO sess FROM active.groups g
                    WHERE g.room_id = dev.room_id AND g.end_time IS NULL LIMIT 1 FOR NO KEY UPDATE OF g;
                    IF NOT FOUND THEN
                        result_code := 'no_active_session';
                    END IF;
                ELSE
                    result_code := 'no_active_session';
                END IF;
            ELSE
                result_code := 'no_active_session';
            END IF;

            IF result_code IS NULL THEN
                SELECT v.id, v.active_group_id, v.entry_time, g.room_id INTO open_visit FROM active.visits v
                JOIN active.groups g ON g.id = v.active_group_id
                WHERE v.student_id = student AND v.exit_time IS NULL LIMIT 1;
                IF FOUND AND open_visit.active_group_id = sess.id THEN
                    UPDATE active.visits v SET exit_time = GREATEST(v.entry_time, order_at)
                    WHERE v.id = open_visit.id AND v.entry_time = open_visit.entry_time;
                    UPDATE active.groups g SET last_activity = p_now WHERE g.id = sess.id;
                    result_outcome := 'checked_out';
                    result_message := 'Ausgecheckt: ' || room_name;
                    event_kind := 'checked_out';
                ELSE
                    -- Capacity before anything changes; the session row lock makes the count exact.
                    SELECT pg_catalog.count(*) INTO inside FROM active.visits v
                    WHERE v.active_group_id = sess.id AND v.exit_time IS NULL;
                    IF room_capacity IS NOT NULL AND inside >= room_capacity THEN
                        result_code := 'room_full';
                        result_message := 'Raum ist voll';
                    ELSIF sess.activity_id IS NOT NULL THEN
                        SELECT a.max_participants INTO activity_max FROM activities.activities a
                        WHERE a.id = sess.activity_id LIMIT 1;
                        IF activity_max IS NOT NULL AND inside >= activity_max THEN
                            result_code := 'room_full';
                            result_message := 'Aktivität ist voll';
                        END IF;
                    END IF;
                END IF;
                IF result_code IS NULL AND event_kind IS NULL THEN
                    IF open_visit.id IS NOT NULL THEN
                        UPDATE active.visits v SET exit_time = GREATEST(v.entry_time, order_at)
                        WHERE v.id = open_visit.id AND v.entry_time = open_visit.entry_time;
                    END IF;
                    -- A replayed scan older than the session counts from the session's start.
                    INSERT INTO active.visits (student_id, active_group_id, entry_time)
                    VALUES (student, sess.id, GREATEST(order_at, sess.start_time));
                    school_day := (order_at AT TIME ZONE p_time_zone)::date;
                    SELECT a.id, a.check_out_time INTO present FROM active.attendance a
                    WHERE a.student_id = student AND a.date = school_day LIMIT 1;
                    IF NOT FOUND THEN
                        INSERT INTO active.attendance (student_id, date, check_in_time, check_in_device_id)
                        VALUES (student, school_day, order_at, dev.id) ON CONFLICT (student_id, date) DO NOTHING;
                    ELSIF present.check_out_time IS NOT NULL THEN
                        UPDATE active.attendance a
                        SET check_out_time = NULL, checked_out_by = NULL, check_out_device_id = NULL,
                            check_out_destination = NULL, closed_by_system = false
                        WHERE a.id = present.id;
                    END IF;
                    UPDATE active.groups g SET last_activity = p_now WHERE g.id = sess.id;
                    IF open_visit.id IS NOT NULL THEN
                        result_outcome := 'transferred';
                        result_message := 'Gewechselt: ' || room_name;
                        event_kind := 'transferred';
                        event_from_room := open_visit.room_id;
                    ELSE
                        result_outcome := 'checked_in';
                        result_message := 'Eingecheckt: ' || room_name;
                        event_kind := 'checked_in';
                    END IF;
                END IF;
                IF event_kind IN ('checked_out', 'checked_in', 'transferred') THEN
                    event_session := sess.id;
                    event_room := dev.room_id;
                END IF;
            END IF;
        END IF;
    END IF;

    -- The Result: a rejection carries its code's display message, the pupil once the card
    -- resolved to one, and the room of a room reader's session check.
    IF result_code IS NOT NULL THEN
        result_message := COALESCE(result_message, CASE result_code
            WHEN 'device_inactive' THEN 'Leser deaktiviert'
            WHEN 'stale_scan' THEN 'Scan zu alt'
            WHEN 'unknown_tag' THEN 'Karte unbekannt'
            WHEN 'tag_inactive' THEN 'Karte gesperrt'
            WHEN 'not_a_student' THEN 'Keine Schülerkarte'
            WHEN 'superseded' THEN 'Bereits aktualisiert'
            WHEN 'no_active_session' THEN 'Raum nicht geöffnet'
            WHEN 'pickup_not_allowed' THEN 'Abholung noch nicht erlaubt' END);
    END IF;
    result_json := pg_catalog.jsonb_build_object('scan_id', p_scan_id, 'outcome', result_outcome,
        'code', COALESCE(result_code, 'ok'), 'message', result_message, 'duplicate', false);
    IF who IS NOT NULL THEN
        result_json := result_json || pg_catalog.jsonb_build_object('student', who);
    END IF;
    IF room_json IS NOT NULL THEN
        result_json := result_json || pg_catalog.jsonb_build_object('room', room_json);
    END IF;

    -- The receipt, written once; `ordered_at` is read by the order check of later scans and
    -- ignored when the Result is sent again.
    INSERT INTO active.scan_receipts (device_id, scan_id, student_id, scanned_at, outcome, code, result)
    VALUES (dev.id, p_scan_id, student, p_scanned_at, result_outcome, COALESCE(result_code, 'ok'),
        CASE WHEN order_at IS NOT NULL AND order_at <> p_scanned_at
             THEN result_json || pg_catalog.jsonb_build_object('ordered_at',
                      pg_catalog.to_char(order_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
             ELSE result_json END);

    IF event_kind IS NOT NULL THEN
        INSERT INTO active.presence_events (kind, student_id, session_id, room_id, from_room_id)
        VALUES (event_kind, student, event_session, event_room, event_from_room)
        RETURNING id INTO event_id;
        PERFORM pg_catalog.pg_notify('phoenix_presence', event_id::text);
    END IF;
    RETURN result_json;
END
$$;
DROP INDEX active.idx_active_groups_running_last_activity;
DROP INDEX active.idx_active_visits_student_id;
