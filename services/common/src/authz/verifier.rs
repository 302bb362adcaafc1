//! [`TokenVerifier`]: access-token signatures against the public keys of
//! `auth.signing_keys`, and the session check that makes logout, deactivation and changes
//! of roles or permissions take effect at a token's next call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{AUDIENCE, AuthContext, Claims, ISSUER, Principal, SERVICE_SUBJECT_PREFIX};
use crate::db::DbPool;
use crate::error::Error;

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
    /// Tokens issued before this (Unix milliseconds) carry stale permissions.
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
            issued_at_ms: claims.iat_ms.unwrap_or(claims.iat.saturating_mul(1000)),
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
        if ctx.issued_at_ms < state.access_changed_at {
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
                        floor(extract(epoch FROM a.access_changed_at) * 1000)::bigint AS access_changed_at \
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
