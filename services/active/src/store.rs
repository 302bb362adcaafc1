//! Queries shared by the supervisor, combined-group, visit and attendance modules: the
//! row locks that serialise them with `ProcessScan`, and small look-ups. Lock order, as in
//! `scan.rs`: the pupil (`users.students`, `FOR NO KEY UPDATE`) before the session
//! (`active.groups`, `FOR NO KEY UPDATE`), so a manual change and a reader scan of one pupil
//! queue behind each other and never deadlock.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::{Error, Result};
use phoenix_db::schema::active::{group_supervisors, groups};
use phoenix_db::schema::users;

use crate::repo::SessionRow;

/// The pupil as the presence rules need it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users::students, check_for_backend(Pg))]
pub struct StudentRow {
    pub id: i64,
    pub group_id: Option<i64>,
    pub sick: bool,
    pub sick_since: Option<DateTime<Utc>>,
}

/// The pupil, row-locked like a scan locks it: every presence change of one pupil
/// serialises on this lock.
pub async fn lock_student(conn: &mut AsyncPgConnection, id: i64) -> Result<StudentRow> {
    users::students::table
        .find(id)
        .select(StudentRow::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("student", id))
}

/// The pupil, unlocked (reads).
pub async fn student(conn: &mut AsyncPgConnection, id: i64) -> Result<StudentRow> {
    users::students::table
        .find(id)
        .select(StudentRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("student", id))
}

/// A session locked `FOR NO KEY UPDATE` (the scan's lock: check-ins and supervisor changes
/// of one session queue; `EndSession` cannot end it meanwhile).
pub async fn lock_session(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<SessionRow>> {
    groups::table.find(id).select(SessionRow::as_select()).for_no_key_update().first(conn).await.optional()
}

/// `FailedPrecondition SESSION_ENDED`.
pub fn session_ended(id: i64) -> Error {
    Error::precondition("SESSION_ENDED", format!("session {id} has ended; start a new session"))
}

/// The running session `id`, locked; `NotFound` or `SESSION_ENDED` otherwise.
pub async fn lock_running_session(conn: &mut AsyncPgConnection, id: i64) -> Result<SessionRow> {
    let row = lock_session(conn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
    if row.end_time.is_some() {
        return Err(session_ended(id));
    }
    Ok(row)
}

/// A current supervision: `(row id, staff id, role)`.
pub type CurrentSupervisor = (i64, i64, String);

/// The session's current supervisors and assistants, by row id.
pub async fn current_supervisors(conn: &mut AsyncPgConnection, session: i64) -> QueryResult<Vec<CurrentSupervisor>> {
    group_supervisors::table
        .filter(group_supervisors::active_group_id.eq(session))
        .filter(group_supervisors::end_date.is_null())
        .order(group_supervisors::id)
        .select((group_supervisors::id, group_supervisors::staff_id, group_supervisors::role))
        .load(conn)
        .await
}
