//! `phoenix-auth`: identity for Phoenix (schema `auth`, package `phoenix.auth.v1`).
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | `AuthApi`, the `AuthService` handlers (login, tokens, who-am-i, keys, password reset) |
//! | [`account_service`] | `AccountApi`, the `AccountService` handlers (account administration) |
//! | [`invitation_service`] | `InvitationApi`, the `InvitationService` handlers (staff and guardian invitations) |
//! | [`role_service`] | `RoleApi`, the `RoleService` handlers (roles, the permission catalogue) |
//! | [`validate`] | requests → typed commands, collecting field violations |
//! | [`convert`] | domain values → proto messages |
//! | [`repo`] | diesel queries over `auth.*` (and the `audit.auth_events` rows they go with), by topic |
//! | [`outbox`] | delivery of `auth.outbox` (reset links, invitations) over SMTP, German and English |
//! | [`cleanup`] | the hourly cleanup job: expired tokens, invitations, rate-limit rows, sent mail |
//! | [`keys`] | Ed25519 signing keys: generated on first start, stored encrypted, rotated |
//! | [`tokens`] | access-token issuing, refresh-token generation and hashing |
//! | [`throttle`] | in-memory failure counters per email and per client address |
//! | [`service_clients`] | creating service credentials (the gateway's) |
//! | [`error`] | the auth-specific errors, all mapped through [`phoenix_common::Error`] |
//!
//! Every method declares what it needs in its service's `METHODS`; the servers are only
//! reachable through [`phoenix_common::authz::Authorized`].

pub mod account_service;
pub mod cleanup;
pub mod convert;
pub mod error;
pub mod invitation_service;
pub mod keys;
pub mod outbox;
pub mod repo;
pub mod role_service;
pub mod service;
pub mod service_clients;
pub mod throttle;
pub mod tokens;
pub mod validate;

use std::time::Duration;

use phoenix_common::authz::Authorized;
use phoenix_common::client_addr::ForwardingKey;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::auth::v1::account_service_server::AccountServiceServer;
use phoenix_proto::auth::v1::auth_service_server::AuthServiceServer;
use phoenix_proto::auth::v1::invitation_service_server::InvitationServiceServer;
use phoenix_proto::auth::v1::role_service_server::RoleServiceServer;

/// This domain in the process: its four gRPC services, their permission tables and servers.
/// Adding the servers makes sure a signing key exists (generating and storing one on first
/// start), so it needs the database.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Auth,
    services: &[
        "phoenix.auth.v1.AuthService",
        "phoenix.auth.v1.AccountService",
        "phoenix.auth.v1.RoleService",
        "phoenix.auth.v1.InvitationService",
    ],
    methods: &[service::METHODS, account_service::METHODS, role_service::METHODS, invitation_service::METHODS],
    add: add_servers,
    jobs,
};

/// The auth domain's scheduled jobs: the hourly cleanup, and the mail sender when mail is
/// configured.
fn jobs(ctx: &DomainContext) -> Vec<phoenix_common::jobs::JobSpec> {
    std::iter::once(cleanup::spec()).chain(outbox::job(&ctx.config)).collect()
}

/// Lifetimes and throttling limits. Defaults are the production values.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// Access-token lifetime (15 min).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime; each rotation starts it anew.
    pub refresh_token_ttl: Duration,
    /// Lifetime of service-client tokens.
    pub service_token_ttl: Duration,
    /// Consecutive wrong passwords that lock an account.
    pub lockout_threshold: u32,
    /// How long a lockout lasts.
    pub lockout_duration: Duration,
    /// Failed attempts per email (known or not) within `failure_window` before throttling.
    pub failures_per_email: u32,
    /// Failed attempts per client address within `failure_window` before throttling.
    /// Generous: a whole school may share one address.
    pub failures_per_address: u32,
    /// Failed client-credential exchanges per (client id, client address) within
    /// `failure_window` before throttling; separate from logins.
    pub failures_per_client: u32,
    /// Window of the in-memory failure counters.
    pub failure_window: Duration,
    /// A signing key older than this is replaced at the next start.
    pub signing_key_rotation: Duration,
    /// Lifetime of a password-reset token (30 min).
    pub password_reset_ttl: Duration,
    /// Password-reset requests per email within `password_reset_window` (3).
    pub password_reset_requests: u32,
    /// Fixed window of the per-email password-reset limit, from its first request (1 h).
    pub password_reset_window: Duration,
    /// Lifetime of an invitation token (48 h).
    pub invitation_ttl: Duration,
    /// Verifies the gateway's signed client-address header (`PHOENIX_FORWARDING_SECRET`);
    /// `None`: the TCP peer is the client.
    pub forwarding_key: Option<ForwardingKey>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(24 * 3600),
            service_token_ttl: Duration::from_secs(15 * 60),
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(15 * 60),
            failures_per_email: 5,
            failures_per_address: 100,
            failures_per_client: 5,
            failure_window: Duration::from_secs(15 * 60),
            signing_key_rotation: Duration::from_secs(30 * 24 * 3600),
            password_reset_ttl: Duration::from_secs(30 * 60),
            password_reset_requests: 3,
            password_reset_window: Duration::from_secs(3600),
            invitation_ttl: Duration::from_secs(48 * 3600),
            forwarding_key: None,
        }
    }
}

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let options = AuthOptions { forwarding_key: ForwardingKey::from_config(&ctx.config), ..AuthOptions::default() };
        let (pool, verifier) = (ctx.pool.clone(), ctx.verifier.clone());
        // Each argon2 hash takes 64 MiB: this bounds the process's memory (deploy/).
        phoenix_common::password::set_concurrency(ctx.config.auth_hash_concurrency);
        let signer = keys::ensure_signing_key(&pool, &ctx.config.secret_key, &options).await?;
        outbox::check(&ctx.config)?;
        let invitations = invitation_service::InvitationApi::new(
            pool.clone(),
            options.invitation_ttl,
            options.forwarding_key.clone(),
        );
        let auth = service::AuthApi::new(pool.clone(), ctx.config.secret_key.clone(), signer, options)?;
        routes.add_service(Authorized::new(AuthServiceServer::new(auth), service::METHODS, verifier.clone())?);
        let accounts = account_service::AccountApi::new(pool.clone());
        let accounts = AccountServiceServer::new(accounts);
        routes.add_service(Authorized::new(accounts, account_service::METHODS, verifier.clone())?);
        let roles = RoleServiceServer::new(role_service::RoleApi::new(pool));
        routes.add_service(Authorized::new(roles, role_service::METHODS, verifier.clone())?);
        let invitations = InvitationServiceServer::new(invitations);
        routes.add_service(Authorized::new(invitations, invitation_service::METHODS, verifier)?);
        Ok(())
    })
}
