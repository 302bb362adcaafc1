//! An activity's plan: its weekly schedules and planned supervisors, changed one at a time
//! (the whole sets are replaced by `UpdateActivity`). Each function runs inside the caller's
//! transaction, after `access::lock_for_change` has locked the activity.

use diesel_async::AsyncPgConnection;
use phoenix_common::{Error, Result};

use crate::repo::{self, ScheduleRow};
use crate::service::reason;
use crate::validate::{NewSchedule, ScheduleUpdate, SupervisorUpdate};

/// A planned supervisor: (staff id, primary).
pub type Supervisor = (i64, bool);

/// The schedule `schedule_id` of the activity, or `NotFound`.
pub async fn schedule_of(conn: &mut AsyncPgConnection, activity_id: i64, schedule_id: i64) -> Result<ScheduleRow> {
    repo::find_schedule(conn, activity_id, schedule_id)
        .await?
        .ok_or_else(|| Error::not_found("schedule of this activity", schedule_id))
}

/// The schedule just written, read back with its timeframe's instants.
async fn written(conn: &mut AsyncPgConnection, activity_id: i64, schedule_id: i64) -> Result<ScheduleRow> {
    repo::find_schedule(conn, activity_id, schedule_id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("schedule {schedule_id} vanished")))
}

fn slot_taken(activity_id: i64, weekday: i16, timeframe: i64) -> Error {
    Error::AlreadyExists(format!(
        "activity {activity_id} already has a schedule on weekday {weekday} in timeframe {timeframe}"
    ))
}

/// Adds a weekly schedule; `AlreadyExists` when the activity has that weekday and timeframe.
pub async fn add_schedule(conn: &mut AsyncPgConnection, new: &NewSchedule) -> Result<ScheduleRow> {
    let (weekday, timeframe) = new.slot;
    repo::check_refs(conn, &new.refs).await?;
    let id = repo::insert_schedule(conn, new.activity_id, weekday, timeframe)
        .await?
        .ok_or_else(|| slot_taken(new.activity_id, weekday, timeframe.unwrap_or(0)))?;
    written(conn, new.activity_id, id).await
}

/// Moves a weekly schedule to another weekday and/or timeframe.
pub async fn change_schedule(conn: &mut AsyncPgConnection, change: &ScheduleUpdate) -> Result<ScheduleRow> {
    let (activity_id, schedule_id) = (change.activity_id, change.schedule_id);
    let old = schedule_of(conn, activity_id, schedule_id).await?;
    repo::check_refs(conn, &change.refs).await?;
    let weekday = change.weekday.unwrap_or(old.weekday);
    let timeframe = change.timeframe.unwrap_or(old.timeframe_id);
    if let Some(t) = timeframe
        && repo::schedule_taken(conn, activity_id, weekday, t, schedule_id).await?
    {
        return Err(slot_taken(activity_id, weekday, t));
    }
    repo::update_schedule(conn, schedule_id, weekday, timeframe).await?;
    written(conn, activity_id, schedule_id).await
}

/// Deletes a weekly schedule, or `NotFound`.
pub async fn delete_schedule(conn: &mut AsyncPgConnection, activity_id: i64, schedule_id: i64) -> Result<()> {
    if !repo::delete_schedule(conn, activity_id, schedule_id).await? {
        return Err(Error::not_found("schedule of this activity", schedule_id));
    }
    Ok(())
}

/// Whether `staff_id` is the primary among `current`; `NotFound` when not planned at all.
fn planned(current: &[Supervisor], staff_id: i64) -> Result<bool> {
    current
        .iter()
        .find(|(id, _)| *id == staff_id)
        .map(|&(_, is_primary)| is_primary)
        .ok_or_else(|| Error::not_found("planned supervisor (staff id) of this activity", staff_id))
}

fn primary_refused(activity_id: i64, staff_id: i64, what: &str) -> Error {
    Error::precondition(
        reason::PRIMARY_SUPERVISOR,
        format!(
            "staff {staff_id} is the primary supervisor of activity {activity_id} and cannot be {what}; make another \
             supervisor primary first (or replace the whole set with UpdateActivity)"
        ),
    )
}

/// Adds a planned supervisor (the first one is primary whatever `is_primary` says); the
/// supervisors after the change.
pub async fn add_supervisor(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    staff_id: i64,
    is_primary: bool,
) -> Result<Vec<Supervisor>> {
    let refs = crate::validate::References { staff: vec![("staff_id".into(), staff_id)], ..Default::default() };
    repo::check_refs(conn, &refs).await?;
    let current = repo::supervisors_of(conn, activity_id).await?;
    if current.iter().any(|(s, _)| *s == staff_id) {
        return Err(Error::AlreadyExists(format!(
            "staff {staff_id} is already a planned supervisor of activity {activity_id}"
        )));
    }
    repo::add_supervisor(conn, activity_id, staff_id, is_primary || current.is_empty()).await?;
    repo::supervisors_of(conn, activity_id).await
}

/// Makes a planned supervisor primary (the primary cannot be un-marked: another one is
/// made primary instead); the supervisors after the change.
pub async fn change_supervisor(conn: &mut AsyncPgConnection, change: &SupervisorUpdate) -> Result<Vec<Supervisor>> {
    let (activity_id, staff_id) = (change.activity_id, change.staff_id);
    let is_primary = planned(&repo::supervisors_of(conn, activity_id).await?, staff_id)?;
    match (is_primary, change.is_primary) {
        (false, Some(true)) => repo::make_primary(conn, activity_id, staff_id).await?,
        (true, Some(false)) => return Err(primary_refused(activity_id, staff_id, "un-marked")),
        _ => {}
    }
    repo::supervisors_of(conn, activity_id).await
}

/// Removes a planned supervisor other than the primary; the supervisors after the change.
pub async fn remove_supervisor(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    staff_id: i64,
) -> Result<Vec<Supervisor>> {
    if planned(&repo::supervisors_of(conn, activity_id).await?, staff_id)? {
        return Err(primary_refused(activity_id, staff_id, "removed"));
    }
    repo::remove_supervisor(conn, activity_id, staff_id).await?;
    repo::supervisors_of(conn, activity_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_supervisors_are_found_or_not_found() {
        let current = [(3, true), (5, false)];
        assert!(planned(&current, 3).expect("planned"));
        assert!(!planned(&current, 5).expect("planned"));
        assert!(matches!(planned(&current, 9), Err(Error::NotFound { .. })));
    }
}
