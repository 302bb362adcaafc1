//! Assertions on gRPC errors.

use tonic::Code;
use tonic_types::StatusExt as _;

/// The field names of the `BadRequest` violations of an `InvalidArgument` status (panics on
/// any other code, printing the status).
pub fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad = details.bad_request().unwrap_or_else(|| panic!("no BadRequest detail in {status:?}"));
    bad.field_violations.iter().map(|v| v.field.clone()).collect()
}

/// The `ErrorInfo` reason of a `FailedPrecondition` status.
pub fn precondition_reason(status: &tonic::Status) -> String {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}
