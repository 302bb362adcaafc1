//! `phoenix-config`: the `phoenix.config.v1.ConfigService` server.
//!
//! - [`registry`]: the one authoritative list of setting keys (type, range, default).
//! - [`cache`]: [`ConfigCache`], the cached reader other services share (LISTEN/NOTIFY).
//! - [`flags`]: feature-flag evaluation (roles AND stable percentage bucketing).
//! - [`retention`]: the retention purge (RPC, CLI and daily schedule).
//! - [`service`]: the tonic handlers; [`METHODS`] declares each RPC's permission.

pub mod cache;
mod convert;
pub mod flags;
pub mod registry;
pub mod repo;
pub mod retention;
pub mod service;
mod validate;

pub use cache::ConfigCache;
pub use flags::Subject;
pub use service::{ConfigServiceImpl, METHODS};

use phoenix_common::db::DbPool;
use phoenix_proto::config::v1::config_service_server::ConfigServiceServer;

/// The health/service name of this domain.
pub const SERVICE_NAME: &str = "phoenix.config.v1.ConfigService";

/// The tonic server for `pool`, reading through the process's shared `cache`.
pub fn server(
    pool: DbPool,
    cache: ConfigCache,
    retention: retention::RetentionOptions,
) -> ConfigServiceServer<ConfigServiceImpl> {
    ConfigServiceServer::new(ConfigServiceImpl::new(pool, cache, retention))
}
