//! Presence alerts (issue #18, docs/presence.md "Alerts") against real PostgreSQL: each kind
//! raised exactly at its threshold (explicit `now`, never sleeping) and cleared by the change
//! that ends it; who sees which alert on the board; the stream delivers and clears them; a
//! threshold changed through ConfigService applies without a restart.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Europe::Berlin;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_active::presence::alerts::{self, Alert, AlertKind, Rules};
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_proto::config::v1 as cpb;
use phoenix_proto::config::v1::config_service_client::ConfigServiceClient;
use phoenix_tests::db::TestDb;
use phoenix_tests::grpc::{As, request};
use phoenix_tests::{fixtures, school};

use super::access::guardian_token;
use super::presence_helpers::*;

/// A Wednesday (ISO weekday 3).
fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")
}

/// `hh:mm` on [`day`] in Berlin.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Berlin.from_local_datetime(&day().and_hms_opt(h, m, 0).expect("time")).single().expect("instant").to_utc()
}

fn rules() -> Rules {
    Rules {
        timezone: Berlin,
        not_arrived_by: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        transit_limit: Duration::minutes(15),
        pickup_grace: Duration::minutes(15),
    }
}

async fn exec(conn: &mut AsyncPgConnection, sql: String) {
    diesel::sql_query(&sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The alerts of `kind` at `now`: `(student, since, room)`.
async fn of_kind(
    conn: &mut AsyncPgConnection,
    kind: AlertKind,
    now: DateTime<Utc>,
) -> Vec<(i64, DateTime<Utc>, Option<i64>)> {
    alerts::school(conn, now, &rules())
        .await
        .expect("alerts")
        .into_iter()
        .filter(|a| a.kind == kind)
        .map(|a| (a.student_id, a.since, a.room_id))
        .collect()
}

async fn pickup(conn: &mut AsyncPgConnection, student: i64, weekday: i16, time: &str) {
    exec(
        conn,
        format!(
            "INSERT INTO schedule.student_pickup_schedules (student_id, weekday, pickup_time) \
             VALUES ({student}, {weekday}, '{time}')"
        ),
    )
    .await;
}

async fn exception(conn: &mut AsyncPgConnection, student: i64, time: Option<&str>) {
    let time = time.map(|t| format!("'{t}'")).unwrap_or_else(|| "NULL".into());
    exec(
        conn,
        format!(
            "INSERT INTO schedule.student_pickup_exceptions (student_id, exception_date, pickup_time) \
             VALUES ({student}, '{}', {time})",
            day()
        ),
    )
    .await;
}

async fn arrive(conn: &mut AsyncPgConnection, student: i64, date: NaiveDate, when: DateTime<Utc>) {
    exec(
        conn,
        format!(
            "INSERT INTO active.attendance (student_id, date, check_in_time) VALUES ({student}, '{date}', '{}')",
            when.to_rfc3339()
        ),
    )
    .await;
}

async fn go_home(conn: &mut AsyncPgConnection, student: i64, when: DateTime<Utc>) {
    exec(
        conn,
        format!(
            "UPDATE active.attendance SET check_out_time = '{}' WHERE student_id = {student} AND date = '{}'",
            when.to_rfc3339(),
            day()
        ),
    )
    .await;
}

/// A running session of a new education group in `room` since 07:00; returns its id.
async fn session(conn: &mut AsyncPgConnection, room: i64) -> i64 {
    let group = fixtures::group(conn, "Sitzung").await;
    fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.groups (room_id, education_group_id, start_time) VALUES ({room}, {group}, '{}') \
             RETURNING id",
            at(7, 0).to_rfc3339()
        ),
    )
    .await
}

async fn enter(conn: &mut AsyncPgConnection, student: i64, session: i64, when: DateTime<Utc>) -> i64 {
    fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id, entry_time) VALUES ({student}, {session}, '{}') \
             RETURNING id",
            when.to_rfc3339()
        ),
    )
    .await
}

async fn leave(conn: &mut AsyncPgConnection, visit: i64, when: DateTime<Utc>) {
    exec(conn, format!("UPDATE active.visits SET exit_time = '{}' WHERE id = {visit}", when.to_rfc3339())).await;
}

#[tokio::test]
async fn not_arrived_is_raised_at_the_deadline_only_for_pupils_expected_today_and_cleared_by_arrival() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let p = fixtures::students(&mut conn, 6).await;
    let group = fixtures::group(&mut conn, "Füchse").await;
    // p0: picked up on Wednesdays; p1: also, but an exception says not coming today; p2: no
    // pickup, but their group has lessons on Wednesdays; p3: a pickup on Thursdays only;
    // p4: picked up on Wednesdays but marked sick; p5: only an exception with a time today.
    pickup(&mut conn, p[0], 3, "15:00").await;
    pickup(&mut conn, p[1], 3, "15:00").await;
    exception(&mut conn, p[1], None).await;
    exec(&mut conn, format!("UPDATE users.students SET group_id = {group} WHERE id = {}", p[2])).await;
    exec(
        &mut conn,
        format!(
            "INSERT INTO schedule.class_schedules (group_id, weekday, start_time, end_time) \
             VALUES ({group}, 3, '08:00', '12:00')"
        ),
    )
    .await;
    pickup(&mut conn, p[3], 4, "15:00").await;
    pickup(&mut conn, p[4], 3, "15:00").await;
    exec(&mut conn, format!("UPDATE users.students SET sick = true, sick_since = now() WHERE id = {}", p[4])).await;
    exception(&mut conn, p[5], Some("12:00")).await;

    assert_eq!(of_kind(&mut conn, AlertKind::NotArrived, at(8, 59)).await, [], "not before the deadline");
    let mut due = of_kind(&mut conn, AlertKind::NotArrived, at(9, 0)).await;
    due.sort();
    assert_eq!(due, [(p[0], at(9, 0), None), (p[2], at(9, 0), None), (p[5], at(9, 0), None)]);

    arrive(&mut conn, p[0], day(), at(9, 5)).await;
    let left: Vec<i64> = of_kind(&mut conn, AlertKind::NotArrived, at(9, 6)).await.into_iter().map(|a| a.0).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&p[0]), "arrived: cleared");
    // Attendance on another day does not count as arriving today.
    arrive(&mut conn, p[2], day().pred_opt().expect("yesterday"), at(9, 5) - Duration::days(1)).await;
    assert!(of_kind(&mut conn, AlertKind::NotArrived, at(9, 6)).await.iter().any(|a| a.0 == p[2]));
}

#[tokio::test]
async fn long_in_transit_counts_from_arrival_or_the_last_room_left_until_a_room_is_entered() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let p = fixtures::students(&mut conn, 1).await[0];
    let room = fixtures::room(&mut conn, "Werkraum", None).await;
    let running = session(&mut conn, room).await;

    arrive(&mut conn, p, day(), at(10, 0)).await;
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(10, 14)).await, [], "14 minutes: not yet");
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(10, 15)).await, [(p, at(10, 0), None)]);

    let visit = enter(&mut conn, p, running, at(10, 20)).await;
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(10, 40)).await, [], "in a room: cleared");

    leave(&mut conn, visit, at(10, 50)).await;
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(11, 4)).await, [], "counted from leaving the room");
    let raised = alerts::school(&mut conn, at(11, 5), &rules()).await.expect("alerts");
    let transit: Vec<&Alert> = raised.iter().filter(|a| a.kind == AlertKind::LongInTransit).collect();
    assert_eq!(transit.len(), 1);
    assert_eq!((transit[0].student_id, transit[0].since, transit[0].room_id), (p, at(10, 50), Some(room)));
    assert_eq!(transit[0].room_name, "Werkraum", "the room last left");
    assert_eq!(transit[0].display_name, "Kind 1.", "first name + last initial");

    // A visit left open in a session that has ended: in transit since the session ended.
    let visit = enter(&mut conn, p, running, at(11, 10)).await;
    exec(&mut conn, format!("UPDATE active.groups SET end_time = '{}' WHERE id = {running}", at(11, 30).to_rfc3339()))
        .await;
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(11, 44)).await, []);
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(11, 45)).await, [(p, at(11, 30), Some(room))]);
    let _ = visit;

    go_home(&mut conn, p, at(11, 50)).await;
    assert_eq!(of_kind(&mut conn, AlertKind::LongInTransit, at(12, 0)).await, [], "gone home: cleared");
}

#[tokio::test]
async fn past_pickup_is_raised_after_the_grace_while_present_and_cleared_when_gone_home() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let p = fixtures::students(&mut conn, 3).await;
    let room = fixtures::room(&mut conn, "Raum A", None).await;
    let running = session(&mut conn, room).await;
    // p0: Wednesdays at 14:00, in a room; p1: Wednesdays at 16:00, but today at 13:00;
    // p2: Wednesdays at 14:00, never came (no past-pickup alert for an absent pupil).
    pickup(&mut conn, p[0], 3, "14:00").await;
    pickup(&mut conn, p[1], 3, "16:00").await;
    exception(&mut conn, p[1], Some("13:00")).await;
    pickup(&mut conn, p[2], 3, "14:00").await;
    for pupil in &p[..2] {
        arrive(&mut conn, *pupil, day(), at(8, 0)).await;
        enter(&mut conn, *pupil, running, at(8, 5)).await;
    }

    assert_eq!(of_kind(&mut conn, AlertKind::PastPickup, at(13, 14)).await, []);
    assert_eq!(of_kind(&mut conn, AlertKind::PastPickup, at(13, 15)).await, [(p[1], at(13, 0), Some(room))]);
    assert_eq!(
        of_kind(&mut conn, AlertKind::PastPickup, at(14, 14)).await,
        [(p[1], at(13, 0), Some(room))],
        "the exception replaces the schedule"
    );
    assert_eq!(
        of_kind(&mut conn, AlertKind::PastPickup, at(14, 15)).await,
        [(p[1], at(13, 0), Some(room)), (p[0], at(14, 0), Some(room))],
        "oldest first"
    );
    go_home(&mut conn, p[1], at(14, 20)).await;
    assert_eq!(of_kind(&mut conn, AlertKind::PastPickup, at(14, 30)).await, [(p[0], at(14, 0), Some(room))]);
}

/// Arrived today (real clock) at least 16 minutes ago, so in transit for longer than the
/// default 15 minutes; `false` when the business day is younger than that.
async fn in_transit_today(conn: &mut AsyncPgConnection, pupils: [i64; 2]) -> bool {
    let now = Utc::now();
    let today = phoenix_common::time::business_date(now);
    let since = (now - Duration::hours(1)).max(phoenix_active::calendar::day_start(today, Berlin));
    if now - since < Duration::minutes(16) {
        eprintln!("skipped: less than 16 minutes into the business day, no pupil can be in transit that long");
        return false;
    }
    for p in pupils {
        arrive(conn, p, today, since).await;
    }
    true
}

fn transit_ids(alerts: &[pb::Alert]) -> Vec<i64> {
    let mut ids: Vec<i64> =
        alerts.iter().filter(|a| a.kind() == pb::AlertKind::LongInTransit).map(|a| a.student_id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_board_carries_only_the_alerts_about_pupils_the_caller_may_see() {
    let Setup { app, mut presence, school: s, .. } = setup(2).await;
    let mut conn = app.db.conn().await;
    let (fox, owl) = (s.pupils[0].id, s.pupils[1].id);
    let g = groups(&mut conn, &[fox], &[owl]).await;
    if !in_transit_today(&mut conn, [fox, owl]).await {
        return;
    }

    let admin = board(&mut presence, As::Admin).await;
    assert_eq!(transit_ids(&admin.alerts), [fox.min(owl), fox.max(owl)]);
    let a = admin.alerts.iter().find(|a| a.student_id == fox).expect("the fox's alert");
    assert_eq!((a.display_name.as_str(), a.room_id), ("Kind0 T.", None));
    assert_eq!(transit_ids(&board(&mut presence, As::Staff(g.fox_teacher)).await.alerts), [fox]);
    assert_eq!(transit_ids(&board(&mut presence, As::Staff(g.owl_teacher)).await.alerts), [owl]);
    let stranger = fixtures::staff(&mut conn, "Olga", "Ohnegruppe").await;
    assert_eq!(board(&mut presence, As::Staff(stranger)).await.alerts, [], "no group, no supervision: none");

    // A guardian: no alerts, neither about other pupils nor about their own child.
    let token = guardian_token(&app, &mut conn, fox).await;
    let mut family = PresenceServiceClient::new(app.channel_as(Domain::Active, &token).await);
    let theirs = family.get_presence_board(pb::GetPresenceBoardRequest {}).await.expect("board").into_inner();
    assert_eq!(theirs.alerts, []);
}

#[tokio::test]
async fn the_stream_sends_the_alerts_once_opened_and_again_when_a_pupil_enters_a_room() {
    let Setup { app, mut active, mut presence, school: s } = setup(2).await;
    let mut conn = app.db.conn().await;
    let (fox, owl) = (s.pupils[0].id, s.pupils[1].id);
    let g = groups(&mut conn, &[fox], &[owl]).await;
    if !in_transit_today(&mut conn, [fox, owl]).await {
        return;
    }
    let board = board(&mut presence, As::Admin).await;

    let open = |caller: As, alerts: bool| {
        let mut presence = presence.clone();
        let cursor = board.cursor.clone();
        async move {
            presence
                .watch_presence(request(caller, pb::WatchPresenceRequest { cursor, alerts }))
                .await
                .expect("watch")
                .into_inner()
        }
    };
    let mut admin = open(As::Admin, true).await;
    let mut owls = open(As::Staff(g.owl_teacher), true).await;
    let first = next_event(&mut admin).await;
    assert_eq!(first.kind(), Kind::Alerts, "the alerts right after the (empty) backlog");
    assert_eq!(transit_ids(&first.alerts), [fox.min(owl), fox.max(owl)]);
    assert!(!first.cursor.is_empty(), "an alert snapshot carries the current position");
    let first = next_event(&mut owls).await;
    assert_eq!((first.kind(), transit_ids(&first.alerts)), (Kind::Alerts, vec![owl]));

    // The fox enters a room: the admin's alerts change; the owls' teacher's do not.
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let changed = loop {
        let e = next_event(&mut admin).await;
        if e.kind() == Kind::Alerts {
            break e;
        }
    };
    assert_eq!(transit_ids(&changed.alerts), [owl], "the fox is in a room now");
    // The owls' teacher's set did not change with the fox (no ALERTS event for that); the
    // owl entering a room clears it.
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    let cleared = loop {
        let e = next_event(&mut owls).await;
        if e.kind() == Kind::Alerts {
            break e;
        }
    };
    assert_eq!(cleared.alerts, [], "the owl is in a room now");

    // Without `alerts` the stream is as before: the first change is the next event.
    let mut plain = open(As::Admin, false).await;
    let e = next_event(&mut plain).await;
    assert_ne!(e.kind(), Kind::Alerts);
}

#[tokio::test]
async fn the_transit_threshold_is_a_live_setting() {
    let app = phoenix_tests::TestApp::spawn(&[Domain::Active, Domain::Config]).await;
    let mut presence = PresenceServiceClient::new(app.test_channel(Domain::Active).await);
    let mut config = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    let mut conn = app.db.conn().await;
    let pupil = fixtures::students(&mut conn, 2).await;
    if !in_transit_today(&mut conn, [pupil[0], pupil[1]]).await {
        return;
    }
    assert_eq!(transit_ids(&board(&mut presence, As::Admin).await.alerts), pupil, "the default 15 minutes");

    let set =
        |value: &str| cpb::UpdateSettingRequest { key: "presence.alert_transit_minutes".into(), value: value.into() };
    config.update_setting(request(As::Admin, set("480"))).await.expect("update setting");
    let mut waited = std::time::Duration::ZERO;
    while !board(&mut presence, As::Admin).await.alerts.is_empty() {
        assert!(waited < WAIT, "the new threshold reached the presence service");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += std::time::Duration::from_millis(100);
    }
    config.update_setting(request(As::Admin, set("16"))).await.expect("update setting");
    while transit_ids(&board(&mut presence, As::Admin).await.alerts) != pupil {
        assert!(waited < WAIT * 2, "the lowered threshold reached the presence service");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += std::time::Duration::from_millis(100);
    }
}
