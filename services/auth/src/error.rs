//! The auth service's errors. All of them are [`phoenix_common::Error`] values, so the one
//! mapping to `tonic::Status` applies; this module fixes their wording, which matters here:
//! an unknown email and a wrong password must be indistinguishable.

use std::time::Duration;

use phoenix_common::Error;

/// Unknown email or wrong password: one message for both (no account enumeration).
pub const INVALID_CREDENTIALS: &str = "invalid email or password";

/// Wrong client id or secret, or an inactive client.
pub const INVALID_CLIENT: &str = "invalid client credentials";

/// `Unauthenticated`: unknown email or wrong password.
pub fn invalid_credentials() -> Error {
    Error::Unauthenticated(INVALID_CREDENTIALS.into())
}

/// `Unauthenticated`: the password was right but the account is switched off.
pub fn account_inactive() -> Error {
    Error::Unauthenticated("account is inactive; ask an administrator to activate it".into())
}

/// `ResourceExhausted` with `RetryInfo`: too many failures (throttle or lockout; the same
/// answer for both, and for known and unknown emails).
pub fn throttled(retry_after: Duration) -> Error {
    let secs = retry_after.as_secs().max(1);
    Error::ResourceExhausted {
        message: format!("too many failed attempts; retry in {secs} s"),
        retry_after: Duration::from_secs(secs),
    }
}

/// `Unauthenticated`: the refresh token is unknown, used, revoked or expired.
pub fn invalid_refresh_token(why: &str) -> Error {
    Error::Unauthenticated(format!("refresh token {why}; log in again"))
}

/// `Unauthenticated`: bad service-client credentials.
pub fn invalid_client() -> Error {
    Error::Unauthenticated(INVALID_CLIENT.into())
}

/// `ResourceExhausted` with `RetryInfo`: too many password-reset requests for one email
/// (the same answer for known and unknown emails).
pub fn reset_throttled(retry_after: Duration) -> Error {
    let secs = retry_after.as_secs().max(1);
    Error::ResourceExhausted {
        message: format!("too many password-reset requests for this email; retry in {secs} s"),
        retry_after: Duration::from_secs(secs),
    }
}

/// Why a presented password-reset token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTokenProblem {
    /// No such token.
    Unknown,
    /// Used, or replaced by a newer request.
    Used,
    /// Past its expiry.
    Expired,
}

/// The error for an unusable password-reset token: `InvalidArgument` on `token` for an
/// unknown one, `FailedPrecondition` for a used or expired one.
pub fn reset_token(problem: ResetTokenProblem) -> Error {
    match problem {
        ResetTokenProblem::Unknown => {
            Error::invalid("token", "is not a valid password-reset token; request a new password reset")
        }
        ResetTokenProblem::Used => Error::precondition(
            "RESET_TOKEN_USED",
            "this password-reset token was already used or replaced by a newer one; request a new password reset",
        ),
        ResetTokenProblem::Expired => Error::precondition(
            "RESET_TOKEN_EXPIRED",
            "this password-reset token has expired; request a new password reset",
        ),
    }
}
