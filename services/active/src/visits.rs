//! Visits by hand and as a list: get, list, staff check-in (with transfer), check-out, end by
//! id. A manual change takes the locks `ProcessScan` takes, in the same order (the pupil,
//! then the session; see [`crate::store`]), so it queues behind a reader scan of the same
//! pupil and the pupil never has two open visits. Each change writes its presence event in
//! its transaction.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::dsl::{InnerJoin, IntoBoxed};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, Result};
use phoenix_db::schema::active::{attendance, groups, visits};
use phoenix_db::schema::{facilities, users};

use crate::calendar;
use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo;
use crate::scope::{self, Scope};
use crate::store::{self, StudentRow};
use crate::validate::{CheckIn, VisitFilter};

/// A visit with its room, and the pupil's group (for the access rules; not shown).
#[derive(Debug, Clone, Queryable)]
pub struct VisitView {
    pub id: i64,
    pub student_id: i64,
    pub session_id: i64,
    pub room_id: i64,
    pub room_name: String,
    pub entry_time: DateTime<Utc>,
    pub exit_time: Option<DateTime<Utc>>,
    pub student_group_id: Option<i64>,
}

type Source =
    InnerJoin<InnerJoin<visits::table, InnerJoin<groups::table, facilities::rooms::table>>, users::students::table>;

fn source() -> IntoBoxed<'static, Source, Pg> {
    visits::table
        .inner_join(groups::table.inner_join(facilities::rooms::table))
        .inner_join(users::students::table)
        .into_boxed()
}

type ViewColumns = (
    visits::id,
    visits::student_id,
    visits::active_group_id,
    groups::room_id,
    facilities::rooms::name,
    visits::entry_time,
    visits::exit_time,
    users::students::group_id,
);

const VIEW: ViewColumns = (
    visits::id,
    visits::student_id,
    visits::active_group_id,
    groups::room_id,
    facilities::rooms::name,
    visits::entry_time,
    visits::exit_time,
    users::students::group_id,
);

/// A visit by id.
pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> Result<VisitView> {
    source()
        .filter(visits::id.eq(id))
        .select(VIEW)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("visit", id))
}

/// The visits of `student` that began in `[from, to)` or are open, oldest first.
pub async fn of_student_between(
    conn: &mut AsyncPgConnection,
    student: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<VisitView>> {
    Ok(source()
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null().or(visits::entry_time.ge(from).and(visits::entry_time.lt(to))))
        .order((visits::entry_time, visits::id))
        .select(VIEW)
        .load(conn)
        .await?)
}

fn denied_visit(student: i64) -> Error {
    Error::PermissionDenied(format!(
        "the visits of student {student} are for admins, staff whose groups include the pupil, \
         and the supervisors of the visit's session"
    ))
}

/// `GetVisit`.
pub async fn get(conn: &mut AsyncPgConnection, caller: &Caller, id: i64, today: NaiveDate) -> Result<VisitView> {
    let scope = Scope::of(conn, caller, today, "see visits").await?;
    let visit = find(conn, id).await?;
    if !scope.sees_visit(visit.student_group_id, visit.session_id) {
        return Err(denied_visit(visit.student_id));
    }
    Ok(visit)
}

fn filtered(f: &VisitFilter, tz: Tz, scope: &Scope) -> IntoBoxed<'static, Source, Pg> {
    let mut q = source();
    if let Some(s) = f.student_id {
        q = q.filter(visits::student_id.eq(s));
    }
    if let Some(s) = f.session_id {
        q = q.filter(visits::active_group_id.eq(s));
    }
    if let Some(r) = f.room_id {
        q = q.filter(groups::room_id.eq(r));
    }
    if f.open_only {
        q = q.filter(visits::exit_time.is_null());
    }
    if let Some(d) = f.date {
        let (from, to) = calendar::days(d, d, tz);
        q = q.filter(visits::entry_time.ge(from)).filter(visits::entry_time.lt(to));
    }
    if let Scope::Staff { groups: mine, sessions } = scope {
        q = q.filter(
            users::students::group_id
                .assume_not_null()
                .eq_any(mine.clone())
                .or(visits::active_group_id.eq_any(sessions.clone())),
        );
    }
    q
}

/// `ListVisits`: one page of the visits the caller may see, newest first, with the total.
pub async fn list(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    filter: &VisitFilter,
    page: &PageRequest,
    tz: Tz,
    today: NaiveDate,
) -> Result<(Vec<VisitView>, String, i64)> {
    let scope = Scope::of(conn, caller, today, "see visits").await?;
    let mut q = filtered(filter, tz, &scope);
    if let Some(before) = page.after_id()? {
        q = q.filter(visits::id.lt(before));
    }
    let rows: Vec<VisitView> = q.order(visits::id.desc()).limit(page.fetch_limit()).select(VIEW).load(conn).await?;
    let (rows, token) = page.finish(rows, |r| r.id.to_string());
    let total: i64 = filtered(filter, tz, &scope).count().get_result(conn).await?;
    Ok((rows, token, total))
}

/// What a manual check-in did.
#[derive(Debug, Clone)]
pub struct CheckedIn {
    pub visit: VisitView,
    pub closed_visit_id: Option<i64>,
    pub arrived: bool,
}

/// `CheckInStudent`.
pub async fn check_in(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: CheckIn,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<CheckedIn> {
    let CheckIn { student_id, session_id, transfer } = cmd;
    scope::require_staff(caller, "check pupils in by hand")?;
    let today = phoenix_common::time::business_date_in(now, tz);
    conn.transaction::<_, Error, _>(async move |conn| {
        let student = store::lock_student(conn, student_id).await?;
        let scope = Scope::of(conn, caller, today, "check pupils in by hand").await?;
        if !scope.full_access(student.group_id) {
            return Err(Error::PermissionDenied(format!(
                "student {student_id} is not in one of your groups: only admins and the pupil's group \
                 leaders or substitutes check a pupil in by hand"
            )));
        }
        let Some(session) = store::lock_session(conn, session_id).await? else {
            return Err(Error::invalid("session_id", format!("session {session_id} does not exist")));
        };
        if session.end_time.is_some() {
            return Err(store::session_ended(session_id));
        }
        let day = repo::attendance_of(conn, student_id, today).await?;
        if day.as_ref().is_some_and(|d| d.check_out_time.is_some()) {
            return Err(Error::precondition(
                "GONE_HOME",
                format!(
                    "student {student_id} was checked out for the day; a reader at the entrance checks them in again"
                ),
            ));
        }
        let open = repo::open_visit(conn, student_id).await?;
        if let Some(o) = &open
            && (!transfer || o.session_id == session_id)
        {
            return Err(Error::precondition(
                "STUDENT_CHECKED_IN",
                format!(
                    "student {student_id} is already checked in (session {}){}",
                    o.session_id,
                    if o.session_id == session_id { "" } else { "; check them out first or set transfer" }
                ),
            ));
        }
        let (room_name, capacity) =
            repo::room(conn, session.room_id).await?.ok_or_else(|| Error::not_found("room", session.room_id))?;
        let inside = repo::count_open_visits(conn, session_id).await?;
        if let Some(c) = capacity
            && inside >= i64::from(c)
        {
            return Err(Error::precondition(
                "ROOM_FULL",
                format!("room {} ({room_name}) is full: capacity {c}", session.room_id),
            ));
        }
        if let Some(activity) = session.activity_id
            && let Some(max) = repo::max_participants(conn, activity).await?
            && inside >= i64::from(max)
        {
            return Err(Error::precondition(
                "ROOM_FULL",
                format!("activity {activity} of session {session_id} is full: at most {max} pupils"),
            ));
        }
        if let Some(o) = &open {
            repo::close_visit(conn, o.id, now).await?;
        }
        let id =
            repo::insert_visit(conn, student_id, session_id, now.max(session.start_time)).await.map_err(
                |e| match e {
                    DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                        Error::Aborted("the pupil was checked in concurrently; retry".into())
                    }
                    other => other.into(),
                },
            )?;
        let arrived = day.is_none();
        if arrived {
            diesel::insert_into(attendance::table)
                .values((
                    attendance::student_id.eq(student_id),
                    attendance::date.eq(today),
                    attendance::check_in_time.eq(now),
                    attendance::checked_in_by.eq(caller.staff_id),
                ))
                .on_conflict((attendance::student_id, attendance::date))
                .do_nothing()
                .execute(conn)
                .await?;
        }
        repo::touch_session(conn, session_id, now).await?;
        let change = match &open {
            Some(o) => PresenceChange::student(ChangeKind::Transferred, student_id)
                .at(session_id, session.room_id)
                .from_room(Some(o.room_id)),
            None => PresenceChange::student(ChangeKind::CheckedIn, student_id).at(session_id, session.room_id),
        };
        events::record(conn, change).await?;
        Ok(CheckedIn { visit: find(conn, id).await?, closed_visit_id: open.map(|o| o.id), arrived })
    })
    .await
}

fn not_checked_in(student: i64) -> Error {
    Error::precondition("NOT_CHECKED_IN", format!("student {student} is not currently checked in"))
}

/// Closes open visit `visit` of the locked `student` now, after the access rule; writes
/// the `checked_out` event.
async fn close(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    student: &StudentRow,
    visit: VisitView,
    now: DateTime<Utc>,
) -> Result<VisitView> {
    if !scope.sees_visit(student.group_id, visit.session_id) {
        return Err(Error::PermissionDenied(format!(
            "student {} is neither in one of your groups nor in a session you supervise",
            student.id
        )));
    }
    store::lock_session(conn, visit.session_id).await?;
    repo::close_visit(conn, visit.id, now).await?;
    repo::touch_session(conn, visit.session_id, now).await?;
    events::record(
        conn,
        PresenceChange::student(ChangeKind::CheckedOut, student.id).at(visit.session_id, visit.room_id),
    )
    .await?;
    find(conn, visit.id).await
}

/// The pupil's open visit as a view.
async fn open_view(conn: &mut AsyncPgConnection, student: i64) -> Result<Option<VisitView>> {
    Ok(source()
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null())
        .select(VIEW)
        .first(conn)
        .await
        .optional()?)
}

/// `CheckOutStudent`: ends the pupil's open visit (the pupil is in transit).
pub async fn check_out(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<VisitView> {
    scope::require_staff(caller, "check pupils out")?;
    conn.transaction::<_, Error, _>(async move |conn| {
        let student = store::lock_student(conn, student_id).await?;
        let scope = Scope::of(conn, caller, today, "check pupils out").await?;
        let Some(open) = open_view(conn, student_id).await? else {
            // Only someone with access to the pupil learns that they are not in a room.
            if !scope.full_access(student.group_id) {
                return Err(Error::PermissionDenied(format!(
                    "student {student_id} is neither in one of your groups nor in a session you supervise"
                )));
            }
            return Err(not_checked_in(student_id));
        };
        close(conn, &scope, &student, open, now).await
    })
    .await
}

/// `EndVisit`: ends an open visit by id, with the rules of `CheckOutStudent`.
pub async fn end(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    id: i64,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<VisitView> {
    scope::require_staff(caller, "end visits")?;
    conn.transaction::<_, Error, _>(async move |conn| {
        let student_id = find(conn, id).await?.student_id;
        let student = store::lock_student(conn, student_id).await?;
        // Read again under the pupil's lock: a scan may have closed it meanwhile.
        let visit = find(conn, id).await?;
        let scope = Scope::of(conn, caller, today, "end visits").await?;
        if visit.exit_time.is_some() {
            if !scope.sees_visit(student.group_id, visit.session_id) {
                return Err(denied_visit(student_id));
            }
            return Err(Error::precondition("VISIT_ENDED", format!("visit {id} has already ended")));
        }
        close(conn, &scope, &student, visit, now).await
    })
    .await
}
