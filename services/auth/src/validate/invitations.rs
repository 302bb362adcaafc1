//! Staff and guardian invitation requests (`InvitationService`).

use phoenix_common::{FieldViolations, Result};
use phoenix_proto::auth::v1 as pb;

use super::{check_email, check_new_password, check_role_name};

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

/// A validated `AcceptGuardianInvitation`.
#[derive(Clone)]
pub struct AcceptGuardianInvitationCommand {
    /// The one-time token.
    pub token: String,
    /// The new account's strong password.
    pub password: String,
}

/// `AcceptGuardianInvitation`: a token and a strong password.
pub fn accept_guardian_invitation(req: pb::AcceptGuardianInvitationRequest) -> Result<AcceptGuardianInvitationCommand> {
    let mut v = FieldViolations::default();
    let token = check_token(&mut v, "token", &req.token);
    check_new_password(&mut v, "password", &req.password);
    v.into_result()?;
    Ok(AcceptGuardianInvitationCommand { token, password: req.password })
}
