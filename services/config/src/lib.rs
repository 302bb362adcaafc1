//! `phoenix-config`: the `phoenix.config.v1.ConfigService` server (schema `config`).
//!
//! | module | holds |
//! |---|---|
//! | `service` | `ConfigApi`, the tonic handlers, and `METHODS` (each RPC's permission) |
//! | `validate` | requests → typed commands, collecting field violations |
//! | `repo` | diesel queries on `config.*` (and the role look-ups in `auth`) |
//! | `convert` | rows → proto messages |
//! | [`registry`] | re-export of `phoenix_common::settings::registry`, the one list of setting keys |
//! | [`cache`] | [`ConfigCache`], the cached reader other services share (LISTEN/NOTIFY) |
//! | [`flags`] | feature-flag evaluation (roles AND stable percentage bucketing) |
//! | [`retention`] | the retention purge (RPC, CLI and daily schedule) |
//! | [`db_stats`] | database health figures (`GetDatabaseStats`, `phoenix db stats`) |

pub mod cache;
mod convert;
pub mod db_stats;
pub mod flags;
pub use phoenix_common::settings::registry;
mod repo;
pub mod retention;
mod service;
mod validate;

pub use cache::ConfigCache;
pub use flags::Subject;

use std::sync::Arc;

use phoenix_common::authz::Authorized;
use phoenix_common::db::DbPool;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::JobSpec;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_common::settings::LiveSettings;
use phoenix_proto::config::v1::config_service_server::ConfigServiceServer;
use tokio::sync::OnceCell;

/// This domain in the process: its gRPC service, permission table and servers. The process
/// that serves it also runs the daily retention purge at `PHOENIX_CLEANUP_TIME` (several
/// replicas: the advisory lock lets one of them do it).
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Config,
    services: &["phoenix.config.v1.ConfigService"],
    methods: &[service::METHODS],
    add: add_servers,
    jobs,
};

/// The process's one [`ConfigCache`] slot, shared through [`DomainContext::extensions`]:
/// started on first use, so a process serving no domain that reads settings holds no
/// LISTEN connection, and every user of the process gets a handle on the same snapshot.
#[derive(Clone, Debug, Default)]
pub struct SharedConfigCache(Arc<OnceCell<ConfigCache>>);

impl SharedConfigCache {
    /// The process's cache, started on first call.
    pub async fn get(&self, pool: &DbPool) -> ConfigCache {
        self.0.get_or_init(|| ConfigCache::start(pool.clone())).await.clone()
    }

    /// The slot of `ctx`, or a fresh one when the process put none there.
    pub fn of(ctx: &DomainContext) -> Self {
        ctx.extensions.get::<Self>().cloned().unwrap_or_default()
    }
}

/// Tuning of the retention purge for this process: receipts are kept for the scan replay
/// window.
pub fn retention_options(config: &phoenix_common::config::Config) -> retention::RetentionOptions {
    retention::RetentionOptions { scan_window: config.scan_max_age, ..retention::RetentionOptions::default() }
}

/// The config domain's jobs: the retention purge at `PHOENIX_CLEANUP_TIME`, the database
/// figures as gauges every minute.
fn jobs(ctx: &DomainContext) -> Vec<JobSpec> {
    vec![
        retention::spec(LiveSettings::of(ctx), retention_options(&ctx.config), ctx.config.cleanup_time),
        db_stats::spec(),
    ]
}

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let cache = SharedConfigCache::of(ctx).get(&ctx.pool).await;
        let settings = cache.live_settings(&ctx.config);
        let options = retention_options(&ctx.config);
        let server =
            ConfigServiceServer::new(service::ConfigApi::new(ctx.pool.clone(), cache, settings.clone(), options));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
