//! The tonic `phoenix.auth.v1.AccountService`: account administration. Every method needs
//! `auth:manage` (declared in [`METHODS`]); each writing RPC is one transaction.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{AuthContext, MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Reply, Result};
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response};

use crate::convert;
use crate::repo::{self, RevokeReason};
use crate::service::hash_password;
use crate::validate;

/// What each `AccountService` method requires: `auth:manage` throughout. (Not `users:*`:
/// staff hold `users:create/update` for pupils and persons, which must not let them
/// create, rename or switch off logins.)
pub const METHODS: MethodTable = &[
    ("/phoenix.auth.v1.AccountService/CreateAccount", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/GetAccount", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/ListAccounts", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/UpdateAccount", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/ActivateAccount", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/DeactivateAccount", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/AddAccountRole", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/RemoveAccountRole", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/SetAccountPermission", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/RemoveAccountPermission", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.AccountService/GetAccountPermissions", Requirement::Permission("auth:manage")),
];

/// The account administration service.
#[derive(Clone)]
pub struct AccountApi {
    pool: DbPool,
}

impl std::fmt::Debug for AccountApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountApi").finish_non_exhaustive()
    }
}

impl AccountApi {
    /// A service over `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// The account as the API shows it, or `NotFound`.
async fn load(conn: &mut AsyncPgConnection, id: i64) -> Result<pb::Account> {
    let account = repo::find_account(conn, id).await?.ok_or_else(|| Error::not_found("account", id))?;
    let roles = repo::role_names(conn, id).await?;
    Ok(convert::account(&account, roles))
}

async fn require_account(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    repo::find_account(conn, id).await?.map(|_| ()).ok_or_else(|| Error::not_found("account", id))
}

/// A role named in a request: `InvalidArgument` on `field` when it does not exist.
async fn role_id(conn: &mut AsyncPgConnection, field: &str, name: &str) -> Result<i64> {
    repo::role_id(conn, name).await?.ok_or_else(|| Error::invalid(field, format!("role {name:?} does not exist")))
}

async fn permissions_of(conn: &mut AsyncPgConnection, account_id: i64) -> Result<pb::AccountPermissions> {
    let (granted, denied) = repo::direct_permissions(conn, account_id).await?;
    let effective = repo::effective_permissions(conn, account_id).await?;
    Ok(pb::AccountPermissions { account_id, granted, denied, effective })
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for AccountApi {
    async fn create_account(&self, request: Request<pb::CreateAccountRequest>) -> Reply<pb::CreateAccountResponse> {
        let cmd = validate::create_account(request.into_inner())?;
        let password_hash = match cmd.password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let mut conn = db::conn(&self.pool).await?;
        let account = conn
            .transaction::<_, Error, _>(async move |conn| {
                let id =
                    repo::insert_account(conn, &cmd.email, cmd.username.as_deref(), password_hash.as_deref()).await?;
                for (i, name) in cmd.role_names.iter().enumerate() {
                    let role = role_id(conn, &format!("role_names[{i}]"), name).await?;
                    repo::add_account_role(conn, id, role).await?;
                }
                load(conn, id).await
            })
            .await?;
        tracing::info!(account_id = account.id, "account created");
        Ok(Response::new(pb::CreateAccountResponse { account: Some(account) }))
    }

    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Reply<pb::GetAccountResponse> {
        let id = validate::id("account_id", request.get_ref().account_id)?;
        let mut conn = db::conn(&self.pool).await?;
        Ok(Response::new(pb::GetAccountResponse { account: Some(load(&mut conn, id).await?) }))
    }

    async fn list_accounts(&self, request: Request<pb::ListAccountsRequest>) -> Reply<pb::ListAccountsResponse> {
        let query = validate::list_accounts(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) =
            repo::list_accounts(&mut conn, &query.filter, query.page.after_id()?, query.page.fetch_limit()).await?;
        let (rows, next_page_token) = query.page.finish(rows, |a| a.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
        let mut roles = repo::roles_of_accounts(&mut conn, &ids).await?;
        let accounts = rows.iter().map(|a| convert::account(a, roles.remove(&a.id).unwrap_or_default())).collect();
        Ok(Response::new(pb::ListAccountsResponse {
            accounts,
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn update_account(&self, request: Request<pb::UpdateAccountRequest>) -> Reply<pb::UpdateAccountResponse> {
        let cmd = validate::update_account(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let account = conn
            .transaction::<_, Error, _>(async move |conn| {
                let username = cmd.username.as_ref().map(|u| u.as_deref());
                if !repo::update_account(conn, cmd.id, cmd.email.as_deref(), username).await? {
                    return Err(Error::not_found("account", cmd.id));
                }
                load(conn, cmd.id).await
            })
            .await?;
        tracing::info!(account_id = account.id, "account updated");
        Ok(Response::new(pb::UpdateAccountResponse { account: Some(account) }))
    }

    async fn activate_account(
        &self,
        request: Request<pb::ActivateAccountRequest>,
    ) -> Reply<pb::ActivateAccountResponse> {
        let id = validate::id("account_id", request.get_ref().account_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let account = conn
            .transaction::<_, Error, _>(async move |conn| {
                if !repo::set_active(conn, id, true).await? {
                    return Err(Error::not_found("account", id));
                }
                load(conn, id).await
            })
            .await?;
        tracing::info!(account_id = id, "account activated");
        Ok(Response::new(pb::ActivateAccountResponse { account: Some(account) }))
    }

    async fn deactivate_account(
        &self,
        request: Request<pb::DeactivateAccountRequest>,
    ) -> Reply<pb::DeactivateAccountResponse> {
        let caller = AuthContext::of(&request)?.account_id().ok();
        let id = validate::id("account_id", request.get_ref().account_id)?;
        if caller == Some(id) {
            return Err(Error::precondition("SELF_DEACTIVATION", "you cannot deactivate your own account").into());
        }
        let mut conn = db::conn(&self.pool).await?;
        let (account, revoked) = conn
            .transaction::<_, Error, _>(async move |conn| {
                if !repo::set_active(conn, id, false).await? {
                    return Err(Error::not_found("account", id));
                }
                let revoked = repo::revoke_account_families(conn, id, None, RevokeReason::AccountDeactivated).await?;
                Ok((load(conn, id).await?, revoked))
            })
            .await?;
        tracing::info!(account_id = id, revoked, "account deactivated");
        Ok(Response::new(pb::DeactivateAccountResponse {
            account: Some(account),
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    async fn add_account_role(&self, request: Request<pb::AddAccountRoleRequest>) -> Reply<pb::AddAccountRoleResponse> {
        let (id, name) = validate::account_role(request.get_ref().account_id, &request.get_ref().role_name)?;
        let mut conn = db::conn(&self.pool).await?;
        let account = conn
            .transaction::<_, Error, _>(async move |conn| {
                require_account(conn, id).await?;
                let role = role_id(conn, "role_name", &name).await?;
                repo::add_account_role(conn, id, role).await?;
                load(conn, id).await
            })
            .await?;
        tracing::info!(account_id = id, "account role added");
        Ok(Response::new(pb::AddAccountRoleResponse { account: Some(account) }))
    }

    async fn remove_account_role(
        &self,
        request: Request<pb::RemoveAccountRoleRequest>,
    ) -> Reply<pb::RemoveAccountRoleResponse> {
        let (id, name) = validate::account_role(request.get_ref().account_id, &request.get_ref().role_name)?;
        let mut conn = db::conn(&self.pool).await?;
        let account = conn
            .transaction::<_, Error, _>(async move |conn| {
                require_account(conn, id).await?;
                let role = role_id(conn, "role_name", &name).await?;
                repo::remove_account_role(conn, id, role).await?;
                load(conn, id).await
            })
            .await?;
        tracing::info!(account_id = id, "account role removed");
        Ok(Response::new(pb::RemoveAccountRoleResponse { account: Some(account) }))
    }

    async fn set_account_permission(
        &self,
        request: Request<pb::SetAccountPermissionRequest>,
    ) -> Reply<pb::SetAccountPermissionResponse> {
        let (id, permission, granted) = validate::set_account_permission(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let permissions = conn
            .transaction::<_, Error, _>(async move |conn| {
                require_account(conn, id).await?;
                let pid = repo::permission_id(conn, &permission).await?.ok_or_else(|| {
                    Error::invalid("permission", format!("permission {permission:?} is not in the catalogue"))
                })?;
                repo::set_direct_permission(conn, id, pid, granted).await?;
                permissions_of(conn, id).await
            })
            .await?;
        tracing::info!(account_id = id, granted, "account permission set");
        Ok(Response::new(pb::SetAccountPermissionResponse { permissions: Some(permissions) }))
    }

    async fn remove_account_permission(
        &self,
        request: Request<pb::RemoveAccountPermissionRequest>,
    ) -> Reply<pb::RemoveAccountPermissionResponse> {
        let (id, permission) =
            validate::account_permission(request.get_ref().account_id, &request.get_ref().permission)?;
        let mut conn = db::conn(&self.pool).await?;
        let permissions = conn
            .transaction::<_, Error, _>(async move |conn| {
                require_account(conn, id).await?;
                if let Some(pid) = repo::permission_id(conn, &permission).await? {
                    repo::remove_direct_permission(conn, id, pid).await?;
                }
                permissions_of(conn, id).await
            })
            .await?;
        tracing::info!(account_id = id, "account permission removed");
        Ok(Response::new(pb::RemoveAccountPermissionResponse { permissions: Some(permissions) }))
    }

    async fn get_account_permissions(
        &self,
        request: Request<pb::GetAccountPermissionsRequest>,
    ) -> Reply<pb::GetAccountPermissionsResponse> {
        let id = validate::id("account_id", request.get_ref().account_id)?;
        let mut conn = db::conn(&self.pool).await?;
        require_account(&mut conn, id).await?;
        Ok(Response::new(pb::GetAccountPermissionsResponse { permissions: Some(permissions_of(&mut conn, id).await?) }))
    }
}
