//! The one list of `audit.auth_events.event_type` values: auth writes them, audit filters
//! by them, and `ck_audit_auth_events_event_type` allows exactly them (a test in
//! `tests/it/audit` reads the constraint from `pg_catalog` and compares). A new type is a
//! variant here and a migration that replaces the constraint.

/// What an `audit.auth_events` row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthEventType {
    /// A login attempt.
    Login,
    /// A logout (a session family ended by its owner).
    Logout,
    /// A refresh-token rotation attempt.
    TokenRefresh,
    /// An expired refresh token was presented.
    TokenExpired,
    /// A used refresh token came back; its family was revoked.
    TokenReuseDetected,
    /// A password reset was requested.
    PasswordResetRequested,
    /// A password was reset with a one-time token.
    PasswordReset,
    /// A password was changed by its owner.
    PasswordChanged,
    /// An account was locked after repeated failed logins.
    AccountLocked,
    /// A wrong PIN (reserved for PIN log-ins).
    PinFailed,
    /// A PIN lock-out (reserved for PIN log-ins).
    PinLocked,
    /// A staff invitation was accepted.
    InvitationAccepted,
    /// A service client exchanged its credentials for a token.
    ServiceToken,
}

impl AuthEventType {
    /// Every type, in the constraint's order.
    pub const ALL: &[AuthEventType] = &[
        Self::Login,
        Self::Logout,
        Self::TokenRefresh,
        Self::TokenExpired,
        Self::TokenReuseDetected,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::AccountLocked,
        Self::PinFailed,
        Self::PinLocked,
        Self::InvitationAccepted,
        Self::ServiceToken,
    ];

    /// The stored value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::TokenRefresh => "token_refresh",
            Self::TokenExpired => "token_expired",
            Self::TokenReuseDetected => "token_reuse_detected",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::AccountLocked => "account_locked",
            Self::PinFailed => "pin_failed",
            Self::PinLocked => "pin_locked",
            Self::InvitationAccepted => "invitation_accepted",
            Self::ServiceToken => "service_token",
        }
    }

    /// The type stored as `value`, if it is one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == value)
    }
}

/// The stored values of [`AuthEventType::ALL`], in the same order.
pub const AUTH_EVENT_TYPES: &[&str] = &{
    let mut out = [""; AuthEventType::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = AuthEventType::ALL[i].as_str();
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_is_listed_once() {
        for (i, t) in AuthEventType::ALL.iter().enumerate() {
            assert_eq!(AuthEventType::parse(t.as_str()), Some(*t));
            assert_eq!(AUTH_EVENT_TYPES[i], t.as_str());
            assert!(!AuthEventType::ALL[..i].contains(t), "{t:?} listed twice");
        }
        assert_eq!(AuthEventType::parse("nope"), None);
    }
}
