//! `reader-bench`: the reader pipeline under load (not a test).
//!
//! Seeds a school (default 10,000 pupils, 200 rooms with readers and running sessions) in a
//! fresh database, starts the iot and active services and the MQTT bridge in-process on a
//! real broker (`MQTT_URL`, else the embedded one), then drives N simulated readers (default
//! 1, 16, 64), each sending scans one after the other (publish → Result received). Prints
//! scans/s and end-to-end latency p50/p95/p99 of four paths at each concurrency:
//!
//! 1. the pipeline: signed MQTT publish → broker → gateway bridge → `ProcessScan` → Result;
//! 2. the same `ProcessScan` transaction called directly (`phoenix_active::scan::process`);
//! 3. the ceiling issue #17 defines: the bare SQL of the check-in transaction as separate
//!    statements — BEGIN, ~17 prepared statements, COMMIT, the way `ProcessScan` sent them
//!    before it became one function call — run directly over tokio-postgres with no ORM, gRPC
//!    or MQTT ([`bare`]) — on as many connections as the pipeline's pool allows (`BENCH_POOL`);
//! 4. the bare function call: `SELECT active.process_scan(…)` prepared over tokio-postgres,
//!    what one scan costs the database now ([`bare_call`]),
//! 5. `ProcessScan`'s group commit without transport: the same scans through a
//!    [`ScanCommitter`] (`PHOENIX_SCAN_COMMITTERS` transactions at a time, the scans queued
//!    meanwhile in the next),
//! 6. the database's ceiling for batched scans: `SELECT active.process_scans(…)` of N / C
//!    scans (at most 16) on C connections (C = `PHOENIX_SCAN_COMMITTERS`), one batch after the
//!    other in BEGIN/COMMIT,
//!
//! and the ratios pipeline / bare, pipeline / batch and call / bare (issue #17: pipeline ≥ 1.0×
//! the bare transaction at 16 readers).
//!
//! The broker (`BENCH_BROKER`): `secured` (default) is the embedded broker as `phoenix dev`
//! and `phoenix gateway` run it, rumqttd behind the credential and ACL proxy; `open` is
//! rumqttd alone (the test harness's); `MQTT_URL` set uses that broker (e.g. Mosquitto).
//! `BENCH_COMMITTERS` / `BENCH_BATCH_MAX` override the group commit's settings, `BENCH_SHARDS`
//! the gateway's messages worked on at once (`BridgeConfig::shards`, 8).
//!
//! ```text
//! cargo run --release -p phoenix-tests --bin reader-bench
//! BENCH_PUPILS=10000 BENCH_ROOMS=200 BENCH_READERS=1,16,64 BENCH_SCANS=2000 BENCH_POOL=20 \
//!   BENCH_BROKER=secured BENCH_COMMITTERS=1 BENCH_SHARDS=8 cargo run --release …
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::RunQueryDsl;
use hdrhistogram::Histogram;
use phoenix::services::{self, ServiceContext};
use phoenix_active::scan::batch::ScanCommitter;
use phoenix_active::scan::{ScanCommand, ScanSettings};
use phoenix_common::db::{self, DbPool, PoolOptions};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_common::settings::LiveSettings;
use phoenix_gateway::auth::StaticToken;
use phoenix_gateway::bridge::{self, BridgeConfig, BridgeDeps};
use phoenix_gateway::broker::EmbeddedBroker;
use phoenix_gateway::broker_acl::BrokerAuth;
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::derive_device_key;
use phoenix_tests::TestDb;
use phoenix_tests::app::{TEST_DEVICE_KEY_SECRET, test_config};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Each level's scans get ids of their own (a repeated id is a duplicate: answered from its
/// receipt, far cheaper than a scan).
fn next_level() -> usize {
    static LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    LEVEL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

impl Level {
    /// The level of `tasks`, each returning its latencies and its error count, timed from
    /// `started`.
    async fn gather(
        tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64)>>,
        started: Instant,
    ) -> anyhow::Result<Level> {
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
    let run = next_level();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut sim) in sims.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678_9ABC));
            let mut errors = 0;
            for k in 0..per_reader {
                let pupil = (rng.next() as usize) % pupils;
                let scan = sim.sign(&format!("{run}-{i}-{k}"), &tag(pupil), Utc::now());
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
    Level::gather(tasks, started).await
}

/// `concurrency` tasks calling `phoenix_active::scan::process` (one transaction per scan) on
/// connections of `pool`.
async fn direct_level(pool: &DbPool, concurrency: usize, scans: usize, pupils: usize) -> anyhow::Result<Level> {
    let settings = ScanSettings {
        max_age: Duration::from_secs(24 * 3600),
        max_ahead: Duration::from_secs(300),
        timezone: chrono_tz::Europe::Berlin,
        daily_checkout_time: chrono::NaiveTime::MIN,
    };
    let pool = pool.clone();
    service_level(concurrency, scans, pupils, (0xD1B5_4A32_D192_ED03, "direct"), move |cmd| {
        let pool = pool.clone();
        async move {
            match pool.get().await {
                Ok(mut conn) => phoenix_active::scan::process(&mut conn, settings, cmd, Utc::now()).await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}

/// `concurrency` tasks sending scans one after the other through a [`ScanCommitter`] on
/// `pool`, as `ProcessScan` does (group commit), without gRPC or MQTT.
async fn committer_level(
    committer: &ScanCommitter,
    concurrency: usize,
    scans: usize,
    pupils: usize,
) -> anyhow::Result<Level> {
    let committer = committer.clone();
    service_level(concurrency, scans, pupils, (0x8F1B_BCDC_BFA5_3E0B, "committer"), move |cmd| {
        let committer = committer.clone();
        async move { committer.process(cmd).await.is_ok() }
    })
    .await
}

/// `concurrency` tasks, each sending its share of `scans` one after the other as
/// [`ScanCommand`]s of reader `bench-<task>` (ids `<prefix>-…`, a pupil drawn per task from
/// `seed`) through `apply`, which says whether the scan got a Result; each timed.
async fn service_level<F, Fut>(
    concurrency: usize,
    scans: usize,
    pupils: usize,
    (seed, prefix): (u64, &'static str),
    apply: F,
) -> anyhow::Result<Level>
where
    F: Fn(ScanCommand) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let per_task = (scans / concurrency).max(1);
    let run = next_level();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let apply = apply.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(seed ^ ((i as u64 + 1) * 0x9876_5432_1FED));
            let mut errors = 0;
            for k in 0..per_task {
                let pupil = (rng.next() as usize) % pupils;
                let cmd = ScanCommand {
                    device_id: format!("bench-{i}"),
                    scan_id: format!("{prefix}-{run}-{i}-{k}"),
                    tag: tag(pupil),
                    scanned_at: Utc::now(),
                };
                let t0 = Instant::now();
                if apply(cmd).await {
                    let _ = h.record(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (h, errors)
        }));
    }
    Level::gather(tasks, started).await
}

/// The bare SQL of the check-in transaction as separate statements: the statements of
/// `active.process_scan` for a scan at a room reader (migration
/// 2026-12-14-000001_active_scan_write_once), one round trip each, as prepared statements over
/// tokio-postgres. Only the branches the bench's scans take are written out (check-in,
/// transfer, check-out, capacity); their Result is stored like the real one.
mod bare {
    use std::time::{Duration, SystemTime};

    use phoenix_reader_protocol::{Code, Outcome, ResultRoom, ResultStudent, ScanResult, display_name};
    use tokio_postgres::types::Type;
    use tokio_postgres::{Client, Statement};

    pub struct Statements {
        device: Statement,
        claim: Statement,
        stored: Statement,
        card: Statement,
        lock_student: Statement,
        clock_lag: Statement,
        first_received: Statement,
        newer: Statement,
        room: Statement,
        session: Statement,
        open_visit: Statement,
        close_visit: Statement,
        touch: Statement,
        count: Statement,
        max_participants: Statement,
        insert_visit: Statement,
        attendance_of: Statement,
        insert_attendance: Statement,
        finish: Statement,
        event: Statement,
        notify: Statement,
    }

    pub async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            device: c.prepare("SELECT id, status, kind, room_id FROM iot.devices WHERE device_id = $1 LIMIT 1").await?,
            claim: c
                .prepare_typed(
                    "SELECT pg_advisory_xact_lock(1346917202, hashtext($1::text || ' ' || $2))::text",
                    &[Type::INT8, Type::TEXT],
                )
                .await?,
            stored: c
                .prepare("SELECT result FROM active.scan_receipts WHERE device_id = $1 AND scan_id = $2 LIMIT 1")
                .await?,
            card: c
                .prepare(
                    "SELECT c.active, st.id, p.first_name, p.last_name FROM users.rfid_cards c \
                     LEFT JOIN users.persons p ON p.tag_id = c.id LEFT JOIN users.students st ON st.person_id = p.id \
                     WHERE c.id = $1 LIMIT 1",
                )
                .await?,
            lock_student: c.prepare("SELECT id FROM users.students WHERE id = $1 LIMIT 1 FOR NO KEY UPDATE").await?,
            clock_lag: c
                .prepare(
                    "SELECT min(lag_seconds) FROM active.reader_clock_evidence WHERE device_id = $1 AND received_at >= $2",
                )
                .await?,
            first_received: c
                .prepare(
                    "SELECT received_at FROM active.scan_receipts \
                     WHERE device_id = $1 AND received_at >= $2 AND scanned_at IS NOT NULL AND code <> 'stale_scan' \
                     ORDER BY received_at LIMIT 1",
                )
                .await?,
            // Typed like diesel binds them (untyped, `least($3, $4)` would be text).
            newer: c
                .prepare_typed(
                    "SELECT EXISTS ( \
                         SELECT 1 FROM active.scan_receipts r \
                         WHERE r.student_id = $1 AND r.outcome <> 'rejected' \
                           AND r.received_at > least($3, $4) - make_interval(secs => $5) \
                           AND CASE WHEN r.device_id = $2 THEN r.scanned_at > $3 \
                                    ELSE coalesce((r.result ->> 'ordered_at')::timestamptz, r.scanned_at) > $4 END \
                     ) OR EXISTS ( \
                         SELECT 1 FROM active.presence_events p \
                         WHERE p.student_id = $1 AND p.occurred_at > $4 \
                           AND p.kind IN ('checked_in', 'checked_out', 'transferred', 'gone_home', 'arrived') \
                           AND NOT EXISTS (SELECT 1 FROM active.scan_receipts s \
                                           WHERE s.student_id = p.student_id AND s.received_at = p.occurred_at \
                                             AND s.outcome <> 'rejected'))",
                    &[Type::INT8, Type::INT8, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::FLOAT8],
                )
                .await?,
            room: c.prepare("SELECT name, capacity FROM facilities.rooms WHERE id = $1 LIMIT 1").await?,
            session: c
                .prepare(
                    "SELECT id, activity_id, start_time FROM active.groups WHERE room_id = $1 AND end_time IS NULL \
                     LIMIT 1 FOR NO KEY UPDATE",
                )
                .await?,
            open_visit: c
                .prepare(
                    "SELECT v.id, v.active_group_id, v.entry_time, g.room_id FROM active.visits v \
                     JOIN active.groups g ON g.id = v.active_group_id \
                     WHERE v.student_id = $1 AND v.exit_time IS NULL LIMIT 1",
                )
                .await?,
            close_visit: c
                .prepare("UPDATE active.visits SET exit_time = greatest(entry_time, $2) WHERE id = $1")
                .await?,
            touch: c.prepare("UPDATE active.groups SET last_activity = $2 WHERE id = $1").await?,
            count: c
                .prepare("SELECT count(*) FROM active.visits WHERE active_group_id = $1 AND exit_time IS NULL")
                .await?,
            max_participants: c
                .prepare("SELECT max_participants FROM activities.activities WHERE id = $1 LIMIT 1")
                .await?,
            insert_visit: c
                .prepare(
                    "INSERT INTO active.visits (student_id, active_group_id, entry_time) VALUES ($1, $2, $3) RETURNING id",
                )
                .await?,
            attendance_of: c
                .prepare(
                    "SELECT id, check_out_time FROM active.attendance WHERE student_id = $1 AND date = $2::text::date LIMIT 1",
                )
                .await?,
            insert_attendance: c
                .prepare(
                    "INSERT INTO active.attendance (student_id, date, check_in_time, check_in_device_id) \
                     VALUES ($1, $2::text::date, $3, $4) ON CONFLICT (student_id, date) DO NOTHING",
                )
                .await?,
            finish: c
                .prepare(
                    "INSERT INTO active.scan_receipts (device_id, scan_id, student_id, scanned_at, outcome, code, result) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)",
                )
                .await?,
            event: c
                .prepare(
                    "INSERT INTO active.presence_events (kind, student_id, session_id, room_id, from_room_id) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .await?,
            notify: c.prepare("SELECT pg_notify($1, $2)").await?,
        })
    }

    /// One scan of `tag` at reader `device`, in one transaction.
    pub async fn scan(
        client: &mut Client,
        s: &Statements,
        device: &str,
        scan_id: &str,
        tag: &str,
        date: &str,
    ) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let scanned_at = now;
        let tx = client.transaction().await?;
        let dev = tx.query_one(&s.device, &[&device]).await?;
        let (device_id, room_id): (i64, Option<i64>) = (dev.get(0), dev.get(3));
        tx.query_one(&s.claim, &[&device_id, &scan_id]).await?;
        anyhow::ensure!(tx.query_opt(&s.stored, &[&device_id, &scan_id]).await?.is_none(), "bare scan repeated");
        let card = tx.query_one(&s.card, &[&tag]).await?;
        let (student, first, last): (i64, String, String) = (card.get(1), card.get(2), card.get(3));
        tx.query_one(&s.lock_student, &[&student]).await?;
        let since = now - Duration::from_secs(24 * 3600);
        tx.query_one(&s.clock_lag, &[&device_id, &since]).await?;
        tx.query_opt(&s.first_received, &[&device_id, &since]).await?;
        let ahead = crate::MAX_CLOCK_AHEAD_SECS;
        let newer: bool =
            tx.query_one(&s.newer, &[&student, &device_id, &scanned_at, &scanned_at, &ahead]).await?.get(0);
        anyhow::ensure!(!newer, "bare scan superseded");
        let room_id = room_id.ok_or_else(|| anyhow::anyhow!("reader without a room"))?;
        let room = tx.query_one(&s.room, &[&room_id]).await?;
        let (room_name, capacity): (String, Option<i32>) = (room.get(0), room.get(1));
        let session = tx.query_one(&s.session, &[&room_id]).await?;
        let (session_id, activity, start): (i64, Option<i64>, SystemTime) =
            (session.get(0), session.get(1), session.get(2));
        let open = tx.query_opt(&s.open_visit, &[&student]).await?;
        let open: Option<(i64, i64, i64)> = open.map(|r| (r.get(0), r.get(1), r.get(3)));
        let who = ResultStudent { id: student, display_name: display_name(&first, &last) };
        let result_room = ResultRoom { id: room_id, name: room_name.clone() };
        let (outcome, code, kind, from_room) = if let Some((visit, _, _)) = open.filter(|o| o.1 == session_id) {
            tx.execute(&s.close_visit, &[&visit, &scanned_at]).await?;
            tx.execute(&s.touch, &[&session_id, &now]).await?;
            (Outcome::CheckedOut, Code::Ok, Some("checked_out"), None)
        } else {
            let inside: i64 = tx.query_one(&s.count, &[&session_id]).await?.get(0);
            let mut full = capacity.is_some_and(|c| inside >= i64::from(c));
            if !full && let Some(activity) = activity {
                let max: Option<i32> = tx.query_opt(&s.max_participants, &[&activity]).await?.and_then(|r| r.get(0));
                full = max.is_some_and(|m| inside >= i64::from(m));
            }
            if full {
                (Outcome::Rejected, Code::RoomFull, None, None)
            } else {
                if let Some((previous, _, _)) = open {
                    tx.execute(&s.close_visit, &[&previous, &scanned_at]).await?;
                }
                let entry = scanned_at.max(start);
                tx.query_one(&s.insert_visit, &[&student, &session_id, &entry]).await?;
                if tx.query_opt(&s.attendance_of, &[&student, &date]).await?.is_none() {
                    tx.execute(&s.insert_attendance, &[&student, &date, &scanned_at, &device_id]).await?;
                }
                tx.execute(&s.touch, &[&session_id, &now]).await?;
                match open {
                    Some((_, _, from)) => (Outcome::Transferred, Code::Ok, Some("transferred"), Some(from)),
                    None => (Outcome::CheckedIn, Code::Ok, Some("checked_in"), None),
                }
            }
        };
        let result = ScanResult {
            scan_id: scan_id.to_owned(),
            outcome,
            code,
            message: format!("{}: {room_name}", outcome.as_str()),
            student: Some(who),
            room: Some(result_room),
            duplicate: false,
        };
        let json = serde_json::to_string(&result)?;
        let (outcome, code) = (outcome.as_str(), code.as_str());
        tx.execute(&s.finish, &[&device_id, &scan_id, &student, &scanned_at, &outcome, &code, &json]).await?;
        if let Some(kind) = kind {
            let event: i64 = tx
                .query_one(&s.event, &[&kind, &Some(student), &Some(session_id), &Some(room_id), &from_room])
                .await?
                .get(0);
            tx.query_one(&s.notify, &[&"phoenix_presence", &event.to_string()]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// `scan::MAX_CLOCK_AHEAD` in seconds (the bound of the order check's receipts).
const MAX_CLOCK_AHEAD_SECS: f64 = phoenix_active::scan::MAX_CLOCK_AHEAD.as_secs_f64();

async fn bare_level(url: &str, concurrency: usize, scans: usize, pupils: usize) -> anyhow::Result<Level> {
    let date = phoenix_common::time::business_date_in(Utc::now(), chrono_tz::Europe::Berlin).to_string();
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let statements = bare::prepare(&client).await?;
        clients.push((client, statements, date.clone()));
    }
    let scan: ScanFn<(tokio_postgres::Client, bare::Statements, String)> = |(client, statements, date), scan| {
        Box::pin(async move { bare::scan(client, statements, &scan.device, &scan.id, &scan.tag, date).await })
    };
    timed_level(clients, (scans / concurrency).max(1), pupils, (0xA076_1D64_78BD_642F, "bare SQL scan"), scan).await
}

/// The scan as the service sends it now: one prepared `SELECT active.process_scan(…)` over
/// tokio-postgres, with the settings the direct path uses; only the Result's code comes back.
mod bare_call {
    use std::time::{Duration, SystemTime};

    use tokio_postgres::types::Type;
    use tokio_postgres::{Client, Statement};

    pub async fn prepare(c: &Client) -> Result<Statement, tokio_postgres::Error> {
        c.prepare_typed(
            "SELECT active.process_scan($1, $2, $3, $4, $5, make_interval(secs => $6), make_interval(secs => $7), \
             $8, $9::text::time) ->> 'code'",
            &[
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::FLOAT8,
                Type::FLOAT8,
                Type::TEXT,
                Type::TEXT,
            ],
        )
        .await
    }

    pub async fn prepare_batch(c: &Client) -> Result<Statement, tokio_postgres::Error> {
        c.prepare_typed(
            "SELECT ARRAY(SELECT r ->> 'code' FROM unnest(active.process_scans($1, $2, $3, $4, $5, \
             make_interval(secs => $6), make_interval(secs => $7), $8, $9::text::time)) r)",
            &[
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TIMESTAMPTZ_ARRAY,
                Type::TIMESTAMPTZ,
                Type::FLOAT8,
                Type::FLOAT8,
                Type::TEXT,
                Type::TEXT,
            ],
        )
        .await
    }

    /// `scans` in one transaction, one call, as the group commit sends them.
    pub async fn scan_batch(client: &Client, call: &Statement, scans: &[super::BareScan]) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let max_age = Duration::from_secs(24 * 3600).as_secs_f64();
        let devices: Vec<&str> = scans.iter().map(|s| s.device.as_str()).collect();
        let ids: Vec<&str> = scans.iter().map(|s| s.id.as_str()).collect();
        let tags: Vec<&str> = scans.iter().map(|s| s.tag.as_str()).collect();
        let at: Vec<SystemTime> = vec![now; scans.len()];
        client.batch_execute("BEGIN").await?;
        let row = client
            .query_one(
                call,
                &[&devices, &ids, &tags, &at, &now, &max_age, &crate::MAX_CLOCK_AHEAD_SECS, &"Europe/Berlin", &"00:00"],
            )
            .await;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                client.batch_execute("ROLLBACK").await?;
                return Err(e.into());
            }
        };
        client.batch_execute("COMMIT").await?;
        let codes: Vec<Option<String>> = row.get(0);
        for code in codes {
            let code = code.unwrap_or_else(|| "none".into());
            anyhow::ensure!(code == "ok" || code == "room_full", "bare batch call: {code}");
        }
        Ok(())
    }

    /// One scan of `tag` at reader `device`: the statement is its own transaction.
    pub async fn scan(client: &Client, call: &Statement, device: &str, scan_id: &str, tag: &str) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let max_age = Duration::from_secs(24 * 3600).as_secs_f64();
        let row = client
            .query_one(
                call,
                &[
                    &device,
                    &scan_id,
                    &tag,
                    &now,
                    &now,
                    &max_age,
                    &crate::MAX_CLOCK_AHEAD_SECS,
                    &"Europe/Berlin",
                    &"00:00",
                ],
            )
            .await?;
        let code: Option<String> = row.get(0);
        let code = code.unwrap_or_else(|| "none".into());
        anyhow::ensure!(code == "ok" || code == "room_full", "bare call: {code}");
        Ok(())
    }
}

async fn call_level(url: &str, concurrency: usize, scans: usize, pupils: usize) -> anyhow::Result<Level> {
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let call = bare_call::prepare(&client).await?;
        clients.push((client, call));
    }
    let scan: ScanFn<(tokio_postgres::Client, tokio_postgres::Statement)> = |(client, call), scan| {
        Box::pin(async move { bare_call::scan(client, call, &scan.device, &scan.id, &scan.tag).await })
    };
    timed_level(clients, (scans / concurrency).max(1), pupils, (0x2545_F491_4F6C_DD1D, "bare function call"), scan)
        .await
}

/// `readers` scans in flight as the group commit would run them with `committers`
/// transactions: `min(readers, committers)` connections, each sending one
/// `SELECT active.process_scans(…)` of `readers / connections` scans (at most `max_batch`) in
/// BEGIN/COMMIT after the other, every scan of a batch timed as the batch. The database's own
/// ceiling for batched scans.
async fn batch_call_level(
    url: &str,
    readers: usize,
    (committers, max_batch): (usize, usize),
    scans: usize,
    pupils: usize,
) -> anyhow::Result<Level> {
    let connections = readers.min(committers).max(1);
    let size = readers.div_ceil(connections).min(max_batch);
    let batches = (scans / (connections * size)).max(1);
    let run = next_level();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let call = bare_call::prepare_batch(&client).await?;
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(0x94D0_49BB_1331_11EB ^ ((i as u64 + 1) * 0x0F0F_1E1E_2D2D));
            let mut errors = 0;
            for k in 0..batches {
                let scans: Vec<BareScan> = (0..size)
                    .map(|j| BareScan {
                        device: format!("bench-{}", i * size + j),
                        id: format!("batch-{run}-{i}-{k}-{j}"),
                        tag: tag((rng.next() as usize) % pupils),
                    })
                    .collect();
                let t0 = Instant::now();
                match bare_call::scan_batch(&client, &call, &scans).await {
                    Ok(()) => {
                        let us = t0.elapsed().as_micros() as u64;
                        for _ in 0..size {
                            let _ = h.record(us);
                        }
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("bare batch call failed: {e:#}");
                        }
                        errors += size as u64;
                    }
                }
            }
            (h, errors)
        }));
    }
    Level::gather(tasks, started).await
}

/// One scan of [`timed_level`]: the task's reader, a scan id of its own, a pupil's tag.
struct BareScan {
    device: String,
    id: String,
    tag: String,
}

/// How [`timed_level`] sends one scan on a task's connection.
type ScanFn<C> = for<'a> fn(&'a mut C, BareScan) -> futures::future::BoxFuture<'a, anyhow::Result<()>>;

/// Every one of `clients` at once, each a task sending `per_task` scans one after the other
/// (`bench-<task>` as the reader, a pupil drawn per task from `seed`), each timed; the first
/// failure of a task is printed as `what` failed.
async fn timed_level<C: Send + 'static>(
    clients: Vec<C>,
    per_task: usize,
    pupils: usize,
    (seed, what): (u64, &'static str),
    scan: ScanFn<C>,
) -> anyhow::Result<Level> {
    let run = next_level();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
            let mut rng = Xorshift(seed ^ ((i as u64 + 1) * 0x5555_3333_1111));
            let mut errors = 0;
            for k in 0..per_task {
                let pupil = (rng.next() as usize) % pupils;
                let one = BareScan { device: format!("bench-{i}"), id: format!("bare-{run}-{i}-{k}"), tag: tag(pupil) };
                let t0 = Instant::now();
                match scan(&mut client, one).await {
                    Ok(()) => {
                        let _ = h.record(t0.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("{what} failed: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (h, errors)
        }));
    }
    Level::gather(tasks, started).await
}

fn rate(level: &Level) -> f64 {
    level.scans as f64 / level.elapsed.as_secs_f64().max(1e-9)
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
    config.scan_committers = env_num("BENCH_COMMITTERS", config.scan_committers);
    config.scan_batch_max = env_num("BENCH_BATCH_MAX", config.scan_batch_max);
    let shutdown = ShutdownToken::new();
    let ctx = ServiceContext::new(pool.clone(), config.clone());
    let running =
        services::start(&[Domain::Iot, Domain::Active], &ctx, config.listen_host, 0, false, &shutdown).await?;
    let active_addr = running
        .iter()
        .find(|r| r.domain == Domain::Active)
        .map(|r| r.addr)
        .ok_or_else(|| anyhow::anyhow!("no active"))?;
    let broker_kind = match std::env::var("MQTT_URL") {
        Ok(u) if !u.trim().is_empty() => "MQTT_URL".to_owned(),
        _ => std::env::var("BENCH_BROKER").unwrap_or_else(|_| "secured".into()),
    };
    let broker = match broker_kind.as_str() {
        "MQTT_URL" | "open" => phoenix_tests::mqtt_url(),
        "secured" => {
            let auth = BrokerAuth::from_config(&config, pool.clone())?;
            EmbeddedBroker::start([127, 0, 0, 1].into(), 0, false, auth).await?.url()
        }
        other => anyhow::bail!("BENCH_BROKER={other}: expected secured or open"),
    };
    let mut bridge_config = BridgeConfig::from_config(&config, &broker);
    // Simulated readers scan far faster than real ones: measure the pipeline, not the limit.
    bridge_config.reader_rate = (0, 1);
    bridge_config.shards = env_num("BENCH_SHARDS", bridge_config.shards);
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
        match broker_kind.as_str() {
            "secured" => "embedded rumqttd behind the ACL proxy (as phoenix dev)",
            "open" => "embedded rumqttd alone (BENCH_BROKER=open)",
            _ => "MQTT_URL",
        }
    );
    println!();
    println!(
        "{:<28} {:>4} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6}",
        "path", "N", "scans", "scans/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    // Warm-up (connections, caches, plans).
    let _ = mqtt_level(&broker, &config.mqtt_prefix, 1, 20, pupils).await?;
    let _ = bare_level(db.url(), 1, 20, pupils).await?;
    let _ = call_level(db.url(), 1, 20, pupils).await?;
    let committer = ScanCommitter::start(
        pool.clone(),
        LiveSettings::defaults_only(&config),
        config.scan_committers,
        config.scan_batch_max,
    );
    let _ = committer_level(&committer, 1, 20, pupils).await?;
    let _ = batch_call_level(db.url(), 2, (2, 16), 20, pupils).await?;
    let mut ratios = Vec::new();
    for &n in &readers {
        let mqtt = mqtt_level(&broker, &config.mqtt_prefix, n, scans, pupils).await?;
        print_level("MQTT → gateway → ProcessScan", n, &mqtt);
        let direct = direct_level(&pool, n, scans, pupils).await?;
        print_level("ProcessScan tx, direct", n, &direct);
        let committed = committer_level(&committer, n, scans, pupils).await?;
        print_level("ScanCommitter, direct", n, &committed);
        // The ceiling uses as many connections as the pipeline's pool has.
        let bare = bare_level(db.url(), n.min(pool_size as usize), scans, pupils).await?;
        print_level("bare SQL tx (ceiling)", n, &bare);
        let call = call_level(db.url(), n.min(pool_size as usize), scans, pupils).await?;
        print_level("bare process_scan() call", n, &call);
        let batched =
            batch_call_level(db.url(), n, (config.scan_committers, config.scan_batch_max), scans, pupils).await?;
        print_level("bare process_scans() batch", n, &batched);
        ratios.push((n, rate(&mqtt) / rate(&bare), rate(&mqtt) / rate(&batched), rate(&call) / rate(&bare)));
    }
    println!();
    println!(
        "{:<28} {:>4} {:>16} {:>16} {:>16}",
        "ratio to the ceiling", "N", "pipeline / bare", "pipeline / batch", "call / bare"
    );
    for (n, pipeline, batch, call) in ratios {
        println!("{:<28} {n:>4} {pipeline:>15.2}× {batch:>15.2}× {call:>15.2}×", "");
    }
    println!("targets (issue #17): pipeline ≥ 1.0× at 16 readers with p99 ≤ 20 ms; one reader p50 ≤ 5 ms");
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
    // The token verifier refuses tokens of service clients that do not exist.
    let mut conn = pool.get().await?;
    diesel::sql_query(
        "INSERT INTO auth.service_clients (client_id, secret_hash, permissions, active) \
         VALUES ('gateway', 'minted-by-the-bench', ARRAY['scans:process'], true) ON CONFLICT (client_id) DO NOTHING",
    )
    .execute(&mut conn)
    .await?;
    drop(conn);
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
