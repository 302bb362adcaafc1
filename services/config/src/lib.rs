//! `phoenix-config`: the `phoenix.config.v1.ConfigService` server.
//!
//! - [`registry`]: the one authoritative list of setting keys (type, range, default).
//! - [`cache`]: [`ConfigCache`], the cached reader other services share (LISTEN/NOTIFY).
//! - [`service`]: the tonic handlers; [`METHODS`] declares each RPC's permission.

pub mod cache;
mod convert;
pub mod registry;
pub mod repo;
pub mod service;
mod validate;

pub use cache::ConfigCache;
pub use service::{ConfigServiceImpl, METHODS};

use phoenix_common::db::DbPool;
use phoenix_proto::config::v1::config_service_server::ConfigServiceServer;

/// The health/service name of this domain.
pub const SERVICE_NAME: &str = "phoenix.config.v1.ConfigService";

/// The tonic server for `pool`.
pub fn server(pool: DbPool) -> ConfigServiceServer<ConfigServiceImpl> {
    ConfigServiceServer::new(ConfigServiceImpl::new(pool))
}
