//! The one mapping from what went wrong to a gRPC status (api.md "Errors").
//!
//! Handlers return [`Error`]; `From<Error> for tonic::Status` is the only place a status is
//! chosen. Caller mistakes never become `Internal`, and an `Internal` status never carries
//! the cause: the cause is logged with an error id, and the caller gets the id.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `ErrorInfo.domain` of every Phoenix error.
pub const ERROR_DOMAIN: &str = "phoenix";

/// A domain error, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: each violation names the field and what to fix.
    #[error("invalid argument: {0}")]
    InvalidArgument(FieldViolations),
    /// The addressed resource does not exist.
    #[error("{resource} {id} not found")]
    NotFound {
        /// Kind of resource, e.g. `room`.
        resource: &'static str,
        /// Its identifier as the caller gave it.
        id: String,
    },
    /// A unique name, email, id … is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The current state forbids the operation (room full, session ended, …).
    #[error("{message}")]
    FailedPrecondition {
        /// Machine-readable reason, e.g. `ROOM_FULL` (sent as `google.rpc.ErrorInfo`).
        reason: &'static str,
        /// What the caller can do.
        message: String,
    },
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the permission or a resource rule is missing.
    #[error("{0}")]
    PermissionDenied(String),
    /// Throttled; retry after the given delay.
    #[error("{message}")]
    ResourceExhausted {
        /// What was throttled.
        message: String,
        /// When to retry (sent as `google.rpc.RetryInfo`).
        retry_after: Duration,
    },
    /// A concurrent change won; retry the read-modify-write.
    #[error("{0}")]
    Aborted(String),
    /// A dependency (the database) is down or saturated; retryable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// `NotFound` for the addressed resource.
    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Error::NotFound { resource, id: id.to_string() }
    }

    /// `InvalidArgument` with a single violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = FieldViolations::default();
        v.add(field, description);
        Error::InvalidArgument(v)
    }

    /// `FailedPrecondition` with a machine-readable reason.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Error::FailedPrecondition { reason, message: message.into() }
    }
}

/// Field violations collected while validating a request, so the caller sees all of them
/// at once rather than one per round trip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations(Vec<(String, String)>);

impl FieldViolations {
    /// Records that `field` is wrong and what to do about it.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// `Ok(())` when nothing was recorded, else `Error::InvalidArgument`.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::InvalidArgument(self)) }
    }

    /// The recorded `(field, description)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }
}

impl std::fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(field, d)| format!("{field}: {d}")).collect();
        f.write_str(&parts.join("; "))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(violations) => {
                let list: Vec<FieldViolation> = violations.iter().map(|(f, d)| FieldViolation::new(f, d)).collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    violations.to_string(),
                    ErrorDetails::with_bad_request(list),
                )
            }
            e @ Error::NotFound { .. } => Status::not_found(e.to_string()),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::FailedPrecondition { reason, message } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new()),
            ),
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::ResourceExhausted { message, retry_after } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            Error::Aborted(m) => Status::aborted(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Internal(cause) => {
                let error_id = uuid::Uuid::new_v4();
                tracing::error!(%error_id, error = format!("{cause:#}"), "internal error");
                Status::internal(format!("internal error (error id {error_id}); the cause is logged"))
            }
        }
    }
}

/// Classifies database errors. Handlers that know better (a unique violation on a named
/// constraint → "room name 'X' is taken") map before this; this is the safe fallback.
impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match err {
            D::NotFound => Error::NotFound { resource: "record", id: "requested".into() },
            D::DatabaseError(kind, info) => {
                let constraint = info.constraint_name().unwrap_or("unnamed").to_owned();
                match kind {
                    K::UniqueViolation => {
                        Error::AlreadyExists(format!("a record with these values already exists ({constraint})"))
                    }
                    K::ForeignKeyViolation => Error::precondition(
                        "REFERENCE_CONSTRAINT",
                        format!("a referenced record is missing or still in use ({constraint})"),
                    ),
                    K::CheckViolation | K::NotNullViolation => {
                        Error::invalid(info.column_name().unwrap_or(&constraint), "value violates a database rule")
                    }
                    K::SerializationFailure => Error::Aborted("a concurrent change conflicted; retry".into()),
                    K::ClosedConnection => Error::Unavailable("the database connection was lost; retry".into()),
                    _ => Error::Internal(anyhow::anyhow!("database error: {}", info.message())),
                }
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// A connection could not be checked out of the pool in time.
impl From<diesel_async::pooled_connection::bb8::RunError> for Error {
    fn from(err: diesel_async::pooled_connection::bb8::RunError) -> Self {
        tracing::warn!(error = %err, "database pool unavailable");
        Error::Unavailable("the database is unavailable or saturated; retry shortly".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut v = FieldViolations::default();
        v.add("name", "must not be empty");
        v.add("capacity", "must be 0 or more, got -1");
        let status = Status::from(v.into_result().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "name: must not be empty; capacity: must be 0 or more, got -1");
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest detail");
        let fields: Vec<_> = bad.field_violations.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["name", "capacity"]);
    }

    #[test]
    fn empty_violations_are_ok() {
        assert!(FieldViolations::default().into_result().is_ok());
    }

    #[test]
    fn precondition_carries_reason() {
        let status = Status::from(Error::precondition("ROOM_FULL", "room 'Aula' is full (capacity 2)"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status.get_error_details().error_info().cloned().expect("ErrorInfo");
        assert_eq!(info.reason, "ROOM_FULL");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn throttling_carries_retry_info() {
        let status = Status::from(Error::ResourceExhausted {
            message: "too many attempts".into(),
            retry_after: Duration::from_secs(30),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_error_details().retry_info().cloned().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(30)));
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = Status::from(Error::Internal(anyhow::anyhow!("SELECT secret FROM x failed")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"), "{}", status.message());
        assert!(status.message().contains("error id"));
    }

    #[test]
    fn simple_mappings() {
        assert_eq!(Status::from(Error::not_found("room", 42)).message(), "room 42 not found");
        assert_eq!(Status::from(Error::not_found("room", 42)).code(), Code::NotFound);
        assert_eq!(Status::from(Error::AlreadyExists("x".into())).code(), Code::AlreadyExists);
        assert_eq!(Status::from(Error::Unauthenticated("x".into())).code(), Code::Unauthenticated);
        assert_eq!(Status::from(Error::PermissionDenied("x".into())).code(), Code::PermissionDenied);
        assert_eq!(Status::from(Error::Aborted("x".into())).code(), Code::Aborted);
        assert_eq!(Status::from(Error::Unavailable("x".into())).code(), Code::Unavailable);
    }

    #[test]
    fn diesel_not_found_is_not_internal() {
        assert_eq!(Status::from(Error::from(diesel::result::Error::NotFound)).code(), Code::NotFound);
    }
}
