//! Role and permission-catalogue requests (`RoleService`).

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{finish, page, required_id};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::auth::v1 as pb;

use super::{check_permission, check_role_name};

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
