//! Assertions on gRPC error details shared by the domain test modules.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Asserts `status` is `InvalidArgument` with a `BadRequest` violation on each of `fields`.
pub fn assert_invalid(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad = details.bad_request().unwrap_or_else(|| panic!("no BadRequest detail in {status:?}"));
    let got: Vec<&str> = bad.field_violations.iter().map(|v| v.field.as_str()).collect();
    for f in fields {
        assert!(got.contains(f), "expected a violation on {f:?}, got {got:?} ({})", status.message());
    }
}

/// Asserts `status` is `FailedPrecondition` with `ErrorInfo.reason == reason`.
pub fn assert_precondition(status: &Status, reason: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let info = status.get_error_details().error_info().cloned().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason);
}
