//! Requests → typed commands, pure: every bad field of a request at once.

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{finish, optional_id, page, required_id};
use phoenix_common::{FieldViolations, Result};
use phoenix_db::auth_events::{AUTH_EVENT_TYPES, AuthEventType};
use phoenix_proto::audit::v1 as pb;

use crate::trail::{AuthEventFilter, DeletionFilter};

/// Longest erasure reason.
const MAX_REASON_CHARS: usize = 500;

fn deletion_type_name(t: pb::DeletionType) -> Option<&'static str> {
    match t {
        pb::DeletionType::Unspecified => None,
        pb::DeletionType::VisitRetention => Some("visit_retention"),
        pb::DeletionType::Manual => Some("manual"),
        pb::DeletionType::GdprRequest => Some("gdpr_request"),
    }
}

/// `ListDataDeletions`: a known deletion type, a positive entity id, the page.
pub fn list_data_deletions(req: &pb::ListDataDeletionsRequest) -> Result<(DeletionFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let deletion_type = match pb::DeletionType::try_from(req.deletion_type) {
        Ok(t) => deletion_type_name(t),
        Err(_) => {
            v.add("deletion_type", format!("unknown value {}", req.deletion_type));
            None
        }
    };
    optional_id("entity_id", req.entity_id, &mut v);
    let entity_type = Some(req.entity_type.trim().to_owned()).filter(|t| !t.is_empty());
    let filter = DeletionFilter { deletion_type, entity_type, entity_id: req.entity_id };
    let page = page("data_deletions", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// `ListAuthEvents`: a positive account id, a known event type, the page.
pub fn list_auth_events(req: &pb::ListAuthEventsRequest) -> Result<(AuthEventFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    optional_id("account_id", req.account_id, &mut v);
    let event_type = match req.event_type.trim() {
        "" => None,
        t => {
            let parsed = AuthEventType::parse(t);
            if parsed.is_none() {
                v.add("event_type", format!("unknown event type {t:?}; one of {}", AUTH_EVENT_TYPES.join(", ")));
            }
            parsed
        }
    };
    let filter = AuthEventFilter { account_id: req.account_id, event_type, failures_only: req.failures_only };
    let page = page("auth_events", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// `ListDataExports`: a positive student id when filtering, the page.
pub fn list_data_exports(req: &pb::ListDataExportsRequest) -> Result<(Option<i64>, PageRequest)> {
    let mut v = FieldViolations::default();
    optional_id("student_id", req.student_id, &mut v);
    let page = page("data_exports", &format!("student={:?}", req.student_id), req.page_size, &req.page_token, &mut v);
    Ok((req.student_id, finish(v, page)?))
}

/// `EraseStudent`: the student and a reason (required, at most 500 characters).
pub fn erase_student(req: pb::EraseStudentRequest) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    let student = required_id("student_id", req.student_id, &mut v);
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() {
        v.add("reason", "is required: say why (e.g. the request's reference), without personal data");
    } else if reason.chars().count() > MAX_REASON_CHARS {
        v.add("reason", format!("must be at most {MAX_REASON_CHARS} characters"));
    }
    v.into_result()?;
    Ok((student, reason))
}
