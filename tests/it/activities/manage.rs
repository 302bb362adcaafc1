//! `phoenix.activities.v1` beyond enrollment: update (masks, replaced supervisors and
//! schedules), delete (sub-rows only, refused while a session runs), listing with filters,
//! activities available to a student, weekly schedules and planned supervisors as
//! sub-resources, and the ownership rule on every write, with real staff tokens.

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use pb::activities_service_client::ActivitiesServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::activities::v1 as pb;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = ActivitiesServiceClient<TestChannel>;

const NOT_YOURS: &str = "you can only modify activities that you created or supervise";

struct Env {
    app: TestApp,
    c: Client,
}

async fn env() -> Env {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let c = ActivitiesServiceClient::new(app.test_channel(Domain::Activities).await);
    Env { app, c }
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Env {
    async fn staff(&self, last: &str) -> i64 {
        fixtures::staff(&mut self.app.db.conn().await, "Frau", last).await
    }

    async fn students(&self, n: usize) -> Vec<i64> {
        let mut conn = self.app.db.conn().await;
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(fixtures::student(&mut conn, &format!("Kind{i}"), "Test", &fixtures::tag(i)).await);
        }
        ids
    }

    async fn room(&self, name: &str) -> i64 {
        fixtures::room(&mut self.app.db.conn().await, name, None).await
    }

    /// A timeframe on a winter Monday, local Berlin times `HH:MM`.
    async fn timeframe(&self, start: &str, end: &str) -> i64 {
        fixtures::insert_returning_id(
            &mut self.app.db.conn().await,
            &format!(
                "INSERT INTO schedule.timeframes (start_time, end_time, is_active) VALUES \
                 ('2025-01-06 {start} Europe/Berlin', '2025-01-06 {end} Europe/Berlin', true) RETURNING id"
            ),
        )
        .await
    }

    async fn category(&self, name: &str) -> i64 {
        fixtures::insert_returning_id(
            &mut self.app.db.conn().await,
            &format!("SELECT id FROM activities.categories WHERE name = '{name}'"),
        )
        .await
    }

    async fn count(&self, sql: &str) -> i64 {
        sql_query(sql).get_result::<N>(&mut self.app.db.conn().await).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    /// Creates an activity as `who` (category Sport, 10 places, open).
    async fn create(&mut self, who: As, name: &str, supervisors: Vec<i64>) -> pb::Activity {
        let category_id = self.category("Sport").await;
        let activity =
            pb::Activity { name: name.into(), max_participants: 10, is_open: true, category_id, ..Default::default() };
        self.c
            .create_activity(request(
                who,
                pb::CreateActivityRequest { activity: Some(activity), supervisor_staff_ids: supervisors },
            ))
            .await
            .expect("create activity")
            .into_inner()
            .activity
            .expect("activity")
    }

    async fn get(&mut self, id: i64) -> pb::Activity {
        self.c.get_activity(pb::GetActivityRequest { id }).await.expect("get").into_inner().activity.expect("activity")
    }
}

fn sup(staff_id: i64, is_primary: bool) -> pb::Supervisor {
    pb::Supervisor { staff_id, is_primary }
}

fn sched(weekday: i32, timeframe_id: i64) -> pb::ActivitySchedule {
    pb::ActivitySchedule { weekday, timeframe_id, ..Default::default() }
}

fn update(activity: pb::Activity, paths: &[&str]) -> pb::UpdateActivityRequest {
    pb::UpdateActivityRequest { activity: Some(activity), update_mask: mask(paths) }
}

fn weekly(s: &[pb::ActivitySchedule]) -> Vec<(i32, i64, &str, &str)> {
    s.iter().map(|s| (s.weekday, s.timeframe_id, s.start_time.as_str(), s.end_time.as_str())).collect()
}

#[tokio::test]
async fn update_changes_masked_fields_and_replaces_supervisors_and_schedules() {
    let mut e = env().await;
    let (lead, helper) = (e.staff("Lead").await, e.staff("Helper").await);
    let room = e.room("Turnhalle").await;
    let (early, late) = (e.timeframe("14:00", "15:30").await, e.timeframe("15:30", "17:00").await);
    let category_id = e.category("Sport").await;
    let created =
        e.c.create_activity(pb::CreateActivityRequest {
            activity: Some(pb::Activity {
                name: "Fußball".into(),
                max_participants: 10,
                category_id,
                schedules: vec![sched(1, early)],
                ..Default::default()
            }),
            supervisor_staff_ids: vec![lead],
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(weekly(&created.schedules), [(1, early, "14:00", "15:30")]);

    let musik = e.category("Musik").await;
    let changed = pb::Activity {
        id: created.id,
        name: "  Chor ".into(),
        max_participants: 12,
        is_open: true,
        category_id: musik,
        planned_room_id: room,
        supervisors: vec![sup(lead, false), sup(helper, true)],
        schedules: vec![sched(3, late), sched(5, 0)],
        ..Default::default()
    };
    let got = e.c.update_activity(update(changed.clone(), &["*"])).await.unwrap().into_inner().activity.unwrap();
    assert_eq!(
        (got.name.as_str(), got.max_participants, got.is_open, got.category_id, got.planned_room_id),
        ("Chor", 12, true, musik, room)
    );
    assert_eq!(got.supervisors, [sup(helper, true), sup(lead, false)]);
    assert_eq!(weekly(&got.schedules), [(3, late, "15:30", "17:00"), (5, 0, "", "")]);
    assert_eq!(e.get(created.id).await, got);

    // Only the masked fields change; 0 clears the planned room.
    let partial = pb::Activity { id: created.id, name: "ignored".into(), planned_room_id: 0, ..Default::default() };
    let got = e.c.update_activity(update(partial, &["planned_room_id"])).await.unwrap().into_inner().activity.unwrap();
    assert_eq!((got.name.as_str(), got.planned_room_id, got.supervisors.len(), got.schedules.len()), ("Chor", 0, 2, 2));
    // An empty set is allowed (no supervisors, no primary).
    let none = pb::Activity { id: created.id, ..Default::default() };
    let got = e.c.update_activity(update(none, &["supervisors", "schedules"])).await.unwrap().into_inner();
    let got = got.activity.unwrap();
    assert!(got.supervisors.is_empty() && got.schedules.is_empty());

    // Validation names each field; nothing changes.
    let bad = pb::Activity {
        id: created.id,
        name: " ".into(),
        max_participants: 0,
        category_id: 0,
        planned_room_id: -1,
        supervisors: vec![sup(lead, true), sup(helper, true)],
        schedules: vec![sched(8, 0), sched(0, -2)],
        ..Default::default()
    };
    assert_invalid(
        e.c.update_activity(update(bad, &["*"])).await,
        &[
            "activity.name",
            "activity.max_participants",
            "activity.category_id",
            "activity.planned_room_id",
            "activity.supervisors",
            "activity.schedules[0].weekday",
            "activity.schedules[1].weekday",
            "activity.schedules[1].timeframe_id",
        ],
    );
    let missing = pb::Activity {
        id: created.id,
        category_id: 999_999,
        planned_room_id: 999_999,
        supervisors: vec![sup(999_999, true)],
        schedules: vec![sched(2, 999_999)],
        ..Default::default()
    };
    assert_invalid(
        e.c.update_activity(update(missing, &["category_id", "planned_room_id", "supervisors", "schedules"])).await,
        &[
            "activity.category_id",
            "activity.planned_room_id",
            "activity.supervisors[0].staff_id",
            "activity.schedules[0].timeframe_id",
        ],
    );
    let id_only = pb::Activity { id: created.id, ..Default::default() };
    assert_invalid(e.c.update_activity(update(id_only.clone(), &[])).await, &["update_mask"]);
    assert_invalid(e.c.update_activity(update(id_only.clone(), &["created_by_staff_id"])).await, &["update_mask"]);
    assert_invalid(
        e.c.update_activity(update(pb::Activity::default(), &["name"])).await,
        &["activity.id", "activity.name"],
    );
    let gone = pb::Activity { id: 999_999, name: "x".into(), ..Default::default() };
    assert_code(e.c.update_activity(update(gone, &["name"])).await, Code::NotFound);
    assert_eq!(e.get(created.id).await.name, "Chor");

    // Capacity cannot fall below the enrollments.
    let kids = e.students(3).await;
    e.c.replace_enrollments(pb::ReplaceEnrollmentsRequest { activity_id: created.id, student_ids: kids })
        .await
        .unwrap();
    let smaller = pb::Activity { id: created.id, max_participants: 2, ..Default::default() };
    let status =
        assert_code(e.c.update_activity(update(smaller, &["max_participants"])).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ENROLLMENTS_EXCEED_CAPACITY"));
    let exact = pb::Activity { id: created.id, max_participants: 3, ..Default::default() };
    e.c.update_activity(update(exact, &["max_participants"])).await.unwrap();
}

#[tokio::test]
async fn only_admins_creators_and_planned_supervisors_write_and_manage_does_not_bypass() {
    let mut e = env().await;
    let (creator, planned, other) = (e.staff("Creator").await, e.staff("Planned").await, e.staff("Other").await);
    let extra = e.staff("Extra").await;
    let tf = e.timeframe("10:00", "11:00").await;
    let kids = e.students(2).await;
    // A staff member creates it: they are its creator (the staff role holds activities:manage).
    let a = e.create(As::Staff(creator), "Schach", vec![planned]).await;
    assert_eq!(a.created_by_staff_id, Some(creator));
    let sid = e
        .c
        .create_activity_schedule(pb::CreateActivityScheduleRequest { activity_id: a.id, schedule: Some(sched(2, tf)) })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap()
        .id;

    let denied = |status: tonic::Status| {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.message().starts_with(NOT_YOURS), "{}", status.message());
    };
    let o = As::Staff(other);
    let id = a.id;
    let renamed = pb::Activity { id, name: "Dame".into(), ..Default::default() };
    denied(e.c.update_activity(request(o, update(renamed.clone(), &["name"]))).await.unwrap_err());
    denied(e.c.delete_activity(request(o, pb::DeleteActivityRequest { id })).await.unwrap_err());
    denied(
        e.c.create_activity_schedule(request(
            o,
            pb::CreateActivityScheduleRequest { activity_id: id, schedule: Some(sched(4, 0)) },
        ))
        .await
        .unwrap_err(),
    );
    let moved = pb::ActivitySchedule { id: sid, weekday: 3, ..Default::default() };
    denied(
        e.c.update_activity_schedule(request(
            o,
            pb::UpdateActivityScheduleRequest {
                activity_id: id,
                schedule: Some(moved),
                update_mask: mask(&["weekday"]),
            },
        ))
        .await
        .unwrap_err(),
    );
    denied(
        e.c.delete_activity_schedule(request(
            o,
            pb::DeleteActivityScheduleRequest { activity_id: id, schedule_id: sid },
        ))
        .await
        .unwrap_err(),
    );
    denied(
        e.c.add_activity_supervisor(request(
            o,
            pb::AddActivitySupervisorRequest { activity_id: id, staff_id: other, is_primary: false },
        ))
        .await
        .unwrap_err(),
    );
    denied(
        e.c.update_activity_supervisor(request(
            o,
            pb::UpdateActivitySupervisorRequest {
                activity_id: id,
                supervisor: Some(sup(planned, true)),
                update_mask: mask(&["is_primary"]),
            },
        ))
        .await
        .unwrap_err(),
    );
    denied(
        e.c.remove_activity_supervisor(request(
            o,
            pb::RemoveActivitySupervisorRequest { activity_id: id, staff_id: planned },
        ))
        .await
        .unwrap_err(),
    );
    denied(
        e.c.enroll_student(request(o, pb::EnrollStudentRequest { activity_id: id, student_id: kids[0] }))
            .await
            .unwrap_err(),
    );
    denied(
        e.c.unenroll_student(request(o, pb::UnenrollStudentRequest { activity_id: id, student_id: kids[0] }))
            .await
            .unwrap_err(),
    );
    denied(
        e.c.replace_enrollments(request(o, pb::ReplaceEnrollmentsRequest { activity_id: id, student_ids: vec![] }))
            .await
            .unwrap_err(),
    );
    // Reads stay open to every holder of activities:read.
    e.c.get_activity(request(o, pb::GetActivityRequest { id })).await.unwrap();
    e.c.list_activity_schedules(request(o, pb::ListActivitySchedulesRequest { activity_id: id })).await.unwrap();
    e.c.list_activity_supervisors(request(o, pb::ListActivitySupervisorsRequest { activity_id: id })).await.unwrap();
    assert_eq!(e.get(id).await.name, "Schach", "nothing changed");

    // The creator and the planned supervisor may.
    e.c.update_activity(request(As::Staff(creator), update(renamed, &["name"]))).await.unwrap();
    e.c.update_activity_schedule(request(
        As::Staff(planned),
        pb::UpdateActivityScheduleRequest {
            activity_id: id,
            schedule: Some(pb::ActivitySchedule { id: sid, weekday: 3, ..Default::default() }),
            update_mask: mask(&["weekday"]),
        },
    ))
    .await
    .unwrap();
    e.c.add_activity_supervisor(request(
        As::Staff(planned),
        pb::AddActivitySupervisorRequest { activity_id: id, staff_id: extra, is_primary: false },
    ))
    .await
    .unwrap();
    e.c.enroll_student(request(As::Staff(planned), pb::EnrollStudentRequest { activity_id: id, student_id: kids[1] }))
        .await
        .unwrap();
    // The added supervisor now may too; once removed from the plan, they may not.
    e.c.create_activity_schedule(request(
        As::Staff(extra),
        pb::CreateActivityScheduleRequest { activity_id: id, schedule: Some(sched(5, 0)) },
    ))
    .await
    .unwrap();
    e.c.remove_activity_supervisor(request(
        As::Staff(creator),
        pb::RemoveActivitySupervisorRequest { activity_id: id, staff_id: extra },
    ))
    .await
    .unwrap();
    denied(
        e.c.create_activity_schedule(request(
            As::Staff(extra),
            pb::CreateActivityScheduleRequest { activity_id: id, schedule: Some(sched(6, 0)) },
        ))
        .await
        .unwrap_err(),
    );
    let got = e.get(id).await;
    assert_eq!((got.name.as_str(), got.enrolled_count, got.schedules.len()), ("Dame", 1, 2));
    // An activity an admin created without a staff record is the admin's alone.
    let admins = e.create(As::Admin, "Admin-AG", vec![]).await;
    assert_eq!(admins.created_by_staff_id, None);
    denied(
        e.c.delete_activity(request(As::Staff(creator), pb::DeleteActivityRequest { id: admins.id }))
            .await
            .unwrap_err(),
    );
    e.c.delete_activity(request(As::Staff(creator), pb::DeleteActivityRequest { id })).await.unwrap();
    assert_code(e.c.get_activity(pb::GetActivityRequest { id }).await, Code::NotFound);
}

#[tokio::test]
async fn delete_removes_exactly_the_activitys_sub_rows_and_waits_for_its_session_to_end() {
    let mut e = env().await;
    let (lead, other_lead) = (e.staff("Lead").await, e.staff("OtherLead").await);
    let tf = e.timeframe("14:00", "15:00").await;
    let room = e.room("Werkraum").await;
    let kids = e.students(3).await;
    let doomed = e.create(As::Admin, "Basteln", vec![lead, other_lead]).await;
    let kept = e.create(As::Admin, "Malen", vec![lead]).await;
    for a in [&doomed, &kept] {
        e.c.replace_enrollments(pb::ReplaceEnrollmentsRequest { activity_id: a.id, student_ids: kids.clone() })
            .await
            .unwrap();
        for day in [1, 3] {
            e.c.create_activity_schedule(pb::CreateActivityScheduleRequest {
                activity_id: a.id,
                schedule: Some(sched(day, tf)),
            })
            .await
            .unwrap();
        }
    }
    let rows = |table: &str, id: i64| format!("SELECT count(*) AS n FROM activities.{table} WHERE activity_id = {id}");
    for id in [doomed.id, kept.id] {
        assert_eq!(e.count(&rows("enrollments", id)).await, 3);
        assert!(e.count(&rows("supervisors", id)).await >= 1);
        assert_eq!(e.count(&rows("schedules", id)).await, 2);
    }

    // A running room session of it blocks the delete; nothing is removed.
    let session = fixtures::insert_returning_id(
        &mut e.app.db.conn().await,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time) VALUES ({room}, {}, now()) RETURNING id",
            doomed.id
        ),
    )
    .await;
    let status =
        assert_code(e.c.delete_activity(pb::DeleteActivityRequest { id: doomed.id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("SESSION_RUNNING"));
    assert!(status.message().contains(&format!("session {session}")), "{}", status.message());
    assert_eq!(e.count(&rows("enrollments", doomed.id)).await, 3);
    sql_query(format!("UPDATE active.groups SET end_time = now() WHERE id = {session}"))
        .execute(&mut e.app.db.conn().await)
        .await
        .unwrap();

    e.c.delete_activity(pb::DeleteActivityRequest { id: doomed.id }).await.unwrap();
    assert_code(e.c.get_activity(pb::GetActivityRequest { id: doomed.id }).await, Code::NotFound);
    for table in ["enrollments", "supervisors", "schedules"] {
        assert_eq!(e.count(&rows(table, doomed.id)).await, 0, "{table} of the deleted activity");
    }
    // The other activity, the pupils, the staff and the timeframe stay.
    assert_eq!(e.get(kept.id).await.enrolled_count, 3);
    assert_eq!(e.count(&rows("supervisors", kept.id)).await, 1);
    assert_eq!(e.count(&rows("schedules", kept.id)).await, 2);
    assert_eq!(e.count("SELECT count(*) AS n FROM users.students").await, 3);
    assert_eq!(e.count(&format!("SELECT count(*) AS n FROM users.staff WHERE id IN ({lead}, {other_lead})")).await, 2);
    assert_eq!(e.count(&format!("SELECT count(*) AS n FROM schedule.timeframes WHERE id = {tf}")).await, 1);
    assert_eq!(e.count(&format!("SELECT count(*) AS n FROM facilities.rooms WHERE id = {room}")).await, 1);
    // As documented: its ended sessions go with it (active.groups.activity_id ON DELETE CASCADE).
    assert_eq!(e.count(&format!("SELECT count(*) AS n FROM active.groups WHERE id = {session}")).await, 0);

    assert_code(e.c.delete_activity(pb::DeleteActivityRequest { id: doomed.id }).await, Code::NotFound);
    assert_invalid(e.c.delete_activity(pb::DeleteActivityRequest { id: 0 }).await, &["id"]);
}

#[tokio::test]
async fn weekly_schedules_are_sub_resources_of_their_activity() {
    let mut e = env().await;
    let tf = e.timeframe("08:15", "09:45").await;
    let a = e.create(As::Admin, "Lesen", vec![]).await;
    let b = e.create(As::Admin, "Rechnen", vec![]).await;
    let create = |activity_id: i64, s: pb::ActivitySchedule| pb::CreateActivityScheduleRequest {
        activity_id,
        schedule: Some(s),
    };
    let mon = e.c.create_activity_schedule(create(a.id, sched(1, tf))).await.unwrap().into_inner().schedule.unwrap();
    assert_eq!(
        (mon.activity_id, mon.weekday, mon.timeframe_id, mon.start_time.as_str(), mon.end_time.as_str()),
        (a.id, 1, tf, "08:15", "09:45")
    );
    let sun = e.c.create_activity_schedule(create(a.id, sched(7, 0))).await.unwrap().into_inner().schedule.unwrap();
    let other = e.c.create_activity_schedule(create(b.id, sched(2, tf))).await.unwrap().into_inner().schedule.unwrap();

    // Validation: weekday 1–7, the timeframe must exist (the field is named), duplicates exist.
    for bad in [0, 8] {
        assert_invalid(e.c.create_activity_schedule(create(a.id, sched(bad, tf))).await, &["schedule.weekday"]);
    }
    assert_invalid(e.c.create_activity_schedule(create(a.id, sched(2, 999_999))).await, &["schedule.timeframe_id"]);
    assert_invalid(
        e.c.create_activity_schedule(create(0, sched(2, -1))).await,
        &["activity_id", "schedule.timeframe_id"],
    );
    assert_code(e.c.create_activity_schedule(create(a.id, sched(1, tf))).await, Code::AlreadyExists);
    assert_code(e.c.create_activity_schedule(create(999_999, sched(1, tf))).await, Code::NotFound);

    let list = e.c.list_activity_schedules(pb::ListActivitySchedulesRequest { activity_id: a.id }).await.unwrap();
    assert_eq!(list.into_inner().schedules, [mon.clone(), sun.clone()]);
    let got =
        e.c.get_activity_schedule(pb::GetActivityScheduleRequest { activity_id: a.id, schedule_id: sun.id }).await;
    assert_eq!(got.unwrap().into_inner().schedule.unwrap(), sun);

    // Another activity's schedule is not found through this one (the original said 403).
    let foreign = pb::GetActivityScheduleRequest { activity_id: a.id, schedule_id: other.id };
    assert_code(e.c.get_activity_schedule(foreign).await, Code::NotFound);
    let upd = |activity_id: i64, s: pb::ActivitySchedule, paths: &[&str]| pb::UpdateActivityScheduleRequest {
        activity_id,
        schedule: Some(s),
        update_mask: mask(paths),
    };
    let foreign_update =
        upd(a.id, pb::ActivitySchedule { id: other.id, weekday: 4, ..Default::default() }, &["weekday"]);
    assert_code(e.c.update_activity_schedule(foreign_update).await, Code::NotFound);
    let foreign_delete = pb::DeleteActivityScheduleRequest { activity_id: a.id, schedule_id: other.id };
    assert_code(e.c.delete_activity_schedule(foreign_delete).await, Code::NotFound);
    assert_eq!(e.get(b.id).await.schedules, [other], "the other activity's schedule is untouched");

    // Update: masked fields only; the same weekday and timeframe twice already exists.
    let moved =
        e.c.update_activity_schedule(upd(
            a.id,
            pb::ActivitySchedule { id: sun.id, weekday: 6, timeframe_id: tf, ..Default::default() },
            &["weekday"],
        ))
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert_eq!((moved.weekday, moved.timeframe_id), (6, 0));
    let clash = pb::ActivitySchedule { id: sun.id, weekday: 1, timeframe_id: tf, ..Default::default() };
    assert_code(e.c.update_activity_schedule(upd(a.id, clash, &["*"])).await, Code::AlreadyExists);
    let bad = pb::ActivitySchedule { id: sun.id, weekday: 9, timeframe_id: 999_999, ..Default::default() };
    assert_invalid(e.c.update_activity_schedule(upd(a.id, bad.clone(), &["weekday"])).await, &["schedule.weekday"]);
    assert_invalid(
        e.c.update_activity_schedule(upd(a.id, bad.clone(), &["timeframe_id"])).await,
        &["schedule.timeframe_id"],
    );
    assert_invalid(e.c.update_activity_schedule(upd(a.id, bad, &["activity_id"])).await, &["update_mask"]);

    e.c.delete_activity_schedule(pb::DeleteActivityScheduleRequest { activity_id: a.id, schedule_id: sun.id })
        .await
        .unwrap();
    let again = pb::DeleteActivityScheduleRequest { activity_id: a.id, schedule_id: sun.id };
    assert_code(e.c.delete_activity_schedule(again).await, Code::NotFound);
    assert_eq!(e.get(a.id).await.schedules, [mon]);
}

#[tokio::test]
async fn planned_supervisors_keep_exactly_one_primary() {
    let mut e = env().await;
    let (s1, s2, s3) = (e.staff("Eins").await, e.staff("Zwei").await, e.staff("Drei").await);
    let a = e.create(As::Admin, "Theater", vec![]).await;
    let add =
        |staff_id: i64, is_primary: bool| pb::AddActivitySupervisorRequest { activity_id: a.id, staff_id, is_primary };
    let list = |r: Vec<pb::Supervisor>| r.into_iter().map(|s| (s.staff_id, s.is_primary)).collect::<Vec<_>>();

    // The first supervisor is the primary one even when not asked for.
    let r = e.c.add_activity_supervisor(add(s1, false)).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s1, true)]);
    let r = e.c.add_activity_supervisor(add(s2, false)).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s1, true), (s2, false)]);
    // Adding a primary moves the mark.
    let r = e.c.add_activity_supervisor(add(s3, true)).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s3, true), (s1, false), (s2, false)]);
    assert_code(e.c.add_activity_supervisor(add(s1, false)).await, Code::AlreadyExists);
    assert_invalid(e.c.add_activity_supervisor(add(999_999, false)).await, &["staff_id"]);
    assert_invalid(e.c.add_activity_supervisor(add(0, false)).await, &["staff_id"]);

    // The primary cannot be removed or un-marked.
    let remove = |staff_id: i64| pb::RemoveActivitySupervisorRequest { activity_id: a.id, staff_id };
    let status = assert_code(e.c.remove_activity_supervisor(remove(s3)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("PRIMARY_SUPERVISOR"));
    let set = |staff_id: i64, is_primary: bool, paths: &[&str]| pb::UpdateActivitySupervisorRequest {
        activity_id: a.id,
        supervisor: Some(sup(staff_id, is_primary)),
        update_mask: mask(paths),
    };
    let status =
        assert_code(e.c.update_activity_supervisor(set(s3, false, &["is_primary"])).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("PRIMARY_SUPERVISOR"));
    // Making another one primary moves the mark; then the old primary can go.
    let r = e.c.update_activity_supervisor(set(s2, true, &["is_primary"])).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s2, true), (s1, false), (s3, false)]);
    let r = e.c.remove_activity_supervisor(remove(s3)).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s2, true), (s1, false)]);
    // Un-marking a non-primary is a no-op.
    let r = e.c.update_activity_supervisor(set(s1, false, &["*"])).await.unwrap().into_inner();
    assert_eq!(list(r.supervisors), [(s2, true), (s1, false)]);

    assert_code(e.c.remove_activity_supervisor(remove(s3)).await, Code::NotFound);
    assert_code(e.c.update_activity_supervisor(set(s3, true, &["is_primary"])).await, Code::NotFound);
    assert_invalid(e.c.update_activity_supervisor(set(s1, true, &["staff_id"])).await, &["update_mask"]);
    assert_invalid(e.c.update_activity_supervisor(set(0, true, &[])).await, &["supervisor.staff_id", "update_mask"]);
    let r = e.c.list_activity_supervisors(pb::ListActivitySupervisorsRequest { activity_id: a.id }).await.unwrap();
    assert_eq!(list(r.into_inner().supervisors), [(s2, true), (s1, false)]);
    let missing = pb::ListActivitySupervisorsRequest { activity_id: 999_999 };
    assert_code(e.c.list_activity_supervisors(missing).await, Code::NotFound);
    let count = e
        .count(&format!("SELECT count(*) AS n FROM activities.supervisors WHERE activity_id = {} AND is_primary", a.id))
        .await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn list_filters_paginate_with_true_totals() {
    let mut e = env().await;
    let (lead, other) = (e.staff("Lead").await, e.staff("Other").await);
    let room = e.room("Aula").await;
    let (sport, musik) = (e.category("Sport").await, e.category("Musik").await);
    let mut ids = Vec::new();
    for (name, category_id, is_open, planned_room_id, sups) in [
        ("Fußball", sport, true, room, vec![lead]),
        ("Basketball", sport, false, 0, vec![other, lead]),
        ("Chor", musik, true, room, vec![other]),
        ("Flöte 50%", musik, true, 0, vec![]),
        ("Handball", sport, true, 0, vec![lead]),
    ] {
        let a = pb::Activity {
            name: name.into(),
            max_participants: 5,
            is_open,
            category_id,
            planned_room_id,
            ..Default::default()
        };
        let r =
            e.c.create_activity(pb::CreateActivityRequest { activity: Some(a), supervisor_staff_ids: sups })
                .await
                .unwrap();
        ids.push(r.into_inner().activity.unwrap().id);
    }
    let list = async |c: &mut Client, r: pb::ListActivitiesRequest| {
        let r = c.list_activities(r).await.unwrap().into_inner();
        (r.activities.iter().map(|a| a.id).collect::<Vec<_>>(), r.total_size, r.next_page_token)
    };
    let all = list(&mut e.c, pb::ListActivitiesRequest::default()).await;
    assert_eq!((all.0.clone(), all.1, all.2.as_str()), (ids.clone(), 5, ""));
    let cases: Vec<(pb::ListActivitiesRequest, Vec<i64>)> = vec![
        (pb::ListActivitiesRequest { category_id: sport, ..Default::default() }, vec![ids[0], ids[1], ids[4]]),
        (pb::ListActivitiesRequest { is_open: Some(false), ..Default::default() }, vec![ids[1]]),
        (pb::ListActivitiesRequest { is_open: Some(true), ..Default::default() }, vec![ids[0], ids[2], ids[3], ids[4]]),
        (pb::ListActivitiesRequest { planned_room_id: room, ..Default::default() }, vec![ids[0], ids[2]]),
        (pb::ListActivitiesRequest { supervisor_staff_id: lead, ..Default::default() }, vec![ids[0], ids[1], ids[4]]),
        (
            pb::ListActivitiesRequest { name_contains: "BALL".into(), ..Default::default() },
            vec![ids[0], ids[1], ids[4]],
        ),
        (pb::ListActivitiesRequest { name_contains: "50%".into(), ..Default::default() }, vec![ids[3]]),
        (pb::ListActivitiesRequest { name_contains: "%".into(), ..Default::default() }, vec![ids[3]]),
        (
            pb::ListActivitiesRequest {
                category_id: sport,
                is_open: Some(true),
                supervisor_staff_id: lead,
                ..Default::default()
            },
            vec![ids[0], ids[4]],
        ),
    ];
    for (req, want) in cases {
        let got = list(&mut e.c, req.clone()).await;
        assert_eq!((got.0, got.1), (want.clone(), want.len() as i32), "{req:?}");
    }

    // Pages of two with the true total; a token only fits its own filters.
    let sports = |page_token: String| pb::ListActivitiesRequest {
        category_id: sport,
        page_size: 2,
        page_token,
        ..Default::default()
    };
    let p1 = list(&mut e.c, sports(String::new())).await;
    assert_eq!((p1.0.clone(), p1.1), (vec![ids[0], ids[1]], 3));
    let p2 = list(&mut e.c, sports(p1.2.clone())).await;
    assert_eq!((p2.0, p2.1, p2.2.as_str()), (vec![ids[4]], 3, ""));
    let wrong = pb::ListActivitiesRequest { category_id: musik, page_size: 2, page_token: p1.2, ..Default::default() };
    assert_invalid(e.c.list_activities(wrong).await, &["page_token"]);
    assert_invalid(
        e.c.list_activities(pb::ListActivitiesRequest {
            category_id: -1,
            planned_room_id: -1,
            supervisor_staff_id: -1,
            page_size: 501,
            ..Default::default()
        })
        .await,
        &["category_id", "planned_room_id", "supervisor_staff_id", "page_size"],
    );
    // Each listed activity carries its sub-resources.
    let r = e.c.list_activities(pb::ListActivitiesRequest { supervisor_staff_id: other, ..Default::default() }).await;
    let basketball = r.unwrap().into_inner().activities.into_iter().find(|a| a.id == ids[1]).unwrap();
    assert_eq!(basketball.supervisors, [sup(other, true), sup(lead, false)]);
}

#[tokio::test]
async fn available_activities_are_open_not_full_and_not_joined_yet() {
    let mut e = env().await;
    let kids = e.students(2).await;
    let sport = e.category("Sport").await;
    let mut make = async |name: &str, max: i32| {
        let a = pb::Activity {
            name: name.into(),
            max_participants: max,
            is_open: true,
            category_id: sport,
            ..Default::default()
        };
        let a =
            e.c.create_activity(pb::CreateActivityRequest { activity: Some(a), supervisor_staff_ids: vec![] }).await;
        a.unwrap().into_inner().activity.unwrap().id
    };
    let open = make("Offen", 5).await;
    let full = make("Voll", 1).await;
    let joined = make("Dabei", 5).await;
    let closed = make("Zu", 5).await;
    let open2 = make("Auch offen", 5).await;
    e.c.enroll_student(pb::EnrollStudentRequest { activity_id: full, student_id: kids[1] }).await.unwrap();
    e.c.enroll_student(pb::EnrollStudentRequest { activity_id: joined, student_id: kids[0] }).await.unwrap();
    let close = pb::Activity { id: closed, is_open: false, ..Default::default() };
    e.c.update_activity(update(close, &["is_open"])).await.unwrap();

    let req = |student_id: i64, page_size: i32, page_token: String| pb::ListAvailableActivitiesRequest {
        student_id,
        page_size,
        page_token,
    };
    let r = e.c.list_available_activities(req(kids[0], 0, String::new())).await.unwrap().into_inner();
    let got: Vec<i64> = r.activities.iter().map(|a| a.id).collect();
    assert_eq!((got, r.total_size), (vec![open, open2], 2));
    let p1 = e.c.list_available_activities(req(kids[0], 1, String::new())).await.unwrap().into_inner();
    assert_eq!((p1.activities[0].id, p1.total_size), (open, 2));
    let p2 = e.c.list_available_activities(req(kids[0], 1, p1.next_page_token)).await.unwrap().into_inner();
    assert_eq!((p2.activities[0].id, p2.next_page_token.as_str()), (open2, ""));
    // The other pupil has "Dabei" but not the full one.
    let r = e.c.list_available_activities(req(kids[1], 0, String::new())).await.unwrap().into_inner();
    assert_eq!(r.activities.iter().map(|a| a.id).collect::<Vec<_>>(), [open, joined, open2]);
    assert_code(e.c.list_available_activities(req(999_999, 0, String::new())).await, Code::NotFound);
    assert_invalid(e.c.list_available_activities(req(0, 0, String::new())).await, &["student_id"]);
}
