//! `process-bench`: the two issue #17 figures that need a process of their own (not a test).
//!
//! 1. **Gateway memory** (target: RSS < 64 MiB with 1,000 readers). The real `phoenix gateway`
//!    binary runs as a child process — the browser-facing server, `/metrics` and the MQTT
//!    bridge — against auth, iot and active served in-process here on a test database. The
//!    readers are registered (`iot.devices`, key version 1) and connected from this process,
//!    each with its own login, MQTT session and result subscription, and each sends one
//!    signed scan and waits for its Result, so the bridge's per-reader state exists. The child's
//!    `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `VmHWM`) is read with no readers, after the
//!    first `BENCH_FIRST` are connected and have scanned, and after all `BENCH_READERS`.
//!    Twice when `mosquitto` is installed: with the embedded broker (rumqttd behind the
//!    credential and ACL proxy, in the gateway's process: `phoenix gateway` alone, as
//!    `phoenix dev` runs it), then with the readers on a Mosquitto child and the gateway's
//!    bridge as its client (`MQTT_URL`, as deploy/kubernetes runs it; the broker's own
//!    footprint is printed beside it).
//! 2. **`phoenix dev` start-up** (target: < 5 s). `phoenix dev --data-dir <empty temp dir>`
//!    (private PostgreSQL cluster, migrations, demo school, every domain, gateway, broker,
//!    bridge) until its summary is printed and every domain and the gateway answer health
//!    SERVING; `BENCH_DEV_RUNS` runs, then the median. Each run is stopped with SIGINT and its
//!    data directory removed.
//!
//! `BENCH_ATTACH_SECS` pauses the memory bench that long after the first figure, for a heap
//! profiler to attach to the gateway (`heaptrack -p PID`), and `BENCH_HOLD_SECS` keeps it and
//! the readers that long after the last figure (to read `/proc/PID/smaps`).
//!
//! Figures are printed beside their targets with the ratio; nothing is asserted. Memory is
//! stable under load; start-up times are not (the machine is shared).
//!
//! ```text
//! cargo build --release -p phoenix && cargo build --release -p phoenix-tests --bin process-bench
//! target/release/process-bench
//! BENCH_PARTS=memory,dev BENCH_READERS=1000 BENCH_FIRST=100 BENCH_DEV_RUNS=3 \
//!   BENCH_PHOENIX=target/release/phoenix target/release/process-bench
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{StreamExt as _, TryStreamExt as _};
use phoenix_common::domain::Domain;
use phoenix_gateway::sim::SimReader;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_reader_protocol::derive_device_key;
use phoenix_tests::app::TEST_DEVICE_KEY_SECRET;
use phoenix_tests::reader::Mosquitto;
use phoenix_tests::school::{self, School};
use phoenix_tests::{TestApp, fixtures};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Issue #17's targets.
const RSS_TARGET_MIB: f64 = 64.0;
const DEV_TARGET: Duration = Duration::from_secs(5);
/// Readers connecting (or scanning) at once.
const CONNECT_AT_ONCE: usize = 32;
const SCAN_AT_ONCE: usize = 16;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `phoenix` binary: `BENCH_PHOENIX`, else the one beside this bench (same profile).
fn phoenix_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("BENCH_PHOENIX") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.with_file_name("phoenix"),
    };
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it first (`cargo build --release -p phoenix`) or set BENCH_PHOENIX",
        path.display()
    );
    Ok(path)
}

/// A child `phoenix` process with none of this process's Phoenix, database or broker settings.
fn phoenix_command(phoenix: &Path) -> Command {
    let mut command = Command::new(phoenix);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PHOENIX_")) {
            command.env_remove(key);
        }
    }
    command
        .env_remove("DATABASE_URL")
        .env_remove("MQTT_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RUST_LOG", "warn")
        .env("PHOENIX_LISTEN_HOST", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Asks `child` to stop (`signal`: `INT` or `TERM`) and waits up to `within`; kills it after that.
async fn stop_child(child: &mut Child, signal: &str, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let Some(pid) = child.id() else { return Ok(Duration::ZERO) };
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status()?;
    anyhow::ensure!(sent.success(), "kill -{signal} {pid} failed");
    match tokio::time::timeout(within, child.wait()).await {
        Ok(status) => {
            let status = status?;
            anyhow::ensure!(status.success(), "pid {pid} exited with {status} after SIGTERM/SIGINT");
            Ok(started.elapsed())
        }
        Err(_) => {
            child.start_kill()?;
            child.wait().await?;
            anyhow::bail!("pid {pid} did not stop within {within:?} after SIG{signal}; killed")
        }
    }
}

/// Open-file limits of this process (`/proc/self/limits`), soft and hard.
fn nofile_limits() -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| anyhow::anyhow!("no open-file limit in /proc/self/limits"))?;
    let mut values = line.trim_start_matches("Max open files").split_whitespace().map(|v| match v {
        "unlimited" => Ok(u64::MAX),
        v => v.parse::<u64>(),
    });
    let (Some(Ok(soft)), Some(Ok(hard))) = (values.next(), values.next()) else {
        anyhow::bail!("unreadable open-file limit: {line}");
    };
    Ok((soft, hard))
}

/// Makes sure `need` files may be open here and in the gateway child (which inherits the
/// limit): raises the soft limit to the hard one with `prlimit` when it is lower.
fn ensure_nofile(need: u64) -> anyhow::Result<()> {
    let (soft, hard) = nofile_limits()?;
    if soft >= need {
        println!("open-file limit: {soft} (soft), {hard} (hard); ~{need} needed");
        return Ok(());
    }
    anyhow::ensure!(hard >= need, "open-file hard limit {hard} < {need} needed: raise it (ulimit -Hn)");
    let pid = std::process::id().to_string();
    let raised =
        std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={hard}:{hard}")]).status()?;
    anyhow::ensure!(raised.success(), "prlimit could not raise the open-file limit to {hard}");
    println!("open-file limit raised from {soft} to {hard} (prlimit) for ~{need} descriptors");
    Ok(())
}

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss_kib: u64,
    anon_kib: u64,
    hwm_kib: u64,
    threads: u64,
    fds: usize,
}

impl Footprint {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss_kib: field("VmRSS")?,
            anon_kib: field("RssAnon")?,
            hwm_kib: field("VmHWM")?,
            threads: field("Threads")?,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `phoenix gateway` child of the memory bench.
struct Gateway {
    child: Child,
    pid: u32,
    mqtt_url: String,
    metrics: SocketAddr,
}

impl Gateway {
    /// Starts `phoenix gateway` for `app` (its database, topics and services) with the
    /// gateway's service credential `secret` and its embedded broker, or the broker at
    /// `mqtt_url`, and waits until its bridge is connected.
    async fn start(phoenix: &Path, app: &TestApp, secret: &str, mqtt_url: Option<&str>) -> anyhow::Result<Self> {
        // `phoenix gateway` does not print its metrics address: give it a free port.
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = |domain: Domain| format!("http://{}", app.addr(domain));
        let mut command = phoenix_command(phoenix);
        if let Some(url) = mqtt_url {
            command.env("MQTT_URL", url);
        }
        let mut child = command
            .arg("gateway")
            .env("DATABASE_URL", app.db.url())
            .env("PHOENIX_DB_ROLES", if app.config.db_roles { "on" } else { "off" })
            .env("PHOENIX_DEVICE_KEY_SECRET", TEST_DEVICE_KEY_SECRET)
            .env("PHOENIX_GATEWAY_CLIENT_ID", &app.config.gateway_client_id)
            .env("PHOENIX_GATEWAY_CLIENT_SECRET", secret)
            .env("PHOENIX_AUTH_URL", url(Domain::Auth))
            .env("PHOENIX_ACTIVE_URL", url(Domain::Active))
            .env("PHOENIX_IOT_URL", url(Domain::Iot))
            .env("PHOENIX_MQTT_PREFIX", &app.config.mqtt_prefix)
            .env("PHOENIX_MQTT_CLIENT_ID", &app.config.mqtt_client_id)
            .env("PHOENIX_GATEWAY_PORT", "0")
            .env("PHOENIX_MQTT_PORT", "0")
            .env("PHOENIX_METRICS_PORT", metrics_port.to_string())
            .spawn()?;
        let pid = child.id().ok_or_else(|| anyhow::anyhow!("gateway exited at once"))?;
        let mut lines = BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
        // `gateway on http://ADDR (…), MQTT broker mqtt://HOST:PORT`
        let mqtt_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some((_, url)) = line.split_once("MQTT broker ") {
                    return Ok(url.trim().to_owned());
                }
            }
            anyhow::bail!("phoenix gateway ended before it started its broker")
        })
        .await
        .map_err(|_| anyhow::anyhow!("phoenix gateway did not start within 60 s"))??;
        // Keep reading its output: a full pipe would stop it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while phoenix_tests::scrape::scrape(metrics).await.get(phoenix_common::metrics::MQTT_CONNECTED, &[]) < 1.0 {
            anyhow::ensure!(Instant::now() < deadline, "the gateway's bridge did not connect within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Its subscription follows the CONNACK.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Self { child, pid, mqtt_url, metrics })
    }
}

/// Connects a simulated reader for each of `devices` (their own logins and result subscriptions).
async fn connect_readers(url: &str, prefix: &str, devices: &[String]) -> anyhow::Result<Vec<SimReader>> {
    futures::stream::iter(devices)
        .map(|device| async move {
            let key = derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), device, 1);
            SimReader::connect(url, prefix, device, &key).await
        })
        .buffered(CONNECT_AT_ONCE)
        .try_collect()
        .await
}

/// Each reader scans the pupil of the same index once and waits for its Result (re-sending
/// like firmware); returns the count of each outcome. `run` makes the scan ids of each run
/// new ones.
async fn scan_once(
    readers: &mut [SimReader],
    pupils: &[school::Pupil],
    run: &str,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let results: Vec<_> = futures::stream::iter(readers.iter_mut().zip(pupils))
        .map(|(reader, pupil)| async move {
            let id = format!("mem-{run}-{}", reader.device_id());
            let scan = reader.sign(&id, &pupil.tag, Utc::now());
            reader.send(&scan, Duration::from_secs(120)).await
        })
        .buffer_unordered(SCAN_AT_ONCE)
        .try_collect()
        .await?;
    let mut outcomes = BTreeMap::new();
    for r in results {
        let outcome = r.result.map_or_else(|| "undecodable".to_owned(), |r| r.outcome.as_str().to_owned());
        *outcomes.entry(outcome).or_default() += 1;
    }
    Ok(outcomes)
}

fn print_footprint(stage: &str, readers: usize, f: &Footprint) {
    println!(
        "{stage:<34} {readers:>7} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>6}",
        mib(f.rss_kib),
        mib(f.anon_kib),
        mib(f.hwm_kib),
        f.threads,
        f.fds
    );
}

async fn gateway_memory(phoenix: &Path, total: usize, first: usize) -> anyhow::Result<()> {
    let first = first.min(total);
    // The child: a proxy socket to the client and one to rumqttd, rumqttd's own, per reader.
    ensure_nofile(total as u64 * 4 + 512)?;
    let app = TestApp::spawn(&[Domain::Auth, Domain::Iot, Domain::Active]).await;
    let seeding = Instant::now();
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, total).await;
    // No capacity limit: every reader's scan is a check-in.
    let activity = fixtures::activity(&mut conn, "Bench-Freispiel", 100_000).await;
    let mut active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    for &room in &school.rooms {
        school::start_session(&mut active, room, activity, school.staff).await;
    }
    let devices: Vec<String> = (0..total).map(|i| format!("mem-{i:05}")).collect();
    for (i, device) in devices.iter().enumerate() {
        fixtures::device(&mut conn, device, "room", Some(school.rooms[i % school.rooms.len()])).await;
    }
    drop(conn);
    let secret = phoenix_auth::service_clients::create_or_rotate(
        &app.db.pool().await,
        &app.config.gateway_client_id,
        &["scans:process".to_owned()],
    )
    .await?;
    println!(
        "gateway memory: {total} registered readers in {} rooms with running sessions, {total} pupils (seeded in {:.1} s)",
        school.rooms.len(),
        seeding.elapsed().as_secs_f64()
    );
    let mosquitto = match Mosquitto::binary() {
        Some(binary) => Some(Mosquitto::start(binary).await),
        None => {
            println!("no `mosquitto` installed: only the embedded broker is measured");
            None
        }
    };
    let brokers = [None].into_iter().chain(mosquitto.as_ref().map(Some));
    let mut result = Ok(());
    for broker in brokers {
        println!();
        let mut gateway = Gateway::start(phoenix, &app, &secret, broker.map(Mosquitto::url).as_deref()).await?;
        let run = match broker {
            Some(m) => Run { name: "mosquitto", shape: "readers on Mosquitto, as deployed", broker_pid: m.pid() },
            None => Run { name: "embedded", shape: "embedded broker", broker_pid: None },
        };
        let measured = measure_gateway(&gateway, &run, &app.config.mqtt_prefix, &devices, &school.pupils, first).await;
        let stopped = stop_child(&mut gateway.child, "TERM", Duration::from_secs(30)).await;
        result = result.and(measured).and(stopped.map(drop));
    }
    app.stop().await;
    result
}

/// One memory run: its name (in scan ids), the broker's shape, and the pid of a broker of its
/// own (a Mosquitto child).
struct Run {
    name: &'static str,
    shape: &'static str,
    broker_pid: Option<u32>,
}

async fn measure_gateway(
    gateway: &Gateway,
    run: &Run,
    prefix: &str,
    devices: &[String],
    pupils: &[school::Pupil],
    first: usize,
) -> anyhow::Result<()> {
    let total = devices.len();
    println!(
        "child: `phoenix gateway` (pid {}; {}: {}, metrics {}), RUST_LOG=warn",
        gateway.pid, run.shape, gateway.mqtt_url, gateway.metrics
    );
    println!();
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "stage", "readers", "VmRSS MiB", "anon MiB", "VmHWM MiB", "threads", "fds"
    );
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    settle().await;
    let idle = Footprint::of(gateway.pid)?;
    print_footprint("bridge connected, no readers", 0, &idle);
    let attach = env_num("BENCH_ATTACH_SECS", 0);
    if attach > 0 {
        println!("waiting {attach} s: attach a profiler now, e.g. `heaptrack -p {}`", gateway.pid);
        tokio::time::sleep(Duration::from_secs(attach as u64)).await;
    }
    let mut readers = connect_readers(&gateway.mqtt_url, prefix, &devices[..first]).await?;
    settle().await;
    print_footprint("connected", first, &Footprint::of(gateway.pid)?);
    let mut outcomes = scan_once(&mut readers, &pupils[..first], run.name).await?;
    settle().await;
    let at_first = Footprint::of(gateway.pid)?;
    print_footprint("each scanned once (Result received)", first, &at_first);
    readers.extend(connect_readers(&gateway.mqtt_url, prefix, &devices[first..]).await?);
    settle().await;
    print_footprint("connected", total, &Footprint::of(gateway.pid)?);
    for (outcome, n) in scan_once(&mut readers[first..], &pupils[first..total], run.name).await? {
        *outcomes.entry(outcome).or_default() += n;
    }
    settle().await;
    let at_total = Footprint::of(gateway.pid)?;
    print_footprint("each scanned once (Result received)", total, &at_total);
    println!();
    let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
    println!("results: {}", outcomes.join(", "));
    if total > first {
        let per_reader = (at_total.rss_kib as f64 - at_first.rss_kib as f64) / (total - first) as f64;
        println!("per reader ({first} → {total}, scanned): {per_reader:.1} KiB VmRSS");
    }
    let rss = mib(at_total.rss_kib);
    println!(
        "gateway VmRSS with {total} readers ({}): {rss:.1} MiB — target < {RSS_TARGET_MIB:.0} MiB — ratio {:.2}× (VmHWM {:.1} MiB)",
        run.shape,
        rss / RSS_TARGET_MIB,
        mib(at_total.hwm_kib)
    );
    if let Some(pid) = run.broker_pid {
        let broker = Footprint::of(pid)?;
        println!(
            "the broker beside it (mosquitto, pid {pid}): VmRSS {:.1} MiB (VmHWM {:.1} MiB); gateway and broker {:.1} MiB",
            mib(broker.rss_kib),
            mib(broker.hwm_kib),
            rss + mib(broker.rss_kib)
        );
    }
    let hold = env_num("BENCH_HOLD_SECS", 0);
    if hold > 0 {
        println!("holding the readers and pid {} for {hold} s (e.g. /proc/{0}/smaps)", gateway.pid);
        tokio::time::sleep(Duration::from_secs(hold as u64)).await;
    }
    drop(readers);
    Ok(())
}

/// One `phoenix dev` start from an empty data directory.
struct DevRun {
    summary: Duration,
    serving: Duration,
    stop: Duration,
}

/// Whether the health service at `addr` says `service` is SERVING (false on any error).
async fn is_serving(addr: SocketAddr, service: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else { return false };
    let Ok(channel) = endpoint.connect_timeout(Duration::from_secs(2)).connect().await else { return false };
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
    client.check(request).await.is_ok_and(|r| r.into_inner().status == tonic_health::ServingStatus::Serving as i32)
}

/// The health names and addresses of `phoenix dev`'s summary: every domain and the gateway.
fn summary_endpoints(summary: &[String]) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let addr_after = |name: &str| {
        summary.iter().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.next()?.trim_start_matches("http://").parse().ok()).flatten()
        })
    };
    let mut endpoints = Vec::new();
    for domain in Domain::ALL {
        let addr = addr_after(domain.name()).ok_or_else(|| anyhow::anyhow!("no {domain} in the summary"))?;
        endpoints.push((domain.grpc_service().to_owned(), addr));
    }
    let gateway = addr_after("gateway").ok_or_else(|| anyhow::anyhow!("no gateway in the summary"))?;
    endpoints.push((phoenix_gateway::GATEWAY_HEALTH_NAME.to_owned(), gateway));
    Ok(endpoints)
}

async fn dev_run(phoenix: &Path) -> anyhow::Result<DevRun> {
    let data_dir = std::env::temp_dir().join(format!("phoenix-process-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&data_dir)?;
    let started = Instant::now();
    let spawned = phoenix_command(phoenix)
        .arg("dev")
        .arg("--data-dir")
        .arg(&data_dir)
        .env("PHOENIX_GRPC_BASE_PORT", "0")
        .env("PHOENIX_GATEWAY_PORT", "0")
        .env("PHOENIX_MQTT_PORT", "0")
        .env("PHOENIX_METRICS_PORT", "0")
        .spawn();
    let result = match spawned {
        Ok(mut child) => {
            let timed = time_dev_start(&mut child, started).await;
            let stopped = stop_child(&mut child, "INT", Duration::from_secs(60)).await;
            timed.and_then(|(summary, serving)| Ok(DevRun { summary, serving, stop: stopped? }))
        }
        Err(e) => Err(e.into()),
    };
    std::fs::remove_dir_all(&data_dir)?;
    result
}

/// Until the summary is printed, then until every endpoint in it is SERVING (from `started`).
async fn time_dev_start(child: &mut Child, started: Instant) -> anyhow::Result<(Duration, Duration)> {
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut summary = Vec::new();
    let mut printed = None;
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("Phoenix is running.") {
                printed = Some(started.elapsed());
            }
            if line.starts_with("Press Ctrl-C") {
                return Ok(());
            }
            summary.push(line);
        }
        anyhow::bail!("phoenix dev ended before it was running:\n{}", summary.join("\n"))
    })
    .await
    .map_err(|_| anyhow::anyhow!("phoenix dev printed no summary within 120 s"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let printed = printed.ok_or_else(|| anyhow::anyhow!("no `Phoenix is running.` line"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (service, addr) in summary_endpoints(&summary)? {
        while !is_serving(addr, &service).await {
            anyhow::ensure!(Instant::now() < deadline, "{service} at {addr} not SERVING within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok((printed, started.elapsed()))
}

async fn dev_startup(phoenix: &Path, runs: usize) -> anyhow::Result<()> {
    println!(
        "phoenix dev: {} from an empty --data-dir (private PostgreSQL, migrations, demo school, every domain, \
         gateway, broker, bridge); stopped with SIGINT",
        phoenix.display()
    );
    println!();
    println!("{:<5} {:>16} {:>16} {:>12}", "run", "summary printed", "all SERVING", "stopped in");
    let mut serving = Vec::new();
    for run in 1..=runs {
        let r = dev_run(phoenix).await?;
        println!(
            "{run:<5} {:>14.2} s {:>14.2} s {:>10.2} s",
            r.summary.as_secs_f64(),
            r.serving.as_secs_f64(),
            r.stop.as_secs_f64()
        );
        serving.push(r.serving);
    }
    serving.sort();
    let median = serving[serving.len() / 2].as_secs_f64();
    println!();
    println!(
        "phoenix dev to all SERVING, median of {runs}: {median:.2} s — target < {:.0} s — ratio {:.2}×",
        DEV_TARGET.as_secs_f64(),
        median / DEV_TARGET.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "memory,dev".into());
    let readers = env_num("BENCH_READERS", 1_000).max(1);
    let first = env_num("BENCH_FIRST", 100).max(1);
    let runs = env_num("BENCH_DEV_RUNS", 3).max(1);
    let phoenix = phoenix_binary()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "process-bench: {} cores, load average {} (a shared machine: timings are noisy, memory is not); build: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    for part in parts.split(',').map(str::trim) {
        println!();
        match part {
            "memory" => gateway_memory(&phoenix, readers, first).await?,
            "dev" => dev_startup(&phoenix, runs).await?,
            other => anyhow::bail!("BENCH_PARTS: unknown part {other:?} (memory, dev)"),
        }
    }
    Ok(())
}
