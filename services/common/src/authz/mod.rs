//! The one authorization layer every Phoenix service sits behind (ARCHITECTURE.md, "How a
//! request flows").
//!
//! - Each service declares, in one static [`MethodTable`] next to its handlers, what every
//!   RPC needs: [`Requirement::Public`], [`Requirement::Authenticated`] or one
//!   [`Requirement::Permission`]. A method missing from the table is refused, and a test
//!   (`tests/it/authz.rs`) fails for any proto method without a declaration.
//! - [`Authorized`] wraps a tonic server: it verifies the bearer token (EdDSA JWT) with the
//!   public keys of `auth.signing_keys` ([`TokenVerifier`], cached, reloaded on an unknown
//!   `kid` at most every few seconds), checks the declared permission (wildcards as
//!   in [`grants`]), and hands the handler a typed [`AuthContext`] in the request
//!   extensions. Missing, expired or forged tokens are `Unauthenticated`; a missing
//!   permission is `PermissionDenied` naming it.
//! - Servers can only be added to [`crate::server::ServiceRoutes`] through this layer.
//!
//! Only the auth service holds signing keys; everyone else verifies with public keys only.

mod layer;
mod verifier;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub use layer::{Authorized, authorize};
pub use verifier::{SESSION_CHECK_TTL, STREAM_RECHECK_INTERVAL, TokenVerifier, VerificationKey};

/// `iss` of every Phoenix access token.
pub const ISSUER: &str = "phoenix-auth";
/// `aud` of every Phoenix access token.
pub const AUDIENCE: &str = "phoenix";
/// Prefix of the `sub` claim of service-client tokens (`service:gateway`); account tokens
/// carry the decimal account id.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";

/// What one RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// No token needed (login, refresh, public keys, …).
    Public,
    /// Any valid access token, user or service (who-am-i, change own password, …).
    Authenticated,
    /// A valid access token whose permissions grant this `resource:action`.
    Permission(&'static str),
}

/// A service's declarations: `("/package.Service/Method", requirement)` for every method.
pub type MethodTable = &'static [(&'static str, Requirement)];

/// The claims of a Phoenix access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Account id (decimal) or `service:<client_id>`.
    pub sub: String,
    /// Role names (accounts only).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective permissions, `resource:action`, possibly wildcards.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Unique token id.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issued at, in Unix milliseconds: revocation compares it with the account's last change
    /// of access, which a whole second could not order (absent in older tokens: `iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// Session: the refresh-token family this token was issued for (accounts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user account.
    Account(i64),
    /// An internal service client (`auth.service_clients.client_id`).
    Service(String),
}

impl std::fmt::Display for Principal {
    /// `account:<id>` or `service:<client_id>` (what logs and spans carry; never a name).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Account(id) => write!(f, "account:{id}"),
            Principal::Service(client) => write!(f, "service:{client}"),
        }
    }
}

/// The verified caller, put into the request extensions by [`Authorized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// Account or service client.
    pub principal: Principal,
    /// Role names from the token.
    pub roles: Vec<String>,
    /// Permissions from the token.
    pub permissions: Vec<String>,
    /// The session (refresh-token family) of an account token.
    pub session_id: Option<uuid::Uuid>,
    /// The token's `jti`.
    pub token_id: String,
    /// Issued at (Unix milliseconds).
    pub issued_at_ms: i64,
    /// Expires at (Unix seconds): a stream opened with this token ends then.
    pub expires_at: i64,
}

impl AuthContext {
    /// The context [`Authorized`] attached to `request`. Absent only on a `Public` method,
    /// where asking for it is a bug (`Internal`).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&AuthContext, Error> {
        request
            .extensions()
            .get::<AuthContext>()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no AuthContext: handler of a Public method asked for it")))
    }

    /// The account id, or `PermissionDenied` for a service client.
    pub fn account_id(&self) -> Result<i64, Error> {
        match &self.principal {
            Principal::Account(id) => Ok(*id),
            Principal::Service(client) => {
                Err(Error::PermissionDenied(format!("service client {client:?} has no account; this needs a user")))
            }
        }
    }

    /// Whether the token's permissions grant `required`.
    pub fn has_permission(&self, required: &str) -> bool {
        grants(&self.permissions, required)
    }

    /// `PermissionDenied` naming `required` unless the caller holds it.
    pub fn require(&self, required: &str) -> Result<(), Error> {
        if self.has_permission(required) { Ok(()) } else { Err(missing_permission(required)) }
    }
}

fn missing_permission(required: &str) -> Error {
    Error::PermissionDenied(format!("missing permission {required}"))
}

/// Whether `held` grants `required`, `admin:*` and `*:*` grant
/// everything; otherwise resource and action each match when equal, `*`, or a `prefix*`
/// of the required part. A required value that is not `resource:action` never matches.
pub fn permission_matches(held: &str, required: &str) -> bool {
    if held == "*:*" || held == "admin:*" {
        return true;
    }
    let (Some((req_res, req_act)), Some((held_res, held_act))) = (required.split_once(':'), held.split_once(':'))
    else {
        return false;
    };
    if req_res.is_empty() || req_act.is_empty() || req_act.contains(':') || held_act.contains(':') {
        return false;
    }
    let part = |held: &str, req: &str| held == req || held.strip_suffix('*').is_some_and(|p| req.starts_with(p));
    part(held_res, req_res) && part(held_act, req_act)
}

/// Whether any of `held` grants `required`.
pub fn grants(held: &[String], required: &str) -> bool {
    held.iter().any(|h| permission_matches(h, required))
}

/// Effective permissions: role permissions plus direct grants, minus direct
/// denies, where a deny wins. A deny may itself be a wildcard (`users:*` denies every
/// `users:` permission). A held wildcard that a deny overlaps is replaced by the concrete
/// `catalogue` permissions it covers except the denied ones, so `*:*` with a deny of
/// `users:delete` grants every catalogued permission but that one, and `users:*` with a deny
/// of `users:*` grants nothing of `users`. Sorted, unique.
pub fn effective_permissions(
    role_grants: &[String],
    direct_grants: &[String],
    denies: &[String],
    catalogue: &[String],
) -> Vec<String> {
    let is_denied = |p: &str| denies.iter().any(|d| d == p || permission_matches(d, p));
    let overlaps = |held: &str| denies.iter().any(|d| patterns_overlap(held, d));
    let mut out: Vec<String> = Vec::new();
    for held in role_grants.iter().chain(direct_grants) {
        if is_denied(held) {
            continue;
        }
        if held.contains('*') && overlaps(held) {
            out.extend(
                catalogue.iter().filter(|c| !c.contains('*') && permission_matches(held, c) && !is_denied(c)).cloned(),
            );
        } else {
            out.push(held.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether some `resource:action` matches both permission patterns (`users:*` and `*:read`
/// overlap in `users:read`).
fn patterns_overlap(a: &str, b: &str) -> bool {
    let everything = |p: &str| p == "*:*" || p == "admin:*";
    if everything(a) || everything(b) {
        return true;
    }
    let part = |x: &str, y: &str| match (x.strip_suffix('*'), y.strip_suffix('*')) {
        (Some(xp), Some(yp)) => xp.starts_with(yp) || yp.starts_with(xp),
        (Some(xp), None) => y.starts_with(xp),
        (None, Some(yp)) => x.starts_with(yp),
        (None, None) => x == y,
    };
    match (a.split_once(':'), b.split_once(':')) {
        (Some((ar, aa)), Some((br, ba))) => part(ar, br) && part(aa, ba),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn wildcards_match_as_the_reference_says() {
        assert!(permission_matches("*:*", "users:read"));
        assert!(permission_matches("admin:*", "rooms:delete"));
        assert!(permission_matches("users:*", "users:read"));
        assert!(permission_matches("users:read", "users:read"));
        assert!(permission_matches("us*:read", "users:read"));
        assert!(permission_matches("*:read", "rooms:read"));
        assert!(!permission_matches("users:*", "rooms:read"));
        assert!(!permission_matches("users:read", "users:update"));
        assert!(!permission_matches("users:read", "users"), "malformed requirement never matches");
        assert!(!permission_matches("users:*", ":read"));
        assert!(!permission_matches("users", "users:read"));
    }

    #[test]
    fn a_deny_beats_a_role_grant_even_through_a_wildcard() {
        let catalogue = s(&["*:*", "users:*", "users:read", "users:delete", "rooms:read"]);
        let eff = effective_permissions(&s(&["users:read", "users:delete"]), &[], &s(&["users:delete"]), &catalogue);
        assert_eq!(eff, s(&["users:read"]));
        let eff = effective_permissions(&s(&["*:*"]), &s(&["x:y"]), &s(&["users:delete"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read", "users:read", "x:y"]));
        assert!(!grants(&eff, "users:delete"));
        let eff = effective_permissions(&s(&["rooms:read"]), &s(&["users:read"]), &[], &catalogue);
        assert_eq!(eff, s(&["rooms:read", "users:read"]));
    }

    #[test]
    fn a_wildcard_deny_removes_everything_it_covers() {
        let catalogue = s(&["users:read", "users:update", "users:delete", "rooms:read"]);
        let eff =
            effective_permissions(&s(&["users:read", "users:update", "rooms:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["users:*", "rooms:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["*:*"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["*:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        assert!(effective_permissions(&s(&["rooms:read"]), &[], &s(&["*:*"]), &catalogue).is_empty());
    }
}
