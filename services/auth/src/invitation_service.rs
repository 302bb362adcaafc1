//! The tonic `phoenix.auth.v1.InvitationService`: staff invitations (tokens expire after
//! 48 h, are stored hashed and never returned; a missing role is `InvalidArgument`,
//! a used invitation is `FailedPrecondition` everywhere) and guardian invitations (a parent
//! account linked to its `users.guardians` record, issue #12). Only a staff invitation
//! ([`is_staff_role`]) creates a staff record. Each writing RPC is one transaction; the
//! token leaves only through an `auth.outbox` row written in it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{AuthContext, MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, FieldViolations, Reply, Result};
use phoenix_db::auth_events::AuthEventType;
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response};

use crate::convert;
use crate::repo::{self, AuthEvent, GuardianInvitationRow, InvitationRow, InvitedGuardian, NewInvitation, Recipient};
use crate::service::{Client, hash_password};
use crate::tokens;
use crate::validate;

/// What each `InvitationService` method requires: administration needs `auth:manage` (it
/// leads to a login, like `CreateAccount`); look-up and accept are public, the one-time
/// token being the credential.
pub const METHODS: MethodTable = &[
    ("/phoenix.auth.v1.InvitationService/CreateInvitation", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.InvitationService/ListInvitations", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.InvitationService/ResendInvitation", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.InvitationService/RevokeInvitation", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.InvitationService/LookupInvitation", Requirement::Public),
    ("/phoenix.auth.v1.InvitationService/AcceptInvitation", Requirement::Public),
    ("/phoenix.auth.v1.InvitationService/CreateGuardianInvitation", Requirement::Permission("auth:manage")),
    ("/phoenix.auth.v1.InvitationService/LookupGuardianInvitation", Requirement::Public),
    ("/phoenix.auth.v1.InvitationService/AcceptGuardianInvitation", Requirement::Public),
];

/// The role of every account a guardian invitation creates.
pub const GUARDIAN_ROLE: &str = "guardian";

/// Roles whose invitations create the account only. An invitation for any other role is a
/// staff invitation: accepting it also creates the person and `users.staff` record (and a
/// teacher record with a position), which every staff check of the other domains rests on
/// (`Caller::staff_id`: joining sessions, "my groups", transfers). A guest or a parent must
/// never pass those.
pub const NON_STAFF_ROLES: &[&str] = &[GUARDIAN_ROLE, "guest"];

/// Whether an invitation with the role `name` is a staff invitation (see [`NON_STAFF_ROLES`]).
pub fn is_staff_role(name: &str) -> bool {
    !NON_STAFF_ROLES.contains(&name)
}

/// The invitation service (staff and guardian invitations).
#[derive(Clone)]
pub struct InvitationApi {
    pool: DbPool,
    ttl: Duration,
    /// Verifies the client address the gateway forwards (audit rows record the real client).
    forwarding_key: Option<phoenix_common::client_addr::ForwardingKey>,
}

impl std::fmt::Debug for InvitationApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationApi").field("ttl", &self.ttl).finish_non_exhaustive()
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

/// `NotFound` for an unknown token, `FailedPrecondition` for an accepted or expired guardian
/// invitation (the same reasons as a staff invitation's).
fn usable_guardian_invitation(row: Option<GuardianInvitationRow>) -> Result<GuardianInvitationRow> {
    let row = row.ok_or_else(|| Error::not_found("guardian invitation", "with this token"))?;
    if row.accepted_at.is_some() {
        return Err(used());
    }
    if row.expires_at <= Utc::now() {
        return Err(expired());
    }
    Ok(row)
}

/// The guardian `id` and the email its account would sign in with: `NotFound` for an
/// unknown guardian, `FailedPrecondition` when it already has an account or has no email.
fn invitable_guardian(guardian: Option<InvitedGuardian>, id: i64) -> Result<(InvitedGuardian, String)> {
    let guardian = guardian.ok_or_else(|| Error::not_found("guardian", id))?;
    if guardian.account_id.is_some() {
        return Err(Error::precondition(
            "GUARDIAN_HAS_ACCOUNT",
            format!("guardian {id} already has an account; they sign in with it (or reset its password)"),
        ));
    }
    let email = guardian.email.clone().ok_or_else(|| {
        Error::precondition(
            "GUARDIAN_NO_EMAIL",
            format!("guardian {id} has no email; add one (users.v1 UpdateGuardian) and invite again"),
        )
    })?;
    Ok((guardian, email))
}

/// The name of the role with this id.
async fn role_name(conn: &mut AsyncPgConnection, role_id: i64) -> Result<String> {
    Ok(repo::role_names_by_id(conn, &[role_id]).await?.remove(&role_id).unwrap_or_default())
}

/// Queues the mail of invitation `id` carrying the one-time `token`; returns the outbox id.
async fn enqueue(conn: &mut AsyncPgConnection, id: i64, token: String, expires_at: DateTime<Utc>) -> Result<i64> {
    let payload = serde_json::json!({ "token": token, "invitation_id": id, "expires_at": expires_at.to_rfc3339() });
    repo::enqueue_message(conn, "invitation", Recipient::Invitation(id), payload).await
}

/// Queues the mail of guardian invitation `id` carrying the one-time `token`; returns the
/// outbox id.
async fn enqueue_guardian(
    conn: &mut AsyncPgConnection,
    id: i64,
    token: String,
    expires_at: DateTime<Utc>,
) -> Result<i64> {
    let payload =
        serde_json::json!({ "token": token, "guardian_invitation_id": id, "expires_at": expires_at.to_rfc3339() });
    repo::enqueue_message(conn, "guardian_invitation", Recipient::GuardianInvitation(id), payload).await
}

impl InvitationApi {
    /// A service over `pool`; tokens live for `ttl`; client addresses forwarded by the gateway
    /// are believed when signed with `forwarding_key`.
    pub fn new(
        pool: DbPool,
        ttl: Duration,
        forwarding_key: Option<phoenix_common::client_addr::ForwardingKey>,
    ) -> Self {
        Self { pool, ttl, forwarding_key }
    }

    fn expiry(&self) -> Result<DateTime<Utc>> {
        Ok(Utc::now() + chrono::Duration::from_std(self.ttl).map_err(anyhow::Error::from)?)
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
impl pb::invitation_service_server::InvitationService for InvitationApi {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Reply<pb::CreateInvitationResponse> {
        let caller = AuthContext::of(&request)?.account_id()?;
        let cmd = validate::create_invitation(request.into_inner())?;
        let expires_at = self.expiry()?;
        let mut conn = db::conn(&self.pool).await?;
        let (row, role, outbox_id) = conn
            .transaction::<_, Error, _>(async move |conn| {
                if repo::find_account_by_email(conn, &cmd.email).await?.is_some() {
                    return Err(Error::AlreadyExists("an account with this email already exists".into()));
                }
                if cmd.role_name == GUARDIAN_ROLE {
                    return Err(Error::invalid(
                        "role_name",
                        "guardians are invited with CreateGuardianInvitation, which links the account to them",
                    ));
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
                let outbox_id = enqueue(conn, row.id, token, expires_at).await?;
                Ok((row, cmd.role_name, outbox_id))
            })
            .await?;
        tracing::info!(invitation_id = row.id, outbox_id, "invitation queued for delivery");
        Ok(Response::new(pb::CreateInvitationResponse { invitation: Some(convert::invitation(&row, role)) }))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Reply<pb::ListInvitationsResponse> {
        let req = request.get_ref();
        let page = PageRequest::parse("invitations", "pending", req.page_size, &req.page_token)?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_pending_invitations(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        let role_ids: Vec<i64> = rows.iter().map(|r| r.role_id).collect();
        let mut names = repo::role_names_by_id(&mut conn, &role_ids).await?;
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: rows
                .iter()
                .map(|r| convert::invitation(r, names.remove(&r.role_id).unwrap_or_default()))
                .collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn resend_invitation(
        &self,
        request: Request<pb::ResendInvitationRequest>,
    ) -> Reply<pb::ResendInvitationResponse> {
        let id = validate::id("invitation_id", request.get_ref().invitation_id)?;
        let expires_at = self.expiry()?;
        let mut conn = db::conn(&self.pool).await?;
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
                let outbox_id = enqueue(conn, row.id, token, expires_at).await?;
                let role = role_name(conn, row.role_id).await?;
                Ok((row, role, outbox_id))
            })
            .await?;
        tracing::info!(invitation_id = row.id, outbox_id, "invitation re-sent");
        Ok(Response::new(pb::ResendInvitationResponse { invitation: Some(convert::invitation(&row, role)) }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Reply<pb::RevokeInvitationResponse> {
        let id = validate::id("invitation_id", request.get_ref().invitation_id)?;
        let mut conn = db::conn(&self.pool).await?;
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
        Ok(Response::new(pb::RevokeInvitationResponse {}))
    }

    async fn lookup_invitation(
        &self,
        request: Request<pb::LookupInvitationRequest>,
    ) -> Reply<pb::LookupInvitationResponse> {
        let token = validate::token("token", &request.get_ref().token)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = usable(repo::find_invitation_by_token(&mut conn, &tokens::hash_token(&token)).await?)?;
        let role = role_name(&mut conn, row.role_id).await?;
        Ok(Response::new(pb::LookupInvitationResponse { invitation: Some(convert::invitation(&row, role)) }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Reply<pb::AcceptInvitationResponse> {
        let client = Client::at(&request, self.forwarding_key.as_ref());
        let cmd = validate::accept_invitation(request.into_inner())?;
        let hash = tokens::hash_token(&cmd.token);
        let mut conn = db::conn(&self.pool).await?;
        // Checked before the (deliberately slow) password hashing, and again under the lock.
        let row = usable(repo::find_invitation_by_token(&mut conn, &hash).await?)?;
        // Only a staff invitation creates the person and staff record, so only it needs names.
        let staff = is_staff_role(&role_name(&mut conn, row.role_id).await?);
        let names = if staff { Some(names(&cmd, &row)?) } else { None };
        let password_hash = hash_password(cmd.password).await?;
        let (account_id, ids) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row = usable(repo::find_invitation_by_token(conn, &hash).await?)?;
                let account_id = repo::insert_account(conn, &row.email, None, Some(&password_hash)).await?;
                repo::add_account_role(conn, account_id, row.role_id).await?;
                let ids = match names {
                    Some((first, last)) => {
                        Some(repo::insert_staff_person(conn, account_id, &first, &last, row.position.as_deref()).await?)
                    }
                    None => None,
                };
                repo::use_invitation(conn, row.id).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    metadata: serde_json::json!({ "invitation_id": row.id, "person_id": ids.map(|i| i.person_id) }),
                    ..client.event(AuthEventType::InvitationAccepted, true)
                };
                repo::insert_auth_event(conn, ev).await?;
                Ok((account_id, ids))
            })
            .await?;
        let (person_id, staff_id) = ids.map_or((0, 0), |i| (i.person_id, i.staff_id));
        tracing::info!(account_id, person_id, staff_id, "invitation accepted");
        Ok(Response::new(pb::AcceptInvitationResponse { account_id, person_id, staff_id }))
    }

    async fn create_guardian_invitation(
        &self,
        request: Request<pb::CreateGuardianInvitationRequest>,
    ) -> Reply<pb::CreateGuardianInvitationResponse> {
        let caller = AuthContext::of(&request)?.account_id()?;
        let guardian_id = validate::id("guardian_id", request.get_ref().guardian_id)?;
        let expires_at = self.expiry()?;
        let mut conn = db::conn(&self.pool).await?;
        let (row, outbox_id) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let (_, email) =
                    invitable_guardian(repo::find_guardian_for_update(conn, guardian_id).await?, guardian_id)?;
                if repo::find_account_by_email(conn, &email).await?.is_some() {
                    return Err(Error::AlreadyExists("an account with this guardian's email already exists".into()));
                }
                repo::delete_pending_guardian_invitations(conn, guardian_id).await?;
                let (token, hash) = tokens::new_opaque_token();
                let row = repo::insert_guardian_invitation(conn, guardian_id, Some(caller), &hash, expires_at).await?;
                let outbox_id = enqueue_guardian(conn, row.id, token, expires_at).await?;
                Ok((row, outbox_id))
            })
            .await?;
        tracing::info!(
            guardian_invitation_id = row.id,
            guardian_id,
            outbox_id,
            "guardian invitation queued for delivery"
        );
        Ok(Response::new(pb::CreateGuardianInvitationResponse { invitation: Some(convert::guardian_invitation(&row)) }))
    }

    async fn lookup_guardian_invitation(
        &self,
        request: Request<pb::LookupGuardianInvitationRequest>,
    ) -> Reply<pb::LookupGuardianInvitationResponse> {
        let token = validate::token("token", &request.get_ref().token)?;
        let mut conn = db::conn(&self.pool).await?;
        let hash = tokens::hash_token(&token);
        let row = usable_guardian_invitation(repo::find_guardian_invitation_by_token(&mut conn, &hash).await?)?;
        let guardian = repo::find_guardian_for_update(&mut conn, row.guardian_id).await?;
        let (guardian, _) = invitable_guardian(guardian, row.guardian_id)?;
        Ok(Response::new(convert::guardian_invitation_lookup(&row, guardian)))
    }

    async fn accept_guardian_invitation(
        &self,
        request: Request<pb::AcceptGuardianInvitationRequest>,
    ) -> Reply<pb::AcceptGuardianInvitationResponse> {
        let client = Client::at(&request, self.forwarding_key.as_ref());
        let cmd = validate::accept_guardian_invitation(request.into_inner())?;
        let hash = tokens::hash_token(&cmd.token);
        let mut conn = db::conn(&self.pool).await?;
        // Checked before the (deliberately slow) password hashing, and again under the locks.
        usable_guardian_invitation(repo::find_guardian_invitation_by_token(&mut conn, &hash).await?)?;
        let password_hash = hash_password(cmd.password).await?;
        let (account_id, guardian_id) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row = usable_guardian_invitation(repo::find_guardian_invitation_by_token(conn, &hash).await?)?;
                let guardian = repo::find_guardian_for_update(conn, row.guardian_id).await?;
                let (guardian, email) = invitable_guardian(guardian, row.guardian_id)?;
                let role_id = repo::role_id(conn, GUARDIAN_ROLE)
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("the seeded role {GUARDIAN_ROLE:?} is missing")))?;
                let account_id = repo::insert_account(conn, &email, None, Some(&password_hash)).await?;
                repo::add_account_role(conn, account_id, role_id).await?;
                // The guardian row is locked above, so it cannot have been linked meanwhile.
                if !repo::link_guardian_account(conn, guardian.id, account_id).await? {
                    return Err(Error::Internal(anyhow::anyhow!("guardian {} was linked under its lock", guardian.id)));
                }
                repo::accept_guardian_invitation(conn, row.id).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    metadata: serde_json::json!({ "guardian_invitation_id": row.id, "guardian_id": guardian.id }),
                    ..client.event(AuthEventType::InvitationAccepted, true)
                };
                repo::insert_auth_event(conn, ev).await?;
                Ok((account_id, guardian.id))
            })
            .await?;
        tracing::info!(account_id, guardian_id, "guardian invitation accepted");
        Ok(Response::new(pb::AcceptGuardianInvitationResponse { account_id, guardian_id }))
    }
}
