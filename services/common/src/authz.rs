//! The one authorization layer every Phoenix service sits behind (api.md "Identity and
//! tokens", reference §3.3).
//!
//! - Each service declares, in one static [`MethodTable`] next to its handlers, what every
//!   RPC needs: [`Requirement::Public`], [`Requirement::Authenticated`] or one
//!   [`Requirement::Permission`]. A method missing from the table is refused, and a test
//!   (`tests/it/authz.rs`) fails for any proto method without a declaration.
//! - [`Authorized`] wraps a tonic server: it verifies the bearer token (EdDSA JWT) with the
//!   public keys of `auth.signing_keys` ([`TokenVerifier`], cached, reloaded on an unknown
//!   `kid` at most every few seconds), checks the declared permission (wildcards as
//!   reference §3.3), and hands the handler a typed [`AuthContext`] in the request
//!   extensions. Missing, expired or forged tokens are `Unauthenticated`; a missing
//!   permission is `PermissionDenied` naming it.
//! - Servers can only be added to [`crate::server::ServiceRoutes`] through this layer.
//!
//! Only the auth service holds signing keys; everyone else verifies with public keys only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tracing::Instrument as _;

use crate::db::DbPool;
use crate::error::Error;

/// `iss` of every Phoenix access token.
pub const ISSUER: &str = "phoenix-auth";
/// `aud` of every Phoenix access token.
pub const AUDIENCE: &str = "phoenix";
/// Prefix of the `sub` claim of service-client tokens (`service:gateway`); account tokens
/// carry the decimal account id.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";
/// Clock skew tolerated on `exp`/`iat`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// An unknown `kid` reloads the keys at most this often (forged kids cannot flood the DB).
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Keys are re-read at least this often, so retirements reach every process.
const MAX_CACHE_AGE: Duration = Duration::from_secs(300);
/// How long one session check (account active, session not logged out, access unchanged
/// since the token was issued) is reused: the bound on how late a revocation takes effect
/// for a token's next call (README "Access tokens").
pub const SESSION_CHECK_TTL: Duration = Duration::from_secs(5);
/// While the database cannot be reached, a session check this old still answers (so a
/// database restart does not log everybody out); older ones make the call `Unavailable`.
const SESSION_CHECK_MAX_STALE: Duration = Duration::from_secs(120);
/// At most this many session checks are cached (a flood of distinct tokens cannot grow it).
const SESSION_CACHE_CAPACITY: usize = 50_000;
/// How often an open stream re-checks its caller's access.
pub const STREAM_RECHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What one RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// No token needed (login, refresh, public keys, …).
    Public,
    /// Any valid access token, user or service (who-am-i, change own password, …).
    Authenticated,
    /// A valid access token whose permissions grant this `resource:action`.
    Permission(&'static str),
}

/// A service's declarations: `("/package.Service/Method", requirement)` for every method.
pub type MethodTable = &'static [(&'static str, Requirement)];

/// The claims of a Phoenix access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Account id (decimal) or `service:<client_id>`.
    pub sub: String,
    /// Role names (accounts only).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective permissions, `resource:action`, possibly wildcards.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Unique token id.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Session: the refresh-token family this token was issued for (accounts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user account.
    Account(i64),
    /// An internal service client (`auth.service_clients.client_id`).
    Service(String),
}

impl std::fmt::Display for Principal {
    /// `account:<id>` or `service:<client_id>` (what logs and spans carry; never a name).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Account(id) => write!(f, "account:{id}"),
            Principal::Service(client) => write!(f, "service:{client}"),
        }
    }
}

/// The verified caller, put into the request extensions by [`Authorized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// Account or service client.
    pub principal: Principal,
    /// Role names from the token.
    pub roles: Vec<String>,
    /// Permissions from the token.
    pub permissions: Vec<String>,
    /// The session (refresh-token family) of an account token.
    pub session_id: Option<uuid::Uuid>,
    /// The token's `jti`.
    pub token_id: String,
    /// Issued at (Unix seconds).
    pub issued_at: i64,
    /// Expires at (Unix seconds): a stream opened with this token ends then.
    pub expires_at: i64,
}

impl AuthContext {
    /// The context [`Authorized`] attached to `request`. Absent only on a `Public` method,
    /// where asking for it is a bug (`Internal`).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&AuthContext, Error> {
        request
            .extensions()
            .get::<AuthContext>()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no AuthContext: handler of a Public method asked for it")))
    }

    /// The account id, or `PermissionDenied` for a service client.
    pub fn account_id(&self) -> Result<i64, Error> {
        match &self.principal {
            Principal::Account(id) => Ok(*id),
            Principal::Service(client) => {
                Err(Error::PermissionDenied(format!("service client {client:?} has no account; this needs a user")))
            }
        }
    }

    /// Whether the token's permissions grant `required`.
    pub fn has_permission(&self, required: &str) -> bool {
        grants(&self.permissions, required)
    }

    /// `PermissionDenied` naming `required` unless the caller holds it.
    pub fn require(&self, required: &str) -> Result<(), Error> {
        if self.has_permission(required) { Ok(()) } else { Err(missing_permission(required)) }
    }
}

fn missing_permission(required: &str) -> Error {
    Error::PermissionDenied(format!("missing permission {required}"))
}

/// Whether `held` grants `required`, per reference §3.3: `admin:*` and `*:*` grant
/// everything; otherwise resource and action each match when equal, `*`, or a `prefix*`
/// of the required part. A required value that is not `resource:action` never matches.
pub fn permission_matches(held: &str, required: &str) -> bool {
    if held == "*:*" || held == "admin:*" {
        return true;
    }
    let (Some((req_res, req_act)), Some((held_res, held_act))) = (required.split_once(':'), held.split_once(':'))
    else {
        return false;
    };
    if req_res.is_empty() || req_act.is_empty() || req_act.contains(':') || held_act.contains(':') {
        return false;
    }
    let part = |held: &str, req: &str| held == req || held.strip_suffix('*').is_some_and(|p| req.starts_with(p));
    part(held_res, req_res) && part(held_act, req_act)
}

/// Whether any of `held` grants `required`.
pub fn grants(held: &[String], required: &str) -> bool {
    held.iter().any(|h| permission_matches(h, required))
}

/// Effective permissions (api.md): role permissions plus direct grants, minus direct
/// denies, where a deny wins. A deny may itself be a wildcard (`users:*` denies every
/// `users:` permission). A held wildcard that a deny overlaps is replaced by the concrete
/// `catalogue` permissions it covers except the denied ones, so `*:*` with a deny of
/// `users:delete` grants every catalogued permission but that one, and `users:*` with a deny
/// of `users:*` grants nothing of `users`. Sorted, unique.
pub fn effective_permissions(
    role_grants: &[String],
    direct_grants: &[String],
    denies: &[String],
    catalogue: &[String],
) -> Vec<String> {
    let is_denied = |p: &str| denies.iter().any(|d| d == p || permission_matches(d, p));
    let overlaps = |held: &str| denies.iter().any(|d| patterns_overlap(held, d));
    let mut out: Vec<String> = Vec::new();
    for held in role_grants.iter().chain(direct_grants) {
        if is_denied(held) {
            continue;
        }
        if held.contains('*') && overlaps(held) {
            out.extend(
                catalogue.iter().filter(|c| !c.contains('*') && permission_matches(held, c) && !is_denied(c)).cloned(),
            );
        } else {
            out.push(held.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether some `resource:action` matches both permission patterns (`users:*` and `*:read`
/// overlap in `users:read`).
fn patterns_overlap(a: &str, b: &str) -> bool {
    let everything = |p: &str| p == "*:*" || p == "admin:*";
    if everything(a) || everything(b) {
        return true;
    }
    let part = |x: &str, y: &str| match (x.strip_suffix('*'), y.strip_suffix('*')) {
        (Some(xp), Some(yp)) => xp.starts_with(yp) || yp.starts_with(xp),
        (Some(xp), None) => y.starts_with(xp),
        (None, Some(yp)) => x.starts_with(yp),
        (None, None) => x == y,
    };
    match (a.split_once(':'), b.split_once(':')) {
        (Some((ar, aa)), Some((br, ba))) => part(ar, br) && part(aa, ba),
        _ => false,
    }
}

/// A public key that verifies tokens whose header names its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    /// Key id.
    pub kid: String,
    /// Raw Ed25519 public key.
    pub public_key: Vec<u8>,
    /// After this, tokens signed with it are rejected.
    pub retire_after: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, VerificationKey>,
    loaded_at: Option<Instant>,
}

/// What the database says about a token's session, cached for [`SESSION_CHECK_TTL`].
#[derive(Debug, Clone, Copy)]
struct SessionState {
    /// The account (or service client) exists and is active.
    active: bool,
    /// The refresh-token family is not logged out (always true without a session id).
    session_live: bool,
    /// Tokens issued before this (Unix seconds) carry stale permissions.
    access_changed_at: i64,
    checked_at: Instant,
}

/// Verifies access tokens with the public keys in `auth.signing_keys` (or a fixed set), and
/// — with a database — that the token's account is active, its session not logged out and
/// its permissions unchanged since it was issued.
pub struct TokenVerifier {
    pool: Option<DbPool>,
    cache: tokio::sync::RwLock<KeyCache>,
    sessions: std::sync::Mutex<HashMap<(Principal, Option<uuid::Uuid>), SessionState>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier that reads public keys from `auth.signing_keys` on the shared database.
    pub fn new(pool: DbPool) -> Self {
        Self { pool: Some(pool), cache: Default::default(), sessions: Default::default() }
    }

    /// A verifier with a fixed key set (unit tests, tools).
    pub fn with_keys(keys: Vec<VerificationKey>) -> Self {
        let keys = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
        Self {
            pool: None,
            cache: tokio::sync::RwLock::new(KeyCache { keys, loaded_at: Some(Instant::now()) }),
            sessions: Default::default(),
        }
    }

    /// Verifies `token` (signature, `kid`, algorithm, issuer, audience, expiry) and returns
    /// the caller. Every failure is `Unauthenticated`, except a database outage while
    /// loading keys (`Unavailable`).
    pub async fn verify(&self, token: &str) -> Result<AuthContext, Error> {
        let invalid = || Error::Unauthenticated("access token is invalid".into());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != jsonwebtoken::Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self.key(&kid).await?.ok_or_else(invalid)?;
        if key.retire_after.is_some_and(|t| t <= Utc::now()) {
            return Err(Error::Unauthenticated("access token was signed with a retired key; log in again".into()));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let decoding = jsonwebtoken::DecodingKey::from_ed_der(&key.public_key);
        let data = jsonwebtoken::decode::<Claims>(token, &decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Error::Unauthenticated("access token has expired; refresh it".into())
            }
            _ => invalid(),
        })?;
        let claims = data.claims;
        let principal = match claims.sub.strip_prefix(SERVICE_SUBJECT_PREFIX) {
            Some(client) if !client.is_empty() => Principal::Service(client.to_owned()),
            Some(_) => return Err(invalid()),
            None => Principal::Account(claims.sub.parse().map_err(|_| invalid())?),
        };
        let ctx = AuthContext {
            principal,
            roles: claims.roles,
            permissions: claims.perms,
            session_id: claims.sid,
            token_id: claims.jti,
            issued_at: claims.iat,
            expires_at: claims.exp,
        };
        self.check_session(&ctx).await?;
        Ok(ctx)
    }

    /// Whether `ctx` still stands: not expired, its account or client active, its session not
    /// logged out, its permissions not changed since it was issued. Answers from a check at
    /// most [`SESSION_CHECK_TTL`] old. A verifier without a database checks expiry only.
    pub async fn check_session(&self, ctx: &AuthContext) -> Result<(), Error> {
        if ctx.expires_at + LEEWAY_SECS as i64 <= Utc::now().timestamp() {
            return Err(Error::Unauthenticated("access token has expired; refresh it".into()));
        }
        let Some(pool) = &self.pool else { return Ok(()) };
        let key = (ctx.principal.clone(), ctx.session_id);
        let cached = self.sessions.lock().map_err(|_| poisoned())?.get(&key).copied();
        let state = match cached {
            Some(state) if state.checked_at.elapsed() < SESSION_CHECK_TTL => state,
            _ => match load_session(pool, &ctx.principal, ctx.session_id).await {
                Ok(state) => {
                    let mut sessions = self.sessions.lock().map_err(|_| poisoned())?;
                    if sessions.len() >= SESSION_CACHE_CAPACITY {
                        sessions.retain(|_, s| s.checked_at.elapsed() < SESSION_CHECK_TTL);
                        if sessions.len() >= SESSION_CACHE_CAPACITY {
                            sessions.clear();
                        }
                    }
                    sessions.insert(key, state);
                    state
                }
                Err(Error::Unavailable(_))
                    if cached.is_some_and(|s| s.checked_at.elapsed() < SESSION_CHECK_MAX_STALE) =>
                {
                    cached.expect("checked above")
                }
                Err(e) => return Err(e),
            },
        };
        if !state.active {
            return Err(Error::Unauthenticated("this account is deactivated".into()));
        }
        if !state.session_live {
            return Err(Error::Unauthenticated("this session was logged out; log in again".into()));
        }
        if ctx.issued_at < state.access_changed_at {
            return Err(Error::Unauthenticated(
                "your access changed after this token was issued; refresh the token".into(),
            ));
        }
        Ok(())
    }

    /// Resolves when the access of `ctx` ends — token expiry, logout, deactivation or a change
    /// of roles or permissions — with the error to end a stream with. Re-checks every
    /// [`STREAM_RECHECK_INTERVAL`] (through the session cache), so a revocation ends open
    /// streams within seconds; a database outage does not end them.
    pub async fn access_ended(&self, ctx: &AuthContext) -> Error {
        loop {
            let now = Utc::now().timestamp();
            let until_expiry = u64::try_from(ctx.expires_at - now).unwrap_or(0);
            tokio::time::sleep(STREAM_RECHECK_INTERVAL.min(Duration::from_secs(until_expiry))).await;
            if ctx.expires_at <= Utc::now().timestamp() {
                return Error::Unauthenticated("access token has expired; refresh it and reconnect".into());
            }
            match self.check_session(ctx).await {
                Ok(()) | Err(Error::Unavailable(_)) => {}
                Err(e) => return e,
            }
        }
    }

    async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, Error> {
        {
            let cache = self.cache.read().await;
            let fresh = cache.loaded_at.is_some_and(|t| t.elapsed() < MAX_CACHE_AGE);
            match cache.keys.get(kid) {
                Some(k) if fresh => return Ok(Some(k.clone())),
                None if cache.loaded_at.is_some_and(|t| t.elapsed() < MIN_RELOAD_INTERVAL) => return Ok(None),
                _ => {}
            }
        }
        let Some(pool) = &self.pool else { return Ok(self.cache.read().await.keys.get(kid).cloned()) };
        let mut cache = self.cache.write().await;
        // Another task may have reloaded while we waited for the lock.
        if cache.loaded_at.is_none_or(|t| t.elapsed() >= MIN_RELOAD_INTERVAL) {
            let keys = load_keys(pool).await?;
            cache.keys = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
            cache.loaded_at = Some(Instant::now());
        }
        Ok(cache.keys.get(kid).cloned())
    }
}

fn poisoned() -> Error {
    Error::Internal(anyhow::anyhow!("session cache lock poisoned"))
}

#[derive(diesel::QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    session_live: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    access_changed_at: i64,
}

/// The session state of an account token (or the activation of a service client), in one
/// query (a cross-schema read every service may do). A missing account is inactive.
async fn load_session(
    pool: &DbPool,
    principal: &Principal,
    session: Option<uuid::Uuid>,
) -> Result<SessionState, Error> {
    use diesel::sql_types::{BigInt, Nullable, Text, Uuid};
    use diesel_async::RunQueryDsl as _;
    let mut conn = pool.get().await?;
    let rows: Vec<SessionRow> = match principal {
        Principal::Account(id) => {
            diesel::sql_query(
                "SELECT a.active, \
                        ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM auth.tokens t \
                            WHERE t.family_id = $2 AND t.account_id = a.id AND t.revoked_at IS NULL)) AS session_live, \
                        floor(extract(epoch FROM a.access_changed_at))::bigint AS access_changed_at \
                 FROM auth.accounts a WHERE a.id = $1",
            )
            .bind::<BigInt, _>(*id)
            .bind::<Nullable<Uuid>, _>(session)
            .load(&mut conn)
            .await?
        }
        Principal::Service(client) => {
            diesel::sql_query(
                "SELECT c.active, true AS session_live, 0::bigint AS access_changed_at \
                 FROM auth.service_clients c WHERE c.client_id = $1",
            )
            .bind::<Text, _>(client)
            .load(&mut conn)
            .await?
        }
    };
    let row = rows.into_iter().next();
    Ok(SessionState {
        active: row.as_ref().is_some_and(|r| r.active),
        session_live: row.as_ref().is_some_and(|r| r.session_live),
        access_changed_at: row.map_or(0, |r| r.access_changed_at),
        checked_at: Instant::now(),
    })
}

/// Public keys of `auth.signing_keys` (a cross-schema read every service may do).
async fn load_keys(pool: &DbPool) -> Result<Vec<VerificationKey>, Error> {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::RunQueryDsl as _;
    use phoenix_db::schema::auth::signing_keys as sk;
    let mut conn = pool.get().await?;
    let rows: Vec<(String, Vec<u8>, Option<DateTime<Utc>>)> = sk::table
        .filter(sk::algorithm.eq("EdDSA"))
        .select((sk::kid, sk::public_key, sk::retire_after))
        .load(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(kid, public_key, retire_after)| VerificationKey { kid, public_key, retire_after })
        .collect())
}

/// Checks one request against `table`: `Ok(None)` for a public method, `Ok(Some(ctx))`
/// for an authorised caller, else the status to answer with.
pub async fn authorize(
    table: MethodTable,
    verifier: &TokenVerifier,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<AuthContext>, Error> {
    let Some((_, requirement)) = table.iter().find(|(m, _)| *m == path) else {
        // Refused rather than served unchecked; the declaration test catches it first.
        return Err(Error::PermissionDenied(format!("method {path} declares no permission and is refused")));
    };
    if *requirement == Requirement::Public {
        return Ok(None);
    }
    let token = bearer_token(headers)?;
    let ctx = verifier.verify(token).await?;
    if let Requirement::Permission(p) = requirement {
        ctx.require(p)?;
    }
    Ok(Some(ctx))
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Error> {
    let missing = || Error::Unauthenticated("missing access token: send `authorization: Bearer <token>`".into());
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// A tonic server behind the authorization check. Build it with [`Authorized::new`]; add it
/// with [`crate::server::ServiceRoutes::add_service`].
pub struct Authorized<S> {
    inner: S,
    table: MethodTable,
    verifier: Arc<TokenVerifier>,
}

impl<S: Clone> Clone for Authorized<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), table: self.table, verifier: self.verifier.clone() }
    }
}

impl<S: NamedService> Authorized<S> {
    /// Wraps `inner`. Fails when `table` names a method of another service, or names one
    /// twice (a table is checked once, at start-up).
    pub fn new(inner: S, table: MethodTable, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        let prefix = format!("/{}/", S::NAME);
        for (i, (method, _)) in table.iter().enumerate() {
            anyhow::ensure!(
                method.strip_prefix(&prefix).is_some_and(|m| !m.is_empty() && !m.contains('/')),
                "method table of {}: {method:?} is not a method of this service",
                S::NAME
            );
            anyhow::ensure!(
                !table[..i].iter().any(|(m, _)| m == method),
                "method table of {}: {method:?} is declared twice",
                S::NAME
            );
        }
        Ok(Self { inner, table, verifier })
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authorized<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone-and-swap of tower middleware: the ready service goes into the future.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (table, verifier) = (self.table, self.verifier.clone());
        let span = rpc_span(request.uri().path());
        let started = Instant::now();
        Box::pin(
            async move {
                let response = match authorize(table, &verifier, request.uri().path(), request.headers()).await {
                    Ok(ctx) => {
                        if let Some(ctx) = &ctx {
                            tracing::Span::current().record("rpc.caller", tracing::field::display(&ctx.principal));
                        }
                        if let Some(ctx) = ctx {
                            request.extensions_mut().insert(ctx);
                        }
                        inner.call(request).await?
                    }
                    Err(e) => tonic::Status::from(e).into_http(),
                };
                Ok(finish_rpc_span(response, tracing::Span::current(), started))
            }
            .instrument(span),
        )
    }
}

/// The span every served RPC runs in (house style: handlers add no `#[instrument]` of
/// their own): method, caller (account id or service client, never a name), and on
/// completion the gRPC status and latency.
fn rpc_span(method: &str) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        rpc.method = %method,
        rpc.caller = tracing::field::Empty,
        rpc.status = tracing::field::Empty,
        rpc.latency_ms = tracing::field::Empty,
    )
}

/// Records the status and latency of `response` on `span` once it is known: at once for
/// a trailers-only answer (errors), otherwise when the body's trailers go out (so a stream's
/// latency is its whole duration).
fn finish_rpc_span(
    response: http::Response<tonic::body::Body>,
    span: tracing::Span,
    started: Instant,
) -> http::Response<tonic::body::Body> {
    use http_body_util::BodyExt as _;
    if let Some(code) = grpc_status(response.headers()) {
        record_rpc_end(&span, code, started);
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
            record_rpc_end(&span, code, started);
        }
        frame
    });
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

fn record_rpc_end(span: &tracing::Span, code: tonic::Code, started: Instant) {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("rpc.status", tracing::field::debug(code));
    span.record("rpc.latency_ms", latency_ms);
    let _entered = span.enter();
    match code {
        tonic::Code::Ok => tracing::debug!(status = ?code, latency_ms, "rpc finished"),
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss | tonic::Code::Unavailable => {
            tracing::warn!(status = ?code, latency_ms, "rpc failed")
        }
        _ => tracing::info!(status = ?code, latency_ms, "rpc refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn wildcards_match_as_the_reference_says() {
        assert!(permission_matches("*:*", "users:read"));
        assert!(permission_matches("admin:*", "rooms:delete"));
        assert!(permission_matches("users:*", "users:read"));
        assert!(permission_matches("users:read", "users:read"));
        assert!(permission_matches("us*:read", "users:read"));
        assert!(permission_matches("*:read", "rooms:read"));
        assert!(!permission_matches("users:*", "rooms:read"));
        assert!(!permission_matches("users:read", "users:update"));
        assert!(!permission_matches("users:read", "users"), "malformed requirement never matches");
        assert!(!permission_matches("users:*", ":read"));
        assert!(!permission_matches("users", "users:read"));
    }

    #[test]
    fn a_deny_beats_a_role_grant_even_through_a_wildcard() {
        let catalogue = s(&["*:*", "users:*", "users:read", "users:delete", "rooms:read"]);
        let eff = effective_permissions(&s(&["users:read", "users:delete"]), &[], &s(&["users:delete"]), &catalogue);
        assert_eq!(eff, s(&["users:read"]));
        let eff = effective_permissions(&s(&["*:*"]), &s(&["x:y"]), &s(&["users:delete"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read", "users:read", "x:y"]));
        assert!(!grants(&eff, "users:delete"));
        let eff = effective_permissions(&s(&["rooms:read"]), &s(&["users:read"]), &[], &catalogue);
        assert_eq!(eff, s(&["rooms:read", "users:read"]));
    }

    #[test]
    fn a_wildcard_deny_removes_everything_it_covers() {
        let catalogue = s(&["users:read", "users:update", "users:delete", "rooms:read"]);
        let eff =
            effective_permissions(&s(&["users:read", "users:update", "rooms:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["users:*", "rooms:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["*:*"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        let eff = effective_permissions(&s(&["*:read"]), &[], &s(&["users:*"]), &catalogue);
        assert_eq!(eff, s(&["rooms:read"]));
        assert!(effective_permissions(&s(&["rooms:read"]), &[], &s(&["*:*"]), &catalogue).is_empty());
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut h = http::HeaderMap::new();
        assert!(bearer_token(&h).is_err());
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer_token(&h).expect("token"), "abc.def");
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&h).is_err());
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer "));
        assert!(bearer_token(&h).is_err());
    }
}
