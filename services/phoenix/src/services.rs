//! The service registry: what each domain serves, and starting any subset of domains, each
//! on its own port (base port + the domain's offset), as on Kubernetes one per Deployment.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use phoenix_common::authz::{Authorized, MethodTable, TokenVerifier};
use phoenix_common::config::Config;
use phoenix_common::db::DbPool;
use phoenix_common::domain::Domain;
use phoenix_common::server::{self, ServiceRoutes, ShutdownToken};
use phoenix_config::ConfigCache;
use phoenix_config::retention::RetentionOptions;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

/// What every domain service is built from.
#[derive(Clone)]
pub struct ServiceContext {
    /// The shared database pool.
    pub pool: DbPool,
    /// Process configuration.
    pub config: Config,
    /// Verifies access tokens for every domain of the process (one key cache).
    pub verifier: Arc<TokenVerifier>,
    /// The process's one settings/flags cache, started on first use (a process serving no
    /// domain that reads settings holds no LISTEN connection).
    config_cache: Arc<OnceCell<ConfigCache>>,
}

impl ServiceContext {
    /// A context whose token verifier reads public keys from the shared database.
    pub fn new(pool: DbPool, config: Config) -> Self {
        let verifier = Arc::new(TokenVerifier::new(pool.clone()));
        Self { pool, config, verifier, config_cache: Arc::new(OnceCell::new()) }
    }

    /// The process's shared [`ConfigCache`] (settings and feature flags, invalidated across
    /// replicas by LISTEN/NOTIFY): every domain of the process gets a handle on the same
    /// snapshot.
    pub async fn config_cache(&self) -> ConfigCache {
        self.config_cache.get_or_init(|| ConfigCache::start(self.pool.clone())).await.clone()
    }

    /// Tuning of the retention purge: receipts are kept for the scan replay window.
    pub fn retention_options(&self) -> RetentionOptions {
        RetentionOptions { scan_window: self.config.scan_max_age, ..RetentionOptions::default() }
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

/// Every gRPC service name each domain serves (health reports each).
pub fn service_names(domain: Domain) -> Vec<&'static str> {
    match domain {
        Domain::Auth => phoenix_auth::SERVICE_NAMES.to_vec(),
        Domain::Active => vec![Domain::Active.grpc_service(), phoenix_active::PRESENCE_SERVICE_NAME],
        other => vec![other.grpc_service()],
    }
}

/// The permission declarations of every served method, per gRPC service. A test checks
/// them against the proto descriptors: every method declared, nothing declared twice.
pub fn method_tables() -> Vec<MethodTable> {
    let mut tables = phoenix_auth::METHOD_TABLES.to_vec();
    tables.extend([
        phoenix_activities::METHODS,
        phoenix_config::METHODS,
        phoenix_feedback::METHODS,
        phoenix_audit::METHODS,
        phoenix_schedule::METHODS,
        phoenix_education::service::METHODS,
        phoenix_facilities::service::METHODS,
        phoenix_users::service::METHODS,
        phoenix_iot::METHODS,
        phoenix_active::METHODS,
        phoenix_active::PRESENCE_METHODS,
    ]);
    tables
}

/// Routes of one domain: health + reflection, plus the domain's own servers, each behind
/// the authorization layer with its method table. Domains without methods yet serve only
/// health and reflection. `shutdown` also stops background tasks a server owns (the
/// presence hub, which ends open streams so the server can drain).
pub async fn domain_routes(
    domain: Domain,
    ctx: &ServiceContext,
    shutdown: &ShutdownToken,
) -> anyhow::Result<ServiceRoutes> {
    let mut routes = ServiceRoutes::new(&service_names(domain))?;
    match domain {
        Domain::Auth => {
            let options = phoenix_auth::AuthOptions::default();
            phoenix_auth::add_servers(&mut routes, ctx.pool.clone(), &ctx.config, options, ctx.verifier.clone())
                .await?;
        }
        Domain::Activities => {
            let server = phoenix_activities::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_activities::METHODS, ctx.verifier.clone())?);
        }
        Domain::Config => {
            let server = phoenix_config::server(ctx.pool.clone(), ctx.config_cache().await, ctx.retention_options());
            routes.add_service(Authorized::new(server, phoenix_config::METHODS, ctx.verifier.clone())?);
        }
        Domain::Feedback => {
            let server = phoenix_feedback::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_feedback::METHODS, ctx.verifier.clone())?);
        }
        Domain::Schedule => {
            let server = phoenix_schedule::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_schedule::METHODS, ctx.verifier.clone())?);
        }
        Domain::Education => {
            let server = phoenix_education::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_education::service::METHODS, ctx.verifier.clone())?);
        }
        Domain::Facilities => {
            let server = phoenix_facilities::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_facilities::service::METHODS, ctx.verifier.clone())?);
        }
        Domain::Users => {
            let server = phoenix_users::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_users::service::METHODS, ctx.verifier.clone())?);
        }
        Domain::Iot => {
            let secret = ctx.config.device_key_secret.clone().ok_or_else(|| {
                anyhow::anyhow!("PHOENIX_DEVICE_KEY_SECRET is not set: the iot service derives reader keys from it")
            })?;
            let server = phoenix_iot::server(ctx.pool.clone(), secret);
            routes.add_service(Authorized::new(server, phoenix_iot::METHODS, ctx.verifier.clone())?);
        }
        Domain::Active => {
            let server = phoenix_active::server(ctx.pool.clone(), phoenix_active::scan_settings(&ctx.config));
            routes.add_service(Authorized::new(server, phoenix_active::METHODS, ctx.verifier.clone())?);
            // One presence hub per active server (LISTEN connection, broadcast to watchers).
            let presence = phoenix_active::presence::server(
                ctx.pool.clone(),
                phoenix_active::presence_settings(&ctx.config),
                shutdown.child_token(),
            );
            routes.add_service(Authorized::new(presence, phoenix_active::PRESENCE_METHODS, ctx.verifier.clone())?);
        }
        Domain::Audit => {
            let server = phoenix_audit::server(ctx.pool.clone());
            routes.add_service(Authorized::new(server, phoenix_audit::METHODS, ctx.verifier.clone())?);
        }
    }
    Ok(routes)
}

/// Port of `domain` for a base port; base 0 means every domain takes an ephemeral port.
pub fn port_for(domain: Domain, base_port: u16) -> u16 {
    if base_port == 0 { 0 } else { base_port + domain.port_offset() }
}

/// Binds and starts each domain of `domains`. `fallback` lets a busy default port fall back
/// to a free one (dev); in `serve` a busy port is an error. The process serving the config
/// domain also runs the daily retention purge at `PHOENIX_CLEANUP_TIME` (several replicas:
/// the advisory lock lets one of them do it).
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
    if domains.contains(&Domain::Config)
        && let Some(at) = ctx.config.cleanup_time
    {
        tokio::spawn(phoenix_config::retention::run_daily(
            ctx.pool.clone(),
            ctx.config_cache().await,
            ctx.retention_options(),
            at,
            ctx.config.timezone,
            shutdown.clone(),
        ));
    }
    Ok(running)
}
