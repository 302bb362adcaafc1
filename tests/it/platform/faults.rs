//! Nothing lost under faults (issue #13), with real processes (docs/faults.md): PostgreSQL
//! restarted while 8 readers scan through the real reader stack, and the gateway's bridge
//! process killed (SIGKILL) mid-stream and started again. Readers re-send until answered (the
//! protocol's 5 s); every scan must end with exactly one effect: one Result each (a re-sent
//! one may come back `duplicate`), one visit and one receipt per distinct scan. Also the
//! session bounds of pooled connections: an idle transaction is ended, a lock wait and a long
//! statement are canceled, and each answers `Unavailable` (retryable), never `Internal`; a
//! connection the server ended while idle in the pool is not handed out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::{AsyncConnection as _, RunQueryDsl, SimpleAsyncConnection as _};
use phoenix_common::Error;
use phoenix_common::db::{self, PoolOptions, SessionTimeouts};
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::{Code, Outcome};
use phoenix_tests::db::PrivateCluster;
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school::{self, visit_count};
use phoenix_tests::{TestDb, fixtures};
use tonic::Status;

const READERS: usize = 8;
const PER_READER: usize = 5;
/// How long one scan may take to be answered, re-sends included (bridge retry budget 30 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(45);

/// What a run of the readers ended with.
#[derive(Debug, Default)]
struct Figures {
    sent: usize,
    results: usize,
    duplicates: usize,
    extra_results: usize,
    visits: i64,
    receipts: i64,
}

/// Sessions in rooms A–D and 8 room readers: `reader-a` … `reader-d` and a second one per
/// room, `reader-e` … `reader-h`.
async fn eight_readers(stack: &mut ReaderStack) -> Vec<SimReader> {
    let s = stack.school.clone();
    for &room in &s.rooms[..4] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
    let mut conn = stack.app.db.conn().await;
    let mut devices = s.readers[..4].to_vec();
    for (i, l) in ["e", "f", "g", "h"].into_iter().enumerate() {
        let device = format!("reader-{l}");
        fixtures::device(&mut conn, &device, "room", Some(s.rooms[i])).await;
        devices.push(device);
    }
    let mut readers = Vec::new();
    for d in &devices {
        readers.push(stack.reader(d).await);
    }
    readers
}

/// Every reader checks its own `PER_READER` pupils in, one after another, re-sending each
/// scan until answered; `fault` runs once `READERS` scans have been answered (mid-stream).
async fn scan_through_fault(
    stack: &mut ReaderStack,
    readers: Vec<SimReader>,
    fault: impl AsyncFnOnce(&mut ReaderStack),
) -> Figures {
    let started = Instant::now();
    let pupils = stack.school.pupils.clone();
    assert!(pupils.len() >= READERS * PER_READER);
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (r, mut reader) in readers.into_iter().enumerate() {
        let (answered, pupils) = (answered.clone(), pupils.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..PER_READER {
                let pupil = &pupils[r * PER_READER + i];
                let scan = reader.sign(&format!("fault-{r}-{i}"), &pupil.tag, Utc::now());
                let got = reader.send(&scan, ANSWER_WITHIN).await.unwrap_or_else(|e| panic!("reader {r}: {e}"));
                results.push(got.expect_result().clone());
                answered.fetch_add(1, Ordering::Relaxed);
            }
            // A Result published twice (before and after the fault) reaches the reader twice.
            let mut extra = Vec::new();
            while let Some(r) = reader.next_result(Duration::from_millis(300)).await {
                extra.push(r.expect_result().clone());
            }
            reader.disconnect().await;
            (results, extra)
        }));
    }
    let deadline = Instant::now() + ANSWER_WITHIN;
    while AtomicUsize::load(&answered, Ordering::Relaxed) < READERS {
        assert!(Instant::now() < deadline, "the first {READERS} scans were not answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_fault = AtomicUsize::load(&answered, Ordering::Relaxed);
    fault(stack).await;
    let mut figures = Figures::default();
    for task in tasks {
        let (results, extra) = task.await.expect("reader task");
        figures.sent += PER_READER;
        figures.results += results.len();
        for r in &results {
            assert_eq!((r.outcome, r.code), (Outcome::CheckedIn, Code::Ok), "{r:?}");
            figures.duplicates += usize::from(r.duplicate);
        }
        for r in &extra {
            assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, true), "extra: {r:?}");
        }
        figures.extra_results += extra.len();
    }
    let mut conn = stack.app.db.conn().await;
    for p in &pupils[..READERS * PER_READER] {
        let visits = visit_count(&mut conn, p.id).await;
        assert_eq!(visits, 1, "pupil {} has {visits} visits", p.id);
        figures.visits += visits;
    }
    figures.receipts = school::count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts").await;
    println!(
        "{} readers: {} scans sent, {} results ({} duplicate: true, {} extra Results for answered scans), \
         {} visits, {} receipts; fault after {at_fault} answers; {:.1} s",
        READERS,
        figures.sent,
        figures.results,
        figures.duplicates,
        figures.extra_results,
        figures.visits,
        figures.receipts,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(figures.results, figures.sent, "0 lost");
    assert_eq!(figures.visits, figures.sent as i64, "0 doubled: one visit per distinct scan");
    assert_eq!(figures.receipts, figures.sent as i64, "0 doubled: one receipt per distinct scan");
    figures
}

#[tokio::test]
async fn postgres_restarted_while_8_readers_scan_loses_and_doubles_nothing() {
    // A restart of the shared cluster would break every test running beside this one.
    let cluster = PrivateCluster::start().await;
    let mut stack = cluster.scope(ReaderStack::spawn(READERS * PER_READER)).await;
    let readers = eight_readers(&mut stack).await;
    let figures = scan_through_fault(&mut stack, readers, async |_| {
        let t = Instant::now();
        cluster.restart().await;
        println!("pg_ctl restart -m fast on port {} took {:.1} s", cluster.port(), t.elapsed().as_secs_f64());
    })
    .await;
    assert_eq!(figures.sent, READERS * PER_READER);
    let stats = stack.stats();
    println!(
        "bridge: {} received, {} retries of ProcessScan, {} unanswered",
        stats.received, stats.retries, stats.unanswered
    );
    stack.stop().await;
}

/// The gateway bridge as a process of its own (`fault-gateway`), on the stack's broker,
/// topics and persistent MQTT session.
async fn gateway_process(stack: &ReaderStack, token: &str) -> tokio::process::Child {
    let active = format!("http://{}", stack.app.addr(phoenix_common::domain::Domain::Active));
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fault-gateway"))
        .env("DATABASE_URL", stack.app.db.url())
        .env("MQTT_URL", &stack.mqtt_url)
        .env("PHOENIX_MQTT_PREFIX", &stack.prefix)
        .env("PHOENIX_MQTT_CLIENT_ID", &stack.client_id)
        .env("PHOENIX_ACTIVE_URL", active)
        .env("PHOENIX_DEVICE_KEY_SECRET", phoenix_tests::app::TEST_DEVICE_KEY_SECRET)
        .env("PHOENIX_READER_RATE_LIMIT", "0")
        .env("PHOENIX_DB_POOL_SIZE", "4")
        .env("PHOENIX_TEST_GATEWAY_TOKEN", token)
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the fault-gateway process")
}

#[tokio::test]
async fn gateway_killed_mid_stream_and_restarted_loses_and_doubles_nothing() {
    let mut stack = ReaderStack::spawn(READERS * PER_READER).await;
    let readers = eight_readers(&mut stack).await;
    // The in-process bridge created the persistent session; the process takes it over.
    stack.stop_bridge().await;
    let token =
        phoenix_tests::auth::mint_token(&stack.app, "service:gateway", &[], &["scans:process".to_owned()]).await;
    let mut gateway = gateway_process(&stack, &token).await;
    let figures = scan_through_fault(&mut stack, readers, async |stack| {
        let pid = gateway.id().expect("running");
        gateway.start_kill().expect("SIGKILL");
        let status = gateway.wait().await.expect("wait");
        println!("gateway pid {pid} killed ({status}); restarting it in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        gateway = gateway_process(stack, &token).await;
    })
    .await;
    assert_eq!(figures.sent, READERS * PER_READER);
    let _ = gateway.kill().await;
    stack.stop().await;
}

/// A pool on a test database with short session bounds.
async fn bounded_pool(db: &TestDb, session: SessionTimeouts) -> db::DbPool {
    let options = PoolOptions { max_size: 1, connection_timeout: Duration::from_secs(10), session };
    db::connect(db.url(), options).await.expect("pool")
}

fn assert_retryable(err: Error, what: &str) {
    let status = Status::from(err);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{what}: {status:?}");
    assert!(status.message().ends_with("retry"), "{what}: {}", status.message());
    assert!(tonic_types::StatusExt::get_error_details(&status).retry_info().is_some(), "{what}: RetryInfo");
    println!("{what}: {:?} {:?}", status.code(), status.message());
}

#[tokio::test]
async fn a_transaction_idle_past_the_bound_is_ended_and_the_pool_serves_the_next_request() {
    let db = TestDb::new().await;
    let bounds = SessionTimeouts { idle_in_transaction: Duration::from_millis(500), ..SessionTimeouts::default() };
    let pool = bounded_pool(&db, bounds).await;
    let mut conn = db::conn(&pool).await.expect("conn");
    let err = conn
        .transaction::<(), Error, _>(async |c| {
            diesel::sql_query("SELECT 1").execute(c).await?;
            tokio::time::sleep(Duration::from_millis(1500)).await; // idle in the transaction
            diesel::sql_query("SELECT 1").execute(c).await?;
            Ok(())
        })
        .await
        .expect_err("PostgreSQL ended the idle transaction's session");
    assert_retryable(err, "statement after the idle-in-transaction timeout");
    drop(conn);
    // The pool (one connection) discards the dead one and serves the next request.
    let mut conn = db::conn(&pool).await.expect("a fresh connection");
    diesel::sql_query("SELECT 1").execute(&mut conn).await.expect("the next request succeeds");
}

#[derive(diesel::QueryableByName)]
struct Backend {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn backend_pid(conn: &mut diesel_async::AsyncPgConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Backend>(conn).await.expect("backend pid").pid
}

// The pool checks a connection on checkout without a query (services/common/src/db.rs): one
// whose session the server ended while it sat idle in the pool must not be handed out.
#[tokio::test]
async fn a_pooled_connection_the_server_ended_while_idle_is_not_handed_out() {
    let db = TestDb::new().await;
    let pool = bounded_pool(&db, SessionTimeouts::default()).await;
    let ended = backend_pid(&mut db::conn(&pool).await.expect("conn")).await;
    let mut admin = db.conn().await;
    diesel::sql_query(format!("SELECT pg_terminate_backend({ended})")).execute(&mut admin).await.expect("terminate");
    let gone = Instant::now();
    loop {
        let n =
            school::count(&mut admin, &format!("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = {ended}")).await;
        if n == 0 {
            break;
        }
        assert!(gone.elapsed() < Duration::from_secs(10), "backend {ended} still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client's connection task reads the server's goodbye as soon as it arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = db::conn(&pool).await.expect("a connection");
    let now = backend_pid(&mut conn).await;
    assert_ne!(now, ended, "a new session, not the ended one");
}

#[tokio::test]
async fn a_statement_blocked_past_the_lock_timeout_is_unavailable_not_internal() {
    let db = TestDb::new().await;
    let bounds = SessionTimeouts { lock: Duration::from_millis(300), ..SessionTimeouts::default() };
    let pool = bounded_pool(&db, bounds).await;
    let mut holder = db.conn().await;
    holder.batch_execute("BEGIN; LOCK TABLE facilities.rooms IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    let mut conn = db::conn(&pool).await.expect("conn");
    let t = Instant::now();
    let err = diesel::sql_query("SELECT count(*) FROM facilities.rooms")
        .execute(&mut conn)
        .await
        .map_err(Error::from)
        .expect_err("lock timeout");
    assert!(t.elapsed() < Duration::from_secs(5), "canceled at the lock timeout, not later: {:?}", t.elapsed());
    assert_retryable(err, "statement behind a lock");
    holder.batch_execute("ROLLBACK").await.expect("release");
    diesel::sql_query("SELECT count(*) FROM facilities.rooms").execute(&mut conn).await.expect("then it passes");
}

#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_unavailable_and_listen_connections_have_none() {
    let db = TestDb::new().await;
    let bounds = SessionTimeouts { statement: Duration::from_millis(300), ..SessionTimeouts::default() };
    let pool = bounded_pool(&db, bounds).await;
    let mut conn = db::conn(&pool).await.expect("conn");
    let err = diesel::sql_query("SELECT pg_sleep(3)")
        .execute(&mut conn)
        .await
        .map_err(Error::from)
        .expect_err("statement timeout");
    assert_retryable(err, "long statement");
    drop(conn);
    // A LISTEN connection waits: only the idle-in-transaction bound applies to it.
    let mut listen = db::listen_connection(&pool).await.expect("listen connection");
    diesel::sql_query("SELECT pg_sleep(0.5)").execute(&mut listen).await.expect("no statement timeout");
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let show = async |c: &mut diesel_async::AsyncPgConnection, name: &str| {
        diesel::sql_query(format!("SELECT current_setting('{name}') AS v"))
            .get_result::<Setting>(c)
            .await
            .expect("show")
            .v
    };
    assert_eq!(show(&mut listen, "statement_timeout").await, "0");
    assert_eq!(show(&mut listen, "idle_in_transaction_session_timeout").await, "30s");
}
