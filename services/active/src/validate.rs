//! Requests → typed commands, pure and without I/O, collecting every field violation before
//! any I/O (house style). One function per RPC that takes more than one field; single ids
//! use `phoenix_common::validate::id` in the handler.

use chrono::{DateTime, NaiveDate, Utc};
use phoenix_common::convert::format_date;
use phoenix_common::page::PageRequest;
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::from_timestamp;
use phoenix_common::validate::{finish, optional_id, page, parse_date, required_id};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{MAX_RAW_TAG_CHARS, MAX_SCAN_ID_CHARS, is_valid_device_id};

use crate::attendance::Status;
use crate::repo::SessionFilter;
use crate::scan::ScanCommand;

/// The registry default of `session.timeout_minutes` (for callers without settings, e.g.
/// the demo data); a request's 0 takes the live setting ([`default_timeout`]).
pub const DEFAULT_TIMEOUT_MINUTES: i32 = 30;
/// Longest session timeout, in minutes (the column's CHECK).
pub const MAX_TIMEOUT_MINUTES: i32 = 480;
/// Longest combined-group name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest combined-group notes, in characters.
pub const MAX_NOTES_CHARS: usize = 1000;
/// Longest utilisation range, in days (inclusive of both ends).
pub const MAX_RANGE_DAYS: i64 = 31;

/// A valid `StartSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSession {
    pub room_id: i64,
    pub activity_id: Option<i64>,
    pub education_group_id: Option<i64>,
    pub supervisors: Vec<i64>,
    pub force: bool,
    pub timeout_minutes: i32,
}

/// A valid `ListSessions`.
#[derive(Debug, Clone)]
pub struct ListSessions {
    pub filter: SessionFilter,
    pub page: PageRequest,
}

fn state(v: &mut FieldViolations, value: i32) -> Option<bool> {
    match pb::SessionState::try_from(value) {
        Ok(pb::SessionState::Unspecified) => None,
        Ok(pb::SessionState::Running) => Some(true),
        Ok(pb::SessionState::Ended) => Some(false),
        Err(_) => {
            v.add("state", format!("unknown value {value}"));
            None
        }
    }
}

/// Distinct positive ids of a repeated field: `(index, id)` in request order.
fn distinct_ids(v: &mut FieldViolations, field: &str, ids: &[i64], what: &str) -> Vec<(usize, i64)> {
    let mut out: Vec<(usize, i64)> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if *id <= 0 {
            required_id(&f, *id, v);
        } else if out.iter().any(|(_, x)| x == id) {
            v.add(f, format!("{what} {id} is named twice"));
        } else {
            out.push((i, *id));
        }
    }
    out
}

/// The timeout of a new session whose request says 0: `session.timeout_minutes`, read live.
pub fn default_timeout(settings: &LiveSettings) -> i32 {
    i32::try_from(settings.session_timeout().num_minutes())
        .unwrap_or(DEFAULT_TIMEOUT_MINUTES)
        .clamp(1, MAX_TIMEOUT_MINUTES)
}

/// `StartSession`; a timeout of 0 is `default_timeout` minutes (see [`default_timeout`]).
pub fn start_session(req: pb::StartSessionRequest, default_timeout: i32) -> Result<StartSession> {
    let mut v = FieldViolations::default();
    required_id("room_id", req.room_id, &mut v);
    optional_id("activity_id", req.activity_id, &mut v);
    optional_id("education_group_id", req.education_group_id, &mut v);
    if req.activity_id.is_none() && req.education_group_id.is_none() {
        v.add("activity_id", "set activity_id, education_group_id or both");
    }
    if req.supervisor_staff_ids.is_empty() {
        v.add("supervisor_staff_ids", "name at least one supervising staff member");
    }
    let supervisors = distinct_ids(&mut v, "supervisor_staff_ids", &req.supervisor_staff_ids, "staff");
    let timeout_minutes = match req.timeout_minutes {
        0 => default_timeout,
        t if (1..=MAX_TIMEOUT_MINUTES).contains(&t) => t,
        t => {
            v.add(
                "timeout_minutes",
                format!("must be 0 (the school default, {default_timeout}) to {MAX_TIMEOUT_MINUTES}, got {t}"),
            );
            default_timeout
        }
    };
    v.into_result()?;
    Ok(StartSession {
        room_id: req.room_id,
        activity_id: req.activity_id,
        education_group_id: req.education_group_id,
        supervisors: supervisors.into_iter().map(|(_, s)| s).collect(),
        force: req.force,
        timeout_minutes,
    })
}

pub fn list_sessions(req: pb::ListSessionsRequest) -> Result<ListSessions> {
    let mut v = FieldViolations::default();
    let mut filter = SessionFilter {
        running: state(&mut v, req.state),
        room_id: optional_id("room_id", req.room_id, &mut v),
        activity_id: optional_id("activity_id", req.activity_id, &mut v),
        education_group_id: optional_id("education_group_id", req.education_group_id, &mut v),
        supervisor_staff_id: optional_id("supervisor_staff_id", req.supervisor_staff_id, &mut v),
        unclaimed: false,
    };
    if req.unclaimed {
        if filter.running == Some(false) {
            v.add("unclaimed", "only running sessions are unclaimed; leave state unspecified or RUNNING");
        }
        filter.unclaimed = true;
    }
    let page = page("sessions", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok(ListSessions { page: finish(v, page)?, filter })
}

pub fn process_scan(req: pb::ProcessScanRequest) -> Result<ScanCommand> {
    let mut v = FieldViolations::default();
    if !is_valid_device_id(&req.device_id) {
        v.add("device_id", "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'");
    }
    if req.scan_id.is_empty() || req.scan_id.chars().count() > MAX_SCAN_ID_CHARS {
        v.add("scan_id", "must have 1 to 64 characters");
    }
    if req.tag.trim().is_empty() || req.tag.chars().count() > MAX_RAW_TAG_CHARS {
        v.add("tag", "must have 1 to 256 characters");
    }
    let scanned_at: Option<DateTime<Utc>> = match &req.scanned_at {
        None => {
            v.add("scanned_at", "is required");
            None
        }
        Some(t) => {
            let parsed = from_timestamp(t);
            if parsed.is_none() {
                v.add("scanned_at", "is not a valid timestamp");
            }
            parsed
        }
    };
    let scanned_at = finish(v, scanned_at)?;
    Ok(ScanCommand { device_id: req.device_id, scan_id: req.scan_id, tag: req.tag, scanned_at })
}

// ---- supervisors ----

/// A stored role name of a requested role; `None` for UNSPECIFIED or unknown values.
pub fn role_name(value: i32) -> Option<&'static str> {
    match pb::SupervisorRole::try_from(value) {
        Ok(pb::SupervisorRole::Supervisor) => Some("supervisor"),
        Ok(pb::SupervisorRole::Assistant) => Some("assistant"),
        _ => None,
    }
}

fn role(v: &mut FieldViolations, field: &str, value: i32) -> &'static str {
    role_name(value).unwrap_or_else(|| {
        v.add(field, format!("must be SUPERVISOR_ROLE_SUPERVISOR or SUPERVISOR_ROLE_ASSISTANT, got {value}"));
        "supervisor"
    })
}

/// A valid `JoinSession`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinSession {
    pub session_id: i64,
    pub role: &'static str,
}

pub fn join_session(req: &pb::JoinSessionRequest) -> Result<JoinSession> {
    let mut v = FieldViolations::default();
    let session_id = required_id("session_id", req.session_id, &mut v);
    let role = role(&mut v, "role", req.role);
    v.into_result()?;
    Ok(JoinSession { session_id, role })
}

/// A valid `LeaveSession`: the staff member named, or `None` for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveSession {
    pub session_id: i64,
    pub staff_id: Option<i64>,
}

pub fn leave_session(req: &pb::LeaveSessionRequest) -> Result<LeaveSession> {
    let mut v = FieldViolations::default();
    let session_id = required_id("session_id", req.session_id, &mut v);
    let staff_id = optional_id("staff_id", req.staff_id, &mut v);
    v.into_result()?;
    Ok(LeaveSession { session_id, staff_id })
}

/// A valid `UpdateSessionSupervisors`: the whole new set of `(staff, role)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceSupervisors {
    pub session_id: i64,
    pub wanted: Vec<(i64, &'static str)>,
}

pub fn update_session_supervisors(req: &pb::UpdateSessionSupervisorsRequest) -> Result<ReplaceSupervisors> {
    let mut v = FieldViolations::default();
    let session_id = required_id("session_id", req.session_id, &mut v);
    if req.supervisors.is_empty() {
        v.add("supervisors", "name at least one supervisor; to leave a session use LeaveSession");
    }
    let mut wanted: Vec<(i64, &'static str)> = Vec::new();
    for (i, s) in req.supervisors.iter().enumerate() {
        let staff = required_id(&format!("supervisors[{i}].staff_id"), s.staff_id, &mut v);
        let role = role(&mut v, &format!("supervisors[{i}].role"), s.role);
        if staff > 0 && wanted.iter().any(|(w, _)| *w == staff) {
            v.add(format!("supervisors[{i}].staff_id"), format!("staff {staff} is named twice"));
        }
        wanted.push((staff, role));
    }
    v.into_result()?;
    Ok(ReplaceSupervisors { session_id, wanted })
}

// ---- combined groups ----

/// A valid `CreateCombinedGroup`; `sessions` are `(request index, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCombinedGroup {
    pub name: String,
    pub room_id: i64,
    pub notes: String,
    pub sessions: Vec<(usize, i64)>,
}

pub fn create_combined_group(req: pb::CreateCombinedGroupRequest) -> Result<NewCombinedGroup> {
    let mut v = FieldViolations::default();
    let name = req.name.trim().to_owned();
    match name.chars().count() {
        0 => v.add("name", "is required: 1 to 100 characters"),
        n if n > MAX_NAME_CHARS => v.add("name", format!("must have at most {MAX_NAME_CHARS} characters, got {n}")),
        _ => {}
    }
    let room_id = required_id("room_id", req.room_id, &mut v);
    if req.session_ids.is_empty() {
        v.add("session_ids", "name at least one running session");
    }
    let sessions = distinct_ids(&mut v, "session_ids", &req.session_ids, "session");
    let notes = req.notes.trim().to_owned();
    if notes.chars().count() > MAX_NOTES_CHARS {
        v.add("notes", format!("must have at most {MAX_NOTES_CHARS} characters"));
    }
    v.into_result()?;
    Ok(NewCombinedGroup { name, room_id, notes, sessions })
}

/// Which combined groups a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CombinedFilter {
    pub running: Option<bool>,
    pub room_id: Option<i64>,
    pub session_id: Option<i64>,
}

pub fn list_combined_groups(req: pb::ListCombinedGroupsRequest) -> Result<(CombinedFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = CombinedFilter {
        running: state(&mut v, req.state),
        room_id: optional_id("room_id", req.room_id, &mut v),
        session_id: optional_id("session_id", req.session_id, &mut v),
    };
    let page = page("combined_groups", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// `(combined_group_id, session_id)` of `AddSessionToCombinedGroup` and
/// `RemoveSessionFromCombinedGroup`.
pub fn combined_session(combined_group_id: i64, session_id: i64) -> Result<(i64, i64)> {
    let mut v = FieldViolations::default();
    required_id("combined_group_id", combined_group_id, &mut v);
    required_id("session_id", session_id, &mut v);
    v.into_result()?;
    Ok((combined_group_id, session_id))
}

// ---- visits ----

/// Which visits a list shows (before the caller's scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitFilter {
    pub student_id: Option<i64>,
    pub session_id: Option<i64>,
    pub room_id: Option<i64>,
    pub open_only: bool,
    pub date: Option<NaiveDate>,
}

pub fn list_visits(req: pb::ListVisitsRequest) -> Result<(VisitFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = VisitFilter {
        student_id: optional_id("student_id", req.student_id, &mut v),
        session_id: optional_id("session_id", req.session_id, &mut v),
        room_id: optional_id("room_id", req.room_id, &mut v),
        open_only: req.open_only,
        date: if req.date.trim().is_empty() { None } else { parse_date("date", &req.date, &mut v) },
    };
    let page = page("visits", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// A valid `CheckInStudent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckIn {
    pub student_id: i64,
    pub session_id: i64,
    /// Close an open visit elsewhere first.
    pub transfer: bool,
}

pub fn check_in_student(req: &pb::CheckInStudentRequest) -> Result<CheckIn> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    let session_id = required_id("session_id", req.session_id, &mut v);
    v.into_result()?;
    Ok(CheckIn { student_id, session_id, transfer: req.transfer })
}

// ---- attendance ----

fn date_or_today(v: &mut FieldViolations, value: &str, today: NaiveDate) -> NaiveDate {
    if value.trim().is_empty() { today } else { parse_date("date", value, v).unwrap_or(today) }
}

/// `(student_id, date)` of `GetAttendance`; no date is `today`.
pub fn get_attendance(req: &pb::GetAttendanceRequest, today: NaiveDate) -> Result<(i64, NaiveDate)> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    let date = date_or_today(&mut v, &req.date, today);
    v.into_result()?;
    Ok((student_id, date))
}

/// Which pupils' days an attendance list shows (before the caller's scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceFilter {
    pub date: NaiveDate,
    pub education_group_id: Option<i64>,
    pub status: Option<Status>,
}

pub fn list_attendance(req: pb::ListAttendanceRequest, today: NaiveDate) -> Result<(AttendanceFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = AttendanceFilter {
        date: date_or_today(&mut v, &req.date, today),
        education_group_id: optional_id("education_group_id", req.education_group_id, &mut v),
        status: Status::from_pb(req.status).unwrap_or_else(|| {
            v.add("status", format!("unknown value {}", req.status));
            None
        }),
    };
    // The listing includes whether the date is today (today's states differ from history).
    let listing = format!("{filter:?} today={}", filter.date == today);
    let page = page("attendance", &listing, req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// A valid `CheckOutForDay`: the stored destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOutForDay {
    pub student_id: i64,
    pub destination: &'static str,
}

pub fn check_out_for_day(req: &pb::CheckOutForDayRequest) -> Result<CheckOutForDay> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    let destination = match pb::CheckoutDestination::try_from(req.destination) {
        Ok(pb::CheckoutDestination::Home) => "zuhause",
        Ok(pb::CheckoutDestination::Underway) => "unterwegs",
        _ => {
            v.add("destination", "must be CHECKOUT_DESTINATION_HOME or CHECKOUT_DESTINATION_UNDERWAY");
            "zuhause"
        }
    };
    v.into_result()?;
    Ok(CheckOutForDay { student_id, destination })
}

// ---- analytics ----

/// A valid `GetRoomUtilization`: the room and its range of business days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomUtilization {
    pub room_id: i64,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

pub fn get_room_utilization(req: &pb::GetRoomUtilizationRequest, today: NaiveDate) -> Result<RoomUtilization> {
    let mut v = FieldViolations::default();
    let room_id = required_id("room_id", req.room_id, &mut v);
    let (start, end) = (req.start_date.trim(), req.end_date.trim());
    let (first, last) = match (start.is_empty(), end.is_empty()) {
        (true, true) => (Some(today), Some(today)),
        (false, false) => (parse_date("start_date", start, &mut v), parse_date("end_date", end, &mut v)),
        (true, false) => {
            v.add("start_date", "set both dates, or neither for today");
            (None, None)
        }
        (false, true) => {
            v.add("end_date", "set both dates, or neither for today");
            (None, None)
        }
    };
    if let (Some(s), Some(e)) = (first, last) {
        if e < s {
            v.add("end_date", format!("must not be before start_date {}", format_date(s)));
        } else if (e - s).num_days() >= MAX_RANGE_DAYS {
            v.add("end_date", format!("the range is at most {MAX_RANGE_DAYS} days, got {}", (e - s).num_days() + 1));
        }
    }
    let (first, last) = finish(v, first.zip(last))?;
    Ok(RoomUtilization { room_id, first, last })
}

#[cfg(test)]
mod tests {

    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn start_session_needs_room_purpose_and_supervisors() {
        let err =
            start_session(pb::StartSessionRequest { timeout_minutes: 481, ..Default::default() }, 30).unwrap_err();
        assert_eq!(fields_of(err), ["room_id", "activity_id", "supervisor_staff_ids", "timeout_minutes"]);
        let err = start_session(
            pb::StartSessionRequest {
                room_id: 1,
                education_group_id: Some(2),
                supervisor_staff_ids: vec![5, 0, 5],
                ..Default::default()
            },
            30,
        )
        .unwrap_err();
        assert_eq!(fields_of(err), ["supervisor_staff_ids[1]", "supervisor_staff_ids[2]"]);
        let ok = start_session(
            pb::StartSessionRequest {
                room_id: 1,
                activity_id: Some(3),
                supervisor_staff_ids: vec![5, 6],
                ..Default::default()
            },
            45,
        )
        .expect("valid");
        assert_eq!(ok.timeout_minutes, 45, "0 takes the school default");
        assert_eq!(ok.supervisors, [5, 6]);
    }

    #[test]
    fn process_scan_checks_every_field() {
        let err = process_scan(pb::ProcessScanRequest {
            device_id: "a b".into(),
            scan_id: String::new(),
            tag: " ".into(),
            scanned_at: None,
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["device_id", "scan_id", "tag", "scanned_at"]);
        let ok = process_scan(pb::ProcessScanRequest {
            device_id: "reader-01".into(),
            scan_id: "s".into(),
            tag: "04:A1".into(),
            scanned_at: Some(prost_types::Timestamp { seconds: 1_764_000_000, nanos: 0 }),
        })
        .expect("valid");
        assert_eq!(ok.tag, "04:A1", "the tag is normalised by the scan logic, not here");
    }

    #[test]
    fn list_sessions_validates_filters_and_paging() {
        let err = list_sessions(pb::ListSessionsRequest {
            state: 9,
            room_id: Some(-1),
            page_size: -3,
            page_token: "x".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["state", "room_id", "page_size", "page_token"]);
        let ok = list_sessions(pb::ListSessionsRequest { state: 1, ..Default::default() }).expect("valid");
        assert_eq!(ok.filter.running, Some(true));
        assert_eq!(ok.page.size, 50);
        let err = list_sessions(pb::ListSessionsRequest {
            state: 2,
            unclaimed: true,
            supervisor_staff_id: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["supervisor_staff_id", "unclaimed"], "ended sessions are never unclaimed");
        let ok = list_sessions(pb::ListSessionsRequest {
            unclaimed: true,
            supervisor_staff_id: Some(4),
            ..Default::default()
        })
        .expect("valid");
        assert!(ok.filter.unclaimed);
        assert_eq!(ok.filter.supervisor_staff_id, Some(4));
    }

    #[test]
    fn room_utilization_ranges_are_both_dates_or_today_and_at_most_31_days() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let range = |start: &str, end: &str| {
            let req = pb::GetRoomUtilizationRequest { room_id: 1, start_date: start.into(), end_date: end.into() };
            get_room_utilization(&req, today).map(|r| (r.first, r.last))
        };
        assert_eq!(range("", "").expect("today"), (today, today));
        assert!(range("2026-12-01", "2026-12-31").is_ok(), "31 days");
        assert_eq!(fields_of(range("2026-12-01", "2027-01-01").unwrap_err()), ["end_date"]);
        assert_eq!(fields_of(range("2026-12-02", "2026-12-01").unwrap_err()), ["end_date"]);
        assert_eq!(fields_of(range("", "2026-12-01").unwrap_err()), ["start_date"]);
        assert_eq!(fields_of(range("12/01/2026", "x").unwrap_err()), ["start_date", "end_date"]);
        let bad_room = pb::GetRoomUtilizationRequest { room_id: 0, ..Default::default() };
        assert_eq!(fields_of(get_room_utilization(&bad_room, today).unwrap_err()), ["room_id"]);
    }
}
