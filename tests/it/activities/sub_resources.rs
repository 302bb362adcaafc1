//! `phoenix.activities.v1` beyond enrollment, with real staff tokens: weekly schedules
//! and planned supervisors as sub-resources of their activity.

use phoenix_proto::activities::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason};
use tonic::Code;

use super::helpers::*;

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
