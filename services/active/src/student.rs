//! `GetStudentPresence`: where a pupil is now and today's visits (behaviour.md "Per pupil").
//! Full access (admin, or the pupil's group is one of the caller's) sees the room, session,
//! time and history; other staff see the state only, with sickness (health data, hidden by
//! the users service too) shown as absent.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::AsyncPgConnection;
use phoenix_common::access::Caller;
use phoenix_common::time::to_timestamp_opt;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;

use crate::attendance::{self, Status};
use crate::scope::Scope;
use crate::{calendar, convert, store, visits};

/// Where `student_id` is now, as `caller` may see it.
pub async fn presence(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<pb::StudentPresence> {
    let today = phoenix_common::time::business_date_in(now, tz);
    let scope = Scope::of(conn, caller, today, "see a pupil's presence").await?;
    let student = store::student(conn, student_id).await?;
    let day = attendance::day_of(conn, student_id, today, true).await?;
    let status = Status::parse(&day.status)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown attendance status {:?}", day.status)))?;
    if !scope.full_access(student.group_id) {
        let shown = if status == Status::Sick { Status::Absent } else { status };
        return Ok(pb::StudentPresence {
            student_id,
            status: shown.to_pb() as i32,
            full_access: false,
            ..Default::default()
        });
    }
    let (from, to) = calendar::days(today, today, tz);
    let history = visits::of_student_between(conn, student_id, from, to).await?;
    let open = history.iter().find(|v| v.exit_time.is_none());
    let since = match status {
        Status::InRoom => open.map(|o| o.entry_time),
        Status::InTransit => day.check_in_time,
        Status::GoneHome => day.check_out_time,
        Status::Sick => student.sick_since,
        Status::Absent | Status::Present => None,
    };
    Ok(pb::StudentPresence {
        student_id,
        status: status.to_pb() as i32,
        full_access: true,
        since: to_timestamp_opt(since),
        room_id: open.map(|o| o.room_id),
        room_name: open.map(|o| o.room_name.clone()).unwrap_or_default(),
        session_id: open.map(|o| o.session_id),
        today_visits: history.into_iter().map(convert::visit).collect(),
    })
}
