//! Nothing lost under faults (issue #13), on the real reader stack and a real broker: an
//! oversized message, a flood from one reader, and ProcessScan failing transiently (the
//! active service unreachable, the gateway's token refused). Every honest scan gets its
//! Result, none is lost, none is applied twice; a transient failure gives no final Result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::server::ShutdownToken;
use phoenix_db::schema::{active, iot};
use phoenix_gateway::bridge::{self, BridgeConfig, BridgeDeps, StatsSnapshot};
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::{Code, Outcome, topics};
use phoenix_tests::reader::{Mosquitto, ReaderStack};
use phoenix_tests::school::{self, visit_count};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

/// Opens sessions in rooms A, B and C.
async fn open_rooms(stack: &mut ReaderStack) {
    let s = stack.school.clone();
    for room in [s.rooms[0], s.rooms[1], s.rooms[2]] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
}

/// Receipts stored for `device` (one per applied `scan_id`).
async fn receipts(stack: &ReaderStack, device: &str) -> i64 {
    let mut conn = stack.app.db.conn().await;
    active::scan_receipts::table
        .inner_join(iot::devices::table.on(iot::devices::id.eq(active::scan_receipts::device_id)))
        .filter(iot::devices::device_id.eq(device))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count receipts")
}

/// A plain MQTT client (no reader logic) that may publish up to `max_packet` bytes; its
/// event loop stops at the first connection error (a broker refusing a packet).
async fn raw_client(url: &str, max_packet: usize) -> (AsyncClient, JoinHandle<()>) {
    let (host, port) = bridge::parse_mqtt_url(url).expect("MQTT URL");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut options = MqttOptions::new(format!("raw-{}", &id[..12]), host, port);
    options.set_clean_session(true).set_keep_alive(Duration::from_secs(30)).set_max_packet_size(max_packet, max_packet);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    (client, task)
}

/// A 2 MiB message on reader A's scan topic, then scans of readers A and B: each honest
/// scan is answered and applied once, and the bridge never reconnects over it.
async fn oversized_message_then_honest_scans(stack: &mut ReaderStack) -> StatsSnapshot {
    open_rooms(stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let mut b = stack.reader(&s.readers[1]).await;
    let (raw, raw_task) = raw_client(&stack.mqtt_url, 4 * 1024 * 1024).await;
    let big = vec![b'{'; 2 * 1024 * 1024];
    raw.publish(topics::scan(&stack.prefix, &s.readers[0]), QoS::AtLeastOnce, false, big).await.expect("queue 2 MiB");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let at = Utc::now();
    for (i, p) in s.pupils.iter().enumerate() {
        let reader = if i % 2 == 0 { &mut a } else { &mut b };
        let scan = reader.sign(&format!("big-{i}"), &p.tag, at);
        let r = reader.send(&scan, WAIT).await.expect("answered after the big message").expect_result().clone();
        assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, false), "scan {i}");
    }
    let mut conn = stack.app.db.conn().await;
    for p in &s.pupils {
        assert_eq!(visit_count(&mut conn, p.id).await, 1, "one effect per scan");
    }
    let n = s.pupils.len() as i64;
    assert_eq!(receipts(stack, &s.readers[0]).await + receipts(stack, &s.readers[1]).await, n);
    raw_task.abort();
    let stats = stack.stats();
    assert_eq!(stats.connections, 1, "the bridge never reconnected: {stats:?}");
    assert_eq!(stats.connection_errors, 0, "{stats:?}");
    assert_eq!(stats.processed, n as u64, "{stats:?}");
    stats
}

#[tokio::test]
async fn a_2_mib_message_on_the_tests_broker_stops_no_honest_scan() {
    let mut stack = ReaderStack::spawn(6).await;
    let stats = oversized_message_then_honest_scans(&mut stack).await;
    // The embedded broker caps payloads at 64 KiB and refuses it; a broker without a cap
    // delivers it, and the bridge refuses it.
    assert!(stats.oversized <= 1, "{stats:?}");
    stack.stop().await;
}

#[tokio::test]
async fn a_2_mib_message_on_a_broker_without_a_size_cap_is_refused_once_and_acked() {
    let Some(mosquitto) = Mosquitto::binary() else { return };
    let broker = Mosquitto::start(mosquitto).await;
    let mut stack = ReaderStack::spawn_on(6, &broker.url()).await;
    let stats = oversized_message_then_honest_scans(&mut stack).await;
    assert_eq!(stats.oversized, 1, "read once, refused, acked (never redelivered): {stats:?}");
    assert_eq!(stats.malformed, 1, "answered `malformed` as the contract says: {stats:?}");
    // Nothing comes back: it was acked, so the broker does not redeliver it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.stats().oversized, 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_flood_of_10000_qos0_messages_from_one_reader_starves_no_honest_reader() {
    const FLOOD: usize = 10_000;
    const PER_READER: usize = 15;
    let mut stack = ReaderStack::spawn(2 * PER_READER).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let flooder = stack.reader(&s.readers[2]).await;
    let a = stack.reader(&s.readers[0]).await;
    let b = stack.reader(&s.readers[1]).await;

    // Validly signed scans of a card nobody holds, at QoS 0, as fast as the client goes.
    let (raw, raw_task) = raw_client(&stack.mqtt_url, 64 * 1024).await;
    let topic = topics::scan(&stack.prefix, &s.readers[2]);
    let flood_at = Utc::now();
    let flood = tokio::spawn(async move {
        for i in 0..FLOOD {
            let scan = flooder.sign(&format!("flood-{i}"), "DEADBEEF00", flood_at);
            raw.publish(topic.clone(), QoS::AtMostOnce, false, scan.to_json()).await.expect("queue");
        }
        raw
    });

    let honest = |mut reader: SimReader, pupils: Vec<school::Pupil>, name: &'static str| {
        tokio::spawn(async move {
            let at = Utc::now();
            let mut slowest = Duration::ZERO;
            let mut answered = 0;
            for (i, p) in pupils.iter().enumerate() {
                let scan = reader.sign(&format!("{name}-{i}"), &p.tag, at);
                let started = Instant::now();
                let r = reader.send(&scan, WAIT).await.expect("an honest scan is answered").expect_result().clone();
                slowest = slowest.max(started.elapsed());
                assert_eq!((r.outcome, r.code), (Outcome::CheckedIn, Code::Ok), "{name}-{i}: {r:?}");
                answered += 1;
            }
            (answered, slowest)
        })
    };
    let ta = honest(a, s.pupils[..PER_READER].to_vec(), "a");
    let tb = honest(b, s.pupils[PER_READER..].to_vec(), "b");
    let (answered_a, slowest_a) = ta.await.expect("reader a");
    let (answered_b, slowest_b) = tb.await.expect("reader b");
    let _raw = flood.await.expect("flood sent");
    // Let the flood drain: the counters settle.
    let mut last = stack.stats();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stack.stats();
        if now.received == last.received && now.processed == last.processed {
            break;
        }
        last = now;
    }
    raw_task.abort();

    assert_eq!((answered_a, answered_b), (PER_READER, PER_READER));
    let mut conn = stack.app.db.conn().await;
    for p in &s.pupils {
        assert_eq!(visit_count(&mut conn, p.id).await, 1, "0 lost, 0 doubled");
    }
    let honest_receipts = receipts(&stack, &s.readers[0]).await + receipts(&stack, &s.readers[1]).await;
    assert_eq!(honest_receipts, 2 * PER_READER as i64, "one receipt per honest scan");
    let stats = stack.stats();
    let flood_applied = receipts(&stack, &s.readers[2]).await;
    eprintln!(
        "flood: {FLOOD} sent, {} received, {} dropped at the bound, {flood_applied} processed; slowest honest scan: a {slowest_a:?}, b {slowest_b:?}; {stats:?}",
        stats.received.saturating_sub(2 * PER_READER as u64),
        stats.overflow
    );
    assert!(stats.overflow > 0, "the flood hit its reader's bound: {stats:?}");
    assert!((flood_applied as u64) < FLOOD as u64, "{stats:?}");
    assert_eq!(stats.connection_errors, 0, "{stats:?}");
    stack.stop().await;
}

/// A TCP proxy in front of the active service that can be taken down (connections refused
/// and open ones cut) and brought back: the service becomes unreachable for the bridge.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    pipes: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let pipes = Arc::new(std::sync::Mutex::new(Vec::<JoinHandle<()>>::new()));
        let (u, p) = (up.clone(), pipes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !AtomicBool::load(&u, Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                p.lock().expect("pipes").push(pipe);
            }
        });
        Self { addr, up, pipes, task }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.pipes.lock().expect("pipes").drain(..) {
            pipe.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The gateway's token, refused (garbage) until switched back: an auth outage.
struct SwitchToken {
    valid: String,
    refused: AtomicBool,
}

impl phoenix_gateway::auth::TokenSource for SwitchToken {
    fn token(&self) -> Option<String> {
        Some(if AtomicBool::load(&self.refused, Ordering::SeqCst) {
            "lapsed.token.value".to_owned()
        } else {
            self.valid.clone()
        })
    }
}

#[tokio::test]
async fn a_transient_processscan_failure_gives_no_final_result_and_the_scan_is_applied_once_after_recovery() {
    let mut stack = ReaderStack::spawn(3).await;
    open_rooms(&mut stack).await;
    stack.stop_bridge().await;
    let s = stack.school.clone();
    let device = s.readers[0].clone();

    // A bridge of our own: ProcessScan through the proxy, the token switchable, 3 s budget.
    let proxy = Proxy::start(stack.app.addr(phoenix_common::domain::Domain::Active)).await;
    let token = Arc::new(SwitchToken {
        valid: phoenix_tests::auth::mint_token(&stack.app, "service:gateway", &[], &["scans:process".to_owned()]).await,
        refused: AtomicBool::new(false),
    });
    let config = phoenix_tests::app::test_config(stack.app.db.url());
    let mut bridge_config = BridgeConfig::new(&stack.mqtt_url, &stack.prefix, format!("{}-faults", stack.client_id));
    bridge_config.reader_rate = (0, 1);
    bridge_config.retry_budget = Duration::from_secs(3);
    let deps = BridgeDeps {
        pool: stack.app.db.pool().await,
        secret: config.device_key_secret.clone().expect("test secret"),
        active: bridge::active_client(&format!("http://{}", proxy.addr), token.clone()).expect("client"),
    };
    let shutdown = ShutdownToken::new();
    let bridge = bridge::start(bridge_config, deps, shutdown.clone()).expect("bridge");
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.stats().connections == 0 {
        assert!(Instant::now() < deadline, "bridge did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut a = stack.reader(&device).await;
    let mut b = stack.reader(&s.readers[1]).await;
    let at = Utc::now();
    let mut conn = stack.app.db.conn().await;
    let (p0, p1, p2) = (&s.pupils[0], &s.pupils[1], &s.pupils[2]);

    // 1. The active service is down for longer than the budget: no Result at all (a Result
    //    is final for a reader), nothing stored.
    proxy.down();
    let x = a.sign("outage-x", &p0.tag, at);
    a.publish(&x).await.expect("publish");
    assert!(a.result_for(&x.scan_id, Duration::from_secs(6)).await.is_none(), "no final Result during the outage");
    let stats = bridge.stats();
    assert_eq!((stats.unanswered, stats.processed, stats.results_published), (1, 0, 0), "{stats:?}");
    assert!(stats.retries >= 3, "retried with backoff: {stats:?}");
    assert_eq!(visit_count(&mut conn, p0.id).await, 0);
    assert_eq!(receipts(&stack, &device).await, 0);

    // 2. Recovery: the reader's re-send is applied once; a further re-send is a duplicate.
    proxy.up();
    let r = a.send(&x, WAIT).await.expect("answered after recovery").expect_result().clone();
    assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, false), "{r:?}");
    let again = a.send(&x, WAIT).await.expect("answered").expect_result().clone();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(visit_count(&mut conn, p0.id).await, 1, "applied exactly once");
    assert_eq!(receipts(&stack, &device).await, 1);

    // 3. An outage shorter than the budget: the bridge's retries carry the scan; no
    //    re-send needed.
    proxy.down();
    let y = b.sign("outage-y", &p1.tag, at);
    b.publish(&y).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.up();
    let r = b.result_for(&y.scan_id, Duration::from_secs(4)).await.expect("answered by a retry");
    let r = r.expect_result();
    assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, false), "{r:?}");
    assert_eq!(visit_count(&mut conn, p1.id).await, 1);

    // 4. An auth outage: the gateway's token is refused (UNAUTHENTICATED), then valid again.
    token.refused.store(true, Ordering::SeqCst);
    let z = a.sign("auth-z", &p2.tag, at);
    a.publish(&z).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(a.result_for(&z.scan_id, Duration::from_millis(10)).await.is_none(), "no `internal` Result");
    token.refused.store(false, Ordering::SeqCst);
    let r = a.result_for(&z.scan_id, Duration::from_secs(4)).await.expect("answered by a retry");
    let r = r.expect_result();
    assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, false), "{r:?}");
    assert_eq!(visit_count(&mut conn, p2.id).await, 1);

    // 4 scans sent (x three times), 3 applied, 1 left unanswered, 1 duplicate.
    let stats = bridge.stats();
    assert_eq!(stats.unanswered, 1, "{stats:?}");
    assert_eq!(stats.processed, 4, "x, x again (duplicate), y, z: {stats:?}");
    assert_eq!(stats.results_published, 4, "{stats:?}");
    assert_eq!(receipts(&stack, &device).await + receipts(&stack, &s.readers[1]).await, 3);

    shutdown.cancel();
    bridge.join().await.expect("bridge stops");
    proxy.task.abort();
    stack.stop().await;
}
