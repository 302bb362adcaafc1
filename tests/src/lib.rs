//! The Phoenix test harness: real PostgreSQL, real MQTT broker, real gRPC over TCP.
//!
//! - [`TestDb`]: a database of its own for each test, cloned from a migrated template
//!   (`CREATE DATABASE … TEMPLATE …`), dropped when the test ends. Tests run in parallel.
//! - [`mqtt_url`]: `MQTT_URL`, else an embedded broker started once per test process.
//! - [`TestApp`]: any set of domains served in-process on ephemeral ports, with clients.
//! - [`fixtures`]: raw-SQL rows of other domains a test needs (groups, substitutions, …).
//! - [`grpc`]: status assertions (code + BadRequest fields) and requests made as a caller.
//! - [`auth`]: accounts with roles, logging in, attaching bearer tokens.
//!
//! The database server is `DATABASE_URL` when set; otherwise a private cluster started from
//! the installed PostgreSQL binaries, shared by every test process of the run (see [`db`]).

pub mod app;
pub mod auth;
pub mod db;
pub mod fixtures;
pub mod grpc;
pub mod reader;
pub mod school;

pub use app::TestApp;
pub use db::TestDb;

use std::sync::OnceLock;

/// The workspace root (where `Cargo.toml`, `proto/` and `diesel_migrations/` are).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// URL of the MQTT broker tests use: `MQTT_URL`, else an embedded broker (one per process).
pub fn mqtt_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("MQTT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => phoenix_gateway::broker::EmbeddedBroker::start([127, 0, 0, 1].into(), 0, false)
            .expect("start the embedded MQTT broker")
            .url(),
    })
    .clone()
}
