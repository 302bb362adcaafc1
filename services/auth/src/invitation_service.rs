//! The tonic `phoenix.auth.v1.InvitationService`: staff invitations (reference §2.6, its
//! [Q]s fixed: tokens stored hashed and never returned, a missing role is `InvalidArgument`,
//! a used invitation is `FailedPrecondition` everywhere). Each writing RPC is one
//! transaction; the token leaves only through an `auth.outbox` row written in it.

use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::AuthContext;
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::repo::{self, AuthEvent, InvitationRow, NewInvitation, Recipient};
use crate::service::{Client, hash_password};
use crate::tokens;
use crate::validate;

/// The staff invitation service.
#[derive(Clone)]
pub struct InvitationService {
    pool: DbPool,
    ttl: Duration,
}

impl std::fmt::Debug for InvitationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationService").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn used() -> Error {
    Error::precondition("INVITATION_USED", "this invitation was already accepted or revoked; ask for a new one")
}

fn expired() -> Error {
    Error::precondition("INVITATION_EXPIRED", "this invitation has expired; ask an administrator to resend it")
}

/// `NotFound` for an unknown token, `FailedPrecondition` for a used or expired invitation.
fn usable(row: Option<InvitationRow>) -> Result<InvitationRow> {
    let row = row.ok_or_else(|| Error::not_found("invitation", "with this token"))?;
    if row.used_at.is_some() {
        return Err(used());
    }
    if row.expires_at <= Utc::now() {
        return Err(expired());
    }
    Ok(row)
}

/// The name of the role with this id.
async fn role_name(conn: &mut AsyncPgConnection, role_id: i64) -> Result<String> {
    Ok(repo::role_names_by_id(conn, &[role_id]).await?.remove(&role_id).unwrap_or_default())
}

impl InvitationService {
    /// A service over `pool`; tokens live for `ttl`.
    pub fn new(pool: DbPool, ttl: Duration) -> Self {
        Self { pool, ttl }
    }

    fn expiry(&self) -> Result<chrono::DateTime<Utc>> {
        Ok(Utc::now() + chrono::Duration::from_std(self.ttl).map_err(anyhow::Error::from)?)
    }

    async fn create(&self, caller: i64, cmd: validate::CreateInvitationCommand) -> Result<pb::Invitation> {
        let expires_at = self.expiry()?;
        let mut conn = self.pool.get().await?;
        let (row, role, outbox_id) = conn
            .transaction::<_, Error, _>(async move |conn| {
                if repo::find_account_by_email(conn, &cmd.email).await?.is_some() {
                    return Err(Error::AlreadyExists("an account with this email already exists".into()));
                }
                let role_id = repo::role_id(conn, &cmd.role_name)
                    .await?
                    .ok_or_else(|| Error::invalid("role_name", format!("no role named {:?}", cmd.role_name)))?;
                repo::supersede_invitations(conn, &cmd.email).await?;
                let (token, hash) = tokens::new_opaque_token();
                let row = repo::insert_invitation(
                    conn,
                    NewInvitation {
                        email: &cmd.email,
                        role_id,
                        created_by: Some(caller),
                        first_name: cmd.first_name.as_deref(),
                        last_name: cmd.last_name.as_deref(),
                        position: cmd.position.as_deref(),
                        token_hash: &hash,
                        expires_at,
                    },
                )
                .await?;
                let payload =
                    serde_json::json!({ "token": token, "invitation_id": row.id, "expires_at": expires_at.to_rfc3339() });
                let outbox_id = repo::enqueue_message(conn, "invitation", Recipient::Invitation(row.id), payload).await?;
                Ok((row, cmd.role_name, outbox_id))
            })
            .await?;
        tracing::info!(invitation_id = row.id, outbox_id, "invitation queued for delivery");
        Ok(convert::invitation(&row, role))
    }

    async fn list(&self, req: &pb::ListInvitationsRequest) -> Result<pb::ListInvitationsResponse> {
        let page = Page::parse(req.page_size, &req.page_token, "")?;
        let mut conn = self.pool.get().await?;
        let (rows, total) = repo::list_pending_invitations(&mut conn, page.after, page.size).await?;
        let role_ids: Vec<i64> = rows.iter().map(|r| r.role_id).collect();
        let mut names = repo::role_names_by_id(&mut conn, &role_ids).await?;
        let next_page_token = page.next_token(rows.len(), rows.last().map(|r| r.id), "");
        Ok(pb::ListInvitationsResponse {
            invitations: rows
                .iter()
                .map(|r| convert::invitation(r, names.remove(&r.role_id).unwrap_or_default()))
                .collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    async fn resend(&self, id: i64) -> Result<pb::Invitation> {
        let expires_at = self.expiry()?;
        let mut conn = self.pool.get().await?;
        let (row, role, outbox_id) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row = repo::find_invitation_for_update(conn, id)
                    .await?
                    .ok_or_else(|| Error::not_found("invitation", id))?;
                if row.used_at.is_some() {
                    return Err(used());
                }
                let (token, hash) = tokens::new_opaque_token();
                let row = repo::renew_invitation(conn, id, &hash, expires_at).await?;
                let payload =
                    serde_json::json!({ "token": token, "invitation_id": row.id, "expires_at": expires_at.to_rfc3339() });
                let outbox_id = repo::enqueue_message(conn, "invitation", Recipient::Invitation(row.id), payload).await?;
                let role = role_name(conn, row.role_id).await?;
                Ok((row, role, outbox_id))
            })
            .await?;
        tracing::info!(invitation_id = row.id, outbox_id, "invitation re-sent");
        Ok(convert::invitation(&row, role))
    }

    async fn revoke(&self, id: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, Error, _>(async move |conn| {
            let row =
                repo::find_invitation_for_update(conn, id).await?.ok_or_else(|| Error::not_found("invitation", id))?;
            if row.used_at.is_some() {
                return Err(used());
            }
            repo::use_invitation(conn, id).await
        })
        .await?;
        tracing::info!(invitation_id = id, "invitation revoked");
        Ok(())
    }

    async fn lookup(&self, token: &str) -> Result<pb::Invitation> {
        let mut conn = self.pool.get().await?;
        let row = usable(repo::find_invitation_by_token(&mut conn, &tokens::hash_token(token)).await?)?;
        let role = role_name(&mut conn, row.role_id).await?;
        Ok(convert::invitation(&row, role))
    }

    async fn accept(
        &self,
        client: Client,
        cmd: validate::AcceptInvitationCommand,
    ) -> Result<pb::AcceptInvitationResponse> {
        let hash = tokens::hash_token(&cmd.token);
        let mut conn = self.pool.get().await?;
        // Checked before the (deliberately slow) password hashing, and again under the lock.
        let row = usable(repo::find_invitation_by_token(&mut conn, &hash).await?)?;
        let (first_name, last_name) = names(&cmd, &row)?;
        let password_hash = hash_password(cmd.password).await?;
        let (account_id, ids) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row = usable(repo::find_invitation_by_token(conn, &hash).await?)?;
                let account_id = repo::insert_account(conn, &row.email, None, Some(&password_hash)).await?;
                repo::add_account_role(conn, account_id, row.role_id).await?;
                let ids = repo::insert_staff_person(conn, account_id, &first_name, &last_name, row.position.as_deref())
                    .await?;
                repo::use_invitation(conn, row.id).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    metadata: serde_json::json!({ "invitation_id": row.id, "person_id": ids.person_id }),
                    ..client.event("invitation_accepted", true)
                };
                repo::insert_auth_event(conn, ev).await?;
                Ok((account_id, ids))
            })
            .await?;
        tracing::info!(account_id, person_id = ids.person_id, staff_id = ids.staff_id, "invitation accepted");
        Ok(pb::AcceptInvitationResponse { account_id, person_id: ids.person_id, staff_id: ids.staff_id })
    }
}

/// The names from the request, each falling back to the invitation's; both required.
fn names(cmd: &validate::AcceptInvitationCommand, row: &InvitationRow) -> Result<(String, String)> {
    let first = cmd.first_name.clone().or_else(|| row.first_name.clone());
    let last = cmd.last_name.clone().or_else(|| row.last_name.clone());
    let mut v = FieldViolations::default();
    if first.is_none() {
        v.add("first_name", "is required (the invitation has none)");
    }
    if last.is_none() {
        v.add("last_name", "is required (the invitation has none)");
    }
    v.into_result()?;
    Ok((first.unwrap_or_default(), last.unwrap_or_default()))
}

#[tonic::async_trait]
impl pb::invitation_service_server::InvitationService for InvitationService {
    #[tracing::instrument(skip_all, name = "auth.CreateInvitation")]
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let caller = AuthContext::of(&request)?.account_id()?;
        let cmd = validate::create_invitation(request.into_inner())?;
        let invitation = self.create(caller, cmd).await?;
        Ok(Response::new(pb::CreateInvitationResponse { invitation: Some(invitation) }))
    }

    #[tracing::instrument(skip_all, name = "auth.ListInvitations")]
    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        Ok(Response::new(self.list(request.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, name = "auth.ResendInvitation")]
    async fn resend_invitation(
        &self,
        request: Request<pb::ResendInvitationRequest>,
    ) -> Result<Response<pb::ResendInvitationResponse>, Status> {
        let id = validate::id("invitation_id", request.get_ref().invitation_id)?;
        let invitation = self.resend(id).await?;
        Ok(Response::new(pb::ResendInvitationResponse { invitation: Some(invitation) }))
    }

    #[tracing::instrument(skip_all, name = "auth.RevokeInvitation")]
    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let id = validate::id("invitation_id", request.get_ref().invitation_id)?;
        self.revoke(id).await?;
        Ok(Response::new(pb::RevokeInvitationResponse {}))
    }

    #[tracing::instrument(skip_all, name = "auth.LookupInvitation")]
    async fn lookup_invitation(
        &self,
        request: Request<pb::LookupInvitationRequest>,
    ) -> Result<Response<pb::LookupInvitationResponse>, Status> {
        let token = validate::token("token", &request.get_ref().token)?;
        let invitation = self.lookup(&token).await?;
        Ok(Response::new(pb::LookupInvitationResponse { invitation: Some(invitation) }))
    }

    #[tracing::instrument(skip_all, name = "auth.AcceptInvitation")]
    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let client = Client::of(&request);
        let cmd = validate::accept_invitation(request.into_inner())?;
        Ok(Response::new(self.accept(client, cmd).await?))
    }
}
