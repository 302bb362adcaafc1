//! Daily attendance (`active.attendance`, one row per pupil and business date) and a pupil's
//! state (behaviour.md "States of a pupil on a school day"): get, list (every pupil, with
//! the absent ones), and the staff check-out for the day ("gone home").

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Date, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, Result};
use phoenix_db::schema::active::attendance;
use phoenix_proto::active::v1 as pb;

use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo;
use crate::scope::{self, Scope};
use crate::store::{self, StudentRow};
use crate::validate::{AttendanceFilter, CheckOutForDay};

/// A pupil's state on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Absent,
    InRoom,
    InTransit,
    GoneHome,
    Sick,
    /// Another day than today, arrived and never checked out.
    Present,
}

impl Status {
    /// The stored/SQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Absent => "absent",
            Status::InRoom => "in_room",
            Status::InTransit => "in_transit",
            Status::GoneHome => "gone_home",
            Status::Sick => "sick",
            Status::Present => "present",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Status::Absent, Status::InRoom, Status::InTransit, Status::GoneHome, Status::Sick, Status::Present]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// The proto enum.
    pub fn to_pb(self) -> pb::AttendanceStatus {
        match self {
            Status::Absent => pb::AttendanceStatus::Absent,
            Status::InRoom => pb::AttendanceStatus::InRoom,
            Status::InTransit => pb::AttendanceStatus::InTransit,
            Status::GoneHome => pb::AttendanceStatus::GoneHome,
            Status::Sick => pb::AttendanceStatus::Sick,
            Status::Present => pb::AttendanceStatus::Present,
        }
    }

    /// The requested status filter: `Some(None)` for any, `None` for an unknown value.
    pub fn from_pb(value: i32) -> Option<Option<Self>> {
        Some(match pb::AttendanceStatus::try_from(value).ok()? {
            pb::AttendanceStatus::Unspecified => None,
            pb::AttendanceStatus::Absent => Some(Status::Absent),
            pb::AttendanceStatus::InRoom => Some(Status::InRoom),
            pb::AttendanceStatus::InTransit => Some(Status::InTransit),
            pb::AttendanceStatus::GoneHome => Some(Status::GoneHome),
            pb::AttendanceStatus::Sick => Some(Status::Sick),
            pb::AttendanceStatus::Present => Some(Status::Present),
        })
    }
}

/// A pupil's day as the API shows it.
#[derive(Debug, Clone, QueryableByName)]
pub struct DayRow {
    #[diesel(sql_type = BigInt)]
    pub student_id: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub check_in_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub check_out_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub check_out_destination: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checked_in_by: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checked_out_by: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub session_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub room_id: Option<i64>,
    /// Checked out by the end-of-day close because nobody checked the pupil out
    /// ([`crate::jobs::close_attendance`]).
    #[diesel(sql_type = Bool)]
    pub closed_by_system: bool,
}

/// The state rule (one place): an open visit wins (today only); then the day's attendance
/// (open: in transit today, present another day; closed: gone home); without attendance a
/// pupil marked sick is sick (today only), else absent.
///
/// Every pupil's day: `$1` date, `$2` is today, `$3` one education group or NULL, `$4` the
/// groups a non-admin may see or NULL, `$5` one pupil or NULL. Deactivated pupils are listed
/// only for the days they came.
const DAY_CTE: &str = "WITH day AS ( \
     SELECT st.id AS student_id, a.check_in_time, a.check_out_time, a.check_out_destination, \
            a.checked_in_by, a.checked_out_by, v.active_group_id AS session_id, g.room_id, \
            COALESCE(a.closed_by_system, false) AS closed_by_system, \
            CASE \
              WHEN v.id IS NOT NULL THEN 'in_room' \
              WHEN a.id IS NOT NULL AND a.check_out_time IS NULL THEN \
                CASE WHEN $2 THEN 'in_transit' ELSE 'present' END \
              WHEN a.id IS NOT NULL THEN 'gone_home' \
              WHEN $2 AND st.sick THEN 'sick' \
              ELSE 'absent' \
            END AS status \
     FROM users.students st \
     LEFT JOIN active.attendance a ON a.student_id = st.id AND a.date = $1 \
     LEFT JOIN active.visits v ON $2 AND v.student_id = st.id AND v.exit_time IS NULL \
     LEFT JOIN active.groups g ON g.id = v.active_group_id \
     WHERE (st.deactivated_at IS NULL OR a.id IS NOT NULL OR $5::bigint IS NOT NULL) \
       AND ($3::bigint IS NULL OR st.group_id = $3) \
       AND ($4::bigint[] IS NULL OR st.group_id = ANY($4)) \
       AND ($5::bigint IS NULL OR st.id = $5)) ";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Which pupils a day query covers.
#[derive(Debug, Clone)]
struct DayQuery {
    date: NaiveDate,
    today: bool,
    group: Option<i64>,
    visible_groups: Option<Vec<i64>>,
    student: Option<i64>,
    status: Option<Status>,
}

async fn day_rows(conn: &mut AsyncPgConnection, q: &DayQuery, after: Option<i64>, limit: i64) -> Result<Vec<DayRow>> {
    let sql = format!(
        "{DAY_CTE} SELECT * FROM day WHERE ($6::text IS NULL OR status = $6) \
         AND ($7::bigint IS NULL OR student_id > $7) ORDER BY student_id LIMIT $8"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Date, _>(q.date)
        .bind::<Bool, _>(q.today)
        .bind::<Nullable<BigInt>, _>(q.group)
        .bind::<Nullable<Array<BigInt>>, _>(q.visible_groups.clone())
        .bind::<Nullable<BigInt>, _>(q.student)
        .bind::<Nullable<Text>, _>(q.status.map(Status::as_str))
        .bind::<Nullable<BigInt>, _>(after)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?)
}

async fn count_days(conn: &mut AsyncPgConnection, q: &DayQuery) -> Result<i64> {
    let sql = format!("{DAY_CTE} SELECT count(*) AS n FROM day WHERE ($6::text IS NULL OR status = $6)");
    Ok(diesel::sql_query(sql)
        .bind::<Date, _>(q.date)
        .bind::<Bool, _>(q.today)
        .bind::<Nullable<BigInt>, _>(q.group)
        .bind::<Nullable<Array<BigInt>>, _>(q.visible_groups.clone())
        .bind::<Nullable<BigInt>, _>(q.student)
        .bind::<Nullable<Text>, _>(q.status.map(Status::as_str))
        .get_result::<Count>(conn)
        .await?
        .n)
}

/// One pupil's day (the pupil must exist).
pub async fn day_of(conn: &mut AsyncPgConnection, student: i64, date: NaiveDate, today: bool) -> Result<DayRow> {
    let q = DayQuery { date, today, group: None, visible_groups: None, student: Some(student), status: None };
    day_rows(conn, &q, None, 1).await?.into_iter().next().ok_or_else(|| Error::not_found("student", student))
}

fn needs_full_access(student: i64) -> Error {
    Error::PermissionDenied(format!(
        "the attendance of student {student} is for admins and staff whose groups include the pupil"
    ))
}

/// `GetAttendance` of `student_id` on `date`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    date: NaiveDate,
    today: NaiveDate,
) -> Result<DayRow> {
    let scope = Scope::of(conn, caller, today, "see attendance").await?;
    let student = store::student(conn, student_id).await?;
    if !scope.full_access(student.group_id) {
        return Err(needs_full_access(student_id));
    }
    day_of(conn, student_id, date, date == today).await
}

/// `ListAttendance`: every pupil the caller may see, by id, with the total.
pub async fn list(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    filter: &AttendanceFilter,
    page: &PageRequest,
    today: NaiveDate,
) -> Result<(Vec<DayRow>, String, i64)> {
    let (date, group) = (filter.date, filter.education_group_id);
    let mut q =
        DayQuery { date, today: date == today, group, visible_groups: None, student: None, status: filter.status };
    match Scope::of(conn, caller, today, "see attendance").await? {
        Scope::All => {}
        Scope::Staff { groups, .. } => {
            if let Some(g) = group
                && !groups.contains(&g)
            {
                return Err(Error::PermissionDenied(format!(
                    "education group {g} is not one of your groups: its attendance is for admins and its \
                     leaders or substitutes"
                )));
            }
            q.visible_groups = Some(groups);
        }
    }
    let rows = day_rows(conn, &q, page.after_id()?, page.fetch_limit()).await?;
    let (rows, token) = page.finish(rows, |r| r.student_id.to_string());
    let total = count_days(conn, &q).await?;
    Ok((rows, token, total))
}

/// What `CheckOutForDay` did.
#[derive(Debug, Clone)]
pub struct CheckedOutForDay {
    /// The pupil's day `date` (today) after the check-out.
    pub day: DayRow,
    pub date: NaiveDate,
    pub closed_visit_id: Option<i64>,
}

/// `CheckOutForDay`: closes the open visit and today's attendance with a destination.
pub async fn check_out_for_day(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: CheckOutForDay,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<CheckedOutForDay> {
    let CheckOutForDay { student_id, destination } = cmd;
    scope::require_staff(caller, "check pupils out for the day")?;
    let today = phoenix_common::time::business_date_in(now, tz);
    conn.transaction::<_, Error, _>(async move |conn| {
        let student: StudentRow = store::lock_student(conn, student_id).await?;
        let scope = Scope::of(conn, caller, today, "check pupils out for the day").await?;
        let open = repo::open_visit(conn, student_id).await?;
        let allowed =
            scope.full_access(student.group_id) || open.as_ref().is_some_and(|o| scope.supervises(o.session_id));
        if !allowed {
            return Err(Error::PermissionDenied(format!(
                "student {student_id} is neither in one of your groups nor in a session you supervise"
            )));
        }
        let Some(day) = repo::attendance_of(conn, student_id, today).await? else {
            return Err(Error::precondition(
                "NOT_ARRIVED",
                format!("student {student_id} has not arrived today; there is nothing to check out"),
            ));
        };
        if day.check_out_time.is_some() {
            return Err(Error::precondition(
                "GONE_HOME",
                format!("student {student_id} is already checked out for the day"),
            ));
        }
        if let Some(o) = &open {
            store::lock_session(conn, o.session_id).await?;
            repo::close_visit(conn, o.id, now).await?;
            repo::touch_session(conn, o.session_id, now).await?;
        }
        diesel::update(attendance::table.find(day.id))
            .set((
                attendance::check_out_time.eq(Some(now)),
                attendance::checked_out_by.eq(caller.staff_id),
                attendance::check_out_device_id.eq(None::<i64>),
                attendance::check_out_destination.eq(Some(destination)),
                attendance::closed_by_system.eq(false),
            ))
            .execute(conn)
            .await?;
        events::record(
            conn,
            PresenceChange::student(ChangeKind::GoneHome, student_id).from_room(open.as_ref().map(|o| o.room_id)),
        )
        .await?;
        Ok(CheckedOutForDay {
            day: day_of(conn, student_id, today, true).await?,
            date: today,
            closed_visit_id: open.map(|o| o.id),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [Status::Absent, Status::InRoom, Status::InTransit, Status::GoneHome, Status::Sick, Status::Present] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(Status::from_pb(s.to_pb() as i32), Some(Some(s)));
        }
        assert_eq!(Status::from_pb(0), Some(None), "unspecified: any");
        assert_eq!(Status::from_pb(99), None);
    }
}
