//! `phoenix-active`, this slice of `phoenix.active.v1.ActiveService` (schema `active`): room
//! sessions with supervisors, and `ProcessScan`, the reader hot path (behaviour.md "One scan,
//! step by step"). The rest of the domain (claims, combined sessions, the visits API, the
//! presence board and `WatchPresence`) comes with its own issue.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic impl and [`METHODS`] |
//! | [`scan`] | `ProcessScan` in one transaction |
//! | [`events`] | the presence event log behind `WatchPresence`, and [`PRESENCE_CHANNEL`] |
//! | [`presence`] | `phoenix.active.v1.PresenceService`: the board and `WatchPresence` |
//! | [`sessions`] | start (with `force`), end, get, list |
//! | [`validate`] | requests → typed commands with field violations |
//! | [`convert`] | domain → proto |
//! | [`repo`] | diesel queries |

pub mod convert;
pub mod events;
pub mod presence;
pub mod repo;
pub mod scan;
pub mod service;
pub mod sessions;
pub mod validate;

pub use events::PRESENCE_CHANNEL;
pub use presence::{PRESENCE_METHODS, PRESENCE_SERVICE_NAME, PresenceSettings};
pub use scan::ScanSettings;
pub use service::{ActiveApi, METHODS};

use phoenix_common::config::Config;
use phoenix_common::db::DbPool;
use phoenix_proto::active::v1::active_service_server::ActiveServiceServer;

/// Scan settings from the process configuration.
pub fn scan_settings(config: &Config) -> ScanSettings {
    ScanSettings { max_age: config.scan_max_age, max_ahead: scan::MAX_CLOCK_AHEAD, timezone: config.timezone }
}

/// Presence settings from the process configuration (the defaults otherwise).
pub fn presence_settings(config: &Config) -> PresenceSettings {
    PresenceSettings::new(config.timezone)
}

/// The tonic server of the active domain.
pub fn server(pool: DbPool, settings: ScanSettings) -> ActiveServiceServer<ActiveApi> {
    ActiveServiceServer::new(ActiveApi::new(pool, settings))
}
