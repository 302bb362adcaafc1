//! The MQTT reader bridge: signed scans in, `active.v1 ProcessScan`, Results out
//! (reader-protocol.md).
//!
//! ```text
//! broker ──► event loop ──► per-reader queue (bounded) ──► reader task ──► ProcessScan ──► result topic
//!                 │                                            │ (at most `shards` at once)
//!                 └── register ──► acker ◄─────────────────────┘ done   (PUBACKs in arrival order)
//! ```
//!
//! - Subscribes `{p}/readers/+/scan` and `{p}/readers/+/status` with QoS 1 on a persistent
//!   session (clean session off, fixed client id), optionally as `$share/{group}/…`.
//! - The event loop only routes: it never waits on the database or gRPC. Each reader has its
//!   own bounded queue and task, so a reader's scans are applied in the order it sent them
//!   and readers proceed independently: a slow, retrying or flooding reader delays only its
//!   own scans. At most [`BridgeConfig::shards`] messages are worked on at once (fair, FIFO);
//!   a full reader queue ([`BridgeConfig::reader_queue`]) or a full bridge
//!   ([`BridgeConfig::max_queued`]) drops the message (counted `overflow`, acked).
//! - A scan is acknowledged only after its Result is durable (the ProcessScan transaction has
//!   committed) and queued for publishing: a crash mid-scan leads to redelivery, and the
//!   redelivered scan gets the stored Result (`duplicate`), never a second effect. Results
//!   are published as soon as they are ready; only PUBACKs keep arrival order per connection
//!   (MQTT 3.1.1 §4.6 \[MQTT-4.6.0-2\]; rumqttd disconnects a client on an out-of-order ack,
//!   Mosquitto would accept any order), and acks of a previous connection are dropped (the
//!   broker redelivers those).
//! - Transient failures (ProcessScan or the reader look-up unavailable, the gateway's own
//!   token refused during an auth outage, …; [`retryable`]) are retried with exponential
//!   backoff for up to [`BridgeConfig::retry_budget`]; a scan still failing then gets **no**
//!   Result (a Result is final for the reader) and the reader re-sends it (receipts keep
//!   that exactly-once). Docs: reader-pipeline.md "Failures".
//! - The HMAC is verified before anything is written; only the reader's key version is
//!   read (cached briefly). Refusals (`malformed`, `bad_signature`, `unknown_device`) are
//!   answered on the result topic when the topic's device id is valid; anything else is
//!   dropped and counted. A payload over 4 KiB is cut to 4 KiB + 1 byte at once (answered
//!   `malformed`, counted `oversized`); packets up to [`MAX_INCOMING_PACKET`] are read so a
//!   big message is refused and acked instead of making the client reconnect for ever.
//!   Nothing here panics on input.
//! - Connection loss: reconnect with exponential backoff; subscriptions are renewed on every
//!   CONNACK (a restarted in-memory broker forgets them).

mod acks;
mod config;
mod credentials;
mod event_loop;
mod queue;
mod result;
mod scan;
mod stats;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phoenix_common::config::Secret;
use phoenix_common::db::DbPool;
use phoenix_common::server::ShutdownToken;
use phoenix_iot::presence::Credentials;
use rumqttc::{AsyncClient, MqttOptions};
use tokio::task::JoinHandle;

use crate::rate::{RateLimit, RateLimiter};

pub use config::{ActiveClient, BridgeConfig, active_client, parse_mqtt_url};
pub use result::result_from_proto;
pub use scan::retryable;
pub use stats::{BridgeStats, StatsSnapshot};

/// Largest MQTT packet the bridge reads (the one read buffer holds at most one such packet).
/// A larger one makes the MQTT client drop the connection, and the broker redelivers it on
/// the next, so brokers should cap payloads below this (Mosquitto `message_size_limit`; the
/// embedded broker caps at 64 KiB). Anything over the contract's 4 KiB is answered
/// `malformed` and acked.
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// What the bridge needs besides its configuration.
#[derive(Clone)]
pub struct BridgeDeps {
    /// Pool for the reader look-ups and writes of the iot domain ([`phoenix_iot::presence`]).
    pub pool: DbPool,
    /// `PHOENIX_DEVICE_KEY_SECRET`, to derive each reader's key.
    pub secret: Secret,
    /// Where scans are applied.
    pub active: ActiveClient,
}

impl std::fmt::Debug for BridgeDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeDeps").finish_non_exhaustive()
    }
}

/// A running bridge.
#[derive(Debug)]
pub struct Bridge {
    stats: Arc<BridgeStats>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Bridge {
    /// Its counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// A shared handle on the counters.
    pub fn stats_handle(&self) -> Arc<BridgeStats> {
        self.stats.clone()
    }

    /// Waits until the bridge has stopped (after its shutdown token was cancelled).
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await?
    }

    /// The task, for callers that collect join handles.
    pub fn into_task(self) -> JoinHandle<anyhow::Result<()>> {
        self.task
    }
}

/// Starts the bridge; it runs until `shutdown` is cancelled. Connecting happens in the
/// background (a broker that is not up yet is retried with backoff).
pub fn start(config: BridgeConfig, deps: BridgeDeps, shutdown: ShutdownToken) -> anyhow::Result<Bridge> {
    let (host, port) = parse_mqtt_url(&config.mqtt_url)?;
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        // Read big packets whole (and refuse them as oversized) rather than dropping the
        // connection over them: the broker would redeliver the message for ever.
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
        .set_inflight(200);
    if let Some(login) = &config.login {
        options.set_credentials(login.username.clone(), login.password.expose());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    // Scans and Results are small packets on a request/response path: no Nagle delay.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let stats = Arc::new(BridgeStats::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        prefix: config.prefix.clone(),
        deps,
        stats: stats.clone(),
        credentials: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashMap::new()),
        logged: Mutex::new(HashMap::new()),
        limiter: RateLimiter::new(
            RateLimit { per_second: f64::from(config.reader_rate.0), burst: config.reader_rate.1 },
            RateLimiter::<String>::MAX_CLIENTS,
        ),
        config: config.clone(),
        shutdown: shutdown.clone(),
    });
    let task = tokio::spawn(event_loop::run(config, ctx, client, eventloop, shutdown));
    Ok(Bridge { stats, task })
}

struct Context {
    client: AsyncClient,
    prefix: String,
    deps: BridgeDeps,
    stats: Arc<BridgeStats>,
    /// device id → (credentials or unknown, fetched at).
    credentials: Mutex<HashMap<String, (Option<Credentials>, Instant)>>,
    /// device pk → when `last_seen` was last written.
    seen: Mutex<HashMap<i64, Instant>>,
    /// (device pk, event) → when it was last logged.
    logged: Mutex<HashMap<(i64, &'static str), Instant>>,
    /// Scans per reader ([`BridgeConfig::reader_rate`]).
    limiter: RateLimiter<String>,
    config: BridgeConfig,
    /// Ends retries at once when the bridge stops.
    shutdown: ShutdownToken,
}

/// Entries kept in each cache before it is cleared (topics carry attacker-chosen ids).
const MAX_CACHE_ENTRIES: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache is still a valid cache: every entry is written whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
