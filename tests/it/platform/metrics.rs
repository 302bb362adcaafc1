//! Prometheus metrics (docs/observability.md): `/metrics` scraped over real HTTP before and
//! after real traffic moves each counter by exactly what was sent — RPCs by service, method
//! and code with their durations; scans by outcome, code and duplicate with their round
//! trip, ProcessScan's own RPC count; and the sampled gauges (pool, argon2 gate, presence
//! watchers, bridge queue, MQTT connection) read what is true at scrape time.
//!
//! The recorder is process-global (one process per test under nextest); every assertion is
//! a difference between two scrapes or a gauge this test controls, so other metrics of the
//! process do not matter.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use diesel_async::RunQueryDsl as _;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{RunOutcome, Trigger, run_once};
use phoenix_common::metrics as m;
use phoenix_common::server::ShutdownToken;
use phoenix_proto::active::v1 as active_pb;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_proto::facilities::v1 as pb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_reader_protocol::{Code, Outcome, ScanResult};
use phoenix_tests::TestApp;
use phoenix_tests::grpc::assert_code;
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school;
use phoenix_tests::scrape::{Page, scrape};

const WAIT: Duration = Duration::from_secs(20);

/// Installs the recorder and serves `/metrics` on an ephemeral port, as `phoenix serve` does
/// (`PHOENIX_METRICS_PORT=0`); stops with the returned token. Called before any pool exists,
/// so the pools are watched.
async fn endpoint() -> (SocketAddr, ShutdownToken) {
    let mut config = phoenix_common::config::Config::from_lookup(|_| None).expect("defaults");
    config.metrics_port = Some(0);
    let shutdown = ShutdownToken::new();
    let addr = m::start(&config, false, shutdown.clone()).await.expect("metrics endpoint").expect("not off");
    assert!(m::is_installed(), "the recorder is Phoenix's");
    (addr, shutdown)
}

fn delta(before: &Page, after: &Page, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

#[tokio::test]
async fn rpc_counters_and_durations_move_by_exactly_the_calls_made() {
    let (addr, _stop) = endpoint().await;
    let app = TestApp::spawn(&[Domain::Facilities]).await;
    let mut conn = app.db.conn().await;
    let room = phoenix_tests::fixtures::room(&mut conn, "Raum Metrik", None).await;
    let mut client = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
    // A first call so the client's channel and the token cache are warm.
    client.list_rooms(pb::ListRoomsRequest::default()).await.expect("ListRooms");

    let before = scrape(addr).await;
    for _ in 0..3 {
        client.get_room(pb::GetRoomRequest { id: room }).await.expect("GetRoom of an existing room");
    }
    assert_code(client.get_room(pb::GetRoomRequest { id: room + 1_000_000 }).await, tonic::Code::NotFound);
    let after = scrape(addr).await;

    let service = ("service", "phoenix.facilities.v1.FacilitiesService");
    let get_room = ("method", "GetRoom");
    assert_eq!(delta(&before, &after, m::RPC_REQUESTS, &[service, get_room, ("code", "OK")]), 3.0);
    assert_eq!(delta(&before, &after, m::RPC_REQUESTS, &[service, get_room, ("code", "NOT_FOUND")]), 1.0);
    let list_rooms = ("method", "ListRooms");
    assert_eq!(before.get(m::RPC_REQUESTS, &[service, list_rooms, ("code", "OK")]), 1.0, "the warm-up call");
    assert_eq!(delta(&before, &after, m::RPC_REQUESTS, &[service, list_rooms, ("code", "OK")]), 0.0);
    let count = format!("{}_count", m::RPC_DURATION);
    assert_eq!(delta(&before, &after, &count, &[service, get_room]), 4.0, "one duration per call, every status");
    let slowest = format!("{}_bucket", m::RPC_DURATION);
    assert_eq!(
        delta(&before, &after, &slowest, &[service, get_room, ("le", "+Inf")]),
        4.0,
        "a real histogram with buckets"
    );

    // Sampled at scrape time: the pools (the app's and the test database's), the argon2 gate.
    assert!(after.get(m::DB_POOL_MAX, &[]) >= f64::from(app.config.db_pool_size), "{after:?}");
    let open = after.get(m::DB_POOL_CONNECTIONS, &[("state", "idle")])
        + after.get(m::DB_POOL_CONNECTIONS, &[("state", "in_use")]);
    assert!(open >= 1.0 && open <= after.get(m::DB_POOL_MAX, &[]), "open connections {open}");
    let waits = format!("{}_count", m::DB_POOL_WAIT);
    assert!(delta(&before, &after, &waits, &[]) >= 4.0, "every handler's checkout is timed");
    assert!(delta(&before, &after, m::DB_POOL_GETS, &[("result", "direct")]) >= 4.0);
    assert_eq!(after.get(m::ARGON2_LIMIT, &[]), phoenix_common::password::concurrency() as f64);
    assert_eq!(after.get(m::ARGON2_RUNNING, &[]), 0.0);
    assert_eq!(after.get(m::ARGON2_WAITING, &[]), 0.0);
    app.stop().await;
}

async fn send(reader: &mut phoenix_gateway::sim::SimReader, scan_id: &str, tag: &str, secs: i64) -> ScanResult {
    let at = Utc::now() - chrono::Duration::seconds(600 - secs);
    let scan = reader.sign(scan_id, tag, at);
    reader.send(&scan, WAIT).await.expect("a result").expect_result().clone()
}

#[tokio::test]
async fn scans_are_counted_by_outcome_and_code_with_their_round_trip() {
    let (addr, _stop) = endpoint().await;
    let mut stack = ReaderStack::spawn(2).await;
    let s = stack.school.clone();
    school::start_session(&mut stack.active, s.rooms[0], s.activity, s.staff).await;
    let mut a = stack.reader(&s.readers[0]).await;
    let (p, q) = (&s.pupils[0], &s.pupils[1]);

    let before = scrape(addr).await;
    assert_eq!(before.get(m::MQTT_CONNECTED, &[]), 1.0, "the bridge is connected");
    assert!(before.get(m::MQTT_CONNECTION_EVENTS, &[("event", "connected")]) >= 1.0);
    let oc = |r: &ScanResult| (r.outcome, r.code, r.duplicate);
    assert_eq!(oc(&send(&mut a, "m-1", &p.tag, 0).await), (Outcome::CheckedIn, Code::Ok, false));
    assert_eq!(oc(&send(&mut a, "m-2", &q.tag, 1).await), (Outcome::CheckedIn, Code::Ok, false));
    assert_eq!(oc(&send(&mut a, "m-3", &p.tag, 2).await), (Outcome::CheckedOut, Code::Ok, false));
    assert_eq!(oc(&send(&mut a, "m-4", "DEADBEEF00", 3).await), (Outcome::Rejected, Code::UnknownTag, false));
    // The same scan again (a reader that missed its Result): the stored Result, marked.
    assert_eq!(oc(&send(&mut a, "m-1", &p.tag, 0).await), (Outcome::CheckedIn, Code::Ok, true));
    // Refused by the gateway itself: never reaches ProcessScan.
    let mut forged = a.sign("m-5", &p.tag, Utc::now());
    forged.sig = Some("0".repeat(64));
    let r = a.send(&forged, WAIT).await.expect("a result").expect_result().clone();
    assert_eq!(oc(&r), (Outcome::Rejected, Code::BadSignature, false));
    let after = scrape(addr).await;

    let scans = |outcome: &str, code: &str, duplicate: &str| {
        delta(&before, &after, m::SCANS, &[("outcome", outcome), ("code", code), ("duplicate", duplicate)])
    };
    assert_eq!(scans("checked_in", "ok", "false"), 2.0);
    assert_eq!(scans("checked_out", "ok", "false"), 1.0);
    assert_eq!(scans("rejected", "unknown_tag", "false"), 1.0);
    assert_eq!(scans("checked_in", "ok", "true"), 1.0);
    assert_eq!(scans("rejected", "bad_signature", "false"), 1.0);
    assert_eq!(scans("transferred", "ok", "false"), 0.0);
    let roundtrips = format!("{}_count", m::SCAN_ROUNDTRIP);
    assert_eq!(delta(&before, &after, &roundtrips, &[]), 6.0, "one round trip per Result");
    let roundtrip_sum = format!("{}_sum", m::SCAN_ROUNDTRIP);
    assert!(delta(&before, &after, &roundtrip_sum, &[]) > 0.0);
    assert_eq!(delta(&before, &after, m::SCANS_UNANSWERED, &[]), 0.0);
    let process_scan = [("service", "phoenix.active.v1.ActiveService"), ("method", "ProcessScan"), ("code", "OK")];
    assert_eq!(delta(&before, &after, m::RPC_REQUESTS, &process_scan), 5.0, "the forged scan never reached it");
    assert_eq!(after.get(m::BRIDGE_QUEUE_DEPTH, &[]), 0.0, "everything was taken up");
    assert_eq!(delta(&before, &after, m::BRIDGE_OVERFLOW, &[]), 0.0);

    // Presence watchers: one open stream is one watcher, and it is gone once closed.
    let mut presence = PresenceServiceClient::new(stack.app.test_channel(Domain::Active).await);
    let board = presence.get_presence_board(active_pb::GetPresenceBoardRequest::default()).await.expect("board");
    let stream = presence
        .watch_presence(active_pb::WatchPresenceRequest { cursor: board.into_inner().cursor, alerts: false })
        .await
        .expect("WatchPresence")
        .into_inner();
    assert_eq!(scrape(addr).await.get(m::PRESENCE_WATCHERS, &[]), 1.0);
    drop(stream);
    let deadline = tokio::time::Instant::now() + WAIT;
    while scrape(addr).await.get(m::PRESENCE_WATCHERS, &[]) != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's watcher is gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stack.stop().await;
    assert_eq!(scrape(addr).await.get(m::MQTT_CONNECTED, &[]), 0.0, "the stopped bridge is disconnected");
}

/// The `db_stats` job (run by the process serving config, as its domain role) publishes the
/// figures of `phoenix db stats` as gauges: they are there after one run, and they are what
/// the database says.
#[tokio::test]
async fn the_db_stats_job_publishes_the_database_figures_as_gauges() {
    let (addr, _stop) = endpoint().await;
    let app = TestApp::spawn(&[Domain::Config]).await;
    let pool = app.context.pool_for(Domain::Config);
    assert_eq!(scrape(addr).await.get(m::DB_SERVER_CONNECTIONS, &[("kind", "max")]), 0.0, "nothing before a run");
    #[derive(diesel::QueryableByName)]
    struct Me {
        #[diesel(sql_type = diesel::sql_types::Text)]
        me: String,
    }
    let mut held = pool.get().await.expect("a config connection");
    let me: Me = diesel::sql_query("SELECT session_user::text AS me").get_result(&mut *held).await.expect("whoami");
    let role = me.me;

    let spec = phoenix_config::db_stats::spec();
    let done = run_once(&pool, &spec, Trigger::Schedule, Utc::now(), false).await.expect("db_stats runs");
    let RunOutcome::Done(report) = done else { panic!("not locked elsewhere: {done:?}") };
    assert!(report.get("gauges") > 10, "{report:?}");
    assert!(!report.did_work(), "publishing changes nothing: a quiet run");
    let page = scrape(addr).await;

    let mut conn = app.db.conn().await;
    let expected = phoenix_config::db_stats::collect(&mut conn, "active").await.expect("stats");
    assert_eq!(page.get(m::DB_SERVER_CONNECTIONS, &[("kind", "max")]), f64::from(expected.max_connections));
    assert!(page.get(m::DB_SIZE, &[]) > 0.0);
    for s in &expected.schemas {
        assert!(page.has(m::DB_SCHEMA_SIZE, &[("schema", &s.schema)]), "schema {}", s.schema);
    }
    for domain in Domain::ALL {
        assert!(page.get(m::DB_SCHEMA_SIZE, &[("schema", domain.name())]) > 0.0, "{domain} has tables");
    }
    // Every table of `active` has its tuple gauges; the index list is the catalog's.
    for t in &expected.tables {
        let live = [("schema", t.schema.as_str()), ("table", t.table.as_str()), ("state", "live")];
        assert!(page.has(m::DB_TABLE_TUPLES, &live), "{}.{} live tuples", t.schema, t.table);
    }
    assert!(expected.tables.iter().any(|t| t.table == "visits"), "active.visits is detailed");
    for i in &expected.indexes {
        assert!(page.has(m::DB_INDEX_SCANS, &[("schema", &i.schema), ("index", &i.index)]));
    }
    assert_eq!(page.get(m::DB_UNUSED_INDEXES, &[]), expected.indexes.iter().filter(|i| i.unused()).count() as f64);
    // A session of the config pool (its login: `usename` is the session user), held idle across
    // the run, was counted under its login.
    assert!(page.get(m::DB_CONNECTIONS, &[("role", &role), ("state", "idle")]) >= 1.0, "{role}: {page:?}");
    drop(held);
    app.stop().await;
}
