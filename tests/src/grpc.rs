//! Assertions on gRPC statuses (code + `google.rpc.BadRequest` field names) and requests on
//! behalf of a caller (real tokens: see [`crate::auth::TestChannel`]).

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The fields named by the status's `BadRequest` field violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Asserts `result` failed with `InvalidArgument` naming exactly `fields` (in any order).
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, fields: &[&str]) {
    let status = result.expect_err("expected InvalidArgument, got success");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut got = violated_fields(&status);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "violated fields of {:?}", status.message());
}

/// Asserts `status` is `InvalidArgument` with a `BadRequest` violation on each of `fields`
/// (and maybe on others: [`assert_invalid`] checks the exact set).
#[track_caller]
pub fn assert_violations_include(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    assert!(details.bad_request().is_some(), "no BadRequest detail in {status:?}");
    let got = violated_fields(status);
    for f in fields {
        assert!(got.iter().any(|g| g == f), "expected a violation on {f:?}, got {got:?} ({})", status.message());
    }
}

/// Asserts `status` is `FailedPrecondition` with `ErrorInfo.reason == reason`.
#[track_caller]
pub fn assert_precondition(status: &Status, reason: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.get_error_details().error_info().is_some(), "no ErrorInfo in {status:?}");
    assert_eq!(self::reason(status).as_deref(), Some(reason));
}

/// Asserts `result` failed with `code`; returns the status for further checks.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    let status = result.expect_err(&format!("expected {code:?}, got success"));
    assert_eq!(status.code(), code, "{status:?}");
    status
}

/// The `ErrorInfo` reason of a status (e.g. `ROOM_IN_USE`), if any.
pub fn reason(status: &Status) -> Option<String> {
    status.get_error_details().error_info().map(|i| i.reason.clone())
}

/// Who a request is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    /// An admin account.
    Admin,
    /// A non-admin staff member.
    Staff(i64),
}

/// `message` wrapped in a request made as `caller`.
pub fn request<T>(caller: As, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let As::Staff(id) = caller {
        // Turned into that staff member's real token by the TestChannel, client side.
        r.metadata_mut().insert(crate::auth::AS_STAFF_MARKER, id.to_string().parse().expect("ascii"));
    }
    r
}

/// A `FieldMask` of `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}
