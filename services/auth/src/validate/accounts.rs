//! Account administration requests (`AccountService`).

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{finish, page, required_id};
use phoenix_common::{FieldViolations, Result, password};
use phoenix_proto::auth::v1 as pb;

use super::{MAX_PASSWORD_LEN, check_email, check_permission, check_role_name};

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
