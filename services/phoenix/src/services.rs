//! The service registry: what each domain serves, and starting any subset of domains, each
//! on its own port (base port + the domain's offset), as on Kubernetes one per Deployment.

use std::net::{IpAddr, SocketAddr};

use phoenix_common::config::Config;
use phoenix_common::db::DbPool;
use phoenix_common::domain::Domain;
use phoenix_common::server::{self, ServiceRoutes, ShutdownToken};
use tokio::task::JoinHandle;

/// What every domain service is built from.
#[derive(Clone)]
pub struct ServiceContext {
    /// The shared database pool.
    pub pool: DbPool,
    /// Process configuration.
    pub config: Config,
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
}

/// Routes of one domain: health + reflection, plus the domain's own servers once its issue
/// lands (add them in the `match`).
pub fn domain_routes(domain: Domain, ctx: &ServiceContext) -> anyhow::Result<ServiceRoutes> {
    let mut routes = ServiceRoutes::new(&[domain.grpc_service()])?;
    match domain {
        Domain::Facilities => {
            routes.builder.add_service(phoenix_facilities::server(ctx.pool.clone()));
        }
        Domain::Users => {
            routes.builder.add_service(phoenix_users::server(ctx.pool.clone()));
        }
        Domain::Education => {
            routes.builder.add_service(phoenix_education::server(ctx.pool.clone()));
        }
        // Each domain registers its tonic servers here as it is implemented, e.g.
        // `Domain::Auth => { routes.builder.add_service(auth::server(ctx)); }`.
        Domain::Auth
        | Domain::Activities
        | Domain::Active
        | Domain::Schedule
        | Domain::Iot
        | Domain::Feedback
        | Domain::Config
        | Domain::Audit => {}
    }
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
        let (routes, health) = domain_routes(domain, ctx)?.into_serving().await;
        let names = vec![domain.grpc_service().to_owned()];
        let task = tokio::spawn(server::serve(listener, routes, health, names, shutdown.clone()));
        tracing::info!(%domain, %addr, "service listening");
        running.push(RunningService { domain, addr, task });
    }
    Ok(running)
}
