//! Requests → typed commands, collecting every field violation before any I/O.

use chrono::{DateTime, Utc};
use phoenix_common::pagination;
use phoenix_common::time::from_timestamp;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{MAX_RAW_TAG_CHARS, MAX_SCAN_ID_CHARS, is_valid_device_id};

use crate::repo::SessionFilter;
use crate::scan::ScanCommand;

/// Default session timeout (minutes) when the request says 0.
pub const DEFAULT_TIMEOUT_MINUTES: i32 = 30;

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
    pub page_size: i64,
    pub before: Option<i64>,
    pub filter: SessionFilter,
}

fn positive(v: &mut FieldViolations, field: &str, id: i64) {
    if id <= 0 {
        v.add(field, format!("must be a positive id, got {id}"));
    }
}

pub fn id(field: &str, id: i64) -> Result<i64> {
    let mut v = FieldViolations::default();
    positive(&mut v, field, id);
    v.into_result().map(|()| id)
}

pub fn start_session(req: pb::StartSessionRequest) -> Result<StartSession> {
    let mut v = FieldViolations::default();
    positive(&mut v, "room_id", req.room_id);
    if let Some(a) = req.activity_id {
        positive(&mut v, "activity_id", a);
    }
    if let Some(g) = req.education_group_id {
        positive(&mut v, "education_group_id", g);
    }
    if req.activity_id.is_none() && req.education_group_id.is_none() {
        v.add("activity_id", "set activity_id, education_group_id or both");
    }
    if req.supervisor_staff_ids.is_empty() {
        v.add("supervisor_staff_ids", "name at least one supervising staff member");
    }
    let mut supervisors = Vec::with_capacity(req.supervisor_staff_ids.len());
    for (i, s) in req.supervisor_staff_ids.iter().enumerate() {
        if *s <= 0 {
            v.add(format!("supervisor_staff_ids[{i}]"), format!("must be a positive id, got {s}"));
        } else if supervisors.contains(s) {
            v.add(format!("supervisor_staff_ids[{i}]"), format!("staff {s} is named twice"));
        } else {
            supervisors.push(*s);
        }
    }
    let timeout_minutes = match req.timeout_minutes {
        0 => DEFAULT_TIMEOUT_MINUTES,
        t if (1..=480).contains(&t) => t,
        t => {
            v.add("timeout_minutes", format!("must be 0 (default 30) to 480, got {t}"));
            DEFAULT_TIMEOUT_MINUTES
        }
    };
    v.into_result()?;
    Ok(StartSession {
        room_id: req.room_id,
        activity_id: req.activity_id,
        education_group_id: req.education_group_id,
        supervisors,
        force: req.force,
        timeout_minutes,
    })
}

pub fn list_sessions(req: pb::ListSessionsRequest) -> Result<ListSessions> {
    let mut v = FieldViolations::default();
    let mut filter = SessionFilter::default();
    match pb::SessionState::try_from(req.state) {
        Ok(pb::SessionState::Unspecified) => {}
        Ok(pb::SessionState::Running) => filter.running = Some(true),
        Ok(pb::SessionState::Ended) => filter.running = Some(false),
        Err(_) => v.add("state", format!("unknown value {}", req.state)),
    }
    for (field, value, slot) in [
        ("room_id", req.room_id, &mut filter.room_id),
        ("activity_id", req.activity_id, &mut filter.activity_id),
        ("education_group_id", req.education_group_id, &mut filter.education_group_id),
    ] {
        if let Some(id) = value {
            positive(&mut v, field, id);
            *slot = Some(id);
        }
    }
    if let Some(staff) = req.supervisor_staff_id {
        positive(&mut v, "supervisor_staff_id", staff);
        filter.supervisor_staff_id = Some(staff);
    }
    if req.unclaimed {
        if filter.running == Some(false) {
            v.add("unclaimed", "only running sessions are unclaimed; leave state unspecified or RUNNING");
        }
        filter.unclaimed = true;
    }
    let page_size = match pagination::page_size(req.page_size) {
        Ok(n) => n,
        Err(e) => {
            merge(&mut v, e);
            0
        }
    };
    let before = match pagination::decode_token(&req.page_token) {
        Ok(b) => b,
        Err(e) => {
            merge(&mut v, e);
            None
        }
    };
    v.into_result()?;
    Ok(ListSessions { page_size, before, filter })
}

fn merge(v: &mut FieldViolations, err: Error) {
    match err {
        Error::InvalidArgument(inner) => {
            for (f, d) in inner.iter() {
                v.add(f, d);
            }
        }
        other => v.add("request", other.to_string()),
    }
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
    v.into_result()?;
    let scanned_at = scanned_at.ok_or_else(|| Error::invalid("scanned_at", "is required"))?;
    Ok(ScanCommand { device_id: req.device_id, scan_id: req.scan_id, tag: req.tag, scanned_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(v) => v.iter().map(|(f, _)| f.to_owned()).collect(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn start_session_needs_room_purpose_and_supervisors() {
        let err = start_session(pb::StartSessionRequest { timeout_minutes: 481, ..Default::default() }).unwrap_err();
        assert_eq!(fields(err), ["room_id", "activity_id", "supervisor_staff_ids", "timeout_minutes"]);
        let err = start_session(pb::StartSessionRequest {
            room_id: 1,
            education_group_id: Some(2),
            supervisor_staff_ids: vec![5, 0, 5],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields(err), ["supervisor_staff_ids[1]", "supervisor_staff_ids[2]"]);
        let ok = start_session(pb::StartSessionRequest {
            room_id: 1,
            activity_id: Some(3),
            supervisor_staff_ids: vec![5, 6],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(ok.timeout_minutes, 30);
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
        assert_eq!(fields(err), ["device_id", "scan_id", "tag", "scanned_at"]);
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
        assert_eq!(fields(err), ["state", "room_id", "page_size", "page_token"]);
        let ok = list_sessions(pb::ListSessionsRequest { state: 1, ..Default::default() }).expect("valid");
        assert_eq!(ok.filter.running, Some(true));
        assert_eq!(ok.page_size, 50);
        let err = list_sessions(pb::ListSessionsRequest {
            state: 2,
            unclaimed: true,
            supervisor_staff_id: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields(err), ["supervisor_staff_id", "unclaimed"], "ended sessions are never unclaimed");
        let ok = list_sessions(pb::ListSessionsRequest {
            unclaimed: true,
            supervisor_staff_id: Some(4),
            ..Default::default()
        })
        .expect("valid");
        assert!(ok.filter.unclaimed);
        assert_eq!(ok.filter.supervisor_staff_id, Some(4));
    }
}
