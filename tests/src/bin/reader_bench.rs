//! `reader-bench`: the reader pipeline under load (not a test).
//!
//! Seeds a school (default 10,000 pupils, 200 rooms with readers and running sessions) in a
//! fresh database, starts the iot and active services and the MQTT bridge in-process on a
//! real broker (`MQTT_URL`, else the embedded one), then drives N simulated readers (default
//! 1, 16, 64), each sending scans one after the other (publish → Result received). Prints
//! scans/s and end-to-end latency p50/p95/p99, and the same ProcessScan transaction run
//! directly against the database at the same concurrency, as the ceiling.
//!
//! ```text
//! cargo run --release -p phoenix-tests --bin reader-bench
//! BENCH_PUPILS=10000 BENCH_ROOMS=200 BENCH_READERS=1,16,64 BENCH_SCANS=2000 cargo run --release …
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::RunQueryDsl;
use hdrhistogram::Histogram;
use phoenix::services::{self, ServiceContext};
use phoenix_active::scan::{ScanCommand, ScanSettings};
use phoenix_common::db::{self, DbPool, PoolOptions};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::auth::StaticToken;
use phoenix_gateway::bridge::{self, BridgeConfig, BridgeDeps};
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::derive_device_key;
use phoenix_tests::TestDb;
use phoenix_tests::app::{TEST_DEVICE_KEY_SECRET, test_config};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tag(i: usize) -> String {
    format!("B{:013X}", 0x0B00_0000_0000_u64 + i as u64)
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn seed(pool: &DbPool, pupils: usize, rooms: usize) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let statements = [
        format!("INSERT INTO facilities.rooms (name) SELECT 'Bench ' || g FROM generate_series(1, {rooms}) g"),
        "INSERT INTO iot.devices (device_id, device_type, kind, room_id) \
         SELECT 'bench-' || (row_number() OVER (ORDER BY id) - 1), 'rfid_reader', 'room', id FROM facilities.rooms"
            .to_owned(),
        format!(
            "INSERT INTO users.rfid_cards (id) SELECT 'B' || upper(lpad(to_hex(x'0B0000000000'::bigint + g), 13, '0')) \
             FROM generate_series(0, {}) g",
            pupils - 1
        ),
        format!(
            "INSERT INTO users.persons (first_name, last_name, tag_id) \
             SELECT 'Kind' || g, 'Bench' || g, 'B' || upper(lpad(to_hex(x'0B0000000000'::bigint + g), 13, '0')) \
             FROM generate_series(0, {}) g",
            pupils - 1
        ),
        "INSERT INTO users.students (person_id, school_class) SELECT id, '3a' FROM users.persons".to_owned(),
        "INSERT INTO users.persons (first_name, last_name) VALUES ('Erika', 'Bench')".to_owned(),
        "INSERT INTO users.staff (person_id) SELECT id FROM users.persons WHERE last_name = 'Bench'".to_owned(),
        "INSERT INTO activities.activities (name, max_participants, category_id) \
         SELECT 'Freispiel', 10000, id FROM activities.categories WHERE name = 'Spiele'"
            .to_owned(),
        "INSERT INTO active.groups (room_id, activity_id, start_time) \
         SELECT r.id, a.id, now() - interval '1 hour' FROM facilities.rooms r, activities.activities a"
            .to_owned(),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        diesel::sql_query(sql).execute(&mut conn).await?;
    }
    Ok(())
}

#[derive(Default)]
struct Level {
    scans: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
    errors: u64,
}

fn print_level(label: &str, n: usize, level: &Level) {
    let Some(h) = &level.latency else { return };
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label:<28} {n:>4} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>6}",
        level.scans,
        level.scans as f64 / level.elapsed.as_secs_f64(),
        ms(0.50),
        ms(0.95),
        ms(0.99),
        level.errors
    );
}

async fn mqtt_level(broker: &str, prefix: &str, readers: usize, scans: usize, pupils: usize) -> anyhow::Result<Level> {
    let mut sims = Vec::with_capacity(readers);
    for i in 0..readers {
        let device = format!("bench-{i}");
        let key = derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), &device, 1);
        sims.push(SimReader::connect(broker, prefix, &device, &key).await?);
    }
    let per_reader = (scans / readers).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut sim) in sims.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678_9ABC));
            let mut errors = 0;
            for k in 0..per_reader {
                let pupil = (rng.next() as usize) % pupils;
                let scan = sim.sign(&format!("{i}-{k}"), &tag(pupil), Utc::now());
                let t0 = Instant::now();
                if sim.publish(&scan).await.is_err() {
                    errors += 1;
                    continue;
                }
                match sim.result_for(&scan.scan_id, Duration::from_secs(30)).await {
                    Some(_) => {
                        let _ = h.record(t0.elapsed().as_micros() as u64);
                    }
                    None => errors += 1,
                }
            }
            sim.disconnect().await;
            (h, errors)
        }));
    }
    let mut level = Level::default();
    for t in tasks {
        let (h, errors) = t.await?;
        level.scans += h.len();
        level.errors += errors;
        match &mut level.latency {
            Some(total) => total.add(&h)?,
            None => level.latency = Some(h),
        }
    }
    level.elapsed = started.elapsed();
    Ok(level)
}

async fn direct_level(pool: &DbPool, concurrency: usize, scans: usize, pupils: usize) -> anyhow::Result<Level> {
    let settings = ScanSettings {
        max_age: Duration::from_secs(24 * 3600),
        max_ahead: Duration::from_secs(300),
        timezone: chrono_tz::Europe::Berlin,
        daily_checkout_time: chrono::NaiveTime::MIN,
    };
    let per_task = (scans / concurrency).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(0xD1B5_4A32_D192_ED03 ^ ((i as u64 + 1) * 0x9876_5432_1FED));
            let mut errors = 0;
            for k in 0..per_task {
                let pupil = (rng.next() as usize) % pupils;
                let cmd = ScanCommand {
                    device_id: format!("bench-{i}"),
                    scan_id: format!("direct-{i}-{k}"),
                    tag: tag(pupil),
                    scanned_at: Utc::now(),
                };
                let t0 = Instant::now();
                let result = match pool.get().await {
                    Ok(mut conn) => phoenix_active::scan::process(&mut conn, settings, cmd, Utc::now()).await.ok(),
                    Err(_) => None,
                };
                match result {
                    Some(_) => {
                        let _ = h.record(t0.elapsed().as_micros() as u64);
                    }
                    None => errors += 1,
                }
            }
            (h, errors)
        }));
    }
    let mut level = Level::default();
    for t in tasks {
        let (h, errors) = t.await?;
        level.scans += h.len();
        level.errors += errors;
        match &mut level.latency {
            Some(total) => total.add(&h)?,
            None => level.latency = Some(h),
        }
    }
    level.elapsed = started.elapsed();
    Ok(level)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pupils = env_num("BENCH_PUPILS", 10_000);
    let rooms = env_num("BENCH_ROOMS", 200);
    let scans = env_num("BENCH_SCANS", 2_000);
    let readers: Vec<usize> = std::env::var("BENCH_READERS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|n| *n > 0 && *n <= rooms)
        .collect();
    let pool_size = env_num("BENCH_POOL", 20) as u32;

    let db = TestDb::new().await;
    let pool = db::connect(
        db.url(),
        PoolOptions { max_size: pool_size, connection_timeout: Duration::from_secs(30), ..Default::default() },
    )
    .await?;
    let seeding = Instant::now();
    seed(&pool, pupils, rooms).await?;
    let seeded = seeding.elapsed();

    let mut config = test_config(db.url());
    config.db_pool_size = pool_size;
    let shutdown = ShutdownToken::new();
    let ctx = ServiceContext::new(pool.clone(), config.clone());
    let running =
        services::start(&[Domain::Iot, Domain::Active], &ctx, config.listen_host, 0, false, &shutdown).await?;
    let active_addr = running
        .iter()
        .find(|r| r.domain == Domain::Active)
        .map(|r| r.addr)
        .ok_or_else(|| anyhow::anyhow!("no active"))?;
    let broker = phoenix_tests::mqtt_url();
    let mut bridge_config = BridgeConfig::from_config(&config, &broker);
    // Simulated readers scan far faster than real ones: measure the pipeline, not the limit.
    bridge_config.reader_rate = (0, 1);
    let shards = bridge_config.shards;
    let bridge = bridge::start(
        bridge_config,
        BridgeDeps {
            pool: pool.clone(),
            secret: config.device_key_secret.clone().ok_or_else(|| anyhow::anyhow!("no secret"))?,
            active: bridge::active_client(
                &format!("http://{active_addr}"),
                Arc::new(gateway_token(&pool, &config).await?),
            )?,
        },
        shutdown.clone(),
    )?;
    while bridge.stats().connections == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!(
        "reader-bench: {pupils} pupils, {rooms} rooms with readers and running sessions (seeded in {:.1}s)",
        seeded.as_secs_f64()
    );
    println!("machine: {}; build: {}", machine(), if cfg!(debug_assertions) { "debug" } else { "release" });
    println!(
        "broker: {}; gateway: {shards} shard workers; DB pool {pool_size}; ~{scans} scans per level, each reader sequential",
        if std::env::var("MQTT_URL").is_ok_and(|u| !u.trim().is_empty()) { "MQTT_URL" } else { "embedded rumqttd" }
    );
    println!();
    println!(
        "{:<28} {:>4} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6}",
        "path", "N", "scans", "scans/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    // Warm-up (connections, caches, plans).
    let _ = mqtt_level(&broker, &config.mqtt_prefix, 1, 20, pupils).await?;
    for &n in &readers {
        let level = mqtt_level(&broker, &config.mqtt_prefix, n, scans, pupils).await?;
        print_level("MQTT → gateway → ProcessScan", n, &level);
    }
    for &n in &readers {
        let level = direct_level(&pool, n, scans, pupils).await?;
        print_level("ProcessScan tx, direct (ceiling)", n, &level);
    }
    let stats = bridge.stats();
    println!();
    println!("bridge: {} received, {} processed, {} unanswered", stats.received, stats.processed, stats.unanswered);
    shutdown.cancel();
    bridge.join().await?;
    for r in running {
        r.task.await??;
    }
    Ok(())
}

/// The gateway's service credential for the run: a real token with `scans:process`, signed
/// with the database's signing key (what `ExchangeClientCredentials` would return).
async fn gateway_token(pool: &db::DbPool, config: &phoenix_common::config::Config) -> anyhow::Result<StaticToken> {
    let signer = phoenix_auth::keys::ensure_signing_key(pool, &config.secret_key, &Default::default()).await?;
    let subject = phoenix_auth::tokens::Subject {
        sub: "service:gateway".into(),
        roles: vec![],
        permissions: vec!["scans:process".into()],
        session_id: None,
    };
    let token = phoenix_auth::tokens::issue_access_token(&signer, subject, Duration::from_secs(3600))
        .map_err(|e| anyhow::anyhow!("sign: {e}"))?;
    Ok(StaticToken(token.token))
}
