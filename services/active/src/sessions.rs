//! Room sessions: start (with `force`), end, get, list (behaviour.md "Room sessions").

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};

use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo::{self, NewSession, SessionRow, SupervisorRow};
use crate::scope::SessionControl;
use crate::validate::{ListSessions, StartSession};

/// A session with what callers see with it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub row: SessionRow,
    pub room_name: String,
    pub supervisors: Vec<SupervisorRow>,
    pub open_visits: i64,
}

async fn views(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<Vec<SessionView>> {
    let rows = repo::sessions_by_ids(conn, ids).await?;
    let supervisors = repo::supervisors_of(conn, ids).await?;
    let counts = repo::open_visit_counts(conn, ids).await?;
    Ok(rows
        .into_iter()
        .map(|(row, room_name)| SessionView {
            supervisors: supervisors.iter().filter(|s| s.active_group_id == row.id).cloned().collect(),
            open_visits: counts.iter().find(|(id, _)| *id == row.id).map(|(_, n)| *n).unwrap_or(0),
            room_name,
            row,
        })
        .collect())
}

async fn view(conn: &mut AsyncPgConnection, id: i64) -> Result<SessionView> {
    views(conn, &[id]).await?.into_iter().next().ok_or_else(|| Error::not_found("session", id))
}

fn session_running(room: i64, session: i64) -> Error {
    Error::precondition(
        "SESSION_RUNNING",
        format!("room {room} already has running session {session}; end it first or start with force"),
    )
}

/// Whether the caller of `control` may end running session `session` (checked under the
/// session's row lock).
async fn require_control(
    conn: &mut AsyncPgConnection,
    control: SessionControl,
    session: i64,
    doing: &str,
) -> Result<()> {
    let supervises = match (control.may_manage, control.staff_id) {
        (false, Some(staff)) => repo::is_current_supervisor(conn, session, staff).await?,
        _ => false,
    };
    control.require(session, supervises, doing)
}

async fn end_in_tx(
    conn: &mut AsyncPgConnection,
    session: i64,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<(SessionRow, usize)> {
    end_locked(conn, session, now, business_date_in(now, tz)).await
}

/// Ends session `session` at `at` inside the caller's transaction, which holds the session's
/// row lock: end time, its open visits closed (the pupils are in transit), its supervisors'
/// terms ended on `date`, and the `session_ended` presence event the boards follow. The one
/// way a session ends: `EndSession`, a forced start and the scheduled jobs
/// ([`crate::jobs`]). Returns the ended row and how many visits were closed.
pub async fn end_locked(
    conn: &mut AsyncPgConnection,
    session: i64,
    at: DateTime<Utc>,
    date: chrono::NaiveDate,
) -> Result<(SessionRow, usize)> {
    let (row, closed) = repo::end_session(conn, session, at, date).await?;
    events::record(conn, PresenceChange::session(ChangeKind::SessionEnded, row.id, row.room_id)).await?;
    Ok((row, closed))
}

/// `StartSession`: one transaction; a running session in the room is a precondition failure
/// unless `force`, which ends it (closing its visits) first — as `EndSession` would, so only
/// its supervisors or callers with `sessions:manage` may force.
pub async fn start(
    conn: &mut AsyncPgConnection,
    cmd: StartSession,
    control: SessionControl,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<(SessionView, Option<i64>)> {
    conn.transaction::<_, Error, _>(async move |conn| {
        if !repo::room_exists(conn, cmd.room_id).await? {
            return Err(Error::invalid("room_id", format!("room {} does not exist", cmd.room_id)));
        }
        if let Some(a) = cmd.activity_id
            && !repo::activity_exists(conn, a).await?
        {
            return Err(Error::invalid("activity_id", format!("activity {a} does not exist")));
        }
        if let Some(g) = cmd.education_group_id
            && !repo::education_group_exists(conn, g).await?
        {
            return Err(Error::invalid("education_group_id", format!("education group {g} does not exist")));
        }
        let known = repo::existing_staff(conn, &cmd.supervisors).await?;
        if let Some(missing) = cmd.supervisors.iter().find(|s| !known.contains(s)) {
            return Err(Error::invalid("supervisor_staff_ids", format!("staff {missing} does not exist")));
        }

        let mut ended = None;
        if let Some(running) = repo::lock_running_session(conn, cmd.room_id).await? {
            if !cmd.force {
                return Err(session_running(cmd.room_id, running.id));
            }
            require_control(conn, control, running.id, "force-end").await?;
            end_in_tx(conn, running.id, now, tz).await?;
            ended = Some(running.id);
        }
        let row = repo::insert_session(
            conn,
            NewSession {
                room_id: cmd.room_id,
                activity_id: cmd.activity_id,
                education_group_id: cmd.education_group_id,
                start_time: now,
                last_activity: now,
                timeout_minutes: cmd.timeout_minutes,
            },
        )
        .await
        .map_err(|e| match e {
            // Another start won the race for this room (partial unique index).
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Error::precondition(
                "SESSION_RUNNING",
                format!("room {} already has a running session; end it first or start with force", cmd.room_id),
            ),
            other => other.into(),
        })?;
        repo::insert_supervisors(conn, row.id, &cmd.supervisors, business_date_in(now, tz)).await?;
        events::record(conn, PresenceChange::session(ChangeKind::SessionStarted, row.id, row.room_id)).await?;
        Ok((view(conn, row.id).await?, ended))
    })
    .await
}

/// `EndSession`: ends a running session and closes its open visits, in one transaction.
/// Only its current supervisors or callers with `sessions:manage` may.
pub async fn end(
    conn: &mut AsyncPgConnection,
    id: i64,
    control: SessionControl,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<(SessionView, usize)> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let session = repo::lock_session(conn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
        require_control(conn, control, id, "end").await?;
        if session.end_time.is_some() {
            return Err(Error::precondition("SESSION_ENDED", format!("session {id} has already ended")));
        }
        let (_, closed) = end_in_tx(conn, id, now, tz).await?;
        Ok((view(conn, id).await?, closed))
    })
    .await
}

/// `GetSession`.
pub async fn get(conn: &mut AsyncPgConnection, id: i64) -> Result<SessionView> {
    view(conn, id).await
}

/// `ListSessions`: one page, its next-page token and the total.
pub async fn list(conn: &mut AsyncPgConnection, cmd: ListSessions) -> Result<(Vec<SessionView>, String, i64)> {
    let ids = repo::list_session_ids(conn, &cmd.filter, cmd.page.after_id()?, cmd.page.fetch_limit()).await?;
    let (ids, token) = cmd.page.finish(ids, |id| id.to_string());
    let total = repo::count_sessions(conn, &cmd.filter).await?;
    Ok((views(conn, &ids).await?, token, total))
}
