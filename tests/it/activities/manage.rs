//! `phoenix.activities.v1` beyond enrollment, with real staff tokens: update (masks,
//! replaced supervisors and schedules), delete (sub-rows only, refused while a session runs)
//! and the ownership rule on every write.

use diesel::sql_query;
use diesel_async::RunQueryDsl;
use phoenix_proto::activities::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use tonic::Code;

use super::helpers::*;

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
