//! Requests → typed commands. Every check happens before any I/O, and all violations of a
//! request are reported together (`InvalidArgument` + `BadRequest`).

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{finish, page, required_id};
use phoenix_common::{FieldViolations, Result, email, password};
use phoenix_proto::auth::v1 as pb;

/// The shared id check, so handlers write `validate::id(…)` like everywhere else.
pub use phoenix_common::validate::id;

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

/// Both passwords present, the new one strong (reference §2.1) and different.
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

/// A validated `CreateInvitation`.
#[derive(Debug, Clone)]
pub struct CreateInvitationCommand {
    /// Normalised email.
    pub email: String,
    /// Role name, lower case.
    pub role_name: String,
    /// Optional first name.
    pub first_name: Option<String>,
    /// Optional last name.
    pub last_name: Option<String>,
    /// Optional position.
    pub position: Option<String>,
}

/// A validated `AcceptInvitation`.
#[derive(Clone)]
pub struct AcceptInvitationCommand {
    /// The one-time token.
    pub token: String,
    /// The new account's strong password.
    pub password: String,
    /// First name, when given (else the invitation's).
    pub first_name: Option<String>,
    /// Last name, when given (else the invitation's).
    pub last_name: Option<String>,
}

fn check_name_part(v: &mut FieldViolations, field: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.chars().count() > 100 {
        v.add(field, "must be at most 100 characters");
    }
    (!value.is_empty()).then(|| value.to_owned())
}

fn check_token(v: &mut FieldViolations, field: &str, value: &str) -> String {
    let token = value.trim();
    if token.is_empty() {
        v.add(field, "is required");
    } else if token.len() > 256 {
        v.add(field, "is not a token (too long)");
    }
    token.to_owned()
}

/// `CreateInvitation`: a valid email, a role name, names and position of at most 100
/// characters.
pub fn create_invitation(req: pb::CreateInvitationRequest) -> Result<CreateInvitationCommand> {
    let mut v = FieldViolations::default();
    let email = check_email(&mut v, "email", &req.email);
    let role_name = check_role_name(&mut v, "role_name", &req.role_name);
    let first_name = check_name_part(&mut v, "first_name", &req.first_name);
    let last_name = check_name_part(&mut v, "last_name", &req.last_name);
    let position = check_name_part(&mut v, "position", &req.position);
    v.into_result()?;
    Ok(CreateInvitationCommand { email: email.unwrap_or_default(), role_name, first_name, last_name, position })
}

/// A one-time token field (look-up).
pub fn token(field: &str, value: &str) -> Result<String> {
    let mut v = FieldViolations::default();
    let token = check_token(&mut v, field, value);
    v.into_result()?;
    Ok(token)
}

/// `AcceptInvitation`: a token, a strong password, names of at most 100 characters.
pub fn accept_invitation(req: pb::AcceptInvitationRequest) -> Result<AcceptInvitationCommand> {
    let mut v = FieldViolations::default();
    let token = check_token(&mut v, "token", &req.token);
    check_new_password(&mut v, "password", &req.password);
    let first_name = check_name_part(&mut v, "first_name", &req.first_name);
    let last_name = check_name_part(&mut v, "last_name", &req.last_name);
    v.into_result()?;
    Ok(AcceptInvitationCommand { token, password: req.password, first_name, last_name })
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

/// A validated `CreateAccount`.
#[derive(Clone)]
pub struct CreateAccountCommand {
    /// Normalised email.
    pub email: String,
    /// Login name.
    pub username: Option<String>,
    /// Initial password (strong).
    pub password: Option<String>,
    /// Role names, normalised and de-duplicated.
    pub role_names: Vec<String>,
}

/// A validated `UpdateAccount`.
#[derive(Debug, Clone)]
pub struct UpdateAccountCommand {
    /// The account.
    pub id: i64,
    /// New email, when the mask names it.
    pub email: Option<String>,
    /// New username (`Some(None)` clears it), when the mask names it.
    pub username: Option<Option<String>>,
}

/// A validated `ListAccounts`.
#[derive(Debug, Clone)]
pub struct ListAccountsQuery {
    /// Page size and position, bound to the filters.
    pub page: PageRequest,
    /// Filters.
    pub filter: crate::repo::AccountFilter,
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

fn check_username(v: &mut FieldViolations, field: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let len = value.chars().count();
    if !(3..=30).contains(&len) {
        v.add(field, format!("must be 3–30 characters, got {len}"));
    }
    Some(value.to_owned())
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

/// A role name: trimmed, lower case, 1–100 characters.
pub fn role_name(field: &str, value: &str) -> Result<String> {
    let mut v = FieldViolations::default();
    let name = check_role_name(&mut v, field, value);
    v.into_result()?;
    Ok(name)
}

/// An account id and a role name together (all violations at once).
pub fn account_role(account_id: i64, role: &str) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    required_id("account_id", account_id, &mut v);
    let role = check_role_name(&mut v, "role_name", role);
    v.into_result()?;
    Ok((account_id, role))
}

/// An account id and a `resource:action` permission.
pub fn account_permission(account_id: i64, permission: &str) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    required_id("account_id", account_id, &mut v);
    let p = check_permission(&mut v, "permission", permission);
    v.into_result()?;
    Ok((account_id, p))
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

/// `SetAccountPermission`: account, permission and an effect that is not UNSPECIFIED;
/// returns whether it grants.
pub fn set_account_permission(req: &pb::SetAccountPermissionRequest) -> Result<(i64, String, bool)> {
    let mut v = FieldViolations::default();
    required_id("account_id", req.account_id, &mut v);
    let p = check_permission(&mut v, "permission", &req.permission);
    let granted = match pb::PermissionEffect::try_from(req.effect) {
        Ok(pb::PermissionEffect::Grant) => true,
        Ok(pb::PermissionEffect::Deny) => false,
        _ => {
            v.add("effect", "must be PERMISSION_EFFECT_GRANT or PERMISSION_EFFECT_DENY");
            false
        }
    };
    v.into_result()?;
    Ok((req.account_id, p, granted))
}

/// `CreateAccount`: a valid email, an optional 3–30 character username, an optional strong
/// password and well-formed role names.
pub fn create_account(req: pb::CreateAccountRequest) -> Result<CreateAccountCommand> {
    let mut v = FieldViolations::default();
    let email = check_email(&mut v, "email", &req.email);
    let username = check_username(&mut v, "username", &req.username);
    let password = (!req.password.is_empty()).then_some(req.password);
    if let Some(p) = &password {
        if p.len() > MAX_PASSWORD_LEN {
            v.add("password", format!("must be at most {MAX_PASSWORD_LEN} bytes"));
        } else if !password::is_strong(p) {
            v.add(
                "password",
                "must have at least 8 characters with an upper-case letter, a lower-case letter, a digit and a symbol",
            );
        }
    }
    let mut role_names = Vec::new();
    for (i, r) in req.role_names.iter().enumerate() {
        let name = check_role_name(&mut v, &format!("role_names[{i}]"), r);
        if !role_names.contains(&name) {
            role_names.push(name);
        }
    }
    v.into_result()?;
    Ok(CreateAccountCommand { email: email.unwrap_or_default(), username, password, role_names })
}

/// `UpdateAccount`: an account id, a non-empty mask of known paths, valid values for them.
pub fn update_account(req: pb::UpdateAccountRequest) -> Result<UpdateAccountCommand> {
    let mut v = FieldViolations::default();
    let account = req.account.unwrap_or_default();
    required_id("account.id", account.id, &mut v);
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "must name at least one of: email, username");
    }
    let (mut email, mut username) = (None, None);
    for path in &paths {
        match path.as_str() {
            "email" => email = check_email(&mut v, "account.email", &account.email),
            "username" => username = Some(check_username(&mut v, "account.username", &account.username)),
            other => v.add("update_mask", format!("unknown path {other:?}; allowed: email, username")),
        }
    }
    v.into_result()?;
    Ok(UpdateAccountCommand { id: account.id, email, username })
}

/// `ListAccounts`: page size and token, and the filters.
pub fn list_accounts(req: &pb::ListAccountsRequest) -> Result<ListAccountsQuery> {
    let mut v = FieldViolations::default();
    let email_contains = req.email_contains.trim().to_lowercase();
    if email_contains.len() > 254 {
        v.add("email_contains", "must be at most 254 characters");
    }
    let role_name = req.role_name.trim().to_lowercase();
    if role_name.chars().count() > 100 {
        v.add("role_name", "must be at most 100 characters");
    }
    let filter = crate::repo::AccountFilter {
        email_contains: (!email_contains.is_empty()).then_some(email_contains),
        active: req.active,
        role_name: (!role_name.is_empty()).then_some(role_name),
    };
    let page = page("accounts", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok(ListAccountsQuery { page: finish(v, page)?, filter })
}

/// `ListPermissions`: an optional resource (at most 50 characters, lower-cased) and the page.
pub fn list_permissions(req: &pb::ListPermissionsRequest) -> Result<(Option<String>, PageRequest)> {
    let mut v = FieldViolations::default();
    let resource = req.resource.trim().to_lowercase();
    if resource.len() > 50 {
        v.add("resource", "must be at most 50 characters");
    }
    let page = page("permissions", &resource, req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok(((!resource.is_empty()).then_some(resource), page))
}

/// A validated `CreateRole`.
#[derive(Debug, Clone)]
pub struct CreateRoleCommand {
    /// Lower-case name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Initial permissions.
    pub permissions: Vec<String>,
}

/// A validated `UpdateRole`.
#[derive(Debug, Clone)]
pub struct UpdateRoleCommand {
    /// The role.
    pub id: i64,
    /// New name, when the mask names it.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it), when the mask names it.
    pub description: Option<Option<String>>,
}

/// A validated `CreatePermission`.
#[derive(Debug, Clone)]
pub struct CreatePermissionCommand {
    /// Resource, lower case.
    pub resource: String,
    /// Action, lower case, or `*`.
    pub action: String,
    /// Description.
    pub description: Option<String>,
}

fn check_description(v: &mut FieldViolations, field: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.chars().count() > 500 {
        v.add(field, "must be at most 500 characters");
    }
    (!value.is_empty()).then(|| value.to_owned())
}

/// A role id and a `resource:action` permission.
pub fn role_permission(role_id: i64, permission: &str) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    required_id("role_id", role_id, &mut v);
    let p = check_permission(&mut v, "permission", permission);
    v.into_result()?;
    Ok((role_id, p))
}

/// `CreateRole`: name 1–100, description ≤ 500, well-formed permissions.
pub fn create_role(req: pb::CreateRoleRequest) -> Result<CreateRoleCommand> {
    let mut v = FieldViolations::default();
    let name = check_role_name(&mut v, "name", &req.name);
    let description = check_description(&mut v, "description", &req.description);
    let mut permissions = Vec::new();
    for (i, p) in req.permissions.iter().enumerate() {
        let p = check_permission(&mut v, &format!("permissions[{i}]"), p);
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    v.into_result()?;
    Ok(CreateRoleCommand { name, description, permissions })
}

/// `UpdateRole`: a role id and a non-empty mask of `name` / `description`.
pub fn update_role(req: pb::UpdateRoleRequest) -> Result<UpdateRoleCommand> {
    let mut v = FieldViolations::default();
    let role = req.role.unwrap_or_default();
    required_id("role.id", role.id, &mut v);
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "must name at least one of: name, description");
    }
    let (mut name, mut description) = (None, None);
    for path in &paths {
        match path.as_str() {
            "name" => name = Some(check_role_name(&mut v, "role.name", &role.name)),
            "description" => description = Some(check_description(&mut v, "role.description", &role.description)),
            other => v.add("update_mask", format!("unknown path {other:?}; allowed: name, description")),
        }
    }
    v.into_result()?;
    Ok(UpdateRoleCommand { id: role.id, name, description })
}

fn check_permission_part(v: &mut FieldViolations, field: &str, value: &str, wildcard: bool) -> String {
    let part = value.trim().to_lowercase();
    let ok = (1..=50).contains(&part.len())
        && (part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || (wildcard && part == "*"));
    if !ok {
        let extra = if wildcard { ", or *" } else { "" };
        v.add(field, format!("must be 1–50 characters of a-z, 0-9 and _{extra}"));
    }
    part
}

/// `CreatePermission`: resource and action in the catalogue's alphabet.
pub fn create_permission(req: pb::CreatePermissionRequest) -> Result<CreatePermissionCommand> {
    let mut v = FieldViolations::default();
    let resource = check_permission_part(&mut v, "resource", &req.resource, false);
    let action = check_permission_part(&mut v, "action", &req.action, true);
    let description = check_description(&mut v, "description", &req.description);
    v.into_result()?;
    Ok(CreatePermissionCommand { resource, action, description })
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_common::Error;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.iter().map(|(f, _)| f.to_owned()).collect(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn login_normalises_the_email_and_names_every_bad_field() {
        let ok = login(pb::LoginRequest { email: " A@B.de ".into(), password: "x".into() }).expect("valid");
        assert_eq!(ok.email, "a@b.de");
        let err = login(pb::LoginRequest { email: "nope".into(), password: String::new() }).err().expect("invalid");
        assert_eq!(fields(err), ["email", "password"]);
    }

    #[test]
    fn change_password_requires_a_strong_different_password() {
        let err = change_password(pb::ChangePasswordRequest {
            current_password: "Old-pass1".into(),
            new_password: "weak".into(),
        })
        .err()
        .expect("weak");
        assert_eq!(fields(err), ["new_password"]);
        let err = change_password(pb::ChangePasswordRequest {
            current_password: "Same-pass1".into(),
            new_password: "Same-pass1".into(),
        })
        .err()
        .expect("same");
        assert_eq!(fields(err), ["new_password"]);
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
        assert_eq!(fields(err), ["email", "username", "password", "role_names[1]"]);
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
        assert_eq!(fields(update_account(req(&[])).expect_err("empty mask")), ["update_mask"]);
        assert_eq!(fields(update_account(req(&["active"])).expect_err("unknown path")), ["update_mask"]);
        let cmd = update_account(req(&["email", "username"])).expect("valid");
        assert_eq!(cmd.email.as_deref(), Some("a@b.de"));
        assert_eq!(cmd.username, Some(None), "an empty username clears it");
    }

    #[test]
    fn permissions_need_an_effect() {
        let req = pb::SetAccountPermissionRequest { account_id: 1, permission: "users:read".into(), effect: 0 };
        assert_eq!(fields(set_account_permission(&req).expect_err("unspecified")), ["effect"]);
        let req = pb::SetAccountPermissionRequest { account_id: 0, permission: "users".into(), effect: 2 };
        assert_eq!(fields(set_account_permission(&req).expect_err("bad")), ["account_id", "permission"]);
    }

    #[test]
    fn password_reset_requests_name_their_bad_fields() {
        let err = start_password_reset(&pb::StartPasswordResetRequest { email: "nope".into() }).expect_err("bad");
        assert_eq!(fields(err), ["email"]);
        let ok = start_password_reset(&pb::StartPasswordResetRequest { email: " A@B.de".into() }).expect("ok");
        assert_eq!(ok, "a@b.de");
        let err =
            confirm_password_reset(pb::ConfirmPasswordResetRequest { token: " ".into(), new_password: "weak".into() })
                .err()
                .expect("bad");
        assert_eq!(fields(err), ["token", "new_password"]);
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
