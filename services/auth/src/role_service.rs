//! The tonic `phoenix.auth.v1.RoleService`: roles and the permission catalogue. Permissions
//! per method are declared in [`crate::ROLE_METHODS`]; each writing RPC is one transaction.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::{Error, Result};
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::repo;
use crate::validate;

/// The role whose permissions are fixed: it holds `*:*`, and changing that could leave
/// nobody able to administer the school.
const ADMIN_ROLE: &str = "admin";

/// The roles and permissions service.
#[derive(Clone)]
pub struct RoleService {
    pool: DbPool,
}

impl std::fmt::Debug for RoleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleService").finish_non_exhaustive()
    }
}

impl RoleService {
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
impl pb::role_service_server::RoleService for RoleService {
    #[tracing::instrument(skip_all, name = "auth.CreateRole")]
    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let cmd = validate::create_role(request.into_inner())?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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

    #[tracing::instrument(skip_all, name = "auth.GetRole")]
    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::GetRoleResponse>, Status> {
        let id = validate::id("role_id", request.get_ref().role_id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        Ok(Response::new(pb::GetRoleResponse { role: Some(load(&mut conn, id).await?) }))
    }

    #[tracing::instrument(skip_all, name = "auth.ListRoles")]
    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let page = Page::parse(request.get_ref().page_size, &request.get_ref().page_token, "roles")?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let (rows, total) = repo::list_roles(&mut conn, page.after, page.size).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut perms = repo::permissions_of_roles(&mut conn, &ids).await?;
        Ok(Response::new(pb::ListRolesResponse {
            next_page_token: page.next_token(rows.len(), ids.last().copied(), "roles"),
            roles: rows.iter().map(|r| convert::role(r, perms.remove(&r.id).unwrap_or_default())).collect(),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(skip_all, name = "auth.UpdateRole")]
    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let cmd = validate::update_role(request.into_inner())?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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

    #[tracing::instrument(skip_all, name = "auth.DeleteRole")]
    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let id = validate::id("role_id", request.get_ref().role_id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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

    #[tracing::instrument(skip_all, name = "auth.AddRolePermission")]
    async fn add_role_permission(
        &self,
        request: Request<pb::AddRolePermissionRequest>,
    ) -> Result<Response<pb::AddRolePermissionResponse>, Status> {
        let (id, permission) = validate::role_permission(request.get_ref().role_id, &request.get_ref().permission)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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

    #[tracing::instrument(skip_all, name = "auth.RemoveRolePermission")]
    async fn remove_role_permission(
        &self,
        request: Request<pb::RemoveRolePermissionRequest>,
    ) -> Result<Response<pb::RemoveRolePermissionResponse>, Status> {
        let (id, permission) = validate::role_permission(request.get_ref().role_id, &request.get_ref().permission)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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

    #[tracing::instrument(skip_all, name = "auth.CreatePermission")]
    async fn create_permission(
        &self,
        request: Request<pb::CreatePermissionRequest>,
    ) -> Result<Response<pb::CreatePermissionResponse>, Status> {
        let cmd = validate::create_permission(request.into_inner())?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::insert_permission(&mut conn, &cmd.resource, &cmd.action, cmd.description.as_deref()).await?;
        Ok(Response::new(pb::CreatePermissionResponse { permission: Some(row.into()) }))
    }

    #[tracing::instrument(skip_all, name = "auth.ListPermissions")]
    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        let req = request.get_ref();
        let resource = req.resource.trim().to_lowercase();
        if resource.len() > 50 {
            return Err(Error::invalid("resource", "must be at most 50 characters").into());
        }
        let fingerprint = format!("permissions|{resource}");
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let filter = (!resource.is_empty()).then_some(resource.as_str());
        let (rows, total) = repo::list_permissions(&mut conn, filter, page.after, page.size).await?;
        let last = rows.last().map(|r| r.id);
        Ok(Response::new(pb::ListPermissionsResponse {
            next_page_token: page.next_token(rows.len(), last, &fingerprint),
            permissions: rows.into_iter().map(Into::into).collect(),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(skip_all, name = "auth.DeletePermission")]
    async fn delete_permission(
        &self,
        request: Request<pb::DeletePermissionRequest>,
    ) -> Result<Response<pb::DeletePermissionResponse>, Status> {
        let id = validate::id("permission_id", request.get_ref().permission_id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
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
