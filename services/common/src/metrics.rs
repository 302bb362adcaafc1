//! Prometheus metrics (docs/observability.md): one recorder per process, `/metrics` on its
//! own port (`PHOENIX_METRICS_PORT`), and every metric's name, labels and meaning in one
//! place.
//!
//! - [`install`] sets the process-global recorder once (later calls return the same handle);
//!   before it, recording is a no-op, so libraries and tests that never install pay nothing.
//! - [`start`] installs and serves `GET /metrics` (Prometheus text format 0.0.4) on
//!   `PHOENIX_LISTEN_HOST:PHOENIX_METRICS_PORT` with hyper's HTTP/1.1 server, until shutdown.
//! - Counters and histograms are recorded where things happen, through the functions below
//!   ([`rpc_finished`], [`scan_answered`], [`job_finished`], …). Gauges of state that lives
//!   elsewhere (the pool, the argon2 gate, the presence hub) are *sampled* when scraped:
//!   [`sampled_gauge`] registers a reader, and every reader of one name and label set is
//!   summed (two pools in one process report their total).
//! - Label values are bounded sets: method names come from the `METHODS` tables, codes and
//!   outcomes from enums, job names from `Job`; never an id, a device or a user.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::DbPool;
use crate::server::ShutdownToken;

/// RPCs served behind `Authorized`, by `service` (full proto name), `method` and gRPC `code`
/// (`OK`, `NOT_FOUND`, …).
pub const RPC_REQUESTS: &str = "phoenix_rpc_requests_total";
/// Duration of a served RPC until its status went out (a stream: its whole life), by
/// `service` and `method`.
pub const RPC_DURATION: &str = "phoenix_rpc_duration_seconds";
/// Calls the gateway forwarded to a domain, by `domain` (`users`, `active`, …) and `result`
/// (`forwarded`: the domain answered, whatever its status; `unavailable`: it could not be
/// reached, the caller got UNAVAILABLE).
pub const GATEWAY_FORWARDED: &str = "phoenix_gateway_forwarded_total";
/// Scans the gateway answered with a Result, by `outcome` and `code` (the reader-protocol
/// values; refusals of the bridge itself, e.g. `bad_signature`, included) and `duplicate`.
pub const SCANS: &str = "phoenix_scans_total";
/// Scans left without a Result after a transient failure outlasted the retry budget (the
/// reader re-sends them).
pub const SCANS_UNANSWERED: &str = "phoenix_scans_unanswered_total";
/// Transactions the active service committed reader scans in, by `kind` (`single`: one
/// scan, `batch`: several together, `one_by_one`: a batch that failed, its scans then
/// applied one transaction each).
pub const SCAN_COMMITS: &str = "phoenix_scan_commits_total";
/// Reader scans those transactions applied, by the same `kind`: over `phoenix_scan_commits_total`,
/// the scans per commit.
pub const SCAN_COMMITTED: &str = "phoenix_scan_committed_total";
/// Time from a scan's arrival at the gateway to its Result queued for publishing.
pub const SCAN_ROUNDTRIP: &str = "phoenix_scan_roundtrip_seconds";
/// Messages queued in the bridge and not yet taken up, across readers.
pub const BRIDGE_QUEUE_DEPTH: &str = "phoenix_bridge_queue_depth";
/// Messages the bridge dropped because a reader's queue or the bridge was full.
pub const BRIDGE_OVERFLOW: &str = "phoenix_bridge_overflow_total";
/// 1 while the bridge's MQTT connection is up, else 0.
pub const MQTT_CONNECTED: &str = "phoenix_mqtt_connected";
/// MQTT connection events of the bridge, by `event` (`connected`, `error`).
pub const MQTT_CONNECTION_EVENTS: &str = "phoenix_mqtt_connection_events_total";
/// Pooled database connections, by `state` (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "phoenix_db_pool_connections";
/// The pool's maximum size.
pub const DB_POOL_MAX: &str = "phoenix_db_pool_max_connections";
/// Connection checkouts, by `result` (`direct`: one was idle, `waited`, `timed_out`).
pub const DB_POOL_GETS: &str = "phoenix_db_pool_gets_total";
/// How long a handler waited for a pooled connection (`db::conn`).
pub const DB_POOL_WAIT: &str = "phoenix_db_pool_wait_seconds";
/// `WatchPresence` streams open on this process.
pub const PRESENCE_WATCHERS: &str = "phoenix_presence_watchers";
/// Job runs, by `job_name` (not `job`: Prometheus's own target label) and `outcome` (`ok`,
/// `failed`, `already_running`).
pub const JOB_RUNS: &str = "phoenix_job_runs_total";
/// Duration of a job run that did its work, by `job_name`.
pub const JOB_DURATION: &str = "phoenix_job_duration_seconds";
/// argon2 hashes/verifications running now.
pub const ARGON2_RUNNING: &str = "phoenix_argon2_running";
/// Callers waiting for an argon2 permit.
pub const ARGON2_WAITING: &str = "phoenix_argon2_waiting";
/// The argon2 gate's size (`PHOENIX_AUTH_HASH_CONCURRENCY`).
pub const ARGON2_LIMIT: &str = "phoenix_argon2_limit";
/// Request-path callers refused (RESOURCE_EXHAUSTED) for want of an argon2 permit.
pub const ARGON2_REFUSED: &str = "phoenix_argon2_refused_total";

/// `pg_database_size` of Phoenix's database (the `db_stats` job, one process at a time).
pub const DB_SIZE: &str = "phoenix_db_size_bytes";
/// Size of each Phoenix schema, tables + indexes + TOAST, by `schema`.
pub const DB_SCHEMA_SIZE: &str = "phoenix_db_schema_bytes";
/// Live and dead tuples of each table of the `active` schema, by `schema`, `table`, `state`
/// (`live`, `dead`).
pub const DB_TABLE_TUPLES: &str = "phoenix_db_table_tuples";
/// When autovacuum last finished on each table of `active` (Unix seconds; 0 = never), by
/// `schema`, `table`.
pub const DB_TABLE_LAST_AUTOVACUUM: &str = "phoenix_db_table_last_autovacuum_timestamp_seconds";
/// Estimated bloat of each Phoenix table, by `schema`, `table`.
pub const DB_TABLE_BLOAT: &str = "phoenix_db_table_bloat_bytes";
/// Index scans since the statistics reset, by `schema`, `index`.
pub const DB_INDEX_SCANS: &str = "phoenix_db_index_scans";
/// Indexes never scanned that enforce no constraint (candidates to drop).
pub const DB_UNUSED_INDEXES: &str = "phoenix_db_unused_indexes";
/// Client sessions on Phoenix's database, by `role` and `state` (`active`, `idle`,
/// `idle_in_transaction`).
pub const DB_CONNECTIONS: &str = "phoenix_db_connections";
/// Client sessions on the whole server and its `max_connections`, by `kind` (`in_use`, `max`).
pub const DB_SERVER_CONNECTIONS: &str = "phoenix_db_server_connections";
/// Replay lag of each standby streaming from the primary, by `replica` (application_name).
pub const DB_REPLICATION_LAG: &str = "phoenix_db_replication_lag_seconds";
/// Replay lag of each standby in WAL bytes, by `replica`.
pub const DB_REPLICATION_LAG_BYTES: &str = "phoenix_db_replication_lag_bytes";

/// Histogram buckets (seconds) of every `*_seconds` histogram: 1 ms to 1 min.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// How often histogram data is drained when nobody scrapes (bounds memory).
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first (then nothing of Phoenix's is exported).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .expect("buckets are not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    sample_argon2();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: a recorder is already installed; Phoenix's metrics are not exported");
                    None
                }
            }
        })
        .as_ref()
}

/// Whether [`install`] has set Phoenix's recorder in this process.
pub fn is_installed() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// Installs the recorder and serves `/metrics` on `PHOENIX_LISTEN_HOST:PHOENIX_METRICS_PORT`
/// until `shutdown`; `None` when the port is `off`. Returns where it listens (port `0` =
/// ephemeral; `fallback`: a free port when the configured one is taken, as `phoenix dev`).
pub async fn start(config: &Config, fallback: bool, shutdown: ShutdownToken) -> anyhow::Result<Option<SocketAddr>> {
    let Some(port) = config.metrics_port else { return Ok(None) };
    let listener = crate::server::bind(config.listen_host, port, fallback)
        .await
        .map_err(|e| anyhow::anyhow!("PHOENIX_METRICS_PORT: {e}"))?;
    let addr = listener.local_addr()?;
    install();
    tokio::spawn(serve(listener, shutdown));
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(Some(addr))
}

/// Serves `GET /metrics` on `listener` until `shutdown` (the recorder must be installed;
/// otherwise the page is empty). Anything else is 404.
pub async fn serve(listener: TcpListener, shutdown: ShutdownToken) -> anyhow::Result<()> {
    use hyper::service::service_fn;
    let upkeep = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => if let Some(Some(h)) = HANDLE.get() { h.run_upkeep() },
                }
            }
        }
    });
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics: accept failed");
                    continue;
                }
            },
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service_fn(respond));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    upkeep.abort();
    Ok(())
}

type Page = http_body_util::Full<hyper::body::Bytes>;

async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Page>, std::convert::Infallible> {
    let builder = hyper::Response::builder();
    let response = if request.method() == hyper::Method::GET && request.uri().path() == "/metrics" {
        builder.header("content-type", "text/plain; version=0.0.4; charset=utf-8").body(Page::from(render()))
    } else {
        builder.status(404).header("content-type", "text/plain").body(Page::from("not found: GET /metrics\n"))
    };
    Ok(response.unwrap_or_default())
}

/// Samples the registered gauges and renders every metric (the `/metrics` page).
pub fn render() -> String {
    let Some(Some(handle)) = HANDLE.get() else { return String::new() };
    sample();
    handle.render()
}

/// Records one finished RPC (called by `Authorized` when its status is known).
pub fn rpc_finished(service: &'static str, method: &'static str, code: tonic::Code, elapsed: Duration) {
    counter!(RPC_REQUESTS, "service" => service, "method" => method, "code" => code_name(code)).increment(1);
    histogram!(RPC_DURATION, "service" => service, "method" => method).record(elapsed.as_secs_f64());
}

/// Records one call the gateway forwarded to `domain` (`result`: `forwarded`, `unavailable`).
pub fn forwarded(domain: &'static str, result: &'static str) {
    counter!(GATEWAY_FORWARDED, "domain" => domain, "result" => result).increment(1);
}

/// Records a scan answered with a Result `roundtrip` after it reached the gateway.
pub fn scan_answered(outcome: &'static str, code: &'static str, duplicate: bool, roundtrip: Duration) {
    let duplicate = if duplicate { "true" } else { "false" };
    counter!(SCANS, "outcome" => outcome, "code" => code, "duplicate" => duplicate).increment(1);
    histogram!(SCAN_ROUNDTRIP).record(roundtrip.as_secs_f64());
}

/// Records one commit of `scans` reader scans (`kind`: `single`, `batch`, `one_by_one`).
pub fn scans_committed(kind: &'static str, scans: usize) {
    counter!(SCAN_COMMITS, "kind" => kind).increment(1);
    counter!(SCAN_COMMITTED, "kind" => kind).increment(scans as u64);
}

/// Records a scan left unanswered for the reader to re-send.
pub fn scan_unanswered() {
    counter!(SCANS_UNANSWERED).increment(1);
}

/// Records one run of `job`: `outcome` is `ok`, `failed` or `already_running`; `elapsed`
/// only for a run that did its work.
pub fn job_finished(job: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
    counter!(JOB_RUNS, "job_name" => job, "outcome" => outcome).increment(1);
    if let Some(elapsed) = elapsed {
        histogram!(JOB_DURATION, "job_name" => job).record(elapsed.as_secs_f64());
    }
}

/// Records how long [`crate::db::conn`] waited for a connection.
pub fn pool_waited(elapsed: Duration) {
    histogram!(DB_POOL_WAIT).record(elapsed.as_secs_f64());
}

/// Counts a request-path caller refused for want of an argon2 permit.
pub fn argon2_refused() {
    counter!(ARGON2_REFUSED).increment(1);
}

/// The bridge's queue grew (`+1`) or shrank (`-1`).
pub fn bridge_queue_changed(delta: f64) {
    gauge!(BRIDGE_QUEUE_DEPTH).increment(delta);
}

/// Counts a message dropped for a full queue.
pub fn bridge_overflow() {
    counter!(BRIDGE_OVERFLOW).increment(1);
}

/// The bridge's MQTT connection came up (`true`) or was lost or closed (`false`).
pub fn mqtt_connection(up: bool, event: Option<&'static str>) {
    gauge!(MQTT_CONNECTED).set(if up { 1.0 } else { 0.0 });
    if let Some(event) = event {
        counter!(MQTT_CONNECTION_EVENTS, "event" => event).increment(1);
    }
}

/// The canonical gRPC name of `code` (`OK`, `INVALID_ARGUMENT`, …), as Prometheus labels use it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

// ---- sampled when scraped ----

/// Reads one value of a sampled metric; `None` when its source is gone (then it is dropped).
type Reader = Box<dyn Fn() -> Option<f64> + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Gauge,
    /// A monotonic total kept elsewhere (bb8's statistics), exported as a counter.
    Counter,
}

struct Sampled {
    kind: Kind,
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    read: Reader,
}

static SAMPLED: Mutex<Vec<Sampled>> = Mutex::new(Vec::new());

/// Sets a gauge whose labels are known only at run time (schema, table, index or role names
/// read from the catalog: bounded sets, never personal data). A no-op without the recorder.
pub fn set_gauge(name: &'static str, labels: &[(&'static str, &str)], value: f64) {
    if !is_installed() {
        return;
    }
    let labels: Vec<metrics::Label> = labels.iter().map(|(k, v)| metrics::Label::new(*k, (*v).to_owned())).collect();
    gauge!(name, labels).set(value);
}

/// Registers a gauge read when `/metrics` is scraped; values of one name and label set are
/// summed. Does nothing unless the recorder is installed (nothing would read it).
pub fn sampled_gauge(
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    read: impl Fn() -> Option<f64> + Send + Sync + 'static,
) {
    register(Kind::Gauge, name, labels, Box::new(read));
}

fn register(kind: Kind, name: &'static str, labels: &'static [(&'static str, &'static str)], read: Reader) {
    if is_installed() {
        push(kind, name, labels, read);
    }
}

fn push(kind: Kind, name: &'static str, labels: &'static [(&'static str, &'static str)], read: Reader) {
    SAMPLED.lock().unwrap_or_else(|p| p.into_inner()).push(Sampled { kind, name, labels, read });
}

fn sample() {
    type Key = (Kind, &'static str, &'static [(&'static str, &'static str)]);
    let mut sums: BTreeMap<Key, f64> = BTreeMap::new();
    {
        let mut sampled = SAMPLED.lock().unwrap_or_else(|p| p.into_inner());
        sampled.retain(|s| match (s.read)() {
            Some(v) => {
                *sums.entry((s.kind, s.name, s.labels)).or_default() += v;
                true
            }
            None => false,
        });
    }
    for ((kind, name, labels), value) in sums {
        let labels: Vec<metrics::Label> = labels.iter().map(|(k, v)| metrics::Label::new(*k, *v)).collect();
        match kind {
            Kind::Gauge => gauge!(name, labels).set(value),
            Kind::Counter => counter!(name, labels).absolute(value as u64),
        }
    }
}

/// Reports the size (`max_size`), idle and in-use connections and checkouts of `pool` when
/// scraped (called by [`crate::db::connect`]; a no-op without the recorder). The registry
/// keeps a handle on the pool, which lives as long as its process anyway.
pub fn watch_pool(pool: &DbPool, max_size: u32) {
    if !is_installed() {
        return;
    }
    let size = f64::from(max_size);
    let reader = |f: fn(&bb8_state::State) -> f64| {
        let p = pool.clone();
        Box::new(move || Some(f(&bb8_state::of(&p)))) as Reader
    };
    register(Kind::Gauge, DB_POOL_MAX, &[], Box::new(move || Some(size)));
    register(Kind::Gauge, DB_POOL_CONNECTIONS, &[("state", "idle")], reader(|s| s.idle));
    register(Kind::Gauge, DB_POOL_CONNECTIONS, &[("state", "in_use")], reader(|s| s.in_use));
    register(Kind::Counter, DB_POOL_GETS, &[("result", "direct")], reader(|s| s.direct));
    register(Kind::Counter, DB_POOL_GETS, &[("result", "waited")], reader(|s| s.waited));
    register(Kind::Counter, DB_POOL_GETS, &[("result", "timed_out")], reader(|s| s.timed_out));
}

/// The argon2 gate (called while installing, before [`is_installed`] holds).
fn sample_argon2() {
    push(Kind::Gauge, ARGON2_RUNNING, &[], Box::new(|| Some(crate::password::running() as f64)));
    push(Kind::Gauge, ARGON2_WAITING, &[], Box::new(|| Some(crate::password::waiting() as f64)));
    push(Kind::Gauge, ARGON2_LIMIT, &[], Box::new(|| Some(crate::password::concurrency() as f64)));
}

fn describe() {
    describe_counter!(RPC_REQUESTS, "RPCs served, by service, method and gRPC code");
    describe_histogram!(RPC_DURATION, Unit::Seconds, "RPC duration until its status (streams: their whole life)");
    describe_counter!(GATEWAY_FORWARDED, "calls the gateway forwarded, by domain and result (forwarded, unavailable)");
    describe_counter!(SCANS, "scans answered with a Result, by outcome, code and duplicate");
    describe_counter!(SCANS_UNANSWERED, "scans left without a Result after the retry budget (the reader re-sends)");
    describe_counter!(SCAN_COMMITS, "transactions the active service committed reader scans in, by kind");
    describe_counter!(SCAN_COMMITTED, "reader scans those transactions applied, by kind");
    describe_histogram!(SCAN_ROUNDTRIP, Unit::Seconds, "time from a scan's arrival at the gateway to its Result");
    describe_gauge!(BRIDGE_QUEUE_DEPTH, "messages queued in the bridge, not yet taken up");
    describe_counter!(BRIDGE_OVERFLOW, "messages dropped because a reader's queue or the bridge was full");
    describe_gauge!(MQTT_CONNECTED, "1 while the bridge's MQTT connection is up");
    describe_counter!(MQTT_CONNECTION_EVENTS, "MQTT connection events of the bridge (connected, error)");
    describe_gauge!(DB_POOL_CONNECTIONS, "pooled database connections by state (idle, in_use)");
    describe_gauge!(DB_POOL_MAX, "maximum pooled database connections");
    describe_counter!(DB_POOL_GETS, "connection checkouts by result (direct, waited, timed_out)");
    describe_histogram!(DB_POOL_WAIT, Unit::Seconds, "how long a handler waited for a pooled connection");
    describe_gauge!(PRESENCE_WATCHERS, "WatchPresence streams open on this process");
    describe_counter!(JOB_RUNS, "job runs by job and outcome (ok, failed, already_running)");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "duration of job runs that did their work");
    describe_gauge!(DB_SIZE, Unit::Bytes, "size of Phoenix's database");
    describe_gauge!(DB_SCHEMA_SIZE, Unit::Bytes, "size of each Phoenix schema (tables, indexes, TOAST)");
    describe_gauge!(DB_TABLE_TUPLES, "live and dead tuples of each table of the active schema");
    describe_gauge!(
        DB_TABLE_LAST_AUTOVACUUM,
        "when autovacuum last finished on each active table (Unix seconds; 0 = never)"
    );
    describe_gauge!(DB_TABLE_BLOAT, Unit::Bytes, "estimated bloat of each Phoenix table");
    describe_gauge!(DB_INDEX_SCANS, "scans of each Phoenix index since the statistics reset");
    describe_gauge!(DB_UNUSED_INDEXES, "indexes never scanned that enforce no constraint");
    describe_gauge!(DB_CONNECTIONS, "client sessions on Phoenix's database by role and state");
    describe_gauge!(DB_SERVER_CONNECTIONS, "client sessions on the server (in_use) and max_connections (max)");
    describe_gauge!(DB_REPLICATION_LAG, Unit::Seconds, "replay lag of each streaming standby");
    describe_gauge!(DB_REPLICATION_LAG_BYTES, Unit::Bytes, "replay lag of each streaming standby in WAL bytes");
    describe_gauge!(ARGON2_RUNNING, "argon2 hashes running now");
    describe_gauge!(ARGON2_WAITING, "callers waiting for an argon2 permit");
    describe_gauge!(ARGON2_LIMIT, "argon2 hashes allowed at once");
    describe_counter!(ARGON2_REFUSED, "callers refused RESOURCE_EXHAUSTED for want of an argon2 permit");
}

/// bb8's state in the units exported.
mod bb8_state {
    use crate::db::DbPool;

    pub struct State {
        pub idle: f64,
        pub in_use: f64,
        pub direct: f64,
        pub waited: f64,
        pub timed_out: f64,
    }

    pub fn of(pool: &DbPool) -> State {
        let s = pool.state();
        let idle = f64::from(s.idle_connections);
        State {
            idle,
            in_use: (f64::from(s.connections) - idle).max(0.0),
            direct: s.statistics.get_direct as f64,
            waited: s.statistics.get_waited as f64,
            timed_out: s.statistics.get_timed_out as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_canonical_name() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn recorded_and_sampled_metrics_render_once_installed() {
        install().expect("the first recorder of the unit-test process");
        rpc_finished("phoenix.test.v1.TestService", "Ping", tonic::Code::NotFound, Duration::from_millis(3));
        sampled_gauge(PRESENCE_WATCHERS, &[], || Some(2.0));
        sampled_gauge(PRESENCE_WATCHERS, &[], || Some(3.0));
        let page = render();
        assert!(
            page.contains(
                r#"phoenix_rpc_requests_total{service="phoenix.test.v1.TestService",method="Ping",code="NOT_FOUND"} 1"#
            ),
            "{page}"
        );
        assert!(page.contains("phoenix_rpc_duration_seconds_bucket{"), "a histogram, not a summary: {page}");
        assert!(page.contains("phoenix_presence_watchers 5"), "sampled gauges are summed: {page}");
        assert!(page.contains("phoenix_argon2_limit "), "{page}");
    }
}
