//! The order of a pupil's presence changes (docs/faults.md "Ordering and clock skew"): a
//! manual change supersedes an older reader scan replayed after it, and a reader whose clock
//! is wrong all day is ordered by its learnt clock error, so its real transfers are applied.

use chrono::{DateTime, Duration, Utc};
use phoenix_proto::active::v1 as pb;
use phoenix_tests::school::{ActiveSchool, count, open_visit_room, scan};

fn outcome(r: &pb::ProcessScanResponse) -> (pb::ScanOutcome, &str) {
    (r.outcome(), r.code.as_str())
}

/// The visit of `student` entered last: `(room, entry time)`.
async fn last_entry(env: &ActiveSchool, student: i64) -> (i64, DateTime<Utc>) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use phoenix_db::schema::active::{groups, visits};
    let mut conn = env.conn().await;
    visits::table
        .inner_join(groups::table)
        .filter(visits::student_id.eq(student))
        .order(visits::id.desc())
        .select((groups::room_id, visits::entry_time))
        .first(&mut conn)
        .await
        .expect("a visit")
}

#[tokio::test]
async fn a_manual_change_supersedes_an_older_replayed_scan() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    let (a, b) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let (p, tag) = (env.pupil(0), env.school.pupils[0].tag.clone());
    let (readers, gate) = (env.school.readers.clone(), env.school.gate.clone());
    let mut conn = env.conn().await;
    let c = &mut env.client;

    let r = scan(c, &readers[0], "in", &tag, Utc::now() - Duration::minutes(3)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    c.check_out_student(pb::CheckOutStudentRequest { student_id: p }).await.expect("manual check-out");
    // Reader B scanned the pupil a minute ago, before the check-out, and replays it only now.
    let replayed = scan(c, &readers[1], "offline-1", &tag, Utc::now() - Duration::minutes(1)).await;
    assert_eq!(outcome(&replayed), (pb::ScanOutcome::Rejected, "superseded"));
    assert_eq!(replayed.student.expect("student").id, p);
    assert_eq!(open_visit_room(&mut conn, p).await, None, "the pupil stays checked out");
    // Reader A's own scan after its check-in, replayed: the check-out is newer too.
    let own = scan(c, &readers[0], "offline-0", &tag, Utc::now() - Duration::seconds(30)).await;
    assert_eq!(outcome(&own), (pb::ScanOutcome::Rejected, "superseded"));
    assert_eq!(open_visit_room(&mut conn, p).await, None);

    // Every manual change is a mark, each replay below is older than it and newer than any
    // scan: CheckInStudent …
    let before = Utc::now();
    c.check_in_student(pb::CheckInStudentRequest { student_id: p, session_id: b, transfer: true })
        .await
        .expect("manual check-in");
    let replayed = scan(c, &readers[0], "offline-2", &tag, before).await;
    assert_eq!(outcome(&replayed), (pb::ScanOutcome::Rejected, "superseded"));
    assert_eq!(open_visit_room(&mut conn, p).await, Some(rooms[1]), "still where staff put the pupil");
    // … CheckOutStudent again, then a scan after it is applied …
    c.check_out_student(pb::CheckOutStudentRequest { student_id: p }).await.expect("out");
    let r = scan(c, &readers[0], "live-1", &tag, Utc::now()).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"), "a scan after the change is applied");
    // … EndVisit …
    let open = c
        .list_visits(pb::ListVisitsRequest { student_id: Some(p), open_only: true, ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .visits;
    assert_eq!(open[0].session_id, a);
    let before = Utc::now();
    c.end_visit(pb::EndVisitRequest { id: open[0].id }).await.expect("end visit");
    let replayed = scan(c, &readers[1], "offline-3", &tag, before).await;
    assert_eq!(outcome(&replayed), (pb::ScanOutcome::Rejected, "superseded"));
    assert_eq!(open_visit_room(&mut conn, p).await, None);
    // … and CheckOutForDay: no second arrival from the past at the entrance.
    let before = Utc::now();
    c.check_out_for_day(pb::CheckOutForDayRequest { student_id: p, destination: pb::CheckoutDestination::Home as i32 })
        .await
        .expect("home");
    let replayed = scan(c, &gate, "offline-4", &tag, before).await;
    assert_eq!(outcome(&replayed), (pb::ScanOutcome::Rejected, "superseded"));
    let superseded = count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts WHERE code = 'superseded'").await;
    assert_eq!(superseded, 5);
}

/// Receipts of `device` over the last three hours, its clock `behind` the server's: the
/// reader has been scanning all morning (cards of nobody, no session needed).
async fn scanned_all_morning(env: &ActiveSchool, device: &str, behind: Duration) {
    let mut conn = env.conn().await;
    let seeded = count(
        &mut conn,
        &format!(
            "WITH d AS (SELECT id FROM iot.devices WHERE device_id = '{device}'), \
             ins AS (INSERT INTO active.scan_receipts \
                 (device_id, scan_id, scanned_at, outcome, code, result, received_at) \
             SELECT d.id, 'morning-' || k, now() - k * interval '20 minutes' - interval '{} seconds' \
                    + interval '0.01 seconds', 'rejected', 'unknown_tag', '{{}}', now() - k * interval '20 minutes' \
             FROM d, generate_series(1, 9) k RETURNING 1) \
             SELECT count(*) AS n FROM ins",
            behind.num_seconds()
        ),
    )
    .await;
    assert_eq!(seeded, 9);
}

#[tokio::test]
async fn a_reader_ten_minutes_behind_still_transfers() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    env.session(rooms[1]).await;
    let (p, tag) = (env.pupil(0), env.school.pupils[0].tag.clone());
    let readers = env.school.readers.clone();
    let slow = Duration::minutes(10);
    scanned_all_morning(&env, &readers[1], slow).await;
    let c = &mut env.client;

    let r = scan(c, &readers[0], "a-1", &tag, Utc::now()).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The pupil walks to room B; its reader stamps the scan ten minutes in the past.
    let moved_at = Utc::now();
    let r = scan(c, &readers[1], "b-1", &tag, moved_at - slow).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Transferred, "ok"), "a real transfer, not superseded");
    let (room, entry) = last_entry(&env, p).await;
    assert_eq!(room, rooms[1]);
    let off = (entry - moved_at).num_milliseconds().abs();
    assert!(off < 2_000, "the visit starts when the pupil came, not ten minutes before: {off} ms");

    // Exactly once: a re-send is the stored Result.
    let again = scan(&mut env.client, &readers[1], "b-1", &tag, moved_at - slow).await;
    assert!(again.duplicate);
    assert_eq!(outcome(&again), (pb::ScanOutcome::Transferred, "ok"));
    // The slow reader's own order holds: its older scan, replayed, is superseded …
    let own = scan(&mut env.client, &readers[1], "b-0", &tag, moved_at - slow - Duration::seconds(30)).await;
    assert_eq!(outcome(&own), (pb::ScanOutcome::Rejected, "superseded"));
    // … and so is reader A's scan from before the transfer, replayed late.
    let late = scan(&mut env.client, &readers[0], "a-0", &tag, moved_at - Duration::milliseconds(100)).await;
    assert_eq!(outcome(&late), (pb::ScanOutcome::Rejected, "superseded"));
    let mut conn = env.conn().await;
    assert_eq!(open_visit_room(&mut conn, p).await, Some(rooms[1]));

    // Back to room A a little later: reader A's right clock orders after B's corrected one.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = scan(&mut env.client, &readers[0], "a-2", &tag, Utc::now()).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Transferred, "ok"));
    assert_eq!(open_visit_room(&mut conn, p).await, Some(rooms[0]));
    let visits = count(&mut conn, &format!("SELECT count(*) AS n FROM active.visits WHERE student_id = {p}")).await;
    assert_eq!(visits, 3, "A, B, A: nothing doubled");
}

#[tokio::test]
async fn a_burst_of_replays_is_not_taken_for_a_wrong_clock() {
    // Reader A comes back after 40 minutes offline and replays its buffer at once: its
    // receipts all lag, but they span seconds, not the ten minutes a wrong clock shows, so
    // its scans keep their scanned_at and the pupil's older one stays older.
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    env.session(rooms[1]).await;
    let tag = env.school.pupils[0].tag.clone();
    let readers = env.school.readers.clone();
    let t = Utc::now() - Duration::minutes(40);
    let c = &mut env.client;
    let r = scan(c, &readers[1], "b", &tag, t + Duration::minutes(30)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    for (i, minutes) in [0, 10, 20].into_iter().enumerate() {
        let r = scan(c, &readers[0], &format!("a-{i}"), "DEADBEEF01", t + Duration::minutes(minutes)).await;
        assert_eq!(r.code, "unknown_tag");
    }
    let replayed = scan(c, &readers[0], "a-3", &tag, t + Duration::minutes(25)).await;
    assert_eq!(outcome(&replayed), (pb::ScanOutcome::Rejected, "superseded"));
}

/// The order time a scan's receipt stored (`result.ordered_at`): only when it differs from
/// `scanned_at`.
async fn ordered_at(env: &ActiveSchool, scan_id: &str) -> Option<DateTime<Utc>> {
    use diesel::sql_types::{Nullable, Timestamptz};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    let mut conn = env.conn().await;
    let row: Row = diesel::sql_query(format!(
        "SELECT (result ->> 'ordered_at')::timestamptz AS at FROM active.scan_receipts WHERE scan_id = '{scan_id}'"
    ))
    .get_result(&mut conn)
    .await
    .expect("the receipt");
    row.at
}

#[tokio::test]
async fn a_reader_four_minutes_ahead_is_ordered_when_its_scan_was_received() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    let (p, tag) = (env.pupil(0), env.school.pupils[0].tag.clone());
    let readers = env.school.readers.clone();
    scanned_all_morning(&env, &readers[0], -Duration::minutes(4)).await;

    let sent = Utc::now();
    let r = scan(&mut env.client, &readers[0], "ahead-1", &tag, sent + Duration::minutes(4)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"), "within the five minutes ahead a scan may be");
    let at = ordered_at(&env, "ahead-1").await.expect("an order time of its own");
    let received = Utc::now();
    assert!(at >= sent - Duration::seconds(2) && at <= received, "never later than it was received: {at}");
    let (room, entry) = last_entry(&env, p).await;
    assert_eq!(room, rooms[0]);
    // The order time or the session's start, whichever is later: not four minutes ahead.
    assert!(entry >= at && entry <= received, "the visit starts when the scan came: {entry}");
}

#[tokio::test]
async fn a_clock_error_within_two_minutes_is_taken_as_it_is() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    let tag = env.school.pupils[0].tag.clone();
    let readers = env.school.readers.clone();
    scanned_all_morning(&env, &readers[0], Duration::seconds(90)).await;
    scanned_all_morning(&env, &readers[1], Duration::minutes(3)).await;

    let r = scan(&mut env.client, &readers[0], "slight-1", &tag, Utc::now() - Duration::seconds(90)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    assert_eq!(ordered_at(&env, "slight-1").await, None, "90 s: ordered by its scanned_at");
    // Beyond the bound the same reader clock error is corrected.
    env.session(rooms[1]).await;
    let r = scan(&mut env.client, &readers[1], "off-1", &tag, Utc::now() - Duration::minutes(3)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Transferred, "ok"), "3 min behind, corrected: after the check-in");
    assert!(ordered_at(&env, "off-1").await.is_some());
}
