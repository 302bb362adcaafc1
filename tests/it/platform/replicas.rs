//! Gateway replicas tested as replicas (issue #16, docs/deployment.md "Scaling"): three
//! `fault-gateway` processes (the bridge of `phoenix gateway`, each its own process, pool and
//! persistent MQTT session) share the readers through one `$share/phoenix-gateway/…`
//! subscription on a real Mosquitto started by the test (the embedded rumqttd has no shared
//! subscriptions; a missing `mosquitto` fails under `CI`, like the other Mosquitto tests).
//!
//! - 16 readers scan while one replica is killed with SIGKILL and never comes back: every scan
//!   gets its Result on its own reader's topic, none is lost or doubled (database rows and
//!   Results per reader counted), and each replica had handled scans before the kill.
//! - Per-reader rate limits are per replica (the documented choice): a reader bursting over
//!   its limit gets more through three replicas than one would allow, never more than three
//!   replicas' budgets, and each replica stays within its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use phoenix_common::metrics as m;
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::{Code, Outcome, ScanResult};
use phoenix_tests::fixtures;
use phoenix_tests::reader::{Mosquitto, ReaderStack};
use phoenix_tests::school::{self, visit_count};
use phoenix_tests::scrape::scrape;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::Mutex;

const GATEWAYS: usize = 3;
const READERS: usize = 16;
const PER_READER: usize = 5;
/// The shared subscription's group (`PHOENIX_MQTT_SHARED_GROUP`), as in deploy/kubernetes.
const GROUP: &str = "phoenix-gateway";
/// How long one scan may take to be answered, re-sends included.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// One gateway replica: a `fault-gateway` process with `/metrics` on an ephemeral port.
struct Replica {
    child: tokio::process::Child,
    metrics: SocketAddr,
}

impl Replica {
    /// Starts replica `index` of the stack's gateway (client id `{client_id}-{index}`, a member
    /// of [`GROUP`]) and waits until its bridge is connected to the broker.
    async fn start(stack: &ReaderStack, token: &str, index: usize, rate: (u32, u32)) -> Self {
        let active = format!("http://{}", stack.app.addr(phoenix_common::domain::Domain::Active));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fault-gateway"))
            .env("DATABASE_URL", stack.app.db.url())
            .env("MQTT_URL", &stack.mqtt_url)
            .env("PHOENIX_MQTT_PREFIX", &stack.prefix)
            .env("PHOENIX_MQTT_CLIENT_ID", format!("{}-{index}", stack.client_id))
            .env("PHOENIX_MQTT_SHARED_GROUP", GROUP)
            .env("PHOENIX_ACTIVE_URL", active)
            .env("PHOENIX_DEVICE_KEY_SECRET", phoenix_tests::app::TEST_DEVICE_KEY_SECRET)
            .env("PHOENIX_READER_RATE_LIMIT", rate.0.to_string())
            .env("PHOENIX_READER_BURST", rate.1.to_string())
            .env("PHOENIX_DB_POOL_SIZE", "3")
            .env("PHOENIX_METRICS_PORT", "0")
            .env("PHOENIX_LISTEN_HOST", "127.0.0.1")
            .env("PHOENIX_TEST_GATEWAY_TOKEN", token)
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a fault-gateway process");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let metrics = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if let Some(addr) = line.strip_prefix("fault-gateway: metrics on ") {
                    return addr.parse::<SocketAddr>().expect("metrics address");
                }
            }
            panic!("replica {index} ended before serving /metrics");
        })
        .await
        .expect("replica serves /metrics within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let deadline = Instant::now() + Duration::from_secs(15);
        while scrape(metrics).await.get(m::MQTT_CONNECTED, &[]) != 1.0 {
            assert!(Instant::now() < deadline, "replica {index}'s bridge did not connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, metrics }
    }

    /// Scans this replica answered with a Result, of `code` (`None`: any).
    async fn answered(&self, code: Option<&str>) -> f64 {
        let page = scrape(self.metrics).await;
        match code {
            Some(code) => page.sum(m::SCANS, &[("code", code)]),
            None => page.sum(m::SCANS, &[]),
        }
    }
}

/// The stack on its own Mosquitto (`None`: not installed, outside CI), the in-process bridge
/// stopped, and a scans-only service token for the replicas.
async fn stack_on_mosquitto(pupils: usize) -> Option<(Mosquitto, ReaderStack, String)> {
    let mosquitto = Mosquitto::start(Mosquitto::binary()?).await;
    let mut stack = ReaderStack::spawn_on(pupils, &mosquitto.url()).await;
    stack.stop_bridge().await;
    let token =
        phoenix_tests::auth::mint_token(&stack.app, "service:gateway", &[], &["scans:process".to_owned()]).await;
    Some((mosquitto, stack, token))
}

/// Every Result published under the stack's prefix, by the reader whose topic carried it:
/// device → scan ids, in arrival order.
type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A client watching `{prefix}/readers/+/result` (what each reader's topic carries).
async fn watch_results(stack: &ReaderStack) -> (Seen, tokio::task::JoinHandle<()>) {
    let (host, port) = phoenix_gateway::bridge::parse_mqtt_url(&stack.mqtt_url).expect("url");
    let mut options = MqttOptions::new(format!("{}-observer", stack.client_id), host, port);
    options.set_clean_session(true).set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let filter = format!("{}/readers/+/result", stack.prefix);
    let seen: Seen = Arc::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let seen = seen.clone();
        let prefix = format!("{}/readers/", stack.prefix);
        async move {
            let mut ready = Some(ready_tx);
            client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe");
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let device = p.topic.strip_prefix(&prefix).and_then(|t| t.strip_suffix("/result"));
                        let result: Option<ScanResult> = serde_json::from_slice(&p.payload).ok();
                        if let (Some(device), Some(result)) = (device, result) {
                            seen.lock().await.entry(device.to_owned()).or_default().push(result.scan_id);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx).await.expect("observer subscribed").expect("observer");
    (seen, task)
}

/// Sessions in rooms A–D and `READERS` room readers (`replica-00` …), four per room.
async fn readers(stack: &mut ReaderStack) -> Vec<SimReader> {
    let s = stack.school.clone();
    for &room in &s.rooms[..4] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
    let mut conn = stack.app.db.conn().await;
    let mut out = Vec::new();
    for i in 0..READERS {
        let device = format!("replica-{i:02}");
        fixtures::device(&mut conn, &device, "room", Some(s.rooms[i % 4])).await;
        out.push(stack.reader(&device).await);
    }
    out
}

#[tokio::test]
async fn three_gateways_share_16_readers_and_one_killed_mid_load_loses_and_doubles_nothing() {
    let Some((_mosquitto, mut stack, token)) = stack_on_mosquitto(READERS * PER_READER).await else { return };
    let readers = readers(&mut stack).await;
    let (seen, observer) = watch_results(&stack).await;
    let mut replicas = Vec::new();
    for i in 0..GATEWAYS {
        replicas.push(Replica::start(&stack, &token, i, (0, 1)).await);
    }
    let started = Instant::now();
    let pupils = stack.school.pupils.clone();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (r, mut reader) in readers.into_iter().enumerate() {
        let (answered, pupils) = (answered.clone(), pupils.clone());
        tasks.push(tokio::spawn(async move {
            let device = reader.device_id().to_owned();
            let mut results = Vec::new();
            for i in 0..PER_READER {
                let pupil = &pupils[r * PER_READER + i];
                let scan = reader.sign(&format!("{device}-{i}"), &pupil.tag, Utc::now());
                let got = reader.send(&scan, ANSWER_WITHIN).await.unwrap_or_else(|e| panic!("{device}: {e}"));
                results.push(got.expect_result().clone());
                answered.fetch_add(1, Ordering::Relaxed);
            }
            // A scan answered twice (once before the kill, once after a re-send) reaches the
            // reader twice; the second must say `duplicate`.
            let mut extra = Vec::new();
            while let Some(r) = reader.next_result(Duration::from_millis(500)).await {
                extra.push(r.expect_result().clone());
            }
            reader.disconnect().await;
            (device, results, extra)
        }));
    }
    // Mid-load: a quarter of the scans answered, then replica 0 dies without a word.
    let total = READERS * PER_READER;
    let deadline = Instant::now() + ANSWER_WITHIN;
    while answered.load(Ordering::Relaxed) < total / 4 {
        assert!(Instant::now() < deadline, "the first {} scans were not answered", total / 4);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut before_kill = Vec::new();
    for r in &replicas {
        before_kill.push(r.answered(None).await);
    }
    let at_kill = answered.load(Ordering::Relaxed);
    let mut killed = replicas.remove(0);
    let pid = killed.child.id().expect("running");
    killed.child.start_kill().expect("SIGKILL");
    let status = killed.child.wait().await.expect("wait");
    println!("replica 0 (pid {pid}) killed ({status}) after {at_kill} of {total} answers; not restarted");

    let mut per_reader = BTreeMap::new();
    let (mut duplicates, mut extras) = (0, 0);
    for task in tasks {
        let (device, results, extra) = task.await.expect("reader task");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.scan_id, format!("{device}-{i}"), "{device}: the Result of its own scan");
            assert_eq!((r.outcome, r.code), (Outcome::CheckedIn, Code::Ok), "{device}: {r:?}");
            duplicates += usize::from(r.duplicate);
        }
        for r in &extra {
            assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, true), "{device} extra: {r:?}");
        }
        extras += extra.len();
        per_reader.insert(device, results.len());
    }
    let elapsed = started.elapsed();
    let mut after = Vec::new();
    for r in &replicas {
        after.push(r.answered(None).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    observer.abort();

    // Each reader: exactly its scans answered, on its own topic and no other's.
    assert_eq!(per_reader.len(), READERS);
    for (device, n) in &per_reader {
        assert_eq!(*n, PER_READER, "{device}: one Result per scan");
    }
    let seen = seen.lock().await;
    assert_eq!(seen.len(), READERS, "a result topic per reader: {:?}", seen.keys().collect::<Vec<_>>());
    for (device, scan_ids) in seen.iter() {
        assert!(per_reader.contains_key(device), "Results on the topic of {device}, which sent nothing");
        assert!(scan_ids.iter().all(|s| s.starts_with(&format!("{device}-"))), "{device}'s topic: {scan_ids:?}");
        for i in 0..PER_READER {
            assert!(scan_ids.contains(&format!("{device}-{i}")), "{device}-{i} on {device}'s topic");
        }
    }
    let on_topics: usize = seen.values().map(Vec::len).sum();
    // The database: one visit per pupil, one receipt per distinct scan.
    let mut conn = stack.app.db.conn().await;
    let mut visits = 0;
    for p in &pupils[..total] {
        let n = visit_count(&mut conn, p.id).await;
        assert_eq!(n, 1, "pupil {} has {n} visits", p.id);
        visits += n;
    }
    let receipts = school::count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts").await;
    println!(
        "{GATEWAYS} gateways, {READERS} readers × {PER_READER}: {total} scans, {} Results to readers \
         ({duplicates} duplicate: true, {extras} extra for answered scans), {on_topics} Results on the reader topics, \
         {visits} visits, {receipts} receipts in {:.1} s; answered per replica before the kill {before_kill:?}, \
         survivors at the end {after:?}",
        per_reader.values().sum::<usize>(),
        elapsed.as_secs_f64()
    );
    assert_eq!(per_reader.values().sum::<usize>(), total, "0 lost");
    assert_eq!(visits, total as i64, "0 doubled: one visit per scan");
    assert_eq!(receipts, total as i64, "0 doubled: one receipt per scan");
    assert_eq!(on_topics, total + extras, "every Result published went to its reader");
    assert!(before_kill.iter().all(|&n| n > 0.0), "the broker dealt scans to every replica: {before_kill:?}");
    assert!(
        after.iter().zip(&before_kill[1..]).all(|(a, b)| a > b),
        "both survivors took scans after the kill: {before_kill:?} → {after:?}"
    );
    for mut r in replicas {
        let _ = r.child.kill().await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn per_reader_rate_limits_hold_per_replica_and_three_replicas_stay_within_three_budgets() {
    const SCANS: usize = 24;
    // 1 scan/s after a burst of 3, in each replica.
    let (rate, burst) = (1, 3);
    let Some((_mosquitto, mut stack, token)) = stack_on_mosquitto(SCANS).await else { return };
    let s = stack.school.clone();
    school::start_session(&mut stack.active, s.rooms[0], s.activity, s.staff).await;
    let mut replicas = Vec::new();
    for i in 0..GATEWAYS {
        replicas.push(Replica::start(&stack, &token, i, (rate, burst)).await);
    }
    let mut reader = stack.reader(&s.readers[0]).await;
    // A runaway reader: every scan published at once, then every Result collected.
    let started = Instant::now();
    let scans: Vec<_> = (0..SCANS).map(|i| reader.sign(&format!("burst-{i}"), &s.pupils[i].tag, Utc::now())).collect();
    for scan in &scans {
        reader.publish(scan).await.expect("publish");
    }
    let mut accepted = 0;
    let mut limited = 0;
    for scan in &scans {
        let r = reader.result_for(&scan.scan_id, Duration::from_secs(20)).await.expect("a Result for every scan");
        let r = r.expect_result();
        match (r.outcome, r.code) {
            (Outcome::CheckedIn, Code::Ok) => accepted += 1,
            (Outcome::Rejected, Code::RateLimited) => limited += 1,
            other => panic!("{}: {other:?}", scan.scan_id),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut per_replica = Vec::new();
    for r in &replicas {
        let page = scrape(r.metrics).await;
        per_replica.push((page.sum(m::SCANS, &[("code", "ok")]), page.sum(m::SCANS, &[("code", "rate_limited")])));
    }
    // What one bucket can pass in `elapsed`: the burst plus the refill.
    let one_budget = f64::from(burst) + f64::from(rate) * elapsed.ceil();
    println!(
        "{SCANS} scans at once from one reader over {GATEWAYS} replicas (limit {rate}/s, burst {burst}): \
         {accepted} accepted, {limited} rate_limited in {elapsed:.2} s; per replica (ok, rate_limited) {per_replica:?}; \
         one replica's budget {one_budget}"
    );
    assert_eq!(accepted + limited, SCANS, "every scan answered once");
    assert_eq!(per_replica.iter().map(|p| p.0).sum::<f64>(), accepted as f64);
    assert_eq!(per_replica.iter().map(|p| p.1).sum::<f64>(), limited as f64);
    for (i, (ok, _)) in per_replica.iter().enumerate() {
        assert!(*ok <= one_budget, "replica {i} stayed within its own budget: {ok} > {one_budget}");
    }
    assert!(
        accepted as f64 > one_budget,
        "per replica, not shared: {accepted} accepted is more than one replica allows ({one_budget})"
    );
    assert!(accepted as f64 <= GATEWAYS as f64 * one_budget, "never more than {GATEWAYS} budgets");
    assert!(limited > 0, "the limit refused the rest");
    reader.disconnect().await;
    for mut r in replicas {
        let _ = r.child.kill().await;
    }
    stack.stop().await;
}
