//! The tonic `phoenix.auth.v1.AuthService`; long because one tonic trait impl cannot be split
//! across files (login, token rotation and password reset each need their own transaction
//! and audit rows). The trait methods are the handlers: validate → (authorised by the
//! layer, see [`METHODS`]) → transaction through `repo` → convert.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{AuthContext, MethodTable, Principal, Requirement, SERVICE_SUBJECT_PREFIX};
use phoenix_common::client_addr::{self, ForwardingKey};
use phoenix_common::config::ServerSecret;
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::to_timestamp;
use phoenix_common::{Error, Reply, Result, password};
use phoenix_db::auth_events::AuthEventType;
use phoenix_proto::auth::v1 as pb;
use tonic::{Request, Response};

use crate::AuthOptions;
use crate::convert;
use crate::error;
use crate::error::ResetTokenProblem;
use crate::keys::Signer;
use crate::repo::{self, AuthEvent, Recipient, ResetTokenRow, RevokeReason};
use crate::throttle::FailureLimiter;
use crate::tokens::{self, Subject};
use crate::validate;

/// What each `AuthService` method requires (api.md: everything but login, refresh,
/// password reset, invitation acceptance, health and reflection is authenticated; public
/// keys and the client-credentials exchange are public by nature).
pub const METHODS: MethodTable = &[
    ("/phoenix.auth.v1.AuthService/Login", Requirement::Public),
    ("/phoenix.auth.v1.AuthService/Refresh", Requirement::Public),
    ("/phoenix.auth.v1.AuthService/Logout", Requirement::Authenticated),
    ("/phoenix.auth.v1.AuthService/WhoAmI", Requirement::Authenticated),
    ("/phoenix.auth.v1.AuthService/ChangePassword", Requirement::Authenticated),
    ("/phoenix.auth.v1.AuthService/GetSigningKeys", Requirement::Public),
    ("/phoenix.auth.v1.AuthService/ExchangeClientCredentials", Requirement::Public),
    ("/phoenix.auth.v1.AuthService/StartPasswordReset", Requirement::Public),
    ("/phoenix.auth.v1.AuthService/ConfirmPasswordReset", Requirement::Public),
];

/// Who sent a request: kept for throttling and the audit trail.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

impl Client {
    /// The real caller: the address the gateway signed for it when `key` verifies the
    /// header ([`phoenix_common::client_addr`]), else the TCP peer. Plain forwarded headers
    /// are never trusted (reference §2.8 [Q]).
    pub(crate) fn at<T>(request: &Request<T>, key: Option<&ForwardingKey>) -> Self {
        let ip = client_addr::of(request, key);
        let user_agent =
            request.metadata().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
        Self { ip, user_agent }
    }

    pub(crate) fn event(&self, event_type: AuthEventType, success: bool) -> AuthEvent {
        AuthEvent {
            account_id: None,
            email_hash: None,
            client_id: None,
            event_type,
            success,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            error_message: None,
            metadata: serde_json::json!({}),
        }
    }
}

struct State {
    pool: DbPool,
    secret: ServerSecret,
    signer: Signer,
    options: AuthOptions,
    /// Keyed by the email's HMAC (no plain emails in memory longer than a request).
    email_failures: FailureLimiter<[u8; 32]>,
    address_failures: FailureLimiter<IpAddr>,
    /// Failed credential exchanges per (client id, address): a service's own renewals are
    /// never throttled by failed logins, nor by someone else guessing its secret.
    client_failures: FailureLimiter<(String, Option<IpAddr>)>,
    /// Verified against for unknown emails, so they cost the same as known ones.
    dummy_hash: String,
}

/// The auth service. Cheap to clone.
#[derive(Clone)]
pub struct AuthApi {
    state: Arc<State>,
}

impl std::fmt::Debug for AuthApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthApi").field("kid", &self.state.signer.kid).finish_non_exhaustive()
    }
}

/// Login outcome decided inside a transaction; errors that must still commit (the
/// failure counter, the audit row) are returned as values, not `Err`, so they persist.
enum Committed<T> {
    Ok(T),
    Rejected(Error),
}

impl AuthApi {
    /// A service signing with `signer`.
    pub fn new(pool: DbPool, secret: ServerSecret, signer: Signer, options: AuthOptions) -> anyhow::Result<Self> {
        let dummy_hash = password::hash(&tokens::new_opaque_token().0)?;
        let state = State {
            email_failures: FailureLimiter::new(options.failures_per_email, options.failure_window),
            address_failures: FailureLimiter::new(options.failures_per_address, options.failure_window),
            client_failures: FailureLimiter::new(options.failures_per_client, options.failure_window),
            pool,
            secret,
            signer,
            options,
            dummy_hash,
        };
        Ok(Self { state: Arc::new(state) })
    }

    fn check_throttles(&self, client: &Client, email_hash: Option<&[u8; 32]>) -> Result<()> {
        if let Some(ip) = &client.ip {
            self.state.address_failures.check(ip).map_err(error::throttled)?;
        }
        if let Some(h) = email_hash {
            self.state.email_failures.check(h).map_err(error::throttled)?;
        }
        Ok(())
    }

    /// The caller of `request` (see [`Client::at`]).
    fn client<T>(&self, request: &Request<T>) -> Client {
        Client::at(request, self.state.options.forwarding_key.as_ref())
    }

    fn count_failure(&self, client: &Client, email_hash: Option<&[u8; 32]>) {
        if let Some(ip) = &client.ip {
            self.state.address_failures.record_failure(ip);
        }
        if let Some(h) = email_hash {
            self.state.email_failures.record_failure(h);
        }
    }
}

/// The token subject of an account's session `family`: its roles and effective permissions.
async fn subject(conn: &mut AsyncPgConnection, account_id: i64, family: uuid::Uuid) -> Result<Subject> {
    Ok(Subject {
        sub: account_id.to_string(),
        roles: repo::role_names(conn, account_id).await?,
        permissions: repo::effective_permissions(conn, account_id).await?,
        session_id: Some(family),
    })
}

fn reset_token_problem(row: Option<&ResetTokenRow>) -> Option<ResetTokenProblem> {
    match row {
        None => Some(ResetTokenProblem::Unknown),
        Some(r) if r.used_at.is_some() => Some(ResetTokenProblem::Used),
        Some(r) if r.expires_at <= Utc::now() => Some(ResetTokenProblem::Expired),
        Some(_) => None,
    }
}

/// A configured lifetime as a `chrono` duration.
fn duration(d: std::time::Duration) -> Result<chrono::Duration> {
    Ok(chrono::Duration::from_std(d).map_err(anyhow::Error::from)?)
}

/// A revoked-session count as the API reports it.
fn session_count(revoked: usize) -> i32 {
    i32::try_from(revoked).unwrap_or(i32::MAX)
}

/// argon2 verification off the async runtime (it takes tens of milliseconds by design),
/// within the process's hash bound: `ResourceExhausted` + RetryInfo when it is full.
async fn verify_password(password: String, hash: String) -> Result<bool> {
    password::verify_async(password, hash).await
}

/// argon2 hashing off the async runtime, within the process's hash bound.
pub(crate) async fn hash_password(password: String) -> Result<String> {
    password::hash_async(password).await
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for AuthApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let client = self.client(&request);
        let cmd = validate::login(request.into_inner())?;
        let st = &self.state;
        let email_hash = st.secret.hmac_sha256(cmd.email.as_bytes());
        let mut conn = db::conn(&st.pool).await?;
        if let Err(e) = self.check_throttles(&client, Some(&email_hash)) {
            let ev = AuthEvent {
                email_hash: Some(email_hash),
                error_message: Some("throttled"),
                ..client.event(AuthEventType::Login, false)
            };
            repo::insert_auth_event(&mut conn, ev).await?;
            return Err(e.into());
        }
        let account = repo::find_account_by_email(&mut conn, &cmd.email).await?;
        let now = Utc::now();
        if let Some(a) = &account
            && let Some(until) = a.login_locked_until.filter(|u| *u > now)
        {
            let ev = AuthEvent {
                account_id: Some(a.id),
                error_message: Some("locked"),
                ..client.event(AuthEventType::Login, false)
            };
            repo::insert_auth_event(&mut conn, ev).await?;
            return Err(error::throttled((until - now).to_std().unwrap_or_default()).into());
        }
        // Always one argon2 verification, against a dummy hash when there is no account or
        // no password, so timing does not tell known from unknown emails.
        let hash = account.as_ref().and_then(|a| a.password_hash.clone()).unwrap_or_else(|| st.dummy_hash.clone());
        // No pooled connection is held while waiting for the hash bound.
        drop(conn);
        let verified = verify_password(cmd.password, hash).await?;
        let mut conn = db::conn(&st.pool).await?;

        let Some(account) = account else {
            self.count_failure(&client, Some(&email_hash));
            let ev = AuthEvent {
                email_hash: Some(email_hash),
                error_message: Some("unknown email"),
                ..client.event(AuthEventType::Login, false)
            };
            repo::insert_auth_event(&mut conn, ev).await?;
            return Err(error::invalid_credentials().into());
        };
        let account_id = account.id;
        if !verified || account.password_hash.is_none() {
            self.count_failure(&client, Some(&email_hash));
            let (threshold, lock_for) = (st.options.lockout_threshold, duration(st.options.lockout_duration)?);
            let client = client.clone();
            conn.transaction::<_, Error, _>(async move |conn| {
                let locked = repo::record_login_failure(conn, account_id, threshold, lock_for).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    error_message: Some("wrong password"),
                    ..client.event(AuthEventType::Login, false)
                };
                repo::insert_auth_event(conn, ev).await?;
                if let Some(until) = locked {
                    let ev = AuthEvent {
                        account_id: Some(account_id),
                        metadata: serde_json::json!({ "locked_until": until.to_rfc3339() }),
                        ..client.event(AuthEventType::AccountLocked, true)
                    };
                    repo::insert_auth_event(conn, ev).await?;
                    tracing::warn!(account_id, "account locked after repeated failed logins");
                }
                Ok(())
            })
            .await?;
            return Err(error::invalid_credentials().into());
        }
        if !account.active {
            let ev = AuthEvent {
                account_id: Some(account_id),
                error_message: Some("account inactive"),
                ..client.event(AuthEventType::Login, false)
            };
            repo::insert_auth_event(&mut conn, ev).await?;
            return Err(error::account_inactive().into());
        }

        let (refresh, refresh_hash) = tokens::new_opaque_token();
        let family = uuid::Uuid::new_v4();
        let refresh_expires = now + duration(st.options.refresh_token_ttl)?;
        let subject = conn
            .transaction::<_, Error, _>(async move |conn| {
                repo::record_login_success(conn, account_id).await?;
                repo::insert_refresh_token(conn, account_id, &refresh_hash, family, 0, refresh_expires).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    metadata: serde_json::json!({ "family_id": family }),
                    ..client.event(AuthEventType::Login, true)
                };
                repo::insert_auth_event(conn, ev).await?;
                subject(conn, account_id, family).await
            })
            .await?;
        st.email_failures.reset(&email_hash);
        tracing::info!(account_id, "login");
        let access = tokens::issue_access_token(&st.signer, subject, st.options.access_token_ttl)?;
        Ok(Response::new(pb::LoginResponse { tokens: Some(convert::token_pair(access, refresh, refresh_expires)) }))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Reply<pb::RefreshResponse> {
        let client = self.client(&request);
        let token = validate::refresh_token("refresh_token", &request.get_ref().refresh_token)?;
        let st = &self.state;
        let presented = tokens::hash_token(&token);
        let (next, next_hash) = tokens::new_opaque_token();
        let ttl = duration(st.options.refresh_token_ttl)?;
        let mut conn = db::conn(&st.pool).await?;
        let outcome = conn
            .transaction::<_, Error, _>(async move |conn| {
                let Some(row) = repo::find_token_for_update(conn, &presented).await? else {
                    return Ok(Committed::Rejected(error::invalid_refresh_token("is not valid")));
                };
                let now = Utc::now();
                let event = |event_type, success, why| AuthEvent {
                    account_id: Some(row.account_id),
                    error_message: why,
                    metadata: serde_json::json!({ "family_id": row.family_id, "generation": row.generation }),
                    ..client.event(event_type, success)
                };
                if row.revoked_at.is_some() {
                    repo::insert_auth_event(conn, event(AuthEventType::TokenRefresh, false, Some("revoked"))).await?;
                    return Ok(Committed::Rejected(error::invalid_refresh_token("has been revoked")));
                }
                if row.used_at.is_some() {
                    // Reuse of a rotated token: someone else may hold its successor. End the
                    // whole family, including the newest token (reference §2.4 [R]).
                    repo::revoke_family(conn, row.family_id, RevokeReason::ReuseDetected).await?;
                    let ev = event(AuthEventType::TokenReuseDetected, false, Some("reused refresh token"));
                    repo::insert_auth_event(conn, ev).await?;
                    tracing::warn!(account_id = row.account_id, family_id = %row.family_id, "refresh token reuse; family revoked");
                    return Ok(Committed::Rejected(error::invalid_refresh_token(
                        "was already used; the session has been ended for safety",
                    )));
                }
                if row.expires_at <= now {
                    repo::insert_auth_event(conn, event(AuthEventType::TokenExpired, false, Some("expired"))).await?;
                    return Ok(Committed::Rejected(error::invalid_refresh_token("has expired")));
                }
                let active = repo::find_account(conn, row.account_id).await?.is_some_and(|a| a.active);
                if !active {
                    repo::revoke_family(conn, row.family_id, RevokeReason::AccountDeactivated).await?;
                    let ev = event(AuthEventType::TokenRefresh, false, Some("account inactive"));
                    repo::insert_auth_event(conn, ev).await?;
                    return Ok(Committed::Rejected(error::invalid_refresh_token("belongs to an inactive account")));
                }
                repo::mark_token_used(conn, row.id).await?;
                let expires = now + ttl;
                repo::insert_refresh_token(conn, row.account_id, &next_hash, row.family_id, row.generation + 1, expires)
                    .await?;
                repo::insert_auth_event(conn, event(AuthEventType::TokenRefresh, true, None)).await?;
                let subject = subject(conn, row.account_id, row.family_id).await?;
                Ok(Committed::Ok((subject, expires)))
            })
            .await?;
        let (subject, expires) = match outcome {
            Committed::Ok(v) => v,
            Committed::Rejected(e) => return Err(e.into()),
        };
        let access = tokens::issue_access_token(&st.signer, subject, st.options.access_token_ttl)?;
        Ok(Response::new(pb::RefreshResponse { tokens: Some(convert::token_pair(access, next, expires)) }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        let client = self.client(&request);
        let caller_account = AuthContext::of(&request)?.account_id();
        let token = validate::refresh_token("refresh_token", &request.get_ref().refresh_token)?;
        let caller_account = caller_account?;
        let presented = tokens::hash_token(&token);
        let mut conn = db::conn(&self.state.pool).await?;
        conn.transaction::<_, Error, _>(async move |conn| {
            // Unknown tokens and other accounts' tokens: nothing to do, and nothing said
            // (logout is idempotent and must not confirm that a token exists).
            let Some(row) = repo::find_token_for_update(conn, &presented).await? else { return Ok(()) };
            if row.account_id != caller_account {
                return Ok(());
            }
            let revoked = repo::revoke_family(conn, row.family_id, RevokeReason::Logout).await?;
            let ev = AuthEvent {
                account_id: Some(row.account_id),
                metadata: serde_json::json!({ "family_id": row.family_id, "revoked_tokens": revoked }),
                ..client.event(AuthEventType::Logout, true)
            };
            repo::insert_auth_event(conn, ev).await
        })
        .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Reply<pb::WhoAmIResponse> {
        let caller = AuthContext::of(&request)?;
        let account_id = match &caller.principal {
            Principal::Service(client) => {
                return Ok(Response::new(pb::WhoAmIResponse {
                    service_client_id: client.clone(),
                    permissions: caller.permissions.clone(),
                    ..Default::default()
                }));
            }
            Principal::Account(id) => *id,
        };
        let mut conn = db::conn(&self.state.pool).await?;
        let account = repo::find_account(&mut conn, account_id)
            .await?
            .ok_or_else(|| Error::Unauthenticated("the token's account no longer exists".into()))?;
        let roles = repo::role_names(&mut conn, account_id).await?;
        let permissions = repo::effective_permissions(&mut conn, account_id).await?;
        let linked = repo::linked_ids(&mut conn, account_id).await?;
        Ok(Response::new(pb::WhoAmIResponse {
            account: Some(convert::account(&account, roles.clone())),
            service_client_id: String::new(),
            roles,
            permissions,
            person_id: linked.person_id,
            staff_id: linked.staff_id,
            teacher_id: linked.teacher_id,
            guardian_id: linked.guardian_id,
        }))
    }

    async fn change_password(&self, request: Request<pb::ChangePasswordRequest>) -> Reply<pb::ChangePasswordResponse> {
        let client = self.client(&request);
        let caller = AuthContext::of(&request)?;
        let (account_id, keep) = (caller.account_id(), caller.session_id);
        let cmd = validate::change_password(request.into_inner())?;
        let account_id = account_id?;
        let st = &self.state;
        let mut conn = db::conn(&st.pool).await?;
        let account = repo::find_account(&mut conn, account_id)
            .await?
            .ok_or_else(|| Error::Unauthenticated("the token's account no longer exists".into()))?;
        let email_hash = st.secret.hmac_sha256(account.email.as_bytes());
        // Guessing the current password here is throttled like guessing it at login.
        self.check_throttles(&client, Some(&email_hash))?;
        let hash = account.password_hash.clone().unwrap_or_else(|| st.dummy_hash.clone());
        if !verify_password(cmd.current_password, hash).await? || account.password_hash.is_none() {
            self.count_failure(&client, Some(&email_hash));
            return Err(Error::invalid("current_password", "does not match the account's password").into());
        }
        let new_hash = hash_password(cmd.new_password).await?;
        let revoked = conn
            .transaction::<_, Error, _>(async move |conn| {
                repo::set_password_hash(conn, account_id, &new_hash).await?;
                let revoked =
                    repo::revoke_account_families(conn, account_id, keep, RevokeReason::PasswordChanged).await?;
                let ev = AuthEvent {
                    account_id: Some(account_id),
                    metadata: serde_json::json!({ "revoked_sessions": revoked }),
                    ..client.event(AuthEventType::PasswordChanged, true)
                };
                repo::insert_auth_event(conn, ev).await?;
                Ok(revoked)
            })
            .await?;
        tracing::info!(account_id, revoked, "password changed");
        Ok(Response::new(pb::ChangePasswordResponse { revoked_session_count: session_count(revoked) }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<pb::GetSigningKeysRequest>,
    ) -> Reply<pb::GetSigningKeysResponse> {
        let mut conn = db::conn(&self.state.pool).await?;
        let keys = repo::verifying_keys(&mut conn).await?;
        Ok(Response::new(pb::GetSigningKeysResponse { keys: keys.into_iter().map(convert::signing_key).collect() }))
    }

    async fn exchange_client_credentials(
        &self,
        request: Request<pb::ExchangeClientCredentialsRequest>,
    ) -> Reply<pb::ExchangeClientCredentialsResponse> {
        let client = self.client(&request);
        let creds = validate::client_credentials(request.into_inner())?;
        let st = &self.state;
        let bucket = (creds.client_id.clone(), client.ip);
        st.client_failures.check(&bucket).map_err(error::throttled)?;
        let mut conn = db::conn(&st.pool).await?;
        let found = repo::find_service_client(&mut conn, &creds.client_id).await?;
        let hash = found.as_ref().map(|c| c.secret_hash.clone()).unwrap_or_else(|| st.dummy_hash.clone());
        drop(conn);
        let verified = verify_password(creds.client_secret, hash).await?;
        let mut conn = db::conn(&st.pool).await?;
        let Some(found) = found.filter(|c| verified && c.active) else {
            st.client_failures.record_failure(&bucket);
            tracing::warn!(client_id = %creds.client_id, "rejected client credentials");
            let ev = AuthEvent {
                client_id: Some(creds.client_id.clone()),
                error_message: Some("invalid_client"),
                ..client.event(AuthEventType::ServiceToken, false)
            };
            repo::insert_auth_event(&mut conn, ev).await?;
            return Err(error::invalid_client().into());
        };
        let subject = Subject {
            sub: format!("{SERVICE_SUBJECT_PREFIX}{}", found.client_id),
            roles: Vec::new(),
            permissions: found.permissions.clone(),
            session_id: None,
        };
        let access = tokens::issue_access_token(&st.signer, subject, st.options.service_token_ttl)?;
        let ev = AuthEvent {
            client_id: Some(found.client_id.clone()),
            metadata: serde_json::json!({ "expires_at": access.expires_at }),
            ..client.event(AuthEventType::ServiceToken, true)
        };
        repo::insert_auth_event(&mut conn, ev).await?;
        tracing::info!(client_id = %found.client_id, "service token issued");
        Ok(Response::new(pb::ExchangeClientCredentialsResponse {
            access_token: access.token,
            access_token_expire_time: Some(to_timestamp(access.expires_at)),
            token_type: "Bearer".into(),
            permissions: found.permissions,
        }))
    }

    /// Reference §2.6 with its [Q]s fixed: the per-email limit counts known and unknown
    /// emails alike (no enumeration through the 429), the token is stored hashed, and the
    /// request is audited. The token only leaves through the outbox row written in the same
    /// transaction; logs carry ids only.
    async fn start_password_reset(
        &self,
        request: Request<pb::StartPasswordResetRequest>,
    ) -> Reply<pb::StartPasswordResetResponse> {
        let client = self.client(&request);
        let email = validate::start_password_reset(request.get_ref())?;
        let st = &self.state;
        let email_hash = st.secret.hmac_sha256(email.as_bytes());
        let window = duration(st.options.password_reset_window)?;
        let ttl = duration(st.options.password_reset_ttl)?;
        let limit = i32::try_from(st.options.password_reset_requests).unwrap_or(i32::MAX);
        let mut conn = db::conn(&st.pool).await?;
        let outcome = conn
            .transaction::<_, Error, _>(async move |conn| {
                let (attempts, window_start) = repo::count_reset_request(conn, &email_hash, window).await?;
                let account = repo::find_account_by_email(conn, &email).await?.filter(|a| a.active);
                let mut ev = AuthEvent {
                    account_id: account.as_ref().map(|a| a.id),
                    email_hash: Some(email_hash),
                    ..client.event(AuthEventType::PasswordResetRequested, false)
                };
                if attempts > limit {
                    ev.error_message = Some("rate limited");
                    repo::insert_auth_event(conn, ev).await?;
                    let retry = (window_start + window - Utc::now()).to_std().unwrap_or_default();
                    return Ok(Committed::Rejected(error::reset_throttled(retry)));
                }
                let Some(account) = account else {
                    ev.error_message = Some("unknown or inactive email");
                    repo::insert_auth_event(conn, ev).await?;
                    return Ok(Committed::Ok(None));
                };
                repo::supersede_reset_tokens(conn, account.id).await?;
                let (token, hash) = tokens::new_opaque_token();
                let expires = Utc::now() + ttl;
                let token_id = repo::insert_reset_token(conn, account.id, &hash, expires).await?;
                let payload = serde_json::json!({
                    "token": token,
                    "reset_token_id": token_id,
                    "expires_at": expires.to_rfc3339(),
                });
                let message_id =
                    repo::enqueue_message(conn, "password_reset", Recipient::Account(account.id), payload).await?;
                ev.success = true;
                ev.metadata = serde_json::json!({ "reset_token_id": token_id, "outbox_id": message_id });
                repo::insert_auth_event(conn, ev).await?;
                Ok(Committed::Ok(Some((account.id, message_id))))
            })
            .await?;
        match outcome {
            Committed::Ok(Some((account_id, outbox_id))) => {
                tracing::info!(account_id, outbox_id, "password reset queued for delivery");
            }
            Committed::Ok(None) => {}
            Committed::Rejected(e) => return Err(e.into()),
        }
        Ok(Response::new(pb::StartPasswordResetResponse {}))
    }

    /// Sets the password, uses up the token and ends every session, in one transaction.
    /// Bad tokens count as failures of the client address (guessing is throttled).
    async fn confirm_password_reset(
        &self,
        request: Request<pb::ConfirmPasswordResetRequest>,
    ) -> Reply<pb::ConfirmPasswordResetResponse> {
        let client = self.client(&request);
        let cmd = validate::confirm_password_reset(request.into_inner())?;
        self.check_throttles(&client, None)?;
        let presented = tokens::hash_token(&cmd.token);
        let mut conn = db::conn(&self.state.pool).await?;
        // Checked before the (deliberately slow) hashing, and again under the row lock.
        let row = repo::find_reset_token_for_update(&mut conn, &presented).await?;
        if let Some(problem) = reset_token_problem(row.as_ref()) {
            self.count_failure(&client, None);
            if let Some(r) = &row {
                let why = if problem == ResetTokenProblem::Used { "token used" } else { "token expired" };
                let ev = AuthEvent {
                    account_id: Some(r.account_id),
                    error_message: Some(why),
                    ..client.event(AuthEventType::PasswordReset, false)
                };
                repo::insert_auth_event(&mut conn, ev).await?;
            }
            return Err(error::reset_token(problem).into());
        }
        let new_hash = hash_password(cmd.new_password).await?;
        let outcome = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row = repo::find_reset_token_for_update(conn, &presented).await?;
                if let Some(problem) = reset_token_problem(row.as_ref()) {
                    return Ok(Committed::Rejected(error::reset_token(problem)));
                }
                let Some(row) = row else {
                    return Ok(Committed::Rejected(error::reset_token(ResetTokenProblem::Unknown)));
                };
                repo::set_password_hash(conn, row.account_id, &new_hash).await?;
                repo::mark_reset_token_used(conn, row.id).await?;
                let revoked =
                    repo::revoke_account_families(conn, row.account_id, None, RevokeReason::PasswordReset).await?;
                let ev = AuthEvent {
                    account_id: Some(row.account_id),
                    metadata: serde_json::json!({ "reset_token_id": row.id, "revoked_sessions": revoked }),
                    ..client.event(AuthEventType::PasswordReset, true)
                };
                repo::insert_auth_event(conn, ev).await?;
                Ok(Committed::Ok((row.account_id, revoked)))
            })
            .await?;
        let (account_id, revoked) = match outcome {
            Committed::Ok(v) => v,
            Committed::Rejected(e) => return Err(e.into()),
        };
        tracing::info!(account_id, revoked, "password reset");
        Ok(Response::new(pb::ConfirmPasswordResetResponse { revoked_session_count: session_count(revoked) }))
    }
}
