//! The tonic `phoenix.auth.v1.RoleService`: roles and the permission catalogue. Permissions
//! per method are declared in [`METHODS`]; each writing RPC is one transaction.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, Reply, Result};
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response};

use crate::convert;
use crate::repo;
use crate::validate;

/// What each `RoleService` method requires (role ↔ permission methods on the seeded
/// `roles:manage`).
pub const METHODS: MethodTable = &[
    ("/phoenix.auth.v1.RoleService/CreateRole", Requirement::Permission("roles:create")),
    ("/phoenix.auth.v1.RoleService/GetRole", Requirement::Permission("roles:read")),
    ("/phoenix.auth.v1.RoleService/ListRoles", Requirement::Permission("roles:read")),
    ("/phoenix.auth.v1.RoleService/UpdateRole", Requirement::Permission("roles:update")),
    ("/phoenix.auth.v1.RoleService/DeleteRole", Requirement::Permission("roles:delete")),
    ("/phoenix.auth.v1.RoleService/AddRolePermission", Requirement::Permission("roles:manage")),
    ("/phoenix.auth.v1.RoleService/RemoveRolePermission", Requirement::Permission("roles:manage")),
    ("/phoenix.auth.v1.RoleService/CreatePermission", Requirement::Permission("permissions:create")),
    ("/phoenix.auth.v1.RoleService/ListPermissions", Requirement::Permission("permissions:read")),
    ("/phoenix.auth.v1.RoleService/DeletePermission", Requirement::Permission("permissions:delete")),
];

/// The role whose permissions are fixed: it holds `*:*`, and changing that could leave
/// nobody able to administer the school.
const ADMIN_ROLE: &str = "admin";

/// The roles and permissions service.
#[derive(Clone)]
pub struct RoleApi {
    pool: DbPool,
}

impl std::fmt::Debug for RoleApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleApi").finish_non_exhaustive()
    }
}

impl RoleApi {
    /// A service over `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

async fn find_role(conn: &mut AsyncPgConnection, id: i64) -> Result<repo::RoleRow> {
    repo::find_role(conn, id).await?.ok_or_else(|| Error::not_found("role", id))
}

async fn load(conn: &mut AsyncPgConnection, id: i64) -> Result<pb::Role> {
    let role = find_role(conn, id).await?;
    let mut perms = repo::permissions_of_roles(conn, &[id]).await?;
    Ok(convert::role(&role, perms.remove(&id).unwrap_or_default()))
}

/// A catalogue permission named in a request field, or `InvalidArgument` on that field.
async fn permission_id(conn: &mut AsyncPgConnection, field: &str, name: &str) -> Result<i64> {
    repo::permission_id(conn, name)
        .await?
        .ok_or_else(|| Error::invalid(field, format!("permission {name:?} is not in the catalogue")))
}

fn admin_role_fixed() -> Error {
    Error::precondition("ADMIN_ROLE_FIXED", "the admin role's permissions cannot be changed")
}

#[tonic::async_trait]
impl pb::role_service_server::RoleService for RoleApi {
    async fn create_role(&self, request: Request<pb::CreateRoleRequest>) -> Reply<pb::CreateRoleResponse> {
        let cmd = validate::create_role(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let role = conn
            .transaction::<_, Error, _>(async move |conn| {
                let id = repo::insert_role(conn, &cmd.name, cmd.description.as_deref()).await?;
                for (i, p) in cmd.permissions.iter().enumerate() {
                    let pid = permission_id(conn, &format!("permissions[{i}]"), p).await?;
                    repo::add_role_permission(conn, id, pid).await?;
                }
                load(conn, id).await
            })
            .await?;
        Ok(Response::new(pb::CreateRoleResponse { role: Some(role) }))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Reply<pb::GetRoleResponse> {
        let id = validate::id("role_id", request.get_ref().role_id)?;
        let mut conn = db::conn(&self.pool).await?;
        Ok(Response::new(pb::GetRoleResponse { role: Some(load(&mut conn, id).await?) }))
    }

    async fn list_roles(&self, request: Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        let page = PageRequest::parse("roles", "", request.get_ref().page_size, &request.get_ref().page_token)?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_roles(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut perms = repo::permissions_of_roles(&mut conn, &ids).await?;
        Ok(Response::new(pb::ListRolesResponse {
            next_page_token,
            roles: rows.iter().map(|r| convert::role(r, perms.remove(&r.id).unwrap_or_default())).collect(),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn update_role(&self, request: Request<pb::UpdateRoleRequest>) -> Reply<pb::UpdateRoleResponse> {
        let cmd = validate::update_role(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let role = conn
            .transaction::<_, Error, _>(async move |conn| {
                let current = find_role(conn, cmd.id).await?;
                if current.is_system && cmd.name.as_ref().is_some_and(|n| *n != current.name) {
                    return Err(Error::precondition(
                        "SYSTEM_ROLE",
                        format!("role {:?} is a system role and cannot be renamed", current.name),
                    ));
                }
                let description = cmd.description.as_ref().map(|d| d.as_deref());
                repo::update_role(conn, cmd.id, cmd.name.as_deref(), description).await?;
                load(conn, cmd.id).await
            })
            .await?;
        Ok(Response::new(pb::UpdateRoleResponse { role: Some(role) }))
    }

    async fn delete_role(&self, request: Request<pb::DeleteRoleRequest>) -> Reply<pb::DeleteRoleResponse> {
        let id = validate::id("role_id", request.get_ref().role_id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |conn| {
            let role = find_role(conn, id).await?;
            if role.is_system {
                return Err(Error::precondition(
                    "SYSTEM_ROLE",
                    format!("role {:?} is a system role and cannot be deleted", role.name),
                ));
            }
            repo::delete_role(conn, id).await
        })
        .await?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn add_role_permission(
        &self,
        request: Request<pb::AddRolePermissionRequest>,
    ) -> Reply<pb::AddRolePermissionResponse> {
        let (id, permission) = validate::role_permission(request.get_ref().role_id, &request.get_ref().permission)?;
        let mut conn = db::conn(&self.pool).await?;
        let role = conn
            .transaction::<_, Error, _>(async move |conn| {
                if find_role(conn, id).await?.name == ADMIN_ROLE {
                    return Err(admin_role_fixed());
                }
                let pid = permission_id(conn, "permission", &permission).await?;
                repo::add_role_permission(conn, id, pid).await?;
                load(conn, id).await
            })
            .await?;
        Ok(Response::new(pb::AddRolePermissionResponse { role: Some(role) }))
    }

    async fn remove_role_permission(
        &self,
        request: Request<pb::RemoveRolePermissionRequest>,
    ) -> Reply<pb::RemoveRolePermissionResponse> {
        let (id, permission) = validate::role_permission(request.get_ref().role_id, &request.get_ref().permission)?;
        let mut conn = db::conn(&self.pool).await?;
        let role = conn
            .transaction::<_, Error, _>(async move |conn| {
                if find_role(conn, id).await?.name == ADMIN_ROLE {
                    return Err(admin_role_fixed());
                }
                if let Some(pid) = repo::permission_id(conn, &permission).await? {
                    repo::remove_role_permission(conn, id, pid).await?;
                }
                load(conn, id).await
            })
            .await?;
        Ok(Response::new(pb::RemoveRolePermissionResponse { role: Some(role) }))
    }

    async fn create_permission(
        &self,
        request: Request<pb::CreatePermissionRequest>,
    ) -> Reply<pb::CreatePermissionResponse> {
        let cmd = validate::create_permission(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::insert_permission(&mut conn, &cmd.resource, &cmd.action, cmd.description.as_deref()).await?;
        tracing::info!(permission_id = row.id, "permission created");
        Ok(Response::new(pb::CreatePermissionResponse { permission: Some(convert::permission(row)) }))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Reply<pb::ListPermissionsResponse> {
        let (resource, page) = validate::list_permissions(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) =
            repo::list_permissions(&mut conn, resource.as_deref(), page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListPermissionsResponse {
            next_page_token,
            permissions: rows.into_iter().map(convert::permission).collect(),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn delete_permission(
        &self,
        request: Request<pb::DeletePermissionRequest>,
    ) -> Reply<pb::DeletePermissionResponse> {
        let id = validate::id("permission_id", request.get_ref().permission_id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |conn| {
            let p = repo::find_permission(conn, id).await?.ok_or_else(|| Error::not_found("permission", id))?;
            if p.is_system {
                return Err(Error::precondition(
                    "SYSTEM_PERMISSION",
                    format!("permission {:?} is a system permission and cannot be deleted", p.name),
                ));
            }
            repo::delete_permission(conn, id).await
        })
        .await?;
        Ok(Response::new(pb::DeletePermissionResponse {}))
    }
}
