//! The service registry: what each domain serves, and starting any subset of domains, each
//! on its own port (base port + the domain's offset), as on Kubernetes one per Deployment.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use phoenix_common::authz::{MethodTable, TokenVerifier};
use phoenix_common::config::Config;
use phoenix_common::db::{DbPool, ReadPool};
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{JobSpec, Scheduler};
use phoenix_common::server::{self, DomainContext, DomainServers, ServiceRoutes, ShutdownToken};
use phoenix_common::settings::LiveSettings;
use phoenix_config::retention::RetentionOptions;
use phoenix_config::{ConfigCache, SharedConfigCache};
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

/// Every domain of Phoenix, each registered by its crate's `SERVERS`.
pub const DOMAINS: [DomainServers; 11] = [
    phoenix_auth::SERVERS,
    phoenix_users::SERVERS,
    phoenix_education::SERVERS,
    phoenix_facilities::SERVERS,
    phoenix_activities::SERVERS,
    phoenix_active::SERVERS,
    phoenix_schedule::SERVERS,
    phoenix_iot::SERVERS,
    phoenix_feedback::SERVERS,
    phoenix_config::SERVERS,
    phoenix_audit::SERVERS,
];

/// What every domain service of the process is built from.
#[derive(Clone)]
pub struct ServiceContext {
    /// The shared database pool.
    pub pool: DbPool,
    /// Process configuration.
    pub config: Config,
    /// Verifies access tokens for every domain of the process (one key cache).
    pub verifier: Arc<TokenVerifier>,
    /// The process's one settings/flags cache slot (started on first use).
    config_cache: SharedConfigCache,
    /// Each served domain's pool, working as its PostgreSQL role (`PHOENIX_DB_ROLES`); a
    /// domain without one uses `pool`.
    domain_pools: Arc<BTreeMap<Domain, DbPool>>,
    /// The lag-tolerant reads of `pool` ([`ReadPool`]; the primary itself without
    /// `PHOENIX_DATABASE_READ_URL`).
    read: ReadPool,
    /// The lag-tolerant reads of each served domain, as its role.
    domain_reads: Arc<BTreeMap<Domain, ReadPool>>,
}

impl ServiceContext {
    /// A context whose token verifier reads public keys from the shared database.
    pub fn new(pool: DbPool, config: Config) -> Self {
        if !phoenix_common::time::set_school_zone(config.timezone) {
            tracing::warn!(zone = %config.timezone, "a second school time zone in one process; the first applies to business dates");
        }
        let verifier = Arc::new(TokenVerifier::new(pool.clone()));
        let read = ReadPool::primary(pool.clone());
        Self {
            pool,
            config,
            verifier,
            config_cache: SharedConfigCache::default(),
            domain_pools: Arc::default(),
            read,
            domain_reads: Arc::default(),
        }
    }

    /// A context for a process serving `domains`: with `PHOENIX_DB_ROLES` on, each domain
    /// gets a pool working as its own role (logins from `base_url` and the per-role variables,
    /// docs/database.md) and tokens are verified through the first of them, so the shared
    /// code runs with a domain role's grants too; `pool` stays the process's own (the
    /// settings cache, start-up work). With `PHOENIX_DATABASE_READ_URL` set, each pool gets
    /// its [`ReadPool`] on the replica ([`ServiceContext::read_pool_for`]).
    pub async fn serving(pool: DbPool, config: Config, base_url: &str, domains: &[Domain]) -> anyhow::Result<Self> {
        let mut ctx = Self::new(pool, config);
        let options = phoenix_common::db::PoolOptions::from_config(&ctx.config);
        let pools = phoenix_common::db_roles::domain_pools(&ctx.config, base_url, domains, options).await?;
        ctx.read = phoenix_common::db_roles::read_pool(&ctx.config, None, ctx.pool.clone(), options).await?;
        let mut reads = BTreeMap::new();
        for &domain in domains {
            let primary = pools.get(&domain).unwrap_or(&ctx.pool).clone();
            reads.insert(
                domain,
                phoenix_common::db_roles::read_pool(&ctx.config, Some(domain), primary, options).await?,
            );
        }
        ctx.domain_reads = Arc::new(reads);
        if let Some(first) = pools.values().next() {
            ctx.verifier = Arc::new(TokenVerifier::new(first.clone()));
        }
        ctx.domain_pools = Arc::new(pools);
        Ok(ctx)
    }

    /// The pool `domain`'s servers and jobs use: its role's when it has one.
    pub fn pool_for(&self, domain: Domain) -> DbPool {
        self.domain_pools.get(&domain).unwrap_or(&self.pool).clone()
    }

    /// Where `domain`'s lag-tolerant reads go: its [`ReadPool`] (the replica while it keeps
    /// up, else [`ServiceContext::pool_for`]).
    pub fn read_pool_for(&self, domain: Domain) -> ReadPool {
        self.domain_reads.get(&domain).unwrap_or(&self.read).clone()
    }

    /// The process's shared [`ConfigCache`] (settings and feature flags, invalidated across
    /// replicas by LISTEN/NOTIFY): every domain of the process gets a handle on the same
    /// snapshot.
    pub async fn config_cache(&self) -> ConfigCache {
        self.config_cache.get(&self.pool).await
    }

    /// Tuning of the retention purge: receipts are kept for the scan replay window.
    pub fn retention_options(&self) -> RetentionOptions {
        phoenix_config::retention_options(&self.config)
    }

    /// The school settings every domain of the process reads live (through the shared
    /// [`ConfigCache`]).
    pub async fn live_settings(&self) -> LiveSettings {
        self.config_cache().await.live_settings(&self.config)
    }

    /// What a domain's servers are built from, stopping with `shutdown`: the shared settings
    /// cache slot and the live settings travel in the extensions.
    pub async fn domain_context(&self, shutdown: &ShutdownToken) -> DomainContext {
        let mut extensions = tonic::codegen::http::Extensions::new();
        extensions.insert(self.config_cache.clone());
        extensions.insert(self.live_settings().await);
        DomainContext {
            pool: self.pool.clone(),
            read: self.read.clone(),
            config: self.config.clone(),
            verifier: self.verifier.clone(),
            shutdown: shutdown.clone(),
            extensions,
        }
    }

    /// [`ServiceContext::domain_context`] on `domain`'s own pool ([`ServiceContext::pool_for`]):
    /// what the domain's servers and scheduled jobs are built from.
    pub async fn context_of(&self, domain: Domain, shutdown: &ShutdownToken) -> DomainContext {
        DomainContext {
            pool: self.pool_for(domain),
            read: self.read_pool_for(domain),
            ..self.domain_context(shutdown).await
        }
    }
}

impl std::fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceContext").finish_non_exhaustive()
    }
}

/// A domain server that is accepting connections.
#[derive(Debug)]
pub struct RunningService {
    /// Which domain.
    pub domain: Domain,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Finishes when the server has drained after shutdown.
    pub task: JoinHandle<anyhow::Result<()>>,
    /// Reports its health (SERVING while up; turned NOT_SERVING on shutdown).
    pub health: HealthReporter,
}

/// The registration of `domain`.
pub fn servers(domain: Domain) -> &'static DomainServers {
    DOMAINS.iter().find(|s| s.domain == domain).expect("every Domain has an entry in DOMAINS (a unit test checks)")
}

/// Every gRPC service name `domain` serves (health reports each).
pub fn service_names(domain: Domain) -> Vec<&'static str> {
    servers(domain).services.to_vec()
}

/// The permission declarations of every served method, per gRPC service. A test checks
/// them against the proto descriptors: every method declared, nothing declared twice.
pub fn method_tables() -> Vec<MethodTable> {
    DOMAINS.iter().flat_map(|s| s.methods.iter().copied()).collect()
}

/// Routes of one domain: health + reflection, plus the domain's own servers, each behind
/// the authorization layer with its method table. `shutdown` also stops background tasks a
/// server owns (the presence hub, which ends open streams so the server can drain; the
/// daily retention purge).
pub async fn domain_routes(
    domain: Domain,
    ctx: &ServiceContext,
    shutdown: &ShutdownToken,
) -> anyhow::Result<ServiceRoutes> {
    let servers = servers(domain);
    let mut routes = ServiceRoutes::new(servers.services)?;
    (servers.add)(&mut routes, &ctx.context_of(domain, shutdown).await).await?;
    Ok(routes)
}

/// Port of `domain` for a base port; base 0 means every domain takes an ephemeral port.
pub fn port_for(domain: Domain, base_port: u16) -> u16 {
    if base_port == 0 { 0 } else { base_port + domain.port_offset() }
}

/// Binds and starts each domain of `domains`. `fallback` lets a busy default port fall back
/// to a free one (dev); in `serve` a busy port is an error.
pub async fn start(
    domains: &[Domain],
    ctx: &ServiceContext,
    host: IpAddr,
    base_port: u16,
    fallback: bool,
    shutdown: &ShutdownToken,
) -> anyhow::Result<Vec<RunningService>> {
    let mut running = Vec::with_capacity(domains.len());
    for &domain in domains {
        let listener = server::bind(host, port_for(domain, base_port), fallback).await?;
        let addr = listener.local_addr()?;
        let routes = domain_routes(domain, ctx, shutdown).await?;
        let names = routes.names().to_vec();
        let (routes, health) = routes.into_serving().await;
        let task = tokio::spawn(server::serve(listener, routes, health.clone(), names, shutdown.clone()));
        tracing::info!(%domain, %addr, "service listening");
        running.push(RunningService { domain, addr, task, health });
    }
    if ctx.config.jobs_enabled {
        schedule_jobs(domains, ctx, shutdown).await;
    }
    Ok(running)
}

/// Every job of `domains`, as its domain builds it for this process.
pub async fn job_specs(domains: &[Domain], ctx: &ServiceContext, shutdown: &ShutdownToken) -> Vec<(Domain, JobSpec)> {
    let mut specs = Vec::new();
    for &domain in domains {
        let dctx = ctx.context_of(domain, shutdown).await;
        specs.extend((servers(domain).jobs)(&dctx).into_iter().map(|spec| (domain, spec)));
    }
    specs
}

/// Starts the schedule of every job of `domains` (each job runs on one replica at a time:
/// the others find its advisory lock taken and skip that run).
async fn schedule_jobs(domains: &[Domain], ctx: &ServiceContext, shutdown: &ShutdownToken) {
    let scheduler = Scheduler::system(ctx.live_settings().await.time_zone());
    for (domain, spec) in job_specs(domains, ctx, shutdown).await {
        tokio::spawn(scheduler.clone().run(ctx.pool_for(domain), spec, shutdown.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_is_registered_once() {
        for domain in Domain::ALL {
            assert_eq!(DOMAINS.iter().filter(|s| s.domain == domain).count(), 1, "{domain}");
            assert_eq!(servers(domain).services[0], domain.grpc_service(), "{domain}: first service is its own");
        }
    }
}
