//! The one mapping from what went wrong to a gRPC status (docs/error-reasons.md).
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

/// Every `FailedPrecondition` reason ([`Error::precondition`], sent as `google.rpc.ErrorInfo.reason`)
/// and what it means, sorted. The one list: a unit test fails when the workspace uses a reason
/// not listed here or a listed one is no longer used, and docs/error-reasons.md is generated
/// from it (`PHOENIX_UPDATE_DOCS=1 cargo test -p phoenix-common error_reasons`).
pub const REASONS: &[(&str, &str)] = &[
    ("ACTIVITY_CLOSED", "the activity is not open for enrollment"),
    ("ACTIVITY_FULL", "the activity has no places left"),
    ("ADMIN_ROLE_FIXED", "the admin role's permissions cannot be changed"),
    ("ALREADY_SUPERVISING", "the staff member already supervises the session; leave first to change the role"),
    ("BUILDING_HAS_LOCATIONS", "the building still has locations; delete or move them first"),
    ("CARD_INACTIVE", "the RFID card is deactivated"),
    ("COMBINATION_ENDED", "the combined group has ended; create a new one"),
    ("CURSOR_EXPIRED", "the presence event log no longer holds the changes after this cursor; reload and watch again"),
    ("ENROLLMENTS_EXCEED_CAPACITY", "the activity has more enrollments than the new maximum"),
    ("GONE_HOME", "the pupil is checked out for the day"),
    ("GROUP_HAS_SESSIONS", "the group has room sessions on record and cannot be deleted"),
    ("GROUP_HAS_STUDENTS", "the group still has pupils; move them first"),
    ("GUARDIAN_HAS_ACCOUNT", "the guardian already has an account"),
    ("GUARDIAN_NO_EMAIL", "the guardian has no email to invite"),
    ("INVITATION_EXPIRED", "the invitation has expired"),
    ("INVITATION_USED", "the invitation was already accepted or revoked"),
    ("IS_TRANSFER", "the substitution is a transfer; cancel it and transfer again"),
    ("NOT_ARRIVED", "the pupil has not arrived today"),
    ("NOT_A_TRANSFER", "the substitution was planned by the administration, not handed over"),
    ("NOT_CHECKED_IN", "the pupil is not checked in"),
    ("NOT_IN_COMBINATION", "the session is not in that combined group"),
    ("NOT_STAFF", "the caller is not linked to a staff record"),
    ("NOT_SUPERVISING", "the staff member does not supervise the session"),
    ("NO_CARD", "the person holds no RFID card"),
    ("OUTSIDE_SESSION", "no room session of the room covers the visit's times (none running, or it began later)"),
    ("PERSON_IS_STUDENT", "the person is a student; deactivate the student instead"),
    ("PRIMARY_SUPERVISOR", "the change would leave the activity without its primary supervisor"),
    ("REFERENCE_CONSTRAINT", "a referenced record is missing or still in use (unnamed foreign key)"),
    ("RESET_TOKEN_EXPIRED", "the password-reset token has expired"),
    ("RESET_TOKEN_USED", "the password-reset token was already used or replaced by a newer one"),
    ("RETENTION_CLEANUP_RUNNING", "a retention purge is already running"),
    ("ROOM_CONFLICT", "the room is booked at that time by another class schedule"),
    ("ROOM_FULL", "the room, or the session's activity, is at capacity"),
    ("ROOM_IN_USE", "the room has room sessions on record and cannot be deleted"),
    ("SELF_DEACTIVATION", "an account cannot deactivate itself"),
    ("SESSION_CLAIMED", "the session already has supervisors; join it instead"),
    ("SESSION_COMBINED", "the session is already in a running combined group"),
    ("SESSION_ENDED", "the room session has ended"),
    ("SESSION_RUNNING", "a room session is running (in the room, or of the activity); end it first"),
    ("SETTING_LOCKED", "the setting is a locked system setting, set at deployment"),
    ("STUDENT_ACTIVE", "the student is active"),
    ("STUDENT_CHECKED_IN", "the pupil is already checked in"),
    ("STUDENT_INACTIVE", "the student is already deactivated"),
    ("SUBSTITUTE_BUSY", "the substitute already covers a group in that period"),
    ("SUBSTITUTION_ENDED", "the substitution is over; past substitutions are kept as they were"),
    ("SYSTEM_DEVICE", "the virtual web device is part of the system and cannot be deleted"),
    ("SYSTEM_PERMISSION", "a system permission cannot be deleted"),
    ("SYSTEM_ROLE", "a system role cannot be renamed or deleted"),
    ("TEACHER_LEADS_GROUPS", "the staff member leads groups; remove them as group teacher first"),
    ("VIRTUAL_DEVICE", "the virtual web device has no key to rotate"),
    ("VISIT_ENDED", "the visit has already ended"),
    ("VISIT_OVERLAP", "the visit would overlap another visit of the pupil; correct that one first"),
];

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
        /// Machine-readable reason, one of [`REASONS`] (sent as `google.rpc.ErrorInfo`).
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

    /// `FailedPrecondition` with a machine-readable reason, one of [`REASONS`].
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
            Error::Unavailable(m) => Status::with_error_details(
                Code::Unavailable,
                m,
                ErrorDetails::with_retry_info(Some(RETRY_UNAVAILABLE_AFTER)),
            ),
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
/// A failure that may pass on a retry ([`transient_database_error`]) is `Unavailable`.
impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match err {
            D::NotFound => Error::NotFound { resource: "record", id: "requested".into() },
            D::DatabaseError(kind, info) => {
                if let Some(message) = transient_database_error(kind, info.message()) {
                    tracing::warn!(error = info.message(), "transient database error");
                    return Error::Unavailable(message.into());
                }
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
                    _ => Error::Internal(anyhow::anyhow!("database error: {}", info.message())),
                }
            }
            // A rollback that failed after an error: the connection is gone (diesel-async marks
            // its transaction manager broken, and the pool discards the connection).
            D::BrokenTransactionManager => {
                tracing::warn!("database transaction manager broken (connection lost)");
                Error::Unavailable(CONNECTION_LOST.into())
            }
            D::RollbackErrorOnCommit { commit_error, .. } => Error::from(*commit_error),
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// What a caller is told to wait before retrying an `Unavailable` (`google.rpc.RetryInfo`).
pub const RETRY_UNAVAILABLE_AFTER: Duration = Duration::from_secs(1);

const CONNECTION_LOST: &str = "the database connection was lost; retry";

/// The caller-facing message of a database error that may pass on a retry, or `None` for one
/// that will not. diesel-async reports no SQLSTATE beyond a few [`DatabaseErrorKind`]s
/// (deadlocks, timeouts and shutdowns are all `Unknown`), so the server's message is read:
/// PostgreSQL's English texts (`lc_messages` `C` or `en_*`, the default of a `C`/English
/// cluster; docs/faults.md).
///
/// [`DatabaseErrorKind`]: diesel::result::DatabaseErrorKind
pub fn transient_database_error(kind: diesel::result::DatabaseErrorKind, message: &str) -> Option<&'static str> {
    use diesel::result::DatabaseErrorKind as K;
    match kind {
        // No SQLSTATE at all: the client could not talk to the server (connection closed or reset).
        K::ClosedConnection | K::UnableToSendCommand => return Some(CONNECTION_LOST),
        K::SerializationFailure => return Some(CONFLICT),
        _ => {}
    }
    let m = message.to_ascii_lowercase();
    let has = |needle: &str| m.contains(needle);
    if has("deadlock detected") || has("could not serialize access") || has("due to conflict with recovery") {
        Some(CONFLICT) // 40P01, 40001
    } else if has("due to lock timeout") || has("could not obtain lock") {
        Some("the data is locked by another change (lock timeout); retry") // 55P03
    } else if has("due to statement timeout") {
        Some("the database did not answer in time (statement timeout); retry") // 57014
    } else if has("due to user request") {
        Some("the database canceled the statement; retry") // 57014 (pg_cancel_backend)
    } else if has("due to administrator command")
        || has("the database system is")
        || has("crash of another server process")
        || has("cannot connect now")
    {
        Some("the database is restarting; retry") // 57P01, 57P02, 57P03
    } else if has("idle-in-transaction") || has("idle-session") || has("terminating connection") {
        Some(CONNECTION_LOST) // 25P03, 57P05, other FATALs that end the session
    } else if has("too many clients") || has("too many connections") {
        Some("the database has no free connections; retry shortly") // 53300
    } else {
        None
    }
}

const CONFLICT: &str = "a concurrent change conflicted; retry";

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
    use std::collections::BTreeMap;

    /// Where the reasons the workspace uses are read: services/**/*.rs and gateway/**/*.rs.
    fn workspace_sources() -> Vec<(std::path::PathBuf, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
                if path.is_dir() && !path.ends_with("target") {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push((path.clone(), std::fs::read_to_string(&path).expect("read source")));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("root");
        let mut out = Vec::new();
        walk(&root.join("services"), &mut out);
        walk(&root.join("gateway"), &mut out);
        assert!(out.len() > 20, "found only {} sources under {}", out.len(), root.display());
        out.into_iter()
            .map(|(path, text)| (path.strip_prefix(&root).map(|p| p.to_path_buf()).unwrap_or(path), text))
            .collect()
    }

    /// The string literal at the start of `text` (after blanks), if any.
    fn literal_at(text: &str) -> Option<&str> {
        let rest = text.trim_start().strip_prefix('"')?;
        rest.find('"').map(|end| &rest[..end])
    }

    fn is_reason_like(s: &str) -> bool {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }

    /// Every reason the sources pass: literal first arguments of [`Error::precondition`], a
    /// constant there (`reason::ROOM_FULL`) through its `const ROOM_FULL: &str = "…"`, and
    /// `reason: "…"` fields. Returns reason → places, and the arguments it could not read.
    fn used_reasons() -> (BTreeMap<String, Vec<String>>, Vec<String>) {
        // Built with concat! so that this scanner does not find itself.
        let call = concat!("Error::", "precondition(");
        let field = concat!("reason", ": ");
        let sources = workspace_sources();
        let mut consts = BTreeMap::new();
        for (_, text) in &sources {
            for (at, _) in text.match_indices("const ") {
                let rest = &text[at + "const ".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let value = rest[name.len()..].trim_start().strip_prefix(": &str =").and_then(literal_at);
                if let Some(value) = value.filter(|v| is_reason_like(v)) {
                    consts.insert(name, value.to_owned());
                }
            }
        }
        let (mut used, mut unreadable) = (BTreeMap::<String, Vec<String>>::new(), Vec::new());
        for (path, text) in &sources {
            let place = |at: usize| format!("{}:{}", path.display(), text[..at].lines().count());
            for (at, _) in text.match_indices(call) {
                let arg = &text[at + call.len()..];
                let ident: String = arg
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
                    .collect();
                let reason = match literal_at(arg) {
                    Some(lit) => Some(lit.to_owned()),
                    None => consts.get(ident.rsplit("::").next().unwrap_or_default()).cloned(),
                };
                match reason {
                    Some(r) => used.entry(r).or_default().push(place(at)),
                    None => unreadable.push(format!("{}: `{ident}`", place(at))),
                }
            }
            for (at, _) in text.match_indices(field) {
                if let Some(lit) = literal_at(&text[at + field.len()..]).filter(|l| is_reason_like(l)) {
                    used.entry(lit.to_owned()).or_default().push(place(at));
                }
            }
        }
        (used, unreadable)
    }

    #[test]
    fn every_precondition_reason_is_in_reasons_and_every_listed_one_is_used() {
        let names: Vec<&str> = REASONS.iter().map(|(r, _)| *r).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "REASONS must be sorted and unique");
        let (used, unreadable) = used_reasons();
        assert!(
            unreadable.is_empty(),
            "reasons passed as something that is neither a literal nor a const: {unreadable:#?}"
        );
        let unlisted: Vec<String> = used
            .iter()
            .filter(|(r, _)| !names.contains(&r.as_str()))
            .map(|(r, places)| format!("{r} ({})", places.join(", ")))
            .collect();
        let unused: Vec<&str> = names.iter().copied().filter(|r| !used.contains_key(*r)).collect();
        assert!(unlisted.is_empty(), "add these reasons to phoenix_common::error::REASONS: {unlisted:#?}");
        assert!(unused.is_empty(), "these REASONS are no longer used; remove them: {unused:?}");
    }

    /// docs/error-reasons.md's table is generated from [`REASONS`]:
    /// `PHOENIX_UPDATE_DOCS=1 cargo test -p phoenix-common error_reasons` rewrites it.
    #[test]
    fn docs_error_reasons_table_matches_reasons() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/error-reasons.md");
        let header = "| reason | meaning |\n|---|---|\n";
        let table: String = REASONS.iter().map(|(reason, meaning)| format!("| `{reason}` | {meaning} |\n")).collect();
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| format!("{DOC_INTRO}{header}"));
        let start = doc.find(header).expect("docs/error-reasons.md has the reasons table") + header.len();
        let end = doc[start..].find("\n\n").map_or(doc.len(), |i| start + i + 1);
        if doc[start..end] != table {
            if std::env::var_os("PHOENIX_UPDATE_DOCS").is_some() {
                std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[end..])).expect("write docs");
            } else {
                panic!(
                    "docs/error-reasons.md is out of date; run \
                     `PHOENIX_UPDATE_DOCS=1 cargo test -p phoenix-common error_reasons`. Expected:\n{table}"
                );
            }
        }
    }

    /// The text above the table when docs/error-reasons.md is first written.
    const DOC_INTRO: &str = "# Error reasons\n\n\
        Every `FAILED_PRECONDITION` status carries a `google.rpc.ErrorInfo` with domain `phoenix` and one \
        of these reasons, so a client can branch on the reason and show the message. The table is \
        generated from `phoenix_common::error::REASONS`, the one list of them \
        (`PHOENIX_UPDATE_DOCS=1 cargo test -p phoenix-common error_reasons` rewrites it); a unit test \
        fails when the code uses a reason that is not listed or a listed one is no longer used.\n\n";

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

    fn db_error(kind: diesel::result::DatabaseErrorKind, message: &str) -> Status {
        Status::from(Error::from(diesel::result::Error::DatabaseError(kind, Box::new(message.to_owned()))))
    }

    /// Every failure a retry may cure is `Unavailable` with a `RetryInfo`, never `Internal`.
    #[test]
    fn transient_database_errors_are_unavailable_with_retry_info() {
        use diesel::result::DatabaseErrorKind as K;
        let cases = [
            (K::ClosedConnection, "server closed the connection unexpectedly", "connection was lost"),
            (K::UnableToSendCommand, "connection closed", "connection was lost"),
            (K::SerializationFailure, "could not serialize access due to concurrent update", "concurrent change"),
            (K::Unknown, "deadlock detected", "concurrent change"),
            (K::Unknown, "canceling statement due to lock timeout", "lock timeout"),
            (K::Unknown, "could not obtain lock on row in relation \"students\"", "lock timeout"),
            (K::Unknown, "canceling statement due to statement timeout", "statement timeout"),
            (K::Unknown, "canceling statement due to user request", "canceled"),
            (K::Unknown, "terminating connection due to administrator command", "restarting"),
            (K::Unknown, "the database system is shutting down", "restarting"),
            (K::Unknown, "the database system is starting up", "restarting"),
            (K::Unknown, "terminating connection because of crash of another server process", "restarting"),
            (K::Unknown, "terminating connection due to idle-in-transaction timeout", "connection was lost"),
            (K::Unknown, "sorry, too many clients already", "no free connections"),
        ];
        for (kind, message, says) in cases {
            let status = db_error(kind, message);
            assert_eq!(status.code(), Code::Unavailable, "{message}");
            assert!(status.message().contains(says), "{message} → {}", status.message());
            assert!(
                status.message().ends_with("retry") || status.message().ends_with("shortly"),
                "{}",
                status.message()
            );
            let retry = status.get_error_details().retry_info().cloned().expect("RetryInfo");
            assert_eq!(retry.retry_delay, Some(RETRY_UNAVAILABLE_AFTER), "{message}");
        }
    }

    #[test]
    fn lost_connections_around_a_transaction_are_unavailable() {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        assert_eq!(Status::from(Error::from(D::BrokenTransactionManager)).code(), Code::Unavailable);
        let commit = D::RollbackErrorOnCommit {
            rollback_error: Box::new(D::BrokenTransactionManager),
            commit_error: Box::new(D::DatabaseError(K::UnableToSendCommand, Box::new("connection closed".to_owned()))),
        };
        assert_eq!(Status::from(Error::from(commit)).code(), Code::Unavailable);
    }

    /// Errors a retry will not cure keep their mapping.
    #[test]
    fn permanent_database_errors_are_not_unavailable() {
        use diesel::result::DatabaseErrorKind as K;
        assert_eq!(db_error(K::UniqueViolation, "duplicate key value").code(), Code::AlreadyExists);
        assert_eq!(db_error(K::ForeignKeyViolation, "violates foreign key").code(), Code::FailedPrecondition);
        assert_eq!(db_error(K::CheckViolation, "violates check constraint").code(), Code::InvalidArgument);
        let internal = db_error(K::Unknown, "column \"nope\" does not exist");
        assert_eq!(internal.code(), Code::Internal);
        assert!(!internal.message().contains("nope"));
    }

    #[test]
    fn unavailable_carries_retry_info() {
        let status = Status::from(Error::Unavailable("the database is restarting; retry".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "the database is restarting; retry");
        let retry = status.get_error_details().retry_info().cloned().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(RETRY_UNAVAILABLE_AFTER));
    }

    #[test]
    fn diesel_not_found_is_not_internal() {
        assert_eq!(Status::from(Error::from(diesel::result::Error::NotFound)).code(), Code::NotFound);
    }
}
