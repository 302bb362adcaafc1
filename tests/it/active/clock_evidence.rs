//! A reader's clock evidence (migration 2026-12-13-000001, docs/faults.md "Ordering and clock
//! skew"): the few rows `active.reader_clock_evidence` keeps per reader give every scan window
//! the same smallest `received_at − scanned_at` as all of the reader's receipts — receipts
//! inserted in order or out of it, finished by an UPDATE as a scan does, rejected `stale_scan`
//! or not, of two readers side by side — and the migration fills it from the receipts already
//! stored. A scan's reads of receipts stay few however many receipts other readers hold
//! (migration 2026-12-14-000002).

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::{MigrationCommand, migrate};
use phoenix_tests::{TestDb, fixtures};

const MIGRATION: &str = "2026-12-13-000001_active_reader_clock_evidence";

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn number(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// 450 receipts of `device` over the last 30 hours, in receive order, whose lag falls and then
/// rises (a clock that drifts one way, then the other) with up to a minute of jitter, offset by
/// `offset` seconds; every 17th one rejected `stale_scan`.
async fn receipts_in_order(conn: &mut AsyncPgConnection, device: i64, offset: i64) {
    exec(
        conn,
        &format!(
            "INSERT INTO active.scan_receipts (device_id, scan_id, scanned_at, outcome, code, result, received_at) \
             SELECT {device}, 'in-order-' || k, \
                    t - make_interval(secs => {offset} + abs(k - 225) + random() * 60), 'rejected', \
                    CASE WHEN k % 17 = 0 THEN 'stale_scan' ELSE 'unknown_tag' END, '{{}}', t \
             FROM (SELECT k, now() - interval '30 hours' + k * interval '4 minutes' AS t \
                   FROM generate_series(1, 450) k) s ORDER BY k"
        ),
    )
    .await;
}

/// Receipts written the other ways: 12 received between older ones, inserted after them,
/// and 8 claimed first (no `scanned_at`) and finished by an UPDATE, as `active.process_scan`
/// did before migration 2026-12-14-000001 (the trigger covers any writer).
async fn receipts_out_of_order_and_finished(conn: &mut AsyncPgConnection, device: i64) {
    exec(
        conn,
        &format!(
            "INSERT INTO active.scan_receipts (device_id, scan_id, scanned_at, outcome, code, result, received_at) \
             SELECT {device}, 'late-' || k, t - make_interval(secs => random() * 400), 'rejected', 'unknown_tag', \
                    '{{}}', t \
             FROM (SELECT k, now() - interval '29 hours' + k * interval '137 minutes' AS t \
                   FROM generate_series(1, 12) k) s"
        ),
    )
    .await;
    exec(
        conn,
        &format!(
            "INSERT INTO active.scan_receipts (device_id, scan_id, outcome, code, result) \
             SELECT {device}, 'claimed-' || k, 'rejected', 'internal', '{{}}' FROM generate_series(1, 8) k"
        ),
    )
    .await;
    exec(
        conn,
        &format!(
            "UPDATE active.scan_receipts SET scanned_at = received_at - make_interval(secs => 30 + random() * 30), \
             code = 'unknown_tag' WHERE device_id = {device} AND scan_id LIKE 'claimed-%'"
        ),
    )
    .await;
}

/// Windows (one every 90 minutes from 31 hours back) in which the evidence's smallest lag of
/// `device` is not the receipts' smallest lag.
async fn windows_that_differ(conn: &mut AsyncPgConnection, device: i64) -> i64 {
    number(
        conn,
        &format!(
            "SELECT count(*) AS n FROM generate_series(0, 21) j, \
                 LATERAL (SELECT now() - interval '31 hours' + j * interval '90 minutes' AS start) w \
             WHERE (SELECT min(e.lag_seconds) FROM active.reader_clock_evidence e \
                    WHERE e.device_id = {device} AND e.received_at >= w.start) \
                IS DISTINCT FROM \
                   (SELECT min(date_part('epoch', r.received_at - r.scanned_at)) FROM active.scan_receipts r \
                    WHERE r.device_id = {device} AND r.received_at >= w.start AND r.scanned_at IS NOT NULL \
                      AND r.code <> 'stale_scan')"
        ),
    )
    .await
}

async fn evidence_rows(conn: &mut AsyncPgConnection, device: i64) -> i64 {
    number(conn, &format!("SELECT count(*) AS n FROM active.reader_clock_evidence WHERE device_id = {device}")).await
}

async fn two_readers(conn: &mut AsyncPgConnection) -> (i64, i64) {
    let room = fixtures::room(conn, "Werkraum", None).await;
    (
        fixtures::device(conn, "clock-a", "room", Some(room)).await,
        fixtures::device(conn, "clock-b", "entrance", None).await,
    )
}

#[tokio::test]
async fn the_evidence_gives_every_window_the_smallest_lag_of_the_readers_receipts() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let (a, b) = two_readers(&mut conn).await;
    receipts_in_order(&mut conn, a, 0).await;
    // Reader b's clock is ~17 minutes fast: its lags are far below a's and must not leak into a's.
    receipts_in_order(&mut conn, b, -1000).await;
    receipts_out_of_order_and_finished(&mut conn, a).await;

    assert_eq!(windows_that_differ(&mut conn, a).await, 0, "reader a: every window's smallest lag");
    assert_eq!(windows_that_differ(&mut conn, b).await, 0, "reader b: every window's smallest lag");
    let (kept_a, kept_b) = (evidence_rows(&mut conn, a).await, evidence_rows(&mut conn, b).await);
    assert!(kept_a > 0 && kept_b > 0, "each reader has evidence");
    // A falling-then-rising lag keeps roughly the rising half's suffix minima, not 450 rows.
    assert!(kept_a < 150 && kept_b < 150, "only the receipts that can be a window's minimum: {kept_a}, {kept_b}");

    // Rows older than the longest scan window the settings allow (7 days) go with the reader's
    // next receipt.
    exec(
        &mut conn,
        &format!(
            "INSERT INTO active.reader_clock_evidence (device_id, received_at, lag_seconds) \
             VALUES ({a}, now() - interval '8 days', -5000)"
        ),
    )
    .await;
    exec(
        &mut conn,
        &format!(
            "INSERT INTO active.scan_receipts (device_id, scan_id, scanned_at, outcome, code, result) \
             VALUES ({a}, 'next', now() - interval '2 seconds', 'rejected', 'unknown_tag', '{{}}')"
        ),
    )
    .await;
    let old = number(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.reader_clock_evidence \
             WHERE device_id = {a} AND received_at < now() - interval '7 days'"
        ),
    )
    .await;
    assert_eq!(old, 0, "evidence older than any scan window is dropped");
    assert_eq!(windows_that_differ(&mut conn, a).await, 0, "still exact after the newest receipt");
}

#[tokio::test]
async fn the_migration_fills_the_evidence_from_the_receipts_already_stored() {
    let db = TestDb::new().await;
    let status = migrate(db.url(), MigrationCommand::Status).await.expect("status");
    let at = status.iter().position(|m| m.name == MIGRATION).expect("the clock evidence migration is embedded");
    assert!(status[at..].iter().all(|m| m.applied), "a migrated test database: {status:?}");
    migrate(db.url(), MigrationCommand::Down(status.len() - at)).await.expect("down to before the evidence");

    let mut conn = db.conn().await;
    let (a, b) = two_readers(&mut conn).await;
    receipts_in_order(&mut conn, a, 0).await;
    receipts_in_order(&mut conn, b, -1000).await;
    receipts_out_of_order_and_finished(&mut conn, a).await;
    drop(conn);

    migrate(db.url(), MigrationCommand::Up).await.expect("up: the evidence filled");
    let mut conn = db.conn().await;
    for device in [a, b] {
        assert_eq!(windows_that_differ(&mut conn, device).await, 0, "reader {device}: every window's smallest lag");
        // Exactly the receipts below every later receipt's lag, said another way.
        let minima = number(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM active.scan_receipts r \
                 WHERE r.device_id = {device} AND r.scanned_at IS NOT NULL AND r.code <> 'stale_scan' \
                   AND NOT EXISTS (SELECT 1 FROM active.scan_receipts l \
                       WHERE l.device_id = r.device_id AND l.scanned_at IS NOT NULL AND l.code <> 'stale_scan' \
                         AND (l.received_at, l.id) > (r.received_at, r.id) \
                         AND l.received_at - l.scanned_at <= r.received_at - r.scanned_at)"
            ),
        )
        .await;
        assert!(minima > 0);
        assert_eq!(evidence_rows(&mut conn, device).await, minima, "reader {device}: the suffix minima, no more");
    }
}

#[tokio::test]
async fn a_scan_reads_few_receipts_however_many_another_reader_holds() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let (busy, quiet) = two_readers(&mut conn).await;
    fixtures::student(&mut conn, "Mila", "Sommer", "04A1B2C3D4E5F6").await;
    exec(
        &mut conn,
        &format!(
            "INSERT INTO active.scan_receipts (device_id, scan_id, scanned_at, outcome, code, result, received_at) \
             SELECT {busy}, 'busy-' || k, t - interval '1 second', 'rejected', 'unknown_tag', '{{}}', t \
             FROM (SELECT k, now() - interval '2 hours' + k * interval '2 seconds' AS t \
                   FROM generate_series(1, 3000) k) s"
        ),
    )
    .await;
    exec(&mut conn, "ANALYZE active.scan_receipts").await;
    assert_eq!(evidence_rows(&mut conn, quiet).await, 0);
    // One connection: PL/pgSQL switches to its generic plans after five calls.
    for k in 0..8 {
        exec(&mut conn, "BEGIN").await;
        exec(
            &mut conn,
            &format!(
                "SELECT active.process_scan('clock-b', 'probe-{k}', '04A1B2C3D4E5F6', now(), now(), \
                 interval '24 hours', interval '5 minutes', 'UTC', '23:59')"
            ),
        )
        .await;
        let read = number(
            &mut conn,
            "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int8 AS n \
             FROM pg_stat_xact_user_tables WHERE relid = 'active.scan_receipts'::regclass",
        )
        .await;
        exec(&mut conn, "COMMIT").await;
        assert!(read < 100, "scan {k} of the quiet reader read {read} receipts; the busy reader holds 3,000");
    }
    let written = format!("SELECT count(*) AS n FROM active.scan_receipts WHERE device_id = {quiet}");
    assert_eq!(number(&mut conn, &written).await, 8, "every probe was a scan of its own");
}
