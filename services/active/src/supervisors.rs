//! Session supervisors (behaviour.md "Room sessions"): join, leave, claim, replace. Each is
//! one transaction on the session's row lock and writes a `supervisors_changed` presence
//! event with the change. A session without a current supervisor or assistant is
//! "unclaimed" (`ListSessions` `unclaimed`).

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_db::schema::active::group_supervisors;

use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo::{self, SessionRow};
use crate::sessions::{self, SessionView};
use crate::store;
use crate::validate::{JoinSession, ReplaceSupervisors};

async fn changed(conn: &mut AsyncPgConnection, session: &SessionRow) -> Result<SessionView> {
    events::record(conn, PresenceChange::session(ChangeKind::SupervisorsChanged, session.id, session.room_id)).await?;
    sessions::get(conn, session.id).await
}

async fn insert(conn: &mut AsyncPgConnection, session: i64, staff: i64, role: &str, today: NaiveDate) -> Result<()> {
    diesel::insert_into(group_supervisors::table)
        .values((
            group_supervisors::active_group_id.eq(session),
            group_supervisors::staff_id.eq(staff),
            group_supervisors::role.eq(role),
            group_supervisors::start_date.eq(today),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends supervision rows `ids` today (never before their start date).
async fn end_rows(conn: &mut AsyncPgConnection, ids: &[i64], today: NaiveDate) -> Result<usize> {
    let rows: Vec<(i64, NaiveDate)> = group_supervisors::table
        .filter(group_supervisors::id.eq_any(ids))
        .select((group_supervisors::id, group_supervisors::start_date))
        .load(conn)
        .await?;
    for (id, start) in &rows {
        diesel::update(group_supervisors::table.find(id))
            .set(group_supervisors::end_date.eq(Some(today.max(*start))))
            .execute(conn)
            .await?;
    }
    Ok(rows.len())
}

/// `JoinSession`: staff member `staff` (the caller) joins a running session.
pub async fn join(conn: &mut AsyncPgConnection, staff: i64, cmd: JoinSession, today: NaiveDate) -> Result<SessionView> {
    let JoinSession { session_id, role } = cmd;
    conn.transaction::<_, Error, _>(async move |conn| {
        let session = store::lock_running_session(conn, session_id).await?;
        let current = store::current_supervisors(conn, session_id).await?;
        if let Some((_, _, held)) = current.iter().find(|(_, s, _)| *s == staff) {
            return Err(Error::precondition(
                "ALREADY_SUPERVISING",
                format!(
                    "staff {staff} already supervises session {session_id} as {held}; leave first to change the role"
                ),
            ));
        }
        insert(conn, session_id, staff, role, today).await?;
        changed(conn, &session).await
    })
    .await
}

/// `LeaveSession`: ends `target`'s current supervision (every role). Whether the caller may
/// end someone else's (`groups:assign`) is decided by the caller of this function.
pub async fn leave(
    conn: &mut AsyncPgConnection,
    session_id: i64,
    target: i64,
    today: NaiveDate,
) -> Result<SessionView> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let session = store::lock_running_session(conn, session_id).await?;
        let rows: Vec<i64> = store::current_supervisors(conn, session_id)
            .await?
            .into_iter()
            .filter(|(_, s, _)| *s == target)
            .map(|(id, _, _)| id)
            .collect();
        if rows.is_empty() {
            return Err(Error::precondition(
                "NOT_SUPERVISING",
                format!("staff {target} does not currently supervise session {session_id}"),
            ));
        }
        end_rows(conn, &rows, today).await?;
        changed(conn, &session).await
    })
    .await
}

/// `ClaimSession`: staff member `staff` (the caller) supervises a running session nobody
/// supervises.
pub async fn claim(conn: &mut AsyncPgConnection, staff: i64, session_id: i64, today: NaiveDate) -> Result<SessionView> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let session = store::lock_running_session(conn, session_id).await?;
        let current = store::current_supervisors(conn, session_id).await?;
        if !current.is_empty() {
            let ids: Vec<String> = current.iter().map(|(_, s, _)| s.to_string()).collect();
            return Err(Error::precondition(
                "SESSION_CLAIMED",
                format!("session {session_id} is supervised by staff {}; join it instead", ids.join(", ")),
            ));
        }
        insert(conn, session_id, staff, "supervisor", today).await?;
        changed(conn, &session).await
    })
    .await
}

/// `UpdateSessionSupervisors`: the whole new set; unchanged `(staff, role)` pairs keep
/// their rows and start dates.
pub async fn replace(conn: &mut AsyncPgConnection, cmd: ReplaceSupervisors, today: NaiveDate) -> Result<SessionView> {
    let ReplaceSupervisors { session_id, wanted } = cmd;
    conn.transaction::<_, Error, _>(async move |conn| {
        let ids: Vec<i64> = wanted.iter().map(|(s, _)| *s).collect();
        let known = repo::existing_staff(conn, &ids).await?;
        let mut v = FieldViolations::default();
        for (i, (s, _)) in wanted.iter().enumerate() {
            if !known.contains(s) {
                v.add(format!("supervisors[{i}].staff_id"), format!("staff {s} does not exist"));
            }
        }
        v.into_result()?;
        let session = store::lock_running_session(conn, session_id).await?;
        let current = store::current_supervisors(conn, session_id).await?;
        let leaving: Vec<i64> = current
            .iter()
            .filter(|(_, s, r)| !wanted.iter().any(|(ws, wr)| ws == s && wr == r))
            .map(|(id, _, _)| *id)
            .collect();
        let joining: Vec<(i64, &str)> =
            wanted.iter().filter(|(ws, wr)| !current.iter().any(|(_, s, r)| s == ws && r == wr)).copied().collect();
        if leaving.is_empty() && joining.is_empty() {
            return sessions::get(conn, session_id).await;
        }
        end_rows(conn, &leaving, today).await?;
        for (staff, role) in joining {
            insert(conn, session_id, staff, role, today).await?;
        }
        changed(conn, &session).await
    })
    .await
}
