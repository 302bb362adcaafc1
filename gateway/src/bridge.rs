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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phoenix_common::config::Secret;
use phoenix_common::db::DbPool;
use phoenix_common::server::ShutdownToken;
use phoenix_iot::model::LogEvent;

use crate::rate::{RateLimit, RateLimiter};
use phoenix_iot::presence::{self, Credentials};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_reader_protocol::{
    Code, Outcome, ResultRoom, ResultStudent, Scan, ScanResult, decode_scan, derive_device_key, is_valid_device_id,
    topics, verify_signature,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{AuthInterceptor, TokenSource};

/// Largest MQTT packet the bridge reads (the one read buffer holds at most one such packet).
/// A larger one makes the MQTT client drop the connection, and the broker redelivers it on
/// the next, so brokers should cap payloads below this (Mosquitto `message_size_limit`; the
/// embedded broker caps at 64 KiB). Anything over the contract's 4 KiB is answered
/// `malformed` and acked.
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// How the bridge connects and subscribes.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `mqtt://host:port` (or `tcp://`).
    pub mqtt_url: String,
    /// Topic prefix (`PHOENIX_MQTT_PREFIX`).
    pub prefix: String,
    /// Fixed client id: the persistent session (`PHOENIX_MQTT_CLIENT_ID`).
    pub client_id: String,
    /// Shared-subscription group (`PHOENIX_MQTT_SHARED_GROUP`).
    pub shared_group: Option<String>,
    /// Messages worked on at once, across readers (each reader's own are one at a time).
    pub shards: usize,
    /// Messages waiting per reader; beyond, a reader's messages are dropped (`overflow`).
    pub reader_queue: usize,
    /// Messages waiting in the whole bridge; beyond, messages are dropped (`overflow`).
    pub max_queued: usize,
    /// How long a transient failure (see [`retryable`]) is retried, with exponential backoff,
    /// before the scan is left unanswered for the reader to re-send.
    pub retry_budget: Duration,
    /// How long a reader's key version is cached.
    pub credential_ttl: Duration,
    /// How long an unknown device id is remembered as unknown.
    pub unknown_ttl: Duration,
    /// `last_seen` is written at most this often per reader (online = seen within 5 min).
    pub seen_interval: Duration,
    /// At most one device-log entry per reader and refusal kind in this window.
    pub log_interval: Duration,
    /// Scans per second one reader may send (`PHOENIX_READER_RATE_LIMIT`, 0 = no limit) and
    /// at once (`PHOENIX_READER_BURST`); beyond, scans are answered `rate_limited`.
    pub reader_rate: (u32, u32),
    /// The gateway's broker login (`PHOENIX_MQTT_USERNAME` / `PHOENIX_MQTT_PASSWORD`).
    pub login: Option<crate::broker_acl::MqttLogin>,
}

impl BridgeConfig {
    /// Defaults for a broker URL and prefix.
    pub fn new(mqtt_url: impl Into<String>, prefix: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            mqtt_url: mqtt_url.into(),
            prefix: prefix.into(),
            client_id: client_id.into(),
            shared_group: None,
            shards: 8,
            reader_queue: 32,
            max_queued: 4096,
            retry_budget: Duration::from_secs(30),
            credential_ttl: Duration::from_secs(5),
            unknown_ttl: Duration::from_secs(2),
            seen_interval: Duration::from_secs(15),
            log_interval: Duration::from_secs(10),
            reader_rate: (20, 100),
            login: None,
        }
    }
}

impl BridgeConfig {
    /// The bridge settings of the process configuration, for the broker at `mqtt_url`.
    pub fn from_config(config: &phoenix_common::config::Config, mqtt_url: &str) -> Self {
        let mut c = Self::new(mqtt_url, config.mqtt_prefix.clone(), config.mqtt_client_id.clone());
        c.shared_group = config.mqtt_shared_group.clone();
        c.reader_rate = (config.reader_rate_limit, config.reader_burst);
        c.login = crate::broker_acl::MqttLogin::gateway(config);
        c
    }
}

/// `(host, port)` of an `mqtt://host:port` URL (port 1883 when omitted).
pub fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| anyhow::anyhow!("MQTT URL must start with mqtt:// or tcp://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| anyhow::anyhow!("MQTT URL has a bad port"))?),
        None => (authority, 1883),
    };
    anyhow::ensure!(!host.is_empty(), "MQTT URL has no host");
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

/// The gRPC client the bridge calls `ProcessScan` with; every call passes through the
/// [`AuthInterceptor`] (the seam for the gateway's service credential).
pub type ActiveClient = ActiveServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// A lazily connecting client for the active service at `url` (`http://host:port`).
pub fn active_client(url: &str, tokens: Arc<dyn TokenSource>) -> anyhow::Result<ActiveClient> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    Ok(ActiveServiceClient::with_interceptor(channel, AuthInterceptor::new(tokens)))
}

/// Counters of what the bridge did (for tests, logs and later metrics).
#[derive(Debug, Default)]
pub struct BridgeStats {
    received: AtomicU64,
    processed: AtomicU64,
    results_published: AtomicU64,
    malformed: AtomicU64,
    dropped: AtomicU64,
    bad_signature: AtomicU64,
    unknown_device: AtomicU64,
    rate_limited: AtomicU64,
    unanswered: AtomicU64,
    retries: AtomicU64,
    oversized: AtomicU64,
    overflow: AtomicU64,
    status_messages: AtomicU64,
    connections: AtomicU64,
    connection_errors: AtomicU64,
}

/// A copy of [`BridgeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received on the subscribed topics.
    pub received: u64,
    /// Scans answered by ProcessScan.
    pub processed: u64,
    /// Results published.
    pub results_published: u64,
    /// Scans answered `malformed`.
    pub malformed: u64,
    /// Messages dropped without an answer (bad topic or device id, bad status payload).
    pub dropped: u64,
    /// Scans refused for their signature.
    pub bad_signature: u64,
    /// Scans from unknown device ids.
    pub unknown_device: u64,
    /// Scans answered `rate_limited` (a reader sending faster than its limit).
    pub rate_limited: u64,
    /// Scans left unanswered after a transient failure outlasted the retry budget (the
    /// reader re-sends).
    pub unanswered: u64,
    /// Retries after a transient failure.
    pub retries: u64,
    /// Messages over 4 KiB (cut at once, answered `malformed`).
    pub oversized: u64,
    /// Messages dropped because their reader's queue or the bridge was full.
    pub overflow: u64,
    /// Status messages handled.
    pub status_messages: u64,
    /// Successful (re)connections.
    pub connections: u64,
    /// Connection errors (each followed by a backoff and a reconnect).
    pub connection_errors: u64,
}

impl BridgeStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: get(&self.received),
            processed: get(&self.processed),
            results_published: get(&self.results_published),
            malformed: get(&self.malformed),
            dropped: get(&self.dropped),
            bad_signature: get(&self.bad_signature),
            unknown_device: get(&self.unknown_device),
            rate_limited: get(&self.rate_limited),
            unanswered: get(&self.unanswered),
            retries: get(&self.retries),
            oversized: get(&self.oversized),
            overflow: get(&self.overflow),
            status_messages: get(&self.status_messages),
            connections: get(&self.connections),
            connection_errors: get(&self.connection_errors),
        }
    }
}

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
    let task = tokio::spawn(run(config, ctx, client, eventloop, shutdown));
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

enum AckMsg {
    /// A new connection: acks of older ones are void.
    Epoch(u64),
    /// A QoS ≥ 1 message arrived and must be acked in this order (only its packet id and
    /// QoS are kept, never its payload).
    Register { epoch: u64, seq: u64, publish: Box<Publish> },
    /// Its processing finished.
    Done { epoch: u64, seq: u64 },
}

struct Job {
    epoch: u64,
    seq: Option<u64>,
    kind: topics::Inbound,
    device: String,
    payload: Vec<u8>,
}

/// What the acker needs to ack `publish`: its packet id and QoS, without the payload.
fn ack_handle(publish: &Publish) -> Box<Publish> {
    let mut handle = Publish::new("", publish.qos, Vec::new());
    handle.pkid = publish.pkid;
    Box::new(handle)
}

/// The payload a job carries: a payload over the contract's 4 KiB is cut to 4 KiB + 1 byte
/// (still oversized for [`decode_scan`], so it is answered `malformed`), so a queued job
/// never holds more than that.
fn bounded_payload(ctx: &Context, device: &str, payload: &[u8]) -> Vec<u8> {
    let max = phoenix_reader_protocol::MAX_SCAN_BYTES;
    if payload.len() <= max {
        return payload.to_vec();
    }
    BridgeStats::bump(&ctx.stats.oversized);
    tracing::warn!(%device, bytes = payload.len(), "oversized message refused (contract: at most 4 KiB)");
    payload[..=max].to_vec()
}

async fn run(
    config: BridgeConfig,
    ctx: Arc<Context>,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    shutdown: ShutdownToken,
) -> anyhow::Result<()> {
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<AckMsg>();
    let acker = tokio::spawn(acker(client.clone(), ack_rx));
    let mut readers = Readers::new(ctx.clone(), ack_tx.clone(), &config);
    let filters = vec![
        SubscribeFilter::new(topics::scan_filter(&config.prefix, config.shared_group.as_deref()), QoS::AtLeastOnce),
        SubscribeFilter::new(topics::status_filter(&config.prefix, config.shared_group.as_deref()), QoS::AtLeastOnce),
    ];

    let mut epoch = 0u64;
    let mut seq = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                epoch += 1;
                let _ = ack_tx.send(AckMsg::Epoch(epoch));
                backoff = Duration::from_millis(100);
                BridgeStats::bump(&ctx.stats.connections);
                tracing::info!(session_present = ack.session_present, client_id = %config.client_id, "MQTT connected");
                // Never await the client inside the loop that drains its requests.
                let (c, f) = (client.clone(), filters.clone());
                tokio::spawn(async move {
                    if let Err(e) = c.subscribe_many(f).await {
                        tracing::warn!(error = %e, "MQTT subscribe could not be queued");
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                BridgeStats::bump(&ctx.stats.received);
                let ack_seq = (publish.qos != QoS::AtMostOnce).then(|| {
                    seq += 1;
                    seq
                });
                if let Some(s) = ack_seq {
                    let _ = ack_tx.send(AckMsg::Register { epoch, seq: s, publish: ack_handle(&publish) });
                }
                let routed = topics::parse(&ctx.prefix, &publish.topic)
                    .filter(|(_, device)| is_valid_device_id(device))
                    .map(|(kind, device)| (kind, device.to_owned()));
                let queued = match routed {
                    Some((kind, device)) => {
                        let payload = bounded_payload(&ctx, &device, &publish.payload);
                        readers.dispatch(Job { epoch, seq: ack_seq, kind, device, payload })
                    }
                    None => {
                        // Not a reader topic, or an invalid device id: no one to answer.
                        BridgeStats::bump(&ctx.stats.dropped);
                        false
                    }
                };
                if !queued && let Some(s) = ack_seq {
                    let _ = ack_tx.send(AckMsg::Done { epoch, seq: s });
                }
            }
            Ok(_) => {}
            Err(e) => {
                BridgeStats::bump(&ctx.stats.connection_errors);
                if matches!(
                    &e,
                    rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                        rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
                    ))
                ) {
                    tracing::error!(error = %e, max = MAX_INCOMING_PACKET, "MQTT packet over the bridge's limit: cap the broker's message size below it");
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }

    // Stop: finish the work in hand (its acks may no longer reach the broker: those
    // messages are redelivered to the next session and answered from their receipts;
    // retries stop at once and leave their scans for a re-send).
    readers.close().await;
    drop(ack_tx);
    let _ = acker.await;
    let _ = client.try_disconnect();
    // Drive the event loop briefly so the DISCONNECT is sent.
    let _ = tokio::time::timeout(Duration::from_millis(200), async { while eventloop.poll().await.is_ok() {} }).await;
    tracing::info!("MQTT bridge stopped");
    Ok(())
}

/// How long a reader's task waits for its next message before it ends (it is started again
/// by the next one).
const READER_IDLE: Duration = Duration::from_secs(30);

/// One bounded queue and one task per reader with messages in hand; the event loop owns it.
struct Readers {
    ctx: Arc<Context>,
    acks: mpsc::UnboundedSender<AckMsg>,
    queues: HashMap<String, mpsc::Sender<Job>>,
    /// Messages queued and not yet taken up, across readers.
    queued: Arc<AtomicUsize>,
    /// Messages worked on at once.
    permits: Arc<Semaphore>,
    per_reader: usize,
    max_queued: usize,
    tasks: JoinSet<()>,
}

impl Readers {
    fn new(ctx: Arc<Context>, acks: mpsc::UnboundedSender<AckMsg>, config: &BridgeConfig) -> Self {
        Self {
            ctx,
            acks,
            queues: HashMap::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            permits: Arc::new(Semaphore::new(config.shards.max(1))),
            per_reader: config.reader_queue.max(1),
            max_queued: config.max_queued.max(1),
            tasks: JoinSet::new(),
        }
    }

    /// Queues `job` on its reader's queue, never waiting; false when it was dropped (its
    /// reader's queue or the bridge is full), counted `overflow`.
    fn dispatch(&mut self, job: Job) -> bool {
        while self.tasks.try_join_next().is_some() {}
        let mut job = job;
        if self.queued.load(Ordering::Relaxed) < self.max_queued {
            for _ in 0..2 {
                let Some(tx) = self.sender(&job.device) else { break };
                match tx.try_send(job) {
                    Ok(()) => {
                        self.queued.fetch_add(1, Ordering::Relaxed);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        job = back;
                        break;
                    }
                    // The reader's task just ended for idleness: start a new one.
                    Err(mpsc::error::TrySendError::Closed(back)) => {
                        self.queues.remove(&back.device);
                        job = back;
                    }
                }
            }
        }
        let overflow = self.ctx.stats.overflow.fetch_add(1, Ordering::Relaxed) + 1;
        if overflow.is_power_of_two() {
            tracing::warn!(device = %job.device, overflow, "reader queue full; message dropped (the reader re-sends)");
        }
        false
    }

    /// The queue of `device`, starting its task when it has none.
    fn sender(&mut self, device: &str) -> Option<mpsc::Sender<Job>> {
        if let Some(tx) = self.queues.get(device) {
            return Some(tx.clone());
        }
        if self.queues.len() >= MAX_CACHE_ENTRIES {
            self.queues.retain(|_, tx| !tx.is_closed());
            if self.queues.len() >= MAX_CACHE_ENTRIES {
                return None;
            }
        }
        let (tx, rx) = mpsc::channel(self.per_reader);
        let (ctx, acks, permits, queued) =
            (self.ctx.clone(), self.acks.clone(), self.permits.clone(), self.queued.clone());
        self.tasks.spawn(reader_task(ctx, rx, acks, permits, queued));
        self.queues.insert(device.to_owned(), tx.clone());
        Some(tx)
    }

    /// Closes every queue and waits until the messages in hand are done.
    async fn close(mut self) {
        self.queues.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The order in which PUBACKs may be sent: messages are acked in arrival order, each once its
/// processing is done, and only on the connection that delivered it (the broker redelivers
/// the unacked messages of an older connection itself).
#[derive(Debug, Default)]
struct AckQueue {
    epoch: u64,
    queue: VecDeque<(u64, Box<Publish>, bool)>,
}

impl AckQueue {
    /// A new connection: forget the old one's messages.
    fn new_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.queue.clear();
    }

    fn register(&mut self, epoch: u64, seq: u64, publish: Box<Publish>) {
        if epoch == self.epoch {
            self.queue.push_back((seq, publish, false));
        }
    }

    /// Marks `seq` done; returns the messages that may now be acked, in order.
    fn done(&mut self, epoch: u64, seq: u64) -> Vec<Publish> {
        if epoch != self.epoch {
            return Vec::new();
        }
        if let Some(entry) = self.queue.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.2 = true;
        }
        let mut ready = Vec::new();
        while self.queue.front().is_some_and(|(_, _, done)| *done) {
            if let Some((_, publish, _)) = self.queue.pop_front() {
                ready.push(*publish);
            }
        }
        ready
    }
}

/// Sends PUBACKs strictly in arrival order, only for the current connection.
async fn acker(client: AsyncClient, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
    let mut acks = AckQueue::default();
    while let Some(msg) = rx.recv().await {
        let ready = match msg {
            AckMsg::Epoch(e) => {
                acks.new_epoch(e);
                continue;
            }
            AckMsg::Register { epoch, seq, publish } => {
                acks.register(epoch, seq, publish);
                continue;
            }
            AckMsg::Done { epoch, seq } => acks.done(epoch, seq),
        };
        for publish in ready {
            if let Err(e) = client.ack(&publish).await {
                tracing::warn!(error = %e, "MQTT ack could not be queued");
            }
        }
    }
}

/// Works off one reader's queue in order; ends after [`READER_IDLE`] without messages.
async fn reader_task(
    ctx: Arc<Context>,
    mut rx: mpsc::Receiver<Job>,
    acks: mpsc::UnboundedSender<AckMsg>,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    loop {
        let job = match tokio::time::timeout(READER_IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_idle) => {
                // No new message can be queued from here on; the ones already queued are
                // still worked off before `recv` says the queue is done.
                rx.close();
                continue;
            }
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        let mut slot = Slot { permits: &permits, held: None };
        slot.take().await;
        match job.kind {
            topics::Inbound::Scan => handle_scan(&ctx, &job.device, &job.payload, &mut slot).await,
            topics::Inbound::Status => handle_status(&ctx, &job.device, &job.payload).await,
        }
        drop(slot);
        if let Some(seq) = job.seq {
            let _ = acks.send(AckMsg::Done { epoch: job.epoch, seq });
        }
    }
}

/// A reader task's share of [`BridgeConfig::shards`]: held while it works, given up while
/// it waits out a backoff, so a retrying reader never holds up the others.
struct Slot<'a> {
    permits: &'a Arc<Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot<'_> {
    async fn take(&mut self) {
        if self.held.is_none() {
            self.held = self.permits.clone().acquire_owned().await.ok();
        }
    }

    fn release(&mut self) {
        self.held = None;
    }
}

/// Exponential backoff within [`BridgeConfig::retry_budget`] for one scan.
struct Backoff {
    started: Instant,
    delay: Duration,
    budget: Duration,
}

impl Backoff {
    fn new(budget: Duration) -> Self {
        Self { started: Instant::now(), delay: Duration::from_millis(100), budget }
    }

    /// Waits before the next attempt (without holding `slot`); false when the budget is spent
    /// or the bridge is stopping.
    async fn wait(&mut self, ctx: &Context, slot: &mut Slot<'_>) -> bool {
        let left = self.budget.saturating_sub(self.started.elapsed());
        if left.is_zero() || ctx.shutdown.is_cancelled() {
            return false;
        }
        BridgeStats::bump(&ctx.stats.retries);
        slot.release();
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return false,
            _ = tokio::time::sleep(self.delay.min(left)) => {}
        }
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        slot.take().await;
        true
    }
}

impl Context {
    async fn publish_result(&self, device: &str, result: &ScanResult) {
        let topic = topics::result(&self.prefix, device);
        match self.client.publish(topic, QoS::AtLeastOnce, false, result.to_json()).await {
            Ok(()) => BridgeStats::bump(&self.stats.results_published),
            Err(e) => tracing::warn!(%device, error = %e, "result could not be queued for publishing"),
        }
    }

    /// The reader's credentials, cached; `refresh` bypasses the cache (after a failed
    /// signature check, in case the key was just rotated).
    async fn credentials(&self, device: &str, refresh: bool) -> phoenix_common::Result<Option<Credentials>> {
        if !refresh && let Some((cached, at)) = lock(&self.credentials).get(device).cloned() {
            let ttl = if cached.is_some() { self.config.credential_ttl } else { self.config.unknown_ttl };
            if at.elapsed() < ttl {
                return Ok(cached);
            }
        }
        let fresh = presence::credentials(&self.deps.pool, device).await?;
        let mut cache = lock(&self.credentials);
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(device.to_owned(), (fresh, Instant::now()));
        Ok(fresh)
    }

    fn verifies(&self, device: &str, credentials: Credentials, scan: &Scan) -> bool {
        let key = derive_device_key(self.deps.secret.expose().as_bytes(), device, credentials.key_version);
        verify_signature(&key, device, scan)
    }

    /// Stamps `last_seen` at most every `seen_interval` per reader.
    async fn seen(&self, device: &str, id: i64) {
        {
            let mut seen = lock(&self.seen);
            if seen.get(&id).is_some_and(|t| t.elapsed() < self.config.seen_interval) {
                return;
            }
            if seen.len() >= MAX_CACHE_ENTRIES {
                seen.clear();
            }
            seen.insert(id, Instant::now());
        }
        if let Err(e) = presence::record_seen(&self.deps.pool, id).await {
            lock(&self.seen).remove(&id);
            tracing::warn!(%device, error = %e, "could not record last_seen");
        }
    }

    /// Appends a device-log entry, at most one per reader and event per `log_interval`.
    async fn log(&self, device: &str, id: i64, event: LogEvent, detail: serde_json::Value) {
        {
            let mut logged = lock(&self.logged);
            let key = (id, event.as_str());
            if logged.get(&key).is_some_and(|t| t.elapsed() < self.config.log_interval) {
                return;
            }
            if logged.len() >= MAX_CACHE_ENTRIES {
                logged.clear();
            }
            logged.insert(key, Instant::now());
        }
        if let Err(e) = presence::record_event(&self.deps.pool, id, event, detail).await {
            tracing::warn!(%device, event = event.as_str(), error = %e, "could not write the device log");
        }
    }

    /// Calls ProcessScan, retrying transient failures ([`retryable`]) with `backoff`.
    async fn process(
        &self,
        device: &str,
        scan: &Scan,
        backoff: &mut Backoff,
        slot: &mut Slot<'_>,
    ) -> Result<ScanResult, Failure> {
        let scanned_at = scan.scanned_at_utc().ok_or(Failure::Final(Code::Malformed))?;
        let request = pb::ProcessScanRequest {
            device_id: device.to_owned(),
            scan_id: scan.scan_id.clone(),
            tag: scan.tag.clone(),
            scanned_at: Some(phoenix_common::time::to_timestamp(scanned_at)),
        };
        loop {
            let mut client = self.deps.active.clone();
            match client.process_scan(request.clone()).await {
                Ok(reply) => {
                    return result_from_proto(reply.into_inner()).ok_or_else(|| {
                        tracing::error!(%device, scan_id = %scan.scan_id, "ProcessScan returned an unknown outcome or code");
                        Failure::Final(Code::Internal)
                    });
                }
                Err(status) if retryable(status.code()) => {
                    tracing::debug!(%device, code = ?status.code(), "ProcessScan failed transiently; retrying");
                    if !backoff.wait(self, slot).await {
                        return Err(Failure::Retryable(status));
                    }
                }
                Err(status) => {
                    tracing::error!(%device, scan_id = %scan.scan_id, code = ?status.code(), message = status.message(), "ProcessScan failed");
                    let code =
                        if status.code() == tonic::Code::InvalidArgument { Code::Malformed } else { Code::Internal };
                    return Err(Failure::Final(code));
                }
            }
        }
    }

    /// [`Context::credentials`], retrying while the database is unreachable.
    async fn credentials_retrying(
        &self,
        device: &str,
        backoff: &mut Backoff,
        slot: &mut Slot<'_>,
    ) -> phoenix_common::Result<Option<Credentials>> {
        loop {
            match self.credentials(device, false).await {
                Err(e) if backoff.wait(self, slot).await => {
                    tracing::debug!(%device, error = %e, "reader look-up failed; retrying");
                }
                other => return other,
            }
        }
    }
}

/// How a ProcessScan call ended without a Result from the service.
enum Failure {
    /// Still failing transiently when the retry budget ran out: no Result (the reader
    /// re-sends).
    Retryable(tonic::Status),
    /// Answered with this rejection code; the reader does not re-send.
    Final(Code),
}

/// The gRPC codes of a ProcessScan failure that are retried and, past the retry budget,
/// left unanswered rather than answered `internal` (reader-pipeline.md "Failures"). The
/// transaction of a failed call has rolled back, so a retry is always safe. UNAUTHENTICATED
/// is the gateway's own token (the reader's identity is its signature, checked here): an
/// auth outage let it lapse. INTERNAL includes database errors of a restarting server.
pub fn retryable(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::Unavailable
            | C::DeadlineExceeded
            | C::ResourceExhausted
            | C::Aborted
            | C::Unknown
            | C::Cancelled
            | C::Unauthenticated
            | C::Internal
    )
}

/// The reader-facing Result of a `ProcessScanResponse`; `None` for values this gateway does
/// not know (a newer service: answered `internal`).
pub fn result_from_proto(r: pb::ProcessScanResponse) -> Option<ScanResult> {
    let outcome = match r.outcome() {
        pb::ScanOutcome::CheckedIn => Outcome::CheckedIn,
        pb::ScanOutcome::CheckedOut => Outcome::CheckedOut,
        pb::ScanOutcome::Transferred => Outcome::Transferred,
        pb::ScanOutcome::Rejected => Outcome::Rejected,
        pb::ScanOutcome::Unspecified => return None,
    };
    Some(ScanResult {
        scan_id: r.scan_id,
        outcome,
        code: Code::parse(&r.code)?,
        message: r.message,
        student: r.student.map(|s| ResultStudent { id: s.id, display_name: s.display_name }),
        room: r.room.map(|r| ResultRoom { id: r.id, name: r.name }),
        duplicate: r.duplicate,
    })
}

async fn handle_scan(ctx: &Context, device: &str, payload: &[u8], slot: &mut Slot<'_>) {
    let scan = match decode_scan(payload) {
        Ok(scan) => scan,
        Err(malformed) => {
            BridgeStats::bump(&ctx.stats.malformed);
            tracing::debug!(%device, reason = %malformed.error, "malformed scan");
            ctx.publish_result(device, &ScanResult::rejected(malformed.scan_id.unwrap_or_default(), Code::Malformed))
                .await;
            if let Ok(Some(c)) = ctx.credentials(device, false).await {
                ctx.log(device, c.id, LogEvent::Malformed, serde_json::json!({"reason": malformed.error.to_string()}))
                    .await;
            }
            return;
        }
    };
    let mut backoff = Backoff::new(ctx.config.retry_budget);
    let credentials = match ctx.credentials_retrying(device, &mut backoff, slot).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            BridgeStats::bump(&ctx.stats.unknown_device);
            tracing::info!(%device, scan_id = %scan.scan_id, "scan from an unknown device");
            ctx.publish_result(device, &ScanResult::rejected(scan.scan_id, Code::UnknownDevice)).await;
            return;
        }
        Err(e) => {
            // The database is unreachable: leave the scan unanswered; the reader re-sends.
            BridgeStats::bump(&ctx.stats.unanswered);
            tracing::warn!(%device, error = %e, "cannot look up the reader; scan left for a re-send");
            return;
        }
    };
    let verified = ctx.verifies(device, credentials, &scan)
        || match ctx.credentials(device, true).await {
            Ok(Some(fresh)) if fresh.key_version != credentials.key_version => ctx.verifies(device, fresh, &scan),
            _ => false,
        };
    if !verified {
        BridgeStats::bump(&ctx.stats.bad_signature);
        tracing::warn!(%device, scan_id = %scan.scan_id, "scan with a bad signature refused");
        ctx.publish_result(device, &ScanResult::rejected(scan.scan_id.clone(), Code::BadSignature)).await;
        ctx.log(device, credentials.id, LogEvent::BadSignature, serde_json::json!({"scan_id": scan.scan_id})).await;
        return;
    }
    ctx.seen(device, credentials.id).await;
    // After the signature (forged scans cannot use up a reader's budget), before any
    // scan work: a runaway reader must not take the database with it. Nothing is stored,
    // so the same scan is applied normally if it comes again later.
    if ctx.limiter.check(device.to_owned(), Instant::now()).is_err() {
        BridgeStats::bump(&ctx.stats.rate_limited);
        tracing::debug!(%device, scan_id = %scan.scan_id, "scan over the reader's rate limit");
        ctx.publish_result(device, &ScanResult::rejected(scan.scan_id.clone(), Code::RateLimited)).await;
        ctx.log(device, credentials.id, LogEvent::RateLimited, serde_json::json!({"scan_id": scan.scan_id})).await;
        return;
    }

    let result = match ctx.process(device, &scan, &mut backoff, slot).await {
        Ok(result) => result,
        Err(Failure::Retryable(status)) => {
            BridgeStats::bump(&ctx.stats.unanswered);
            tracing::warn!(%device, scan_id = %scan.scan_id, code = ?status.code(), "ProcessScan still failing after the retry budget; scan left for a re-send");
            return;
        }
        Err(Failure::Final(code)) => ScanResult::rejected(scan.scan_id.clone(), code),
    };
    BridgeStats::bump(&ctx.stats.processed);
    if !result.duplicate {
        let event = match result.code {
            Code::StaleScan => Some(LogEvent::StaleScan),
            Code::DeviceInactive => Some(LogEvent::DeviceInactive),
            _ => None,
        };
        if let Some(event) = event {
            ctx.log(device, credentials.id, event, serde_json::json!({"scan_id": scan.scan_id})).await;
        }
    }
    ctx.publish_result(device, &result).await;
}

/// `online` / `offline` / a JSON heartbeat (`{"status": "offline"}` counts as offline).
/// `None`: nothing to do (an empty payload clears a retained message).
fn parse_status(payload: &[u8]) -> Result<Option<bool>, ()> {
    if payload.len() > phoenix_reader_protocol::MAX_SCAN_BYTES {
        return Err(());
    }
    let text = std::str::from_utf8(payload).map_err(drop)?.trim();
    match text {
        "" => Ok(None),
        "online" => Ok(Some(true)),
        "offline" => Ok(Some(false)),
        json if json.starts_with('{') => {
            let value: serde_json::Value = serde_json::from_str(json).map_err(drop)?;
            Ok(Some(value.get("status").and_then(|s| s.as_str()) != Some("offline")))
        }
        _ => Err(()),
    }
}

/// Status messages are not signed (the contract has no signature for them; a Last Will is
/// fixed at connect time): they only move `last_seen` and the offline mark, and only for
/// known readers. Brokers should restrict the topic per device (ACLs).
async fn handle_status(ctx: &Context, device: &str, payload: &[u8]) {
    BridgeStats::bump(&ctx.stats.status_messages);
    let online = match parse_status(payload) {
        Ok(Some(online)) => online,
        Ok(None) => return,
        Err(()) => {
            BridgeStats::bump(&ctx.stats.dropped);
            return;
        }
    };
    let Ok(Some(credentials)) = ctx.credentials(device, false).await else {
        BridgeStats::bump(&ctx.stats.dropped);
        return;
    };
    if online {
        ctx.seen(device, credentials.id).await;
    } else {
        // The next message must stamp `last_seen` again at once.
        lock(&ctx.seen).remove(&credentials.id);
        if let Err(e) = presence::record_offline(&ctx.deps.pool, credentials.id).await {
            tracing::warn!(%device, error = %e, "could not record offline");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1883").expect("ok"), ("127.0.0.1".into(), 1883));
        assert_eq!(parse_mqtt_url("tcp://broker").expect("ok"), ("broker".into(), 1883));
        assert_eq!(parse_mqtt_url("mqtt://[::1]:1884").expect("ok"), ("::1".into(), 1884));
        assert!(parse_mqtt_url("http://x:1").is_err());
        assert!(parse_mqtt_url("mqtt://:1").is_err());
        assert!(parse_mqtt_url("mqtt://x:port").is_err());
    }

    #[test]
    fn status_payloads() {
        assert_eq!(parse_status(b"online"), Ok(Some(true)));
        assert_eq!(parse_status(b" offline\n"), Ok(Some(false)));
        assert_eq!(parse_status(b""), Ok(None));
        assert_eq!(parse_status(br#"{"uptime": 12}"#), Ok(Some(true)));
        assert_eq!(parse_status(br#"{"status": "offline"}"#), Ok(Some(false)));
        assert_eq!(parse_status(b"maybe"), Err(()));
        assert_eq!(parse_status(b"{nope"), Err(()));
        assert_eq!(parse_status(&[0xff, 0xfe]), Err(()));
    }

    fn publish(pkid: u16) -> Box<Publish> {
        let mut p = Publish::new("p/readers/r/scan", QoS::AtLeastOnce, vec![]);
        p.pkid = pkid;
        Box::new(p)
    }

    fn pkids(ready: Vec<Publish>) -> Vec<u16> {
        ready.into_iter().map(|p| p.pkid).collect()
    }

    #[test]
    fn acks_go_out_in_arrival_order_whatever_order_work_finishes() {
        let mut q = AckQueue::default();
        q.new_epoch(1);
        for seq in 1..=4 {
            q.register(1, seq, publish(seq as u16 + 10));
        }
        assert_eq!(pkids(q.done(1, 3)), Vec::<u16>::new(), "3 waits for 1 and 2");
        assert_eq!(pkids(q.done(1, 2)), Vec::<u16>::new());
        assert_eq!(pkids(q.done(1, 1)), [11, 12, 13]);
        assert_eq!(pkids(q.done(1, 4)), [14]);
        assert_eq!(pkids(q.done(1, 4)), Vec::<u16>::new(), "never twice");
    }

    #[test]
    fn acks_of_an_old_connection_are_dropped() {
        let mut q = AckQueue::default();
        q.new_epoch(1);
        q.register(1, 1, publish(1));
        q.register(1, 2, publish(2));
        q.new_epoch(2);
        assert_eq!(pkids(q.done(1, 1)), Vec::<u16>::new(), "the broker redelivers it on the new connection");
        q.register(1, 3, publish(3));
        q.register(2, 4, publish(1));
        assert_eq!(pkids(q.done(2, 4)), [1]);
    }

    #[test]
    fn transient_codes_are_retried_and_the_rest_is_final() {
        use tonic::Code as C;
        for code in [
            C::Unavailable,
            C::DeadlineExceeded,
            C::ResourceExhausted,
            C::Aborted,
            C::Unknown,
            C::Cancelled,
            C::Unauthenticated,
            C::Internal,
        ] {
            assert!(retryable(code), "{code:?}");
        }
        for code in [
            C::InvalidArgument,
            C::PermissionDenied,
            C::NotFound,
            C::AlreadyExists,
            C::FailedPrecondition,
            C::OutOfRange,
            C::Unimplemented,
            C::DataLoss,
        ] {
            assert!(!retryable(code), "{code:?}");
        }
    }

    #[test]
    fn acks_keep_only_the_packet_id_and_qos() {
        let mut p = Publish::new("p/readers/r/scan", QoS::AtLeastOnce, vec![7u8; 2 * 1024 * 1024]);
        p.pkid = 42;
        let handle = ack_handle(&p);
        assert_eq!((handle.pkid, handle.qos, handle.payload.len()), (42, QoS::AtLeastOnce, 0));
    }

    #[test]
    fn results_convert_from_proto_and_reject_unknown_values() {
        let reply = pb::ProcessScanResponse {
            scan_id: "s".into(),
            outcome: pb::ScanOutcome::CheckedIn as i32,
            code: "ok".into(),
            message: "Eingecheckt: Raum A".into(),
            student: Some(pb::ScanStudent { id: 3, display_name: "Emma M.".into() }),
            room: Some(pb::ScanRoom { id: 4, name: "Raum A".into() }),
            duplicate: true,
        };
        let r = result_from_proto(reply.clone()).expect("known values");
        assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, true));
        assert!(result_from_proto(pb::ProcessScanResponse { code: "new_code".into(), ..reply.clone() }).is_none());
        assert!(result_from_proto(pb::ProcessScanResponse { outcome: 0, ..reply }).is_none());
    }
}
