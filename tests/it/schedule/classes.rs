//! `phoenix.schedule.v1` class schedules: an education group and/or an activity in a room on
//! a weekday in a timeframe. Round trips, every validation rule, room conflicts (with other
//! class schedules and with activities' weekly schedules), and the conflict / free-slot
//! queries seeing class schedules.

use diesel::sql_query;
use diesel_async::RunQueryDsl;
use pb::schedule_service_client::ScheduleServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::schedule::v1 as pb;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = ScheduleServiceClient<TestChannel>;

struct Env {
    app: TestApp,
    c: Client,
}

async fn env() -> Env {
    let app = TestApp::spawn(&[Domain::Schedule]).await;
    let c = ScheduleServiceClient::new(app.test_channel(Domain::Schedule).await);
    Env { app, c }
}

impl Env {
    async fn sql_id(&self, sql: &str) -> i64 {
        fixtures::insert_returning_id(&mut self.app.db.conn().await, sql).await
    }

    async fn room(&self, name: &str) -> i64 {
        fixtures::room(&mut self.app.db.conn().await, name, None).await
    }

    async fn group(&self, name: &str) -> i64 {
        fixtures::group(&mut self.app.db.conn().await, name).await
    }

    async fn activity(&self, name: &str) -> i64 {
        fixtures::activity(&mut self.app.db.conn().await, name, 10).await
    }

    /// A timeframe on a winter Monday in local Berlin times (`end` empty: none).
    async fn timeframe(&self, start: &str, end: &str) -> i64 {
        let end = if end.is_empty() { "NULL".to_owned() } else { format!("'2025-01-06 {end} Europe/Berlin'") };
        self.sql_id(&format!(
            "INSERT INTO schedule.timeframes (start_time, end_time, is_active) \
             VALUES ('2025-01-06 {start} Europe/Berlin', {end}, true) RETURNING id"
        ))
        .await
    }

    async fn create(&mut self, s: pb::ClassSchedule) -> Result<pb::ClassSchedule, tonic::Status> {
        let r = self.c.create_class_schedule(pb::CreateClassScheduleRequest { class_schedule: Some(s) }).await?;
        Ok(r.into_inner().class_schedule.expect("class schedule"))
    }

    async fn update(&mut self, s: pb::ClassSchedule, paths: &[&str]) -> Result<pb::ClassSchedule, tonic::Status> {
        let r = self
            .c
            .update_class_schedule(pb::UpdateClassScheduleRequest { class_schedule: Some(s), update_mask: mask(paths) })
            .await?;
        Ok(r.into_inner().class_schedule.expect("class schedule"))
    }
}

fn class(group: i64, activity: i64, room: i64, weekday: i32, timeframe: i64) -> pb::ClassSchedule {
    pb::ClassSchedule {
        education_group_id: group,
        activity_id: activity,
        room_id: room,
        weekday,
        timeframe_id: timeframe,
        ..Default::default()
    }
}

#[tokio::test]
async fn class_schedules_round_trip_and_name_each_bad_field() {
    let mut e = env().await;
    let (room, aula) = (e.room("Raum 1").await, e.room("Aula").await);
    let (group, other_group) = (e.group("Bären").await, e.group("Füchse").await);
    let activity = e.activity("Chor").await;
    let (tf, late) = (e.timeframe("13:00", "14:30").await, e.timeframe("15:00", "16:00").await);

    let made = e
        .create(pb::ClassSchedule { description: " Hausaufgaben ".into(), ..class(group, 0, room, 2, tf) })
        .await
        .unwrap();
    assert_eq!(
        (
            made.education_group_id,
            made.activity_id,
            made.room_id,
            made.weekday,
            made.timeframe_id,
            made.start_time.as_str(),
            made.end_time.as_str(),
            made.description.as_str()
        ),
        (group, 0, room, 2, tf, "13:00", "14:30", "Hausaufgaben")
    );
    let got = e.c.get_class_schedule(pb::GetClassScheduleRequest { id: made.id }).await.unwrap().into_inner();
    assert_eq!(got.class_schedule.unwrap(), made);
    let only_activity = e.create(class(0, activity, aula, 4, late)).await.unwrap();
    let both = e.create(class(other_group, activity, aula, 5, tf)).await.unwrap();

    // Listing with filters and true totals.
    let list = async |c: &mut Client, r: pb::ListClassSchedulesRequest| {
        let r = c.list_class_schedules(r).await.unwrap().into_inner();
        (r.class_schedules.iter().map(|s| s.id).collect::<Vec<_>>(), r.total_size)
    };
    assert_eq!(list(&mut e.c, Default::default()).await, (vec![made.id, only_activity.id, both.id], 3));
    let by_activity = pb::ListClassSchedulesRequest { activity_id: activity, ..Default::default() };
    assert_eq!(list(&mut e.c, by_activity).await, (vec![only_activity.id, both.id], 2));
    let by_group = pb::ListClassSchedulesRequest { education_group_id: group, ..Default::default() };
    assert_eq!(list(&mut e.c, by_group).await, (vec![made.id], 1));
    let aula_friday = pb::ListClassSchedulesRequest { room_id: aula, weekday: 5, ..Default::default() };
    assert_eq!(list(&mut e.c, aula_friday).await, (vec![both.id], 1));
    let page =
        e.c.list_class_schedules(pb::ListClassSchedulesRequest { page_size: 2, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
    assert_eq!((page.class_schedules.len(), page.total_size), (2, 3));
    let rest = pb::ListClassSchedulesRequest { page_size: 2, page_token: page.next_page_token, ..Default::default() };
    assert_eq!(list(&mut e.c, rest).await, (vec![both.id], 3));
    assert_invalid(
        e.c.list_class_schedules(pb::ListClassSchedulesRequest { weekday: 8, room_id: -1, ..Default::default() }).await,
        &["weekday", "room_id"],
    );

    // Update: masked fields only; a new timeframe brings its window.
    let moved = pb::ClassSchedule { id: made.id, weekday: 3, timeframe_id: late, ..class(0, 0, 0, 0, 0) };
    let got = e.update(moved, &["weekday", "timeframe_id"]).await.unwrap();
    assert_eq!(
        (got.education_group_id, got.room_id, got.weekday, got.start_time.as_str(), got.end_time.as_str()),
        (group, room, 3, "15:00", "16:00")
    );
    assert_eq!(got.description, "Hausaufgaben");
    let cleared = pb::ClassSchedule { id: made.id, ..Default::default() };
    assert_eq!(e.update(cleared.clone(), &["description"]).await.unwrap().description, "");
    // Dropping the group of a schedule that has no activity leaves nothing it is for.
    assert_invalid(
        e.update(cleared.clone(), &["education_group_id"]).await,
        &["class_schedule.education_group_id", "class_schedule.activity_id"],
    );
    assert_invalid(e.update(cleared.clone(), &["room_id"]).await, &["class_schedule.room_id"]);
    assert_invalid(e.update(cleared.clone(), &["created_at"]).await, &["update_mask"]);
    assert_invalid(e.update(cleared.clone(), &[]).await, &["update_mask"]);
    let gone = pb::ClassSchedule { id: 999_999, description: "x".into(), ..Default::default() };
    assert_code(e.update(gone, &["description"]).await, Code::NotFound);

    // Create: every field named.
    assert_invalid(
        e.create(class(0, 0, 0, 0, 0)).await,
        &[
            "class_schedule.education_group_id",
            "class_schedule.activity_id",
            "class_schedule.room_id",
            "class_schedule.weekday",
            "class_schedule.timeframe_id",
        ],
    );
    assert_invalid(e.create(class(group, 0, room, 8, tf)).await, &["class_schedule.weekday"]);
    assert_invalid(e.create(class(-1, 0, room, 1, tf)).await, &["class_schedule.education_group_id"]);
    assert_invalid(
        e.create(class(999_999, 999_999, 999_999, 1, 999_999)).await,
        &[
            "class_schedule.education_group_id",
            "class_schedule.activity_id",
            "class_schedule.room_id",
            "class_schedule.timeframe_id",
        ],
    );
    let open_ended = e.timeframe("16:00", "").await;
    assert_invalid(e.create(class(group, 0, room, 1, open_ended)).await, &["class_schedule.timeframe_id"]);
    let overnight = e
        .sql_id(
            "INSERT INTO schedule.timeframes (start_time, end_time) VALUES \
             ('2025-01-06 22:00 Europe/Berlin', '2025-01-07 06:00 Europe/Berlin') RETURNING id",
        )
        .await;
    assert_invalid(e.create(class(group, 0, room, 1, overnight)).await, &["class_schedule.timeframe_id"]);
    assert_invalid(
        e.create(pb::ClassSchedule { description: "x".repeat(1001), ..class(group, 0, room, 1, tf) }).await,
        &["class_schedule.description"],
    );
    assert_invalid(
        e.c.create_class_schedule(pb::CreateClassScheduleRequest { class_schedule: None }).await,
        &["class_schedule"],
    );

    // The same group twice at the same weekday and start already exists (even in another room).
    let status = assert_code(e.create(class(group, 0, aula, 3, late)).await, Code::AlreadyExists);
    assert!(status.message().contains(&format!("class schedule {}", made.id)), "{}", status.message());

    // A deleted timeframe leaves the window.
    sql_query(format!("DELETE FROM schedule.timeframes WHERE id = {tf}"))
        .execute(&mut e.app.db.conn().await)
        .await
        .unwrap();
    let got = e.c.get_class_schedule(pb::GetClassScheduleRequest { id: both.id }).await.unwrap().into_inner();
    let got = got.class_schedule.unwrap();
    assert_eq!((got.timeframe_id, got.start_time.as_str(), got.end_time.as_str()), (0, "13:00", "14:30"));

    e.c.delete_class_schedule(pb::DeleteClassScheduleRequest { id: made.id }).await.unwrap();
    assert_code(e.c.get_class_schedule(pb::GetClassScheduleRequest { id: made.id }).await, Code::NotFound);
    assert_code(e.c.delete_class_schedule(pb::DeleteClassScheduleRequest { id: made.id }).await, Code::NotFound);
    assert_invalid(e.c.delete_class_schedule(pb::DeleteClassScheduleRequest { id: 0 }).await, &["id"]);
    assert_invalid(e.c.get_class_schedule(pb::GetClassScheduleRequest { id: -3 }).await, &["id"]);
    assert_eq!(list(&mut e.c, Default::default()).await, (vec![only_activity.id, both.id], 2));
}

#[tokio::test]
async fn a_room_booked_at_an_overlapping_time_is_a_conflict_naming_the_other_booking() {
    let mut e = env().await;
    let (room, other_room) = (e.room("Werkraum").await, e.room("Musikraum").await);
    let (g1, g2, g3) = (e.group("Eulen").await, e.group("Igel").await, e.group("Luchse").await);
    let afternoon = e.timeframe("14:00", "15:30").await;
    let overlapping = e.timeframe("15:00", "16:00").await;
    let touching = e.timeframe("15:30", "16:30").await;

    let first = e.create(class(g1, 0, room, 1, afternoon)).await.unwrap();
    let status = assert_code(e.create(class(g2, 0, room, 1, overlapping)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ROOM_CONFLICT"));
    assert!(status.message().contains(&format!("class schedule {}", first.id)), "{}", status.message());
    // Touching ends, another weekday, another room: no conflict.
    let next = e.create(class(g2, 0, room, 1, touching)).await.unwrap();
    e.create(class(g3, 0, room, 2, overlapping)).await.unwrap();
    e.create(class(g3, 0, other_room, 1, overlapping)).await.unwrap();

    // Moving a schedule into an occupied window is refused; nothing changes.
    let into = pb::ClassSchedule { id: next.id, timeframe_id: overlapping, ..Default::default() };
    let status = assert_code(e.update(into, &["timeframe_id"]).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ROOM_CONFLICT"));
    // A schedule does not conflict with itself.
    let same = pb::ClassSchedule { id: first.id, timeframe_id: afternoon, weekday: 1, ..Default::default() };
    e.update(same, &["timeframe_id", "weekday"]).await.unwrap();

    // An activity planned in the room with a weekly schedule books it too …
    let activity = e.activity("Töpfern").await;
    let evening = e.timeframe("17:00", "18:00").await;
    for sql in [
        format!("UPDATE activities.activities SET planned_room_id = {room} WHERE id = {activity}"),
        format!(
            "INSERT INTO activities.schedules (activity_id, weekday, timeframe_id) VALUES ({activity}, 1, {evening})"
        ),
    ] {
        sql_query(sql).execute(&mut e.app.db.conn().await).await.unwrap();
    }
    let status = assert_code(e.create(class(g3, 0, room, 1, evening)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ROOM_CONFLICT"));
    assert!(status.message().contains(&format!("of activity {activity}")), "{}", status.message());
    // … but not against a class schedule of that same activity (the same hours).
    e.create(class(0, activity, room, 1, evening)).await.unwrap();
    // Once the activity's own class schedule holds the slot, a rival is refused by that one.
    let rival = e.activity("Malen").await;
    let status = assert_code(e.create(class(0, rival, room, 1, evening)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ROOM_CONFLICT"));

    // A booking added later (an activity's weekly schedule) does not block editing a text.
    let text = pb::ClassSchedule { id: next.id, description: "Werken".into(), ..Default::default() };
    sql_query(format!(
        "INSERT INTO activities.schedules (activity_id, weekday, timeframe_id) VALUES ({activity}, 1, {touching})"
    ))
    .execute(&mut e.app.db.conn().await)
    .await
    .unwrap();
    assert_eq!(e.update(text, &["description"]).await.unwrap().description, "Werken");
}

#[tokio::test]
async fn conflict_check_and_free_slots_see_class_schedules() {
    let mut e = env().await;
    let room = e.room("Turnhalle").await;
    let group = e.group("Adler").await;
    let activity = e.activity("Tanzen").await;
    let morning = e.timeframe("09:00", "10:00").await;
    let noon = e.timeframe("12:00", "13:00").await;
    let by_group = e.create(class(group, 0, room, 3, morning)).await.unwrap();
    let by_activity = e.create(class(group, activity, room, 3, noon)).await.unwrap();

    let check = |start: &str, end: &str| pb::CheckRoomConflictRequest {
        room_id: room,
        weekday: 3,
        start_time: start.into(),
        end_time: end.into(),
    };
    let r = e.c.check_room_conflict(check("09:30", "12:30")).await.unwrap().into_inner();
    assert!(r.has_conflict);
    let got: Vec<_> = r
        .conflicts
        .iter()
        .map(|b| {
            (
                b.class_schedule_id,
                b.activity_schedule_id,
                b.education_group_id,
                b.education_group_name.as_str(),
                b.activity_id,
                b.activity_name.as_str(),
                b.start_time.as_str(),
                b.end_time.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (by_group.id, 0, group, "Adler", 0, "", "09:00", "10:00"),
            (by_activity.id, 0, group, "Adler", activity, "Tanzen", "12:00", "13:00"),
        ]
    );
    assert!(!e.c.check_room_conflict(check("10:00", "12:00")).await.unwrap().into_inner().has_conflict);

    let slots =
        e.c.find_free_slots(pb::FindFreeSlotsRequest {
            room_id: room,
            weekday: 3,
            duration_minutes: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .slots;
    let got: Vec<_> = slots.iter().map(|s| (s.start_time.as_str(), s.end_time.as_str())).collect();
    assert_eq!(got, [("08:00", "09:00"), ("10:00", "12:00"), ("13:00", "18:00")]);
}

#[tokio::test]
async fn staff_read_class_schedules_but_only_schedules_create_writes_them() {
    let mut e = env().await;
    let staff = fixtures::staff(&mut e.app.db.conn().await, "Frau", "Lehrer").await;
    let room = e.room("Raum 7").await;
    let group = e.group("Wölfe").await;
    let tf = e.timeframe("11:00", "12:00").await;
    let made = e.create(class(group, 0, room, 1, tf)).await.unwrap();
    let as_staff = As::Staff(staff);
    let status = assert_code(
        e.c.create_class_schedule(request(
            as_staff,
            pb::CreateClassScheduleRequest { class_schedule: Some(class(group, 0, room, 2, tf)) },
        ))
        .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("schedules:create"), "{}", status.message());
    assert_code(
        e.c.delete_class_schedule(request(as_staff, pb::DeleteClassScheduleRequest { id: made.id })).await,
        Code::PermissionDenied,
    );
    let got = e.c.get_class_schedule(request(as_staff, pb::GetClassScheduleRequest { id: made.id })).await.unwrap();
    assert_eq!(got.into_inner().class_schedule.unwrap(), made);
}
