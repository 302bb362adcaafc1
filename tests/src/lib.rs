//! The Phoenix test harness: real PostgreSQL, real MQTT broker, real gRPC over TCP.
//!
//! - [`TestDb`]: a database of its own for each test, cloned from a migrated template
//!   (`CREATE DATABASE … TEMPLATE …`), dropped when the test ends. Tests run in parallel.
//! - [`mqtt_url`]: `MQTT_URL`, else an embedded broker started once per test process.
//! - [`TestApp`]: any set of domains served in-process on ephemeral ports, with clients.
//! - [`fixtures`]: raw-SQL rows of other domains a test needs (groups, substitutions, …).
//! - [`grpc`]: status assertions (code + BadRequest fields) and requests made as a caller.
//! - [`auth`]: accounts with roles, logging in, attaching bearer tokens.
//! - [`scrape`]: `GET /metrics` of a running process, parsed.
//! - [`smtp`]: a real SMTP server (Python `aiosmtpd`) that keeps what it receives.
//! - [`require_tool`]: an external program a test needs (mosquitto, chromium, python3); missing
//!   fails the test under `CI`, and skips it with a message outside CI.
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
pub mod scrape;
pub mod smtp;

pub use app::TestApp;
pub use db::TestDb;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root (where `Cargo.toml`, `proto/` and `diesel_migrations/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The program `name` a test needs, at `path`: a path with a `/` is taken as it is, a bare
/// name is looked up on `PATH` and in the `sbin` directories. When it is missing this
/// **panics** under `CI` (a CI run never passes without the tool), and otherwise returns
/// `None` after saying on stderr why the test does not run and how to install the tool
/// (`install`); the caller then returns early.
pub fn require_tool(name: &str, path: impl AsRef<Path>, install: &str) -> Option<PathBuf> {
    let path = path.as_ref();
    if let Some(found) = find_program(path) {
        return Some(found);
    }
    let missing = format!("{name} not found ({}): {install}", path.display());
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{missing} — CI is set, so a missing tool fails the test");
    }
    eprintln!("\n*** NOT RUN: {missing} (outside CI the test returns early; under CI=true it fails) ***\n");
    None
}

/// `path` itself when it contains a `/`, else the first executable file of that name on
/// `PATH`, `/usr/local/sbin`, `/usr/sbin` or `/sbin`.
fn find_program(path: &Path) -> Option<PathBuf> {
    if path.components().count() > 1 || path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    on_path.into_iter().chain(sbin).map(|dir| dir.join(path)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// URL of the MQTT broker tests use: `MQTT_URL`, else an embedded broker (one per process)
/// without credentials or ACLs, so tests can play unknown and misbehaving readers; the
/// secured embedded broker is [`reader::ReaderStack::spawn_secured`]'s.
pub fn mqtt_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("MQTT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => phoenix_gateway::broker::EmbeddedBroker::start_open([127, 0, 0, 1].into(), 0, false)
            .expect("start the embedded MQTT broker")
            .url(),
    })
    .clone()
}
