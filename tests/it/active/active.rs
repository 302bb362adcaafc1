//! `phoenix.active.v1` (this slice) over real gRPC: room sessions, and `ProcessScan` called as
//! the gateway calls it (the MQTT path end to end is in `reader.rs`).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::{active, users};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_tests::grpc::{reason, violated_fields};
use phoenix_tests::school::{self, School, attendance_open, open_visit_count, open_visit_room, scan, visit_count};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

async fn setup(pupils: usize) -> (TestApp, ActiveServiceClient<phoenix_tests::auth::TestChannel>, School) {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let client = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, pupils).await;
    (app, client, school)
}

fn outcome(r: &pb::ProcessScanResponse) -> (pb::ScanOutcome, &str) {
    (r.outcome(), r.code.as_str())
}

#[tokio::test]
async fn sessions_start_end_force_get_and_list() {
    let (app, mut client, school) = setup(2).await;
    let room = school.rooms[0];
    let started = client
        .start_session(pb::StartSessionRequest {
            room_id: room,
            activity_id: Some(school.activity),
            supervisor_staff_ids: vec![school.staff],
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner();
    let first = started.session.expect("session");
    assert!(first.running);
    assert_eq!(first.room_name, "Raum A");
    assert_eq!(first.timeout_minutes, 30);
    assert_eq!(first.supervisors.len(), 1);
    assert_eq!(first.supervisors[0].staff_id, school.staff);
    assert_eq!(first.supervisors[0].role(), pb::SupervisorRole::Supervisor);
    assert_eq!(started.ended_session_id, None);

    // One running session per room: a second start fails …
    let req = pb::StartSessionRequest {
        room_id: room,
        education_group_id: None,
        activity_id: Some(school.activity),
        supervisor_staff_ids: vec![school.staff],
        ..Default::default()
    };
    let err = client.start_session(req.clone()).await.unwrap_err();
    assert_eq!(reason(&err).unwrap_or_default(), "SESSION_RUNNING");

    // … unless forced, which ends the first (closing its visits) in the same transaction.
    let pupil = &school.pupils[0];
    let r = scan(&mut client, &school.readers[0], "s-1", &pupil.tag, Utc::now()).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    let forced =
        client.start_session(pb::StartSessionRequest { force: true, ..req }).await.expect("forced start").into_inner();
    assert_eq!(forced.ended_session_id, Some(first.id));
    let second = forced.session.expect("session");
    let mut conn = app.db.conn().await;
    assert_eq!(open_visit_count(&mut conn, pupil.id).await, 0, "the forced end closed the visit");
    let old = client.get_session(pb::GetSessionRequest { id: first.id }).await.expect("get").into_inner();
    let old = old.session.expect("session");
    assert!(!old.running && old.end_time.is_some());
    assert!(old.supervisors.iter().all(|s| !s.end_date.is_empty()), "supervision ended with the session");

    // EndSession closes open visits and reports how many.
    scan(&mut client, &school.readers[0], "s-2", &pupil.tag, Utc::now()).await;
    let ended = client.end_session(pb::EndSessionRequest { id: second.id }).await.expect("end").into_inner();
    assert_eq!(ended.closed_visit_count, 1);
    assert!(!ended.session.expect("session").running);
    assert_eq!(open_visit_count(&mut conn, pupil.id).await, 0);
    let again = client.end_session(pb::EndSessionRequest { id: second.id }).await.unwrap_err();
    assert_eq!(reason(&again).unwrap_or_default(), "SESSION_ENDED");

    // Lists: newest first, filter by state, paging with total.
    school::start_session(&mut client, school.rooms[1], school.activity, school.staff).await;
    let all = client.list_sessions(pb::ListSessionsRequest::default()).await.expect("list").into_inner();
    assert_eq!(all.total_size, 3);
    assert!(all.sessions.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let running = client
        .list_sessions(pb::ListSessionsRequest { state: pb::SessionState::Running as i32, ..Default::default() })
        .await
        .expect("running")
        .into_inner();
    assert_eq!(running.total_size, 1);
    assert_eq!(running.sessions[0].room_id, school.rooms[1]);
    let page = client
        .list_sessions(pb::ListSessionsRequest { page_size: 2, ..Default::default() })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.sessions.len(), 2);
    let rest = client
        .list_sessions(pb::ListSessionsRequest { page_size: 2, page_token: page.next_page_token, ..Default::default() })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(rest.sessions.len(), 1);
    assert!(rest.next_page_token.is_empty());
}

#[tokio::test]
async fn session_requests_are_validated() {
    let (_app, mut client, school) = setup(0).await;
    let err = client.start_session(pb::StartSessionRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["room_id", "activity_id", "supervisor_staff_ids"]);
    let base = pb::StartSessionRequest {
        room_id: school.rooms[0],
        activity_id: Some(school.activity),
        supervisor_staff_ids: vec![school.staff],
        ..Default::default()
    };
    let err = client.start_session(pb::StartSessionRequest { room_id: 9999, ..base.clone() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["room_id"]);
    let err = client
        .start_session(pb::StartSessionRequest { supervisor_staff_ids: vec![school.staff + 77], ..base.clone() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["supervisor_staff_ids"]);
    let err = client.start_session(pb::StartSessionRequest { activity_id: Some(4242), ..base }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["activity_id"]);
    let err = client.get_session(pb::GetSessionRequest { id: 12345 }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.end_session(pb::EndSessionRequest { id: 0 }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["id"]);
    let err = client.process_scan(pb::ProcessScanRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["device_id", "scan_id", "tag", "scanned_at"]);
}

#[tokio::test]
async fn room_reader_toggles_and_transfers_and_opens_attendance() {
    let (app, mut client, school) = setup(1).await;
    school.open_all_rooms(&mut client).await;
    let mut conn = app.db.conn().await;
    let p = &school.pupils[0];
    let t0 = Utc::now() - Duration::minutes(10);

    // Lower-case with separators: normalised.
    let messy = p.tag.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_lowercase()).collect::<Vec<_>>();
    let r = scan(&mut client, &school.readers[0], "s-1", &format!(" {} ", messy.join(":")), t0).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    let student = r.student.clone().expect("student");
    assert_eq!((student.id, student.display_name.as_str()), (p.id, "Kind0 T."));
    assert_eq!(r.room.clone().expect("room").id, school.rooms[0]);
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(school.rooms[0]));
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(true), "first scan of the day opens attendance");

    let r = scan(&mut client, &school.readers[1], "s-2", &p.tag, t0 + Duration::minutes(1)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Transferred, "ok"));
    assert_eq!(r.room.clone().expect("room").name, "Raum B");
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(school.rooms[1]));

    let r = scan(&mut client, &school.readers[1], "s-3", &p.tag, t0 + Duration::minutes(2)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"));
    assert_eq!(open_visit_room(&mut conn, p.id).await, None, "in transit");
    assert_eq!(visit_count(&mut conn, p.id).await, 2);
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(true), "still present today");
}

#[tokio::test]
async fn entrance_reader_records_arrival_and_departure() {
    let (app, mut client, school) = setup(1).await;
    school.open_all_rooms(&mut client).await;
    let mut conn = app.db.conn().await;
    let p = &school.pupils[0];
    let t0 = Utc::now() - Duration::minutes(30);

    let r = scan(&mut client, &school.gate, "g-1", &p.tag, t0).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    assert!(r.room.is_none());
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(true));
    scan(&mut client, &school.readers[2], "r-1", &p.tag, t0 + Duration::minutes(1)).await;
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(school.rooms[2]));

    let r = scan(&mut client, &school.gate, "g-2", &p.tag, t0 + Duration::minutes(2)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"), "gone home");
    assert_eq!(open_visit_room(&mut conn, p.id).await, None, "the open visit is closed");
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(false));
    let (device, destination): (Option<i64>, Option<String>) = active::attendance::table
        .filter(active::attendance::student_id.eq(p.id))
        .select((active::attendance::check_out_device_id, active::attendance::check_out_destination))
        .first(&mut conn)
        .await
        .expect("attendance");
    assert!(device.is_some());
    assert_eq!(destination.as_deref(), Some("zuhause"));

    // Coming back the same day re-opens the same row.
    let r = scan(&mut client, &school.gate, "g-3", &p.tag, t0 + Duration::minutes(3)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(true));
    let rows: i64 = active::attendance::table.count().get_result(&mut conn).await.expect("count");
    assert_eq!(rows, 1);
}

/// Local time `hh:mm` on `date` in Berlin (the test configuration's time zone), as UTC.
fn berlin(date: chrono::NaiveDate, hh: u32, mm: u32) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    chrono_tz::Europe::Berlin
        .from_local_datetime(&date.and_hms_opt(hh, mm, 0).expect("time"))
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn the_entrance_keeps_a_pupil_until_their_pickup_time_before_the_daily_checkout_time() {
    use chrono::Datelike as _;
    use phoenix_db::schema::schedule::{student_pickup_exceptions as ex, student_pickup_schedules as weekly};
    let app = TestApp::spawn_with(&[Domain::Active], |c| {
        c.daily_checkout_time = chrono::NaiveTime::from_hms_opt(17, 0, 0).expect("time");
        // Scans of a recent school day, replayed (an offline buffer).
        c.scan_max_age = std::time::Duration::from_secs(5 * 24 * 3600);
    })
    .await;
    let mut client = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, 3).await;
    // The latest Monday–Friday at least a day ago, so all its times are in the past.
    let mut day = phoenix_common::time::business_date_in(Utc::now(), chrono_tz::Europe::Berlin) - Duration::days(1);
    while day.weekday().number_from_monday() > 5 {
        day -= Duration::days(1);
    }
    let weekday = day.weekday().number_from_monday() as i16;
    let time = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).expect("time");
    let [collected, free_today, late] = [&school.pupils[0], &school.pupils[1], &school.pupils[2]];
    // Weekly pickups at 16:00 for the first two; today's exception frees the second (no
    // pickup that day); the third is collected at 18:00, after the daily check-out time.
    diesel::insert_into(weekly::table)
        .values(vec![
            (weekly::student_id.eq(collected.id), weekly::weekday.eq(weekday), weekly::pickup_time.eq(time(16, 0))),
            (weekly::student_id.eq(free_today.id), weekly::weekday.eq(weekday), weekly::pickup_time.eq(time(16, 0))),
            (weekly::student_id.eq(late.id), weekly::weekday.eq(weekday), weekly::pickup_time.eq(time(18, 0))),
        ])
        .execute(&mut conn)
        .await
        .expect("weekly pickups");
    diesel::insert_into(ex::table)
        .values((
            ex::student_id.eq(free_today.id),
            ex::exception_date.eq(day),
            ex::pickup_time.eq(None::<chrono::NaiveTime>),
        ))
        .execute(&mut conn)
        .await
        .expect("exception");
    for (i, p) in school.pupils.iter().enumerate() {
        let r = scan(&mut client, &school.gate, &format!("arrive-{i}"), &p.tag, berlin(day, 8, 0)).await;
        assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    }

    let r = scan(&mut client, &school.gate, "early", &collected.tag, berlin(day, 10, 0)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "pickup_not_allowed"));
    assert_eq!(r.student.as_ref().map(|s| s.id), Some(collected.id));
    assert_eq!(attendance_open(&mut conn, collected.id).await, Some(true), "still present: nothing changed");
    let r = scan(&mut client, &school.gate, "picked-up", &collected.tag, berlin(day, 15, 50)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"), "within the 15 minutes before the pickup time");
    assert_eq!(attendance_open(&mut conn, collected.id).await, Some(false));

    let r = scan(&mut client, &school.gate, "free", &free_today.tag, berlin(day, 10, 0)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"), "the day's exception overrides the weekly pickup");

    let r = scan(&mut client, &school.gate, "late-early", &late.tag, berlin(day, 16, 55)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "pickup_not_allowed"));
    let r = scan(&mut client, &school.gate, "late-after", &late.tag, berlin(day, 17, 0)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"), "from the daily check-out time on, everyone may go");
}

#[tokio::test]
async fn refusals_are_results_and_change_nothing() {
    let (app, mut client, school) = setup(2).await;
    let mut conn = app.db.conn().await;
    let p = &school.pupils[0];
    let now = Utc::now();

    // No session in the reader's room yet.
    let r = scan(&mut client, &school.readers[0], "n-1", &p.tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "no_active_session"));
    assert_eq!(r.room.clone().expect("room").id, school.rooms[0]);
    school.open_all_rooms(&mut client).await;

    let cases: Vec<(&str, String, DateTime<Utc>, &str)> = vec![
        ("unknown-reader", p.tag.clone(), now, "unknown_device"),
        (&school.readers[0], "FFFFFFFFFFFF".into(), now, "unknown_tag"),
        (&school.readers[0], "not-hex!".into(), now, "unknown_tag"),
        (&school.readers[0], p.tag.clone(), now - Duration::hours(25), "stale_scan"),
        (&school.readers[0], p.tag.clone(), now + Duration::minutes(6), "stale_scan"),
    ];
    for (i, (device, tag, at, code)) in cases.into_iter().enumerate() {
        let r = scan(&mut client, device, &format!("x-{i}"), &tag, at).await;
        assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, code), "case {i}");
    }
    // Within the window (an offline replay from 23 h ago, a clock 4 min ahead) is fine.
    let r = scan(&mut client, &school.readers[0], "ok-old", &p.tag, now - Duration::hours(23)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    let r = scan(&mut client, &school.readers[0], "ok-ahead", &p.tag, now + Duration::minutes(4)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedOut, "ok"));

    // Card states and holders.
    fixtures::card(&mut conn, "0A0B0C0D", false).await;
    let r = scan(&mut client, &school.readers[0], "c-1", "0a0b0c0d", now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "tag_inactive"));
    fixtures::card(&mut conn, "0A0B0C0E", true).await;
    fixtures::person(&mut conn, "Hans", "Hausmeister", Some("0A0B0C0E")).await;
    let r = scan(&mut client, &school.readers[0], "c-2", "0A0B0C0E", now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "not_a_student"));
    assert!(r.student.is_none());
    diesel::update(users::rfid_cards::table.find(&school.pupils[1].tag))
        .set(users::rfid_cards::active.eq(false))
        .execute(&mut conn)
        .await
        .expect("deactivate");
    let r = scan(&mut client, &school.readers[0], "c-3", &school.pupils[1].tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "tag_inactive"));

    // An inactive reader.
    diesel::sql_query("UPDATE iot.devices SET status = 'maintenance' WHERE device_id = 'reader-b'")
        .execute(&mut conn)
        .await
        .expect("maintenance");
    let r = scan(&mut client, &school.readers[1], "d-1", &p.tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "device_inactive"));

    assert_eq!(open_visit_count(&mut conn, p.id).await, 0);
    assert_eq!(open_visit_count(&mut conn, school.pupils[1].id).await, 0);
}

#[tokio::test]
async fn repeats_return_the_stored_result_and_apply_once() {
    let (app, mut client, school) = setup(1).await;
    school.open_all_rooms(&mut client).await;
    let mut conn = app.db.conn().await;
    let p = &school.pupils[0];
    let at = Utc::now();
    let first = scan(&mut client, &school.readers[0], "dup-1", &p.tag, at).await;
    assert!(!first.duplicate);
    for _ in 0..3 {
        let again = scan(&mut client, &school.readers[0], "dup-1", &p.tag, at).await;
        assert!(again.duplicate);
        assert_eq!(pb::ProcessScanResponse { duplicate: false, ..again }, first);
    }
    assert_eq!(visit_count(&mut conn, p.id).await, 1, "one effect");
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(school.rooms[0]), "not toggled out by repeats");
    // The same scan id from another reader is another scan.
    let other = scan(&mut client, &school.readers[1], "dup-1", &p.tag, at + Duration::seconds(1)).await;
    assert_eq!(outcome(&other), (pb::ScanOutcome::Transferred, "ok"));
    // Rejections are stored too.
    let r1 = scan(&mut client, &school.readers[0], "dup-2", "FFFFFFFF", at).await;
    let r2 = scan(&mut client, &school.readers[0], "dup-2", "FFFFFFFF", at).await;
    assert_eq!(
        (r1.code.as_str(), r1.duplicate, r2.code.as_str(), r2.duplicate),
        ("unknown_tag", false, "unknown_tag", true)
    );
}

#[tokio::test]
async fn an_older_scan_never_overrides_a_newer_state() {
    let (app, mut client, school) = setup(1).await;
    school.open_all_rooms(&mut client).await;
    let mut conn = app.db.conn().await;
    let p = &school.pupils[0];
    let t = Utc::now() - Duration::minutes(20);
    scan(&mut client, &school.readers[1], "new", &p.tag, t + Duration::minutes(5)).await;
    let late = scan(&mut client, &school.readers[0], "old", &p.tag, t).await;
    assert_eq!(outcome(&late), (pb::ScanOutcome::Rejected, "superseded"));
    assert_eq!(late.student.expect("student").id, p.id);
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(school.rooms[1]));
    let recorded: i64 = active::scan_receipts::table
        .filter(active::scan_receipts::code.eq("superseded"))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(recorded, 1, "the superseded scan is recorded");
}

#[tokio::test]
async fn capacity_of_room_and_activity_is_enforced() {
    let (app, mut client, school) = setup(4).await;
    school.open_all_rooms(&mut client).await;
    let mut conn = app.db.conn().await;
    let now = Utc::now();
    // Room capacity 2: the third pupil is refused and nothing is written for them.
    for (i, p) in school.pupils.iter().take(2).enumerate() {
        let r = scan(&mut client, &school.small_reader, &format!("k-{i}"), &p.tag, now).await;
        assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    }
    let third = &school.pupils[2];
    let r = scan(&mut client, &school.small_reader, "k-2", &third.tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "room_full"));
    assert_eq!(visit_count(&mut conn, third.id).await, 0);
    assert_eq!(attendance_open(&mut conn, third.id).await, None, "no attendance either");
    // Someone leaves: room for the next.
    scan(&mut client, &school.small_reader, "k-3", &school.pupils[0].tag, now + Duration::seconds(1)).await;
    let r = scan(&mut client, &school.small_reader, "k-4", &third.tag, now + Duration::seconds(2)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));

    // Capacity 0 = closed; an activity's max_participants counts too.
    diesel::sql_query(format!("UPDATE facilities.rooms SET capacity = 0 WHERE id = {}", school.rooms[0]))
        .execute(&mut conn)
        .await
        .expect("close room");
    let r = scan(&mut client, &school.readers[0], "z-1", &school.pupils[3].tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "room_full"));
    diesel::sql_query(format!("UPDATE activities.activities SET max_participants = 1 WHERE id = {}", school.activity))
        .execute(&mut conn)
        .await
        .expect("limit activity");
    let r = scan(&mut client, &school.readers[1], "z-2", &school.pupils[3].tag, now).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::CheckedIn, "ok"));
    let r = scan(&mut client, &school.readers[1], "z-3", &school.pupils[1].tag, now + Duration::seconds(3)).await;
    assert_eq!(outcome(&r), (pb::ScanOutcome::Rejected, "room_full"));
    assert_eq!(r.message, "Aktivität ist voll");
    assert_eq!(open_visit_room(&mut conn, school.pupils[1].id).await, Some(school.small_room), "not moved");
}

#[tokio::test]
async fn concurrent_readers_never_open_two_visits() {
    let (app, client, school) = setup(1).await;
    let mut c = client.clone();
    school.open_all_rooms(&mut c).await;
    let p = school.pupils[0].clone();
    let base = Utc::now() - Duration::minutes(30);
    for round in 0..100 {
        let at = base + Duration::milliseconds(round * 10);
        let a = {
            let (mut c, tag, dev) = (client.clone(), p.tag.clone(), school.readers[0].clone());
            tokio::spawn(async move { scan(&mut c, &dev, &format!("a-{round}"), &tag, at).await })
        };
        let b = {
            let (mut c, tag, dev) = (client.clone(), p.tag.clone(), school.readers[1].clone());
            tokio::spawn(async move { scan(&mut c, &dev, &format!("b-{round}"), &tag, at).await })
        };
        a.await.expect("join");
        b.await.expect("join");
    }
    let mut conn = app.db.conn().await;
    assert!(open_visit_count(&mut conn, p.id).await <= 1);
    let max_open: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM active.visits v1 JOIN active.visits v2 ON v1.student_id = v2.student_id \
         AND v1.id < v2.id AND tstzrange(v1.entry_time, coalesce(v1.exit_time, 'infinity')) && \
         tstzrange(v2.entry_time, coalesce(v2.exit_time, 'infinity'))",
    )
    .get_result::<Count>(&mut conn)
    .await
    .expect("overlaps")
    .n;
    assert_eq!(max_open, 0, "visits of one pupil never overlap");
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn presence_changes_are_logged_and_notified_on_commit_with_ids_only() {
    use futures::StreamExt as _;
    let (app, mut client, school) = setup(1).await;
    let (pg, mut connection) = tokio_postgres::connect(app.db.url(), tokio_postgres::NoTls).await.expect("listen conn");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    pg.batch_execute(&format!("LISTEN {}", phoenix_active::PRESENCE_CHANNEL)).await.expect("listen");

    let session = school::start_session(&mut client, school.rooms[0], school.activity, school.staff).await;
    let p = &school.pupils[0];
    scan(&mut client, &school.readers[0], "n-1", &p.tag, Utc::now()).await;
    scan(&mut client, &school.readers[0], "n-1", &p.tag, Utc::now()).await; // repeat: no event
    scan(&mut client, &school.readers[0], "n-2", "FFFFFFFF", Utc::now()).await; // refusal: no event
    client.end_session(pb::EndSessionRequest { id: session }).await.expect("end");

    // One notification per logged event, carrying the event id only.
    let mut notified = Vec::new();
    for _ in 0..3 {
        notified.push(next_event_id(&mut rx).await);
    }
    assert!(rx.try_recv().is_err(), "nothing else was notified");
    let rows = pg
        .query("SELECT id, kind, student_id, session_id, room_id FROM active.presence_events ORDER BY tx_id, id", &[])
        .await
        .expect("event log");
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, notified, "notified ids are the logged ones, in order");
    // (kind, student, session, room)
    type Logged = (String, Option<i64>, Option<i64>, Option<i64>);
    let shape: Vec<Logged> = rows.iter().map(|r| (r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let room = Some(school.rooms[0]);
    assert_eq!(
        shape,
        vec![
            ("session_started".to_owned(), None, Some(session), room),
            ("checked_in".to_owned(), Some(p.id), Some(session), room),
            ("session_ended".to_owned(), None, Some(session), room),
        ]
    );
}

async fn next_event_id(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>) -> i64 {
    let (channel, payload) =
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.expect("notified").expect("open");
    assert_eq!(channel, "phoenix_presence");
    payload.parse().expect("the payload is an event id")
}
