//! A child's day as their guardian sees it (`FamilyService.GetChildPresence`): the state,
//! since when, the room, and today's visits, read from the `active` schema in one snapshot.
//!
//! The state follows the rule of `active.v1 GetStudentPresence` (`services/active/src/attendance.rs`): an open visit wins (in the
//! room); then today's attendance (open: in transit, closed: gone home); without attendance a
//! child marked sick is sick; else not arrived. A guardian's scope is their own child, so they
//! see what full access sees (sickness included), minus the staff-side ids.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use diesel_async::AsyncPgConnection;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use crate::convert;
use crate::repo::family::{self as rows, VisitRow};

/// Where a child is, as [`state`] decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildDay {
    /// The state.
    pub state: pb::ChildPresenceState,
    /// Since when (see the proto).
    pub since: Option<DateTime<Utc>>,
    /// The room while in one.
    pub room_name: Option<String>,
    /// Today's visits, oldest first.
    pub visits: Vec<VisitRow>,
}

/// The state rule, pure: `visits` are today's (an open one wins), `attendance` today's
/// (check-in, check-out), `sick` the student's flag with its time.
pub fn state(
    visits: Vec<VisitRow>,
    attendance: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    sick: (bool, Option<DateTime<Utc>>),
) -> ChildDay {
    use pb::ChildPresenceState as S;
    let open = visits.iter().find(|v| v.exit_time.is_none()).map(|v| (v.room_name.clone(), v.entry_time));
    let (state, since, room_name) = match (open, attendance, sick) {
        (Some((room, entry)), _, _) => (S::InRoom, Some(entry), Some(room)),
        (None, Some((arrived, None)), _) => (S::InTransit, Some(arrived), None),
        (None, Some((_, Some(out))), _) => (S::GoneHome, Some(out), None),
        (None, None, (true, since)) => (S::Sick, since, None),
        (None, None, (false, _)) => (S::NotArrived, None, None),
    };
    ChildDay { state, since, room_name, visits }
}

/// The day of child `student_id` at `now` on the school's calendar (`tz`). The caller has
/// checked that the student is one of the guardian's children.
pub async fn presence(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<pb::ChildPresence> {
    let today = business_date_in(now, tz);
    let day = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |c| {
            // A school day is at most 25 hours long: anything older began on an earlier day.
            let visits = rows::visits_since(c, student_id, now - Duration::hours(26))
                .await?
                .into_iter()
                .filter(|v| v.exit_time.is_none() || business_date_in(v.entry_time, tz) == today)
                .collect();
            let attendance = rows::attendance_on(c, student_id, today).await?;
            let sick = rows::sickness(c, student_id).await?;
            Ok(state(visits, attendance, sick))
        })
        .await?;
    Ok(convert::child_presence(student_id, day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::ChildPresenceState as S;

    fn visit(room: &str, open: bool, t: DateTime<Utc>) -> VisitRow {
        VisitRow { room_name: room.into(), activity_name: None, entry_time: t, exit_time: (!open).then_some(t) }
    }

    #[test]
    fn an_open_visit_wins_then_attendance_then_sickness() {
        let t = Utc::now();
        let s = |v, a, sick| {
            let d = state(v, a, sick);
            (d.state, d.since, d.room_name)
        };
        let in_room = s(vec![visit("Aula", false, t), visit("Mensa", true, t)], Some((t, None)), (true, Some(t)));
        assert_eq!(in_room, (S::InRoom, Some(t), Some("Mensa".into())));
        assert_eq!(s(vec![visit("Aula", false, t)], Some((t, None)), (false, None)), (S::InTransit, Some(t), None));
        assert_eq!(s(vec![], Some((t, Some(t))), (true, Some(t))), (S::GoneHome, Some(t), None));
        assert_eq!(s(vec![], None, (true, Some(t))), (S::Sick, Some(t), None));
        assert_eq!(s(vec![], None, (false, None)), (S::NotArrived, None, None));
    }
}
