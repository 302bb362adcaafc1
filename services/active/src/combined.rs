//! Combined groups (`active.combined_groups` + `active.group_mappings`): running sessions
//! supervised together in one room for a while. Service rule: a session is in at most one
//! running combination. Every change takes the session's row lock (the lock scans and
//! supervisor changes take), so two combinations racing for one session serialise and the
//! second sees the first.
//!
//! Who may combine: the EndSession rule ([`SessionControl`]) for every session concerned —
//! a combination lets the supervisors of each of its sessions see the pupils of all, so
//! creating one, adding a session and ending one need a current supervisor of each running
//! session involved (the added session and those already combined), or `sessions:manage`.
//! Removing a session needs a supervisor of that session (withdrawing one's own session
//! shows nobody anything new) or of each running session left in the combination.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, Result};
use phoenix_db::schema::active::{combined_groups, group_mappings};
use phoenix_db::schema::facilities;

use crate::repo;
use crate::scope::SessionControl;
use crate::store;
use crate::validate::{CombinedFilter, NewCombinedGroup};

/// A row of `active.combined_groups`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = combined_groups, check_for_backend(Pg))]
pub struct CombinedRow {
    pub id: i64,
    pub name: String,
    pub room_id: i64,
    pub notes: Option<String>,
    pub created_by: Option<i64>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
}

/// A combined group as callers see it.
#[derive(Debug, Clone)]
pub struct CombinedView {
    pub row: CombinedRow,
    pub room_name: String,
    pub session_ids: Vec<i64>,
}

fn ended(id: i64) -> Error {
    Error::precondition("COMBINATION_ENDED", format!("combined group {id} has ended; create a new one"))
}

async fn views(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<Vec<CombinedView>> {
    let mut rows: Vec<(CombinedRow, String)> = combined_groups::table
        .inner_join(facilities::rooms::table)
        .filter(combined_groups::id.eq_any(ids))
        .select((CombinedRow::as_select(), facilities::rooms::name))
        .load(conn)
        .await?;
    rows.sort_by_key(|(r, _)| ids.iter().position(|i| *i == r.id));
    let mappings: Vec<(i64, i64)> = group_mappings::table
        .filter(group_mappings::combined_group_id.eq_any(ids))
        .order((group_mappings::combined_group_id, group_mappings::active_group_id))
        .select((group_mappings::combined_group_id, group_mappings::active_group_id))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, room_name)| CombinedView {
            session_ids: mappings.iter().filter(|(c, _)| *c == row.id).map(|(_, s)| *s).collect(),
            room_name,
            row,
        })
        .collect())
}

async fn view(conn: &mut AsyncPgConnection, id: i64) -> Result<CombinedView> {
    views(conn, &[id]).await?.into_iter().next().ok_or_else(|| Error::not_found("combined group", id))
}

async fn lock(conn: &mut AsyncPgConnection, id: i64) -> Result<CombinedRow> {
    combined_groups::table
        .find(id)
        .select(CombinedRow::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("combined group", id))
}

async fn lock_running(conn: &mut AsyncPgConnection, id: i64) -> Result<CombinedRow> {
    let row = lock(conn, id).await?;
    if row.end_time.is_some() {
        return Err(ended(id));
    }
    Ok(row)
}

/// The running combination (other than `except`) session `session` is in, if any.
async fn running_combination_of(
    conn: &mut AsyncPgConnection,
    session: i64,
    except: Option<i64>,
) -> QueryResult<Option<i64>> {
    let mut q = group_mappings::table
        .inner_join(combined_groups::table)
        .filter(group_mappings::active_group_id.eq(session))
        .filter(combined_groups::end_time.is_null())
        .select(combined_groups::id)
        .into_boxed();
    if let Some(c) = except {
        q = q.filter(combined_groups::id.ne(c));
    }
    q.first(conn).await.optional()
}

/// Locks a session that may join combination `into` (None while creating it):
/// `field` names it in the request.
async fn lock_joinable_session(
    conn: &mut AsyncPgConnection,
    session: i64,
    field: &str,
    into: Option<i64>,
) -> Result<()> {
    let Some(row) = store::lock_session(conn, session).await? else {
        return Err(Error::invalid(field, format!("session {session} does not exist")));
    };
    if row.end_time.is_some() {
        return Err(store::session_ended(session));
    }
    if let Some(other) = running_combination_of(conn, session, into).await? {
        return Err(Error::precondition(
            "SESSION_COMBINED",
            format!("session {session} is already in running combined group {other}; remove it there first"),
        ));
    }
    Ok(())
}

/// The running sessions of combination `combined`, in id order.
async fn running_sessions(conn: &mut AsyncPgConnection, combined: i64) -> QueryResult<Vec<i64>> {
    group_mappings::table
        .inner_join(phoenix_db::schema::active::groups::table)
        .filter(group_mappings::combined_group_id.eq(combined))
        .filter(phoenix_db::schema::active::groups::end_time.is_null())
        .order(group_mappings::active_group_id)
        .select(group_mappings::active_group_id)
        .load(conn)
        .await
}

/// Whether the caller of `control` currently supervises session `session` directly (not
/// through a combination: that is what is being decided).
async fn supervises(conn: &mut AsyncPgConnection, control: SessionControl, session: i64) -> Result<bool> {
    Ok(match control.staff_id {
        Some(staff) if !control.may_manage => repo::is_current_supervisor(conn, session, staff).await?,
        _ => control.may_manage,
    })
}

/// `PermissionDenied` (naming `sessions:manage` and the first session not supervised)
/// unless the caller of `control` supervises every session of `sessions`.
async fn require_each(
    conn: &mut AsyncPgConnection,
    control: SessionControl,
    sessions: &[i64],
    doing: &str,
) -> Result<()> {
    for &session in sessions {
        let supervises = supervises(conn, control, session).await?;
        control.require(session, supervises, doing)?;
    }
    Ok(())
}

async fn insert_mapping(conn: &mut AsyncPgConnection, combined: i64, session: i64) -> QueryResult<usize> {
    diesel::insert_into(group_mappings::table)
        .values((group_mappings::combined_group_id.eq(combined), group_mappings::active_group_id.eq(session)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

/// `CreateCombinedGroup`, created by the caller of `control` (recorded when staff): they
/// supervise every session combined, or hold `sessions:manage`.
pub async fn create(
    conn: &mut AsyncPgConnection,
    control: SessionControl,
    cmd: NewCombinedGroup,
    now: DateTime<Utc>,
) -> Result<CombinedView> {
    let NewCombinedGroup { name, room_id, notes, mut sessions } = cmd;
    // Lock in id order: two combinations of overlapping sessions cannot deadlock.
    sessions.sort_by_key(|(_, s)| *s);
    conn.transaction::<_, Error, _>(async move |conn| {
        if !repo::room_exists(conn, room_id).await? {
            return Err(Error::invalid("room_id", format!("room {room_id} does not exist")));
        }
        for (i, s) in &sessions {
            lock_joinable_session(conn, *s, &format!("session_ids[{i}]"), None).await?;
        }
        let ids: Vec<i64> = sessions.iter().map(|(_, s)| *s).collect();
        require_each(conn, control, &ids, "combine").await?;
        let created_by = control.staff_id;
        let id: i64 = diesel::insert_into(combined_groups::table)
            .values((
                combined_groups::name.eq(&name),
                combined_groups::room_id.eq(room_id),
                combined_groups::notes.eq(Some(notes.as_str()).filter(|n| !n.is_empty())),
                combined_groups::created_by.eq(created_by),
                combined_groups::start_time.eq(now),
            ))
            .returning(combined_groups::id)
            .get_result(conn)
            .await?;
        for (_, s) in &sessions {
            insert_mapping(conn, id, *s).await?;
        }
        view(conn, id).await
    })
    .await
}

/// `GetCombinedGroup`.
pub async fn get(conn: &mut AsyncPgConnection, id: i64) -> Result<CombinedView> {
    view(conn, id).await
}

fn filtered(f: &CombinedFilter) -> combined_groups::BoxedQuery<'static, Pg> {
    let mut q = combined_groups::table.into_boxed();
    match f.running {
        Some(true) => q = q.filter(combined_groups::end_time.is_null()),
        Some(false) => q = q.filter(combined_groups::end_time.is_not_null()),
        None => {}
    }
    if let Some(r) = f.room_id {
        q = q.filter(combined_groups::room_id.eq(r));
    }
    if let Some(s) = f.session_id {
        q = q.filter(
            combined_groups::id.eq_any(
                group_mappings::table
                    .filter(group_mappings::active_group_id.eq(s))
                    .select(group_mappings::combined_group_id),
            ),
        );
    }
    q
}

/// `ListCombinedGroups`: one page (newest first), its next-page token and the total.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &CombinedFilter,
    page: &PageRequest,
) -> Result<(Vec<CombinedView>, String, i64)> {
    let mut q = filtered(filter);
    if let Some(before) = page.after_id()? {
        q = q.filter(combined_groups::id.lt(before));
    }
    let ids: Vec<i64> =
        q.order(combined_groups::id.desc()).limit(page.fetch_limit()).select(combined_groups::id).load(conn).await?;
    let (ids, token) = page.finish(ids, |id| id.to_string());
    let total: i64 = filtered(filter).count().get_result(conn).await?;
    Ok((views(conn, &ids).await?, token, total))
}

/// `EndCombinedGroup`: by a supervisor of each of its running sessions.
pub async fn end(
    conn: &mut AsyncPgConnection,
    id: i64,
    control: SessionControl,
    now: DateTime<Utc>,
) -> Result<CombinedView> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let row = lock_running(conn, id).await?;
        let sessions = running_sessions(conn, id).await?;
        require_each(conn, control, &sessions, "end a combination of").await?;
        diesel::update(combined_groups::table.find(id))
            .set(combined_groups::end_time.eq(Some(now.max(row.start_time))))
            .execute(conn)
            .await?;
        view(conn, id).await
    })
    .await
}

/// `AddSessionToCombinedGroup`: by a supervisor of the session added and of each running
/// session already combined.
pub async fn add_session(
    conn: &mut AsyncPgConnection,
    combined: i64,
    session: i64,
    control: SessionControl,
) -> Result<CombinedView> {
    conn.transaction::<_, Error, _>(async move |conn| {
        lock_running(conn, combined).await?;
        lock_joinable_session(conn, session, "session_id", Some(combined)).await?;
        let mut sessions = running_sessions(conn, combined).await?;
        sessions.retain(|s| *s != session);
        sessions.insert(0, session);
        require_each(conn, control, &sessions, "combine").await?;
        if insert_mapping(conn, combined, session).await? == 0 {
            return Err(Error::AlreadyExists(format!("session {session} is already in combined group {combined}")));
        }
        view(conn, combined).await
    })
    .await
}

/// `RemoveSessionFromCombinedGroup`: by a supervisor of the session removed, or of each
/// running session left.
pub async fn remove_session(
    conn: &mut AsyncPgConnection,
    combined: i64,
    session: i64,
    control: SessionControl,
) -> Result<CombinedView> {
    conn.transaction::<_, Error, _>(async move |conn| {
        lock_running(conn, combined).await?;
        if !supervises(conn, control, session).await? {
            let mut rest = running_sessions(conn, combined).await?;
            rest.retain(|s| *s != session);
            if rest.is_empty() {
                control.require(session, false, "remove")?;
            }
            require_each(conn, control, &rest, "take sessions out of a combination of").await?;
        }
        let removed = diesel::delete(
            group_mappings::table
                .filter(group_mappings::combined_group_id.eq(combined))
                .filter(group_mappings::active_group_id.eq(session)),
        )
        .execute(conn)
        .await?;
        if removed == 0 {
            return Err(Error::precondition(
                "NOT_IN_COMBINATION",
                format!("session {session} is not in combined group {combined}"),
            ));
        }
        view(conn, combined).await
    })
    .await
}
