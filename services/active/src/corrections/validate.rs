//! `CorrectionService` requests → typed commands, every bad field at once, no I/O (the
//! crate's `validate.rs`, for this service's two RPCs).

use chrono::{DateTime, Duration, SubsecRound, Utc};
use phoenix_common::time::from_timestamp;
use phoenix_common::validate::{finish, optional_id, required_id, required_text};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::active::v1 as pb;

/// How far back `CheckInAt` reaches.
pub const MAX_CHECK_IN_AGE_DAYS: i64 = 7;

/// The longest reason kept in the audit trail.
pub const MAX_REASON_CHARS: usize = 500;

/// `CorrectVisit`: what to change (at least one of the three) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitCorrection {
    pub visit_id: i64,
    pub entry_time: Option<DateTime<Utc>>,
    pub exit_time: Option<DateTime<Utc>>,
    pub room_id: Option<i64>,
    pub reason: String,
}

/// `CheckInAt`: who, where, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInAt {
    pub student_id: i64,
    pub room_id: i64,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A past instant (not after `now`), to the microsecond the database keeps.
fn past_time(
    v: &mut FieldViolations,
    field: &str,
    ts: &prost_types::Timestamp,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Some(t) = from_timestamp(ts) else {
        v.add(field, "is not a valid timestamp");
        return None;
    };
    if t > now {
        v.add(field, format!("must not be in the future (got {}, now {})", t.to_rfc3339(), now.to_rfc3339()));
        return None;
    }
    Some(t.trunc_subsecs(6))
}

fn reason(v: &mut FieldViolations, value: &str) -> String {
    let r = required_text("reason", value, v);
    if r.chars().count() > MAX_REASON_CHARS {
        v.add("reason", format!("must be at most {MAX_REASON_CHARS} characters"));
    }
    r
}

/// `CorrectVisit` at `now`.
pub fn correct_visit(req: pb::CorrectVisitRequest, now: DateTime<Utc>) -> Result<VisitCorrection> {
    let mut v = FieldViolations::default();
    let visit_id = required_id("visit_id", req.visit_id, &mut v);
    let entry_time = req.entry_time.as_ref().and_then(|t| past_time(&mut v, "entry_time", t, now));
    let exit_time = req.exit_time.as_ref().and_then(|t| past_time(&mut v, "exit_time", t, now));
    if let (Some(entry), Some(exit)) = (entry_time, exit_time)
        && exit <= entry
    {
        v.add("exit_time", "must be after entry_time");
    }
    let room_id = optional_id("room_id", req.room_id, &mut v);
    if req.entry_time.is_none() && req.exit_time.is_none() && req.room_id.is_none() {
        for field in ["entry_time", "exit_time", "room_id"] {
            v.add(field, "set at least one of entry_time, exit_time and room_id");
        }
    }
    let reason = reason(&mut v, &req.reason);
    finish(v, Some(VisitCorrection { visit_id, entry_time, exit_time, room_id, reason }))
}

/// `CheckInAt` at `now`: `at` in the past, at most [`MAX_CHECK_IN_AGE_DAYS`] ago.
pub fn check_in_at(req: pb::CheckInAtRequest, now: DateTime<Utc>) -> Result<CheckInAt> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    let room_id = required_id("room_id", req.room_id, &mut v);
    let at = match &req.at {
        None => {
            v.add("at", "is required: when the pupil entered the room");
            None
        }
        Some(t) => past_time(&mut v, "at", t, now),
    };
    if let Some(t) = at
        && t < now - Duration::days(MAX_CHECK_IN_AGE_DAYS)
    {
        v.add("at", format!("must be within the last {MAX_CHECK_IN_AGE_DAYS} days"));
    }
    let reason = reason(&mut v, &req.reason);
    finish(v, at.map(|at| CheckInAt { student_id, room_id, at, reason }))
}

#[cfg(test)]
mod tests {
    use phoenix_common::time::to_timestamp;
    use phoenix_common::validate::fields_of;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 123_456_789).expect("instant")
    }

    #[test]
    fn a_correction_names_every_bad_field() {
        let ts = |d: i64| Some(to_timestamp(now() + Duration::minutes(d)));
        let req = pb::CorrectVisitRequest {
            visit_id: 0,
            entry_time: ts(5),
            exit_time: ts(10),
            room_id: Some(-1),
            reason: " ".into(),
        };
        assert_eq!(fields_of(correct_visit(req, now())), ["visit_id", "entry_time", "exit_time", "room_id", "reason"]);
        let backwards = pb::CorrectVisitRequest {
            visit_id: 1,
            entry_time: ts(-10),
            exit_time: ts(-20),
            reason: "typo".into(),
            ..Default::default()
        };
        assert_eq!(fields_of(correct_visit(backwards, now())), ["exit_time"]);
        let nothing = pb::CorrectVisitRequest { visit_id: 1, reason: "x".into(), ..Default::default() };
        assert_eq!(fields_of(correct_visit(nothing, now())), ["entry_time", "exit_time", "room_id"]);
        let long =
            pb::CorrectVisitRequest { visit_id: 1, room_id: Some(2), reason: "x".repeat(501), ..Default::default() };
        assert_eq!(fields_of(correct_visit(long, now())), ["reason"]);
    }

    #[test]
    fn times_are_kept_to_the_microsecond() {
        let req = pb::CorrectVisitRequest {
            visit_id: 1,
            entry_time: Some(to_timestamp(now() - Duration::hours(1))),
            reason: " reader broken ".into(),
            ..Default::default()
        };
        let cmd = correct_visit(req, now()).expect("valid");
        assert_eq!(cmd.entry_time.map(|t| t.timestamp_subsec_nanos()), Some(123_456_000));
        assert_eq!(cmd.reason, "reader broken");
    }

    #[test]
    fn check_in_at_is_in_the_last_week_only() {
        let at = |d: Duration| pb::CheckInAtRequest {
            student_id: 1,
            room_id: 2,
            at: Some(to_timestamp(now() + d)),
            reason: "reader broken".into(),
        };
        assert!(check_in_at(at(Duration::hours(-2)), now()).is_ok());
        assert!(check_in_at(at(Duration::days(-7) + Duration::minutes(1)), now()).is_ok());
        assert_eq!(fields_of(check_in_at(at(Duration::days(-8)), now())), ["at"]);
        assert_eq!(fields_of(check_in_at(at(Duration::seconds(1)), now())), ["at"]);
        let empty = pb::CheckInAtRequest::default();
        assert_eq!(fields_of(check_in_at(empty, now())), ["student_id", "room_id", "at", "reason"]);
    }
}
