//! Corrections by the office (`CorrectionService`): a visit's times or room corrected, and a
//! pupil checked in with an explicit past time. Each runs in one transaction that takes the
//! locks of `ProcessScan` and the manual check-in (the pupil, then sessions; see
//! [`crate::store`]), keeps a pupil's visits free of overlaps (so at most one is open), moves
//! the day's arrival earlier when a visit now begins before it, writes an `audit.data_changes`
//! row (the values before and after, who, why) and, when the pupil's current whereabouts
//! change, a presence event.
//!
//! Who may correct (on top of `visits:manage`): a check-in needs full access to the pupil
//! (admin or the pupil's group, as `CheckInStudent`); a visit correction also allows the
//! supervisors of the visit's session, and of the session it moves to.

pub mod validate;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_db::schema::active::{attendance, groups, visits};
use phoenix_db::schema::audit::data_changes;
use serde_json::{Value, json};

use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo::{self, SessionRow};
use crate::scope::{self, Scope};
use crate::store;
use crate::visits::{self as visit_views, VisitView};

use self::validate::{CheckInAt, VisitCorrection};

/// `FailedPrecondition` reason: no session of the room covers the visit's times.
pub const OUTSIDE_SESSION: &str = "OUTSIDE_SESSION";
/// `FailedPrecondition` reason: the visit would overlap another visit of the pupil.
pub const VISIT_OVERLAP: &str = "VISIT_OVERLAP";

/// A corrected or new visit and its audit record.
#[derive(Debug, Clone)]
pub struct Corrected {
    pub visit: VisitView,
    pub audit_id: i64,
    /// `CheckInAt`: the open visit closed at `at`.
    pub closed_visit_id: Option<i64>,
    /// `CheckInAt`: the day's attendance was created.
    pub arrived: bool,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// A visit's correctable values as they are kept in the audit trail.
fn visit_values(session_id: i64, room_id: i64, entry: DateTime<Utc>, exit: Option<DateTime<Utc>>) -> Value {
    json!({ "session_id": session_id, "room_id": room_id, "entry_time": time(entry), "exit_time": time_opt(exit) })
}

/// `audit.data_changes.changed_by`.
fn actor(caller: &Caller) -> String {
    caller.account_id.map_or_else(|| "system".to_owned(), |id| format!("account:{id}"))
}

/// One audit row about a visit of `student`; its id.
struct Change<'a> {
    visit_id: i64,
    student_id: i64,
    action: &'static str,
    old: Value,
    new: Value,
    reason: &'a str,
    by: String,
}

async fn audit(conn: &mut AsyncPgConnection, c: Change<'_>) -> Result<i64> {
    Ok(diesel::insert_into(data_changes::table)
        .values((
            data_changes::entity_type.eq("visit"),
            data_changes::entity_id.eq(c.visit_id),
            data_changes::student_id.eq(c.student_id),
            data_changes::action.eq(c.action),
            data_changes::old_values.eq(c.old),
            data_changes::new_values.eq(c.new),
            data_changes::reason.eq(c.reason),
            data_changes::changed_by.eq(c.by),
        ))
        .returning(data_changes::id)
        .get_result(conn)
        .await?)
}

/// Whether `session` covers a visit from `entry` to `exit` (open: the session runs).
fn covers(session: &SessionRow, entry: DateTime<Utc>, exit: Option<DateTime<Utc>>) -> bool {
    session.start_time <= entry
        && match (session.end_time, exit) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(end), Some(x)) => end >= x,
        }
}

/// The id of the latest-starting session of `room` that covers `entry`..`exit`.
async fn covering_session(
    conn: &mut AsyncPgConnection,
    room: i64,
    entry: DateTime<Utc>,
    exit: Option<DateTime<Utc>>,
) -> Result<Option<i64>> {
    let mut q = groups::table
        .filter(groups::room_id.eq(room))
        .filter(groups::start_time.le(entry))
        .select(groups::id)
        .order((groups::start_time.desc(), groups::id.desc()))
        .into_boxed();
    q = match exit {
        None => q.filter(groups::end_time.is_null()),
        Some(x) => q.filter(groups::end_time.is_null().or(groups::end_time.ge(x))),
    };
    Ok(q.first(conn).await.optional()?)
}

fn outside_session(room: i64, entry: DateTime<Utc>, exit: Option<DateTime<Utc>>) -> Error {
    let until = exit.map_or_else(|| "now (open)".to_owned(), time);
    Error::precondition(
        OUTSIDE_SESSION,
        format!(
            "no room session of room {room} covers {} to {until}; a visit lies inside a session of its room",
            time(entry)
        ),
    )
}

/// A visit of the pupil (other than `except`) that overlaps `entry`..`exit` (open: to the
/// end of time). Touching is no overlap: one visit may end when the next begins.
async fn overlapping(
    conn: &mut AsyncPgConnection,
    student: i64,
    except: Option<i64>,
    entry: DateTime<Utc>,
    exit: Option<DateTime<Utc>>,
) -> Result<Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)>> {
    let mut q = visits::table
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null().or(visits::exit_time.gt(entry)))
        .select((visits::id, visits::entry_time, visits::exit_time))
        .order((visits::entry_time, visits::id))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(visits::id.ne(id));
    }
    if let Some(x) = exit {
        q = q.filter(visits::entry_time.lt(x));
    }
    Ok(q.load(conn).await?)
}

fn overlap(student: i64, other: (i64, DateTime<Utc>, Option<DateTime<Utc>>)) -> Error {
    let (id, entry, exit) = other;
    let until = exit.map_or_else(|| "now (open)".to_owned(), time);
    Error::precondition(
        VISIT_OVERLAP,
        format!(
            "student {student} has visit {id} from {} to {until} in that time; correct that visit first",
            time(entry)
        ),
    )
}

/// The day's arrival before and after: created at `at`, or moved earlier to `at`; `None`
/// when the recorded arrival is already at or before `at`.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    created: bool,
    old: Option<DateTime<Utc>>,
}

async fn arrive_by(
    conn: &mut AsyncPgConnection,
    student: i64,
    at: DateTime<Utc>,
    tz: Tz,
    staff: Option<i64>,
) -> Result<Option<Arrival>> {
    let day = business_date_in(at, tz);
    let row: Option<(i64, DateTime<Utc>)> = attendance::table
        .filter(attendance::student_id.eq(student))
        .filter(attendance::date.eq(day))
        .select((attendance::id, attendance::check_in_time))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match row {
        None => {
            diesel::insert_into(attendance::table)
                .values((
                    attendance::student_id.eq(student),
                    attendance::date.eq(day),
                    attendance::check_in_time.eq(at),
                    attendance::checked_in_by.eq(staff),
                ))
                .execute(conn)
                .await?;
            Ok(Some(Arrival { created: true, old: None }))
        }
        Some((id, old)) if old > at => {
            diesel::update(attendance::table.find(id)).set(attendance::check_in_time.eq(at)).execute(conn).await?;
            Ok(Some(Arrival { created: false, old: Some(old) }))
        }
        Some(_) => Ok(None),
    }
}

/// The arrival change as audit values (before, after), under the key `attendance`.
fn arrival_values(arrival: Option<Arrival>, at: DateTime<Utc>, tz: Tz) -> (Value, Value) {
    let date = business_date_in(at, tz).to_string();
    match arrival {
        None => (Value::Null, Value::Null),
        Some(a) => (
            a.old.map_or(Value::Null, |old| json!({ "date": date, "check_in_time": time(old) })),
            json!({ "date": date, "check_in_time": time(at) }),
        ),
    }
}

fn denied_correction(student: i64) -> Error {
    Error::PermissionDenied(format!(
        "the visits of student {student} are corrected by admins, staff whose groups include the pupil, \
         and the supervisors of the visit's session (and of the session it moves to)"
    ))
}

/// `CorrectVisit`.
pub async fn correct_visit(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: VisitCorrection,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Corrected> {
    scope::require_staff(caller, "correct visits")?;
    let today = business_date_in(now, tz);
    conn.transaction::<_, Error, _>(async move |conn| {
        let student_id = visit_views::find(conn, cmd.visit_id).await?.student_id;
        let student = store::lock_student(conn, student_id).await?;
        // Read again under the pupil's lock: a scan may have closed or moved it meanwhile.
        let old = visit_views::find(conn, cmd.visit_id).await?;
        let scope = Scope::of(conn, caller, today, "correct visits").await?;
        if !scope.sees_visit(student.group_id, old.session_id) {
            return Err(denied_correction(student_id));
        }
        let entry = cmd.entry_time.unwrap_or(old.entry_time);
        let exit = cmd.exit_time.or(old.exit_time);
        if let Some(x) = exit
            && x <= entry
        {
            let field = if cmd.exit_time.is_some() { "exit_time" } else { "entry_time" };
            return Err(Error::invalid(
                field,
                format!("the visit would end at {} but begin at {}: exit must be after entry", time(x), time(entry)),
            ));
        }
        let room = cmd.room_id.unwrap_or(old.room_id);
        if room != old.room_id && repo::room(conn, room).await?.is_none() {
            return Err(Error::invalid("room_id", format!("room {room} does not exist")));
        }
        // The visit's own session when it still covers the new times, else the latest one of
        // the room that does.
        let own: Option<SessionRow> =
            groups::table.find(old.session_id).select(SessionRow::as_select()).first(conn).await.optional()?;
        let target = match own {
            Some(s) if room == old.room_id && covers(&s, entry, exit) => s.id,
            _ => covering_session(conn, room, entry, exit).await?.ok_or_else(|| outside_session(room, entry, exit))?,
        };
        if target != old.session_id && !scope.full_access(student.group_id) && !scope.supervises(target) {
            return Err(denied_correction(student_id));
        }
        // Lock the sessions concerned in id order (two corrections never wait on each other
        // crosswise), then check the target still covers the visit.
        let mut session = None;
        for id in [old.session_id.min(target), old.session_id.max(target)] {
            if let Some(s) = store::lock_session(conn, id).await?
                && s.id == target
            {
                session = Some(s);
            }
        }
        let session = session.ok_or_else(|| outside_session(room, entry, exit))?;
        if !covers(&session, entry, exit) {
            return Err(outside_session(room, entry, exit));
        }
        if let Some(other) = overlapping(conn, student_id, Some(old.id), entry, exit).await?.into_iter().next() {
            return Err(overlap(student_id, other));
        }
        diesel::update(visits::table.find(old.id))
            .set((visits::entry_time.eq(entry), visits::exit_time.eq(exit), visits::active_group_id.eq(session.id)))
            .execute(conn)
            .await?;
        let arrival = arrive_by(conn, student_id, entry, tz, caller.staff_id).await?;
        let was_open = old.exit_time.is_none();
        if was_open && exit.is_some() {
            let change = PresenceChange::student(ChangeKind::CheckedOut, student_id).at(old.session_id, old.room_id);
            events::record(conn, change).await?;
        } else if was_open && session.id != old.session_id {
            let change = PresenceChange::student(ChangeKind::Transferred, student_id)
                .at(session.id, session.room_id)
                .from_room(Some(old.room_id));
            events::record(conn, change).await?;
        }
        let (old_day, new_day) = arrival_values(arrival, entry, tz);
        let mut old_values = visit_values(old.session_id, old.room_id, old.entry_time, old.exit_time);
        let mut new_values = visit_values(session.id, session.room_id, entry, exit);
        old_values["attendance"] = old_day;
        new_values["attendance"] = new_day;
        let audit_id = audit(
            conn,
            Change {
                visit_id: old.id,
                student_id,
                action: "visit_corrected",
                old: old_values,
                new: new_values,
                reason: &cmd.reason,
                by: actor(caller),
            },
        )
        .await?;
        let visit = visit_views::find(conn, old.id).await?;
        Ok(Corrected { visit, audit_id, closed_visit_id: None, arrived: arrival.is_some_and(|a| a.created) })
    })
    .await
}

/// `CheckInAt`.
pub async fn check_in_at(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: CheckInAt,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Corrected> {
    let CheckInAt { student_id, room_id, at, reason } = cmd;
    scope::require_staff(caller, "check pupils in by hand")?;
    let today = business_date_in(now, tz);
    conn.transaction::<_, Error, _>(async move |conn| {
        let student = store::lock_student(conn, student_id).await?;
        let scope = Scope::of(conn, caller, today, "check pupils in by hand").await?;
        if !scope.full_access(student.group_id) {
            return Err(Error::PermissionDenied(format!(
                "student {student_id} is not in one of your groups: only admins and the pupil's group \
                 leaders or substitutes check a pupil in by hand"
            )));
        }
        if repo::room(conn, room_id).await?.is_none() {
            return Err(Error::invalid("room_id", format!("room {room_id} does not exist")));
        }
        let session = repo::lock_running_session_for_scan(conn, room_id).await?.ok_or_else(|| {
            Error::precondition(OUTSIDE_SESSION, format!("no room session is running in room {room_id}"))
        })?;
        if session.start_time > at {
            return Err(Error::precondition(
                OUTSIDE_SESSION,
                format!(
                    "the session of room {room_id} began at {}, after {}; a visit lies inside a session of its room",
                    time(session.start_time),
                    time(at)
                ),
            ));
        }
        let day = repo::attendance_of(conn, student_id, business_date_in(at, tz)).await?;
        if day.as_ref().is_some_and(|d| d.check_out_time.is_some()) {
            return Err(Error::precondition(
                "GONE_HOME",
                format!("student {student_id} was checked out for that day; correct the visits instead"),
            ));
        }
        let open = repo::open_visit(conn, student_id).await?;
        if let Some(o) = &open
            && o.session_id == session.id
        {
            return Err(Error::precondition(
                "STUDENT_CHECKED_IN",
                format!(
                    "student {student_id} is already checked in to session {} (since {}); correct that visit instead",
                    o.session_id,
                    time(o.entry_time)
                ),
            ));
        }
        // Only the open visit that began before `at` may overlap: it is closed at `at`.
        let conflict = overlapping(conn, student_id, None, at, None)
            .await?
            .into_iter()
            .find(|(id, entry, _)| !(open.as_ref().is_some_and(|o| o.id == *id) && *entry < at));
        if let Some(other) = conflict {
            return Err(overlap(student_id, other));
        }
        if let Some(o) = &open {
            repo::close_visit(conn, o.id, at).await?;
        }
        let id = repo::insert_visit(conn, student_id, session.id, at).await.map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::Aborted("the pupil was checked in concurrently; retry".into())
            }
            other => other.into(),
        })?;
        let arrival = arrive_by(conn, student_id, at, tz, caller.staff_id).await?;
        repo::touch_session(conn, session.id, now).await?;
        let change = match &open {
            Some(o) => PresenceChange::student(ChangeKind::Transferred, student_id)
                .at(session.id, room_id)
                .from_room(Some(o.room_id)),
            None => PresenceChange::student(ChangeKind::CheckedIn, student_id).at(session.id, room_id),
        };
        events::record(conn, change).await?;
        let (old_day, new_day) = arrival_values(arrival, at, tz);
        let old_open = open.as_ref().map_or(Value::Null, |o| {
            let mut v = visit_values(o.session_id, o.room_id, o.entry_time, None);
            v["id"] = json!(o.id);
            v
        });
        let closed = open.as_ref().map_or(Value::Null, |o| {
            let mut v = visit_values(o.session_id, o.room_id, o.entry_time, Some(at));
            v["id"] = json!(o.id);
            v
        });
        let audit_id = audit(
            conn,
            Change {
                visit_id: id,
                student_id,
                action: "checked_in_at",
                old: json!({ "open_visit": old_open, "attendance": old_day }),
                new: json!({
                    "visit": visit_values(session.id, room_id, at, None),
                    "closed_visit": closed,
                    "attendance": new_day,
                }),
                reason: &reason,
                by: actor(caller),
            },
        )
        .await?;
        let visit = visit_views::find(conn, id).await?;
        Ok(Corrected {
            visit,
            audit_id,
            closed_visit_id: open.map(|o| o.id),
            arrived: arrival.is_some_and(|a| a.created),
        })
    })
    .await
}
