//! Requests → typed commands. Every check happens before any I/O, and all violations of a
//! request are reported together (`InvalidArgument` + `BadRequest`). Sign-in, tokens,
//! password changes and resets here; the other services' requests by resource:
//!
//! | module | requests of |
//! |---|---|
//! | [`accounts`] | `AccountService` |
//! | [`roles`] | `RoleService` |
//! | [`invitations`] | `InvitationService` |

use phoenix_common::{FieldViolations, Result, email, password};
use phoenix_proto::auth::v1 as pb;

/// The shared id check, so handlers write `validate::id(…)` like everywhere else.
pub use phoenix_common::validate::id;

pub mod accounts;
pub mod invitations;
pub mod roles;

pub use accounts::*;
pub use invitations::*;
pub use roles::*;

/// Longest password accepted: argon2 cost must not be a lever for a caller.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A validated `Login`.
#[derive(Clone)]
pub struct LoginCommand {
    /// Normalised email.
    pub email: String,
    /// The password as typed.
    pub password: String,
}

/// A validated `ChangePassword`.
#[derive(Clone)]
pub struct ChangePasswordCommand {
    /// The current password.
    pub current_password: String,
    /// The new, strong password.
    pub new_password: String,
}

/// A validated `ExchangeClientCredentials`.
#[derive(Clone)]
pub struct ClientCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

fn password_present(v: &mut FieldViolations, field: &str, value: &str) {
    if value.is_empty() {
        v.add(field, "is required");
    } else if value.len() > MAX_PASSWORD_LEN {
        v.add(field, format!("must be at most {MAX_PASSWORD_LEN} bytes"));
    }
}

/// `email` must be an address (normalised: trimmed, lower-case); `password` non-empty.
pub fn login(req: pb::LoginRequest) -> Result<LoginCommand> {
    let mut v = FieldViolations::default();
    let email = email::normalize(&req.email);
    if req.email.trim().is_empty() {
        v.add("email", "is required");
    } else if email.is_none() {
        v.add("email", "must be an email address such as name@school.de");
    }
    password_present(&mut v, "password", &req.password);
    v.into_result()?;
    Ok(LoginCommand { email: email.unwrap_or_default(), password: req.password })
}

/// A refresh token must be present and plausibly sized (43 base64url characters today).
pub fn refresh_token(field: &str, token: &str) -> Result<String> {
    let mut v = FieldViolations::default();
    let token = token.trim();
    if token.is_empty() {
        v.add(field, "is required");
    } else if token.len() > 256 {
        v.add(field, "is not a refresh token (too long)");
    }
    v.into_result()?;
    Ok(token.to_owned())
}

/// Both passwords present, the new one strong (8+ characters: upper, lower, digit, other) and different.
pub fn change_password(req: pb::ChangePasswordRequest) -> Result<ChangePasswordCommand> {
    let mut v = FieldViolations::default();
    password_present(&mut v, "current_password", &req.current_password);
    password_present(&mut v, "new_password", &req.new_password);
    if !req.new_password.is_empty() && !password::is_strong(&req.new_password) {
        v.add(
            "new_password",
            "must have at least 8 characters with an upper-case letter, a lower-case letter, a digit and a symbol",
        );
    }
    if !req.new_password.is_empty() && req.new_password == req.current_password {
        v.add("new_password", "must differ from the current password");
    }
    v.into_result()?;
    Ok(ChangePasswordCommand { current_password: req.current_password, new_password: req.new_password })
}

/// A validated `ConfirmPasswordReset`.
#[derive(Clone)]
pub struct ConfirmPasswordResetCommand {
    /// The one-time token as presented.
    pub token: String,
    /// The new, strong password.
    pub new_password: String,
}

/// `StartPasswordReset`: the email, normalised.
pub fn start_password_reset(req: &pb::StartPasswordResetRequest) -> Result<String> {
    let mut v = FieldViolations::default();
    let email = check_email(&mut v, "email", &req.email);
    v.into_result()?;
    Ok(email.unwrap_or_default())
}

fn check_new_password(v: &mut FieldViolations, field: &str, value: &str) {
    password_present(v, field, value);
    if !value.is_empty() && value.len() <= MAX_PASSWORD_LEN && !password::is_strong(value) {
        v.add(
            field,
            "must have at least 8 characters with an upper-case letter, a lower-case letter, a digit and a symbol",
        );
    }
}

/// `ConfirmPasswordReset`: a plausible token and a strong new password.
pub fn confirm_password_reset(req: pb::ConfirmPasswordResetRequest) -> Result<ConfirmPasswordResetCommand> {
    let mut v = FieldViolations::default();
    let token = req.token.trim();
    if token.is_empty() {
        v.add("token", "is required");
    } else if token.len() > 256 {
        v.add("token", "is not a password-reset token (too long)");
    }
    check_new_password(&mut v, "new_password", &req.new_password);
    v.into_result()?;
    Ok(ConfirmPasswordResetCommand { token: token.to_owned(), new_password: req.new_password })
}

/// Whether `id` is a valid service-client id (`^[a-z0-9_-]{1,64}$`, as the table checks).
pub fn is_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Client id well-formed, secret present.
pub fn client_credentials(req: pb::ExchangeClientCredentialsRequest) -> Result<ClientCredentials> {
    let mut v = FieldViolations::default();
    if req.client_id.is_empty() {
        v.add("client_id", "is required");
    } else if !is_client_id(&req.client_id) {
        v.add("client_id", "must be 1–64 characters of a-z, 0-9, _ and -");
    }
    password_present(&mut v, "client_secret", &req.client_secret);
    v.into_result()?;
    Ok(ClientCredentials { client_id: req.client_id, client_secret: req.client_secret })
}

fn check_email(v: &mut FieldViolations, field: &str, value: &str) -> Option<String> {
    let normalised = email::normalize(value);
    if value.trim().is_empty() {
        v.add(field, "is required");
    } else if normalised.is_none() {
        v.add(field, "must be an email address such as name@school.de");
    }
    normalised
}

fn check_role_name(v: &mut FieldViolations, field: &str, value: &str) -> String {
    let name = value.trim().to_lowercase();
    if name.is_empty() {
        v.add(field, "is required");
    } else if name.chars().count() > 100 {
        v.add(field, "must be at most 100 characters");
    }
    name
}

fn check_permission(v: &mut FieldViolations, field: &str, value: &str) -> String {
    let p = value.trim().to_lowercase();
    let ok = p.split_once(':').is_some_and(|(r, a)| !r.is_empty() && !a.is_empty() && !a.contains(':'));
    if p.is_empty() {
        v.add(field, "is required");
    } else if !ok {
        v.add(field, format!("must look like resource:action, got {p:?}"));
    }
    p
}

#[cfg(test)]
mod tests {
    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn login_normalises_the_email_and_names_every_bad_field() {
        let ok = login(pb::LoginRequest { email: " A@B.de ".into(), password: "x".into() }).expect("valid");
        assert_eq!(ok.email, "a@b.de");
        let err = login(pb::LoginRequest { email: "nope".into(), password: String::new() }).err().expect("invalid");
        assert_eq!(fields_of(err), ["email", "password"]);
    }

    #[test]
    fn change_password_requires_a_strong_different_password() {
        let err = change_password(pb::ChangePasswordRequest {
            current_password: "Old-pass1".into(),
            new_password: "weak".into(),
        })
        .err()
        .expect("weak");
        assert_eq!(fields_of(err), ["new_password"]);
        let err = change_password(pb::ChangePasswordRequest {
            current_password: "Same-pass1".into(),
            new_password: "Same-pass1".into(),
        })
        .err()
        .expect("same");
        assert_eq!(fields_of(err), ["new_password"]);
        assert!(
            change_password(pb::ChangePasswordRequest {
                current_password: "Old-pass1".into(),
                new_password: "New-pass2!".into()
            })
            .is_ok()
        );
    }

    #[test]
    fn create_account_collects_every_violation() {
        let err = create_account(pb::CreateAccountRequest {
            email: "x".into(),
            username: "ab".into(),
            password: "weak".into(),
            role_names: vec!["staff".into(), " ".into()],
        })
        .err()
        .expect("invalid");
        assert_eq!(fields_of(err), ["email", "username", "password", "role_names[1]"]);
        let ok = create_account(pb::CreateAccountRequest {
            email: "New@School.de".into(),
            role_names: vec!["Staff".into(), "staff".into()],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!((ok.email.as_str(), ok.role_names.as_slice()), ("new@school.de", ["staff".to_owned()].as_slice()));
        assert!(ok.password.is_none() && ok.username.is_none());
    }

    #[test]
    fn update_account_needs_a_known_mask() {
        let req = |paths: &[&str]| pb::UpdateAccountRequest {
            account: Some(pb::Account { id: 3, email: "a@b.de".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        };
        assert_eq!(fields_of(update_account(req(&[])).expect_err("empty mask")), ["update_mask"]);
        assert_eq!(fields_of(update_account(req(&["active"])).expect_err("unknown path")), ["update_mask"]);
        let cmd = update_account(req(&["email", "username"])).expect("valid");
        assert_eq!(cmd.email.as_deref(), Some("a@b.de"));
        assert_eq!(cmd.username, Some(None), "an empty username clears it");
    }

    #[test]
    fn permissions_need_an_effect() {
        let req = pb::SetAccountPermissionRequest { account_id: 1, permission: "users:read".into(), effect: 0 };
        assert_eq!(fields_of(set_account_permission(&req).expect_err("unspecified")), ["effect"]);
        let req = pb::SetAccountPermissionRequest { account_id: 0, permission: "users".into(), effect: 2 };
        assert_eq!(fields_of(set_account_permission(&req).expect_err("bad")), ["account_id", "permission"]);
    }

    #[test]
    fn password_reset_requests_name_their_bad_fields() {
        let err = start_password_reset(&pb::StartPasswordResetRequest { email: "nope".into() }).expect_err("bad");
        assert_eq!(fields_of(err), ["email"]);
        let ok = start_password_reset(&pb::StartPasswordResetRequest { email: " A@B.de".into() }).expect("ok");
        assert_eq!(ok, "a@b.de");
        let err =
            confirm_password_reset(pb::ConfirmPasswordResetRequest { token: " ".into(), new_password: "weak".into() })
                .err()
                .expect("bad");
        assert_eq!(fields_of(err), ["token", "new_password"]);
        assert!(
            confirm_password_reset(pb::ConfirmPasswordResetRequest {
                token: "t".into(),
                new_password: "New-pass2!".into()
            })
            .is_ok()
        );
    }

    #[test]
    fn client_ids_follow_the_table_rule() {
        assert!(is_client_id("gateway"));
        assert!(is_client_id("svc_1-a"));
        assert!(!is_client_id("Gateway"));
        assert!(!is_client_id(""));
        assert!(!is_client_id("a b"));
    }
}
