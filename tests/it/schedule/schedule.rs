//! `phoenix.schedule.v1`: recurrence patterns and their expansion (hand-checked calendars),
//! timeframes, dateframes, room conflicts and free slots.

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use pb::schedule_service_client::ScheduleServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::schedule::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use tonic::Code;

use phoenix_tests::grpc::assert_violations_include;

async fn client(app: &TestApp) -> ScheduleServiceClient<TestChannel> {
    ScheduleServiceClient::new(app.test_channel(Domain::Schedule).await)
}

fn monthly_31st() -> pb::RecurrencePattern {
    pb::RecurrencePattern { frequency: pb::Frequency::Monthly as i32, month_days: vec![31], ..Default::default() }
}

fn expand_req(pattern: pb::expand_recurrence_request::Pattern, start: &str, end: &str) -> pb::ExpandRecurrenceRequest {
    pb::ExpandRecurrenceRequest {
        pattern: Some(pattern),
        start_date: start.into(),
        end_date: end.into(),
        ..Default::default()
    }
}

fn dates(r: pb::ExpandRecurrenceResponse) -> Vec<String> {
    r.events.into_iter().map(|e| e.date).collect()
}

#[tokio::test]
async fn stored_monthly_pattern_on_the_31st_expands_skipping_short_months() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut c = client(&app).await;
    let p = c
        .create_recurrence_pattern(pb::CreateRecurrencePatternRequest { recurrence_pattern: Some(monthly_31st()) })
        .await
        .unwrap()
        .into_inner()
        .recurrence_pattern
        .unwrap();
    assert_eq!((p.interval, p.month_days.clone()), (1, vec![31]));
    let got = c.get_recurrence_pattern(pb::GetRecurrencePatternRequest { id: p.id }).await.unwrap().into_inner();
    assert_eq!(got.recurrence_pattern.unwrap(), p);

    use pb::expand_recurrence_request::Pattern;
    let r = c.expand_recurrence(expand_req(Pattern::PatternId(p.id), "2024-01-01", "2024-06-30")).await.unwrap();
    assert_eq!(dates(r.into_inner()), ["2024-01-31", "2024-03-31", "2024-05-31"]);

    let list = c
        .list_recurrence_patterns(pb::ListRecurrencePatternsRequest { page_size: 0, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((list.total_size, list.next_page_token.as_str()), (1, ""));

    c.delete_recurrence_pattern(pb::DeleteRecurrencePatternRequest { id: p.id }).await.unwrap();
    let err = c.get_recurrence_pattern(pb::GetRecurrencePatternRequest { id: p.id }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.expand_recurrence(expand_req(Pattern::PatternId(p.id), "2024-01-01", "2024-06-30")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn yearly_feb_29_and_weekly_berlin_times_across_dst() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut c = client(&app).await;
    use pb::expand_recurrence_request::Pattern;
    let yearly = pb::RecurrencePattern { frequency: pb::Frequency::Yearly as i32, count: 3, ..Default::default() };
    let r = c.expand_recurrence(expand_req(Pattern::Rule(yearly), "2024-02-29", "2033-12-31")).await.unwrap();
    assert_eq!(dates(r.into_inner()), ["2024-02-29", "2028-02-29", "2032-02-29"]);

    // Fridays 16:00 Berlin: 15:00 UTC before the 2025-03-30 change, 14:00 UTC after.
    let weekly =
        pb::RecurrencePattern { frequency: pb::Frequency::Weekly as i32, weekdays: vec![5], ..Default::default() };
    let mut req = expand_req(Pattern::Rule(weekly), "2025-03-21", "2025-04-04");
    req.time_of_day = "16:00".into();
    let events = c.expand_recurrence(req).await.unwrap().into_inner().events;
    let utc_hours: Vec<_> = events
        .iter()
        .map(|e| (e.date.as_str(), (e.start_time.as_ref().unwrap().seconds.rem_euclid(86_400)) / 3600))
        .collect();
    assert_eq!(utc_hours, [("2025-03-21", 15), ("2025-03-28", 15), ("2025-04-04", 14)]);
}

#[tokio::test]
async fn recurrence_validation_names_each_field() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut c = client(&app).await;
    let bad = pb::RecurrencePattern {
        frequency: pb::Frequency::Unspecified as i32,
        interval: -1,
        weekdays: vec![1, 8],
        month_days: vec![0],
        end_date: "2025-01-01".into(),
        count: 3,
        ..Default::default()
    };
    let err = c
        .create_recurrence_pattern(pb::CreateRecurrencePatternRequest { recurrence_pattern: Some(bad) })
        .await
        .unwrap_err();
    assert_violations_include(
        &err,
        &[
            "recurrence_pattern.frequency",
            "recurrence_pattern.interval",
            "recurrence_pattern.weekdays[1]",
            "recurrence_pattern.month_days[0]",
            "recurrence_pattern.count",
        ],
    );
    use pb::expand_recurrence_request::Pattern;
    let err =
        c.expand_recurrence(expand_req(Pattern::Rule(monthly_31st()), "2024-05-01", "2024-04-01")).await.unwrap_err();
    assert_violations_include(&err, &["end_date"]);
    let err =
        c.expand_recurrence(expand_req(Pattern::Rule(monthly_31st()), "2024-13-01", "2024-04-01")).await.unwrap_err();
    assert_violations_include(&err, &["start_date"]);
    let err =
        c.expand_recurrence(expand_req(Pattern::Rule(monthly_31st()), "2000-01-01", "2024-01-01")).await.unwrap_err();
    assert_violations_include(&err, &["end_date"]);
    let mut req = expand_req(Pattern::Rule(monthly_31st()), "2024-01-01", "2024-02-01");
    req.time_of_day = "25:00".into();
    req.time_zone = "Nowhere/City".into();
    let err = c.expand_recurrence(req).await.unwrap_err();
    assert_violations_include(&err, &["time_of_day", "time_zone"]);
    let err = c
        .expand_recurrence(pb::ExpandRecurrenceRequest {
            start_date: "2024-01-01".into(),
            end_date: "2024-01-02".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["pattern"]);
}

#[tokio::test]
async fn dateframes_current_and_range_rule() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut c = client(&app).await;
    let df = |s: &str, e: &str, name: &str| pb::Dateframe {
        start_date: s.into(),
        end_date: e.into(),
        name: name.into(),
        ..Default::default()
    };
    let err = c.get_current_dateframe(pb::GetCurrentDateframeRequest { date: "2025-03-01".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.create_dateframe(pb::CreateDateframeRequest { dateframe: Some(df("2024-09-01", "2025-07-31", "Schuljahr")) })
        .await
        .unwrap();
    c.create_dateframe(pb::CreateDateframeRequest { dateframe: Some(df("2025-02-24", "2025-03-07", "Ferien")) })
        .await
        .unwrap();
    let cur = c
        .get_current_dateframe(pb::GetCurrentDateframeRequest { date: "2025-03-01".into() })
        .await
        .unwrap()
        .into_inner()
        .dateframe
        .unwrap();
    assert_eq!(
        (cur.name.as_str(), cur.start_date.as_str(), cur.end_date.as_str()),
        ("Ferien", "2025-02-24", "2025-03-07")
    );
    let err = c
        .create_dateframe(pb::CreateDateframeRequest { dateframe: Some(df("2025-03-02", "2025-03-01", "x")) })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["dateframe.end_date"]);
    let err = c.get_current_dateframe(pb::GetCurrentDateframeRequest { date: "01.03.2025".into() }).await.unwrap_err();
    assert_violations_include(&err, &["date"]);
}

#[tokio::test]
async fn timeframe_end_must_follow_start_and_list_filters_active() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut c = client(&app).await;
    let ts = |s: i64| Some(prost_types::Timestamp { seconds: s, nanos: 0 });
    let err = c
        .create_timeframe(pb::CreateTimeframeRequest {
            timeframe: Some(pb::Timeframe { start_time: ts(1000), end_time: ts(1000), ..Default::default() }),
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["timeframe.end_time"]);
    let err =
        c.create_timeframe(pb::CreateTimeframeRequest { timeframe: Some(pb::Timeframe::default()) }).await.unwrap_err();
    assert_violations_include(&err, &["timeframe.start_time"]);
    for active in [true, false, true] {
        c.create_timeframe(pb::CreateTimeframeRequest {
            timeframe: Some(pb::Timeframe {
                start_time: ts(1000),
                end_time: ts(2000),
                is_active: active,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    }
    let page = c
        .list_timeframes(pb::ListTimeframesRequest { active_only: true, page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.timeframes.len(), page.total_size), (1, 2));
    let page2 = c
        .list_timeframes(pb::ListTimeframesRequest {
            active_only: true,
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page2.timeframes[0].is_active && page2.timeframes[0].id > page.timeframes[0].id);
    assert!(page2.next_page_token.is_empty());
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[tokio::test]
async fn room_conflicts_and_free_slots_follow_planned_activity_schedules() {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let mut conn = app.db.conn().await;
    let room = sql_query("INSERT INTO facilities.rooms (name) VALUES ('Werkraum') RETURNING id")
        .get_result::<Id>(&mut conn)
        .await
        .unwrap()
        .id;
    // Monday 14:00–15:30 Berlin (timeframe stored as instants of a winter day).
    sql_query(format!(
        "WITH tf AS (INSERT INTO schedule.timeframes (start_time, end_time, is_active)
                     VALUES ('2025-01-06 14:00 Europe/Berlin', '2025-01-06 15:30 Europe/Berlin', true) RETURNING id),
              a AS (INSERT INTO activities.activities (name, max_participants, category_id, planned_room_id)
                    SELECT 'Basteln', 10, id, {room} FROM activities.categories WHERE name = 'Kreativ' RETURNING id)
         INSERT INTO activities.schedules (activity_id, weekday, timeframe_id) SELECT a.id, 1, tf.id FROM a, tf"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let mut c = client(&app).await;
    let check = |s: &str, e: &str, weekday: i32| pb::CheckRoomConflictRequest {
        room_id: room,
        weekday,
        start_time: s.into(),
        end_time: e.into(),
    };
    let r = c.check_room_conflict(check("15:00", "16:00", 1)).await.unwrap().into_inner();
    assert!(r.has_conflict);
    assert_eq!((r.conflicts[0].activity_name.as_str(), r.conflicts[0].start_time.as_str()), ("Basteln", "14:00"));
    assert!(!c.check_room_conflict(check("15:30", "16:00", 1)).await.unwrap().into_inner().has_conflict);
    assert!(!c.check_room_conflict(check("14:00", "15:00", 2)).await.unwrap().into_inner().has_conflict);
    let err = c.check_room_conflict(check("16:00", "15:00", 0)).await.unwrap_err();
    assert_violations_include(&err, &["weekday", "end_time"]);
    let err = c
        .check_room_conflict(pb::CheckRoomConflictRequest { room_id: 999_999, ..check("15:00", "16:00", 1) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let slots = c
        .find_free_slots(pb::FindFreeSlotsRequest {
            room_id: room,
            weekday: 1,
            duration_minutes: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .slots;
    let got: Vec<_> = slots.iter().map(|s| (s.start_time.as_str(), s.end_time.as_str())).collect();
    assert_eq!(got, [("08:00", "14:00"), ("15:30", "18:00")]);
    let err = c
        .find_free_slots(pb::FindFreeSlotsRequest {
            room_id: room,
            weekday: 1,
            duration_minutes: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["duration_minutes"]);
}
