//! Two replicas of a domain behind one address (issue #16, docs/deployment.md "Scaling"): the
//! test's own servers (`TestApp`) and a second replica on the same database, behind a TCP
//! proxy that deals connections round-robin, as a Kubernetes Service does. The second replica
//! is a process of its own (`domain-replica`: what `phoenix serve` runs) for presence, the
//! config cache and the gateway; for jobs it is a second in-process `ServiceContext` (own
//! pools, settings, scheduler), because both schedulers run on clocks the test sets.
//!
//! - Presence: a `WatchPresence` stream on replica 1 sees a scan handled by replica 2.
//! - Config cache: a flag created and switched on through replica 1 is evaluated as such by
//!   replica 2 within the notice bound.
//! - Jobs: both replicas' schedulers due at the same instant, or one late by more than the
//!   run takes: the sessions end once.
//! - The gateway in front: `phoenix_gateway_forwarded_total` moves by exactly the calls
//!   forwarded (and the unreachable domain's by exactly the calls it refused).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use phoenix::services::{self, ServiceContext};
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, ManualClock, Scheduler};
use phoenix_common::metrics as m;
use phoenix_common::server::ShutdownToken;
use phoenix_proto::active::v1 as active_pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_proto::config::v1 as config_pb;
use phoenix_proto::config::v1::config_service_client::ConfigServiceClient;
use phoenix_proto::users::v1 as users_pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::app::connect;
use phoenix_tests::auth::{admin_token, bearer, mint_token};
use phoenix_tests::school::{self, School};
use phoenix_tests::scrape::scrape;
use tokio::io::AsyncBufReadExt as _;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
/// How soon a change through one replica reaches another's cache: the commit's `NOTIFY`
/// (the backstop reload, `phoenix_config::cache::SAFETY_RELOAD`, is 60 s).
const NOTICE_BOUND: Duration = Duration::from_secs(5);

/// The second replica of `domains` in this process, on the app's database: its own context,
/// pools and settings.
struct Replica {
    ctx: ServiceContext,
    shutdown: ShutdownToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    async fn start(app: &TestApp, domains: &[Domain]) -> Self {
        let ctx = ServiceContext::serving(app.db.pool().await, app.config.clone(), app.db.url(), domains)
            .await
            .expect("the second replica's pools");
        let shutdown = ShutdownToken::new();
        let running = services::start(domains, &ctx, app.config.listen_host, 0, false, &shutdown)
            .await
            .expect("start the second replica");
        let tasks = running.into_iter().map(|r| r.task).collect();
        Self { ctx, shutdown, tasks }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.expect("server task").expect("server stops cleanly");
        }
    }
}

/// The second replica of some domains as a process of its own (`domain-replica`), on the
/// app's database with the app's settings for roles; killed if dropped before [`stop`].
///
/// [`stop`]: ReplicaProcess::stop
struct ReplicaProcess {
    child: tokio::process::Child,
    addrs: HashMap<String, SocketAddr>,
}

impl ReplicaProcess {
    async fn start(app: &TestApp, domains: &[Domain]) -> Self {
        let list = domains.iter().map(|d| d.name()).collect::<Vec<_>>().join(",");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_domain-replica"))
            .env("DATABASE_URL", app.db.url())
            .env("PHOENIX_TEST_DOMAINS", list)
            .env("PHOENIX_DB_ROLES", if app.config.db_roles { "on" } else { "off" })
            .env("PHOENIX_JOBS", "off")
            .env("PHOENIX_DB_POOL_SIZE", "4")
            .env("PHOENIX_METRICS_PORT", "off")
            .env("PHOENIX_LISTEN_HOST", "127.0.0.1")
            .env("PHOENIX_DEVICE_KEY_SECRET", phoenix_tests::app::TEST_DEVICE_KEY_SECRET)
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a domain-replica process");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addrs = tokio::time::timeout(Duration::from_secs(60), async {
            let mut addrs = HashMap::new();
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if line == "domain-replica: ready" {
                    return addrs;
                }
                if let Some((domain, addr)) = line.strip_prefix("domain-replica: ").and_then(|l| l.split_once(" on ")) {
                    addrs.insert(domain.to_owned(), addr.parse::<SocketAddr>().expect("address"));
                }
            }
            panic!("the domain-replica process ended before it was ready");
        })
        .await
        .expect("the domain-replica process is ready within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, addrs }
    }

    fn addr(&self, domain: Domain) -> SocketAddr {
        self.addrs[domain.name()]
    }

    /// SIGTERM, and the process drains and exits 0.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the replica exits after SIGTERM")
            .expect("wait");
        assert!(exit.success(), "the replica stops cleanly: {exit}");
    }
}

/// One address in front of two backends: the n-th connection goes to backend n mod 2.
struct RoundRobin {
    addr: SocketAddr,
    /// Connections dealt to each backend.
    dealt: Arc<[AtomicUsize; 2]>,
    task: JoinHandle<()>,
}

impl RoundRobin {
    async fn start(backends: [SocketAddr; 2]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("addr");
        let dealt: Arc<[AtomicUsize; 2]> = Arc::default();
        let counts = dealt.clone();
        let task = tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut client, _)) = listener.accept().await {
                let i = n % 2;
                n += 1;
                counts[i].fetch_add(1, Ordering::SeqCst);
                let backend = backends[i];
                tokio::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Self { addr, dealt, task }
    }

    fn dealt(&self) -> [usize; 2] {
        [self.dealt[0].load(Ordering::SeqCst), self.dealt[1].load(Ordering::SeqCst)]
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two connections through the proxy: the first on replica 1, the second on replica 2.
async fn one_on_each(proxy: &RoundRobin) -> (tonic::transport::Channel, tonic::transport::Channel) {
    let first = connect(proxy.addr).await;
    let second = connect(proxy.addr).await;
    assert_eq!(proxy.dealt(), [1, 1], "one connection on each replica");
    (first, second)
}

#[tokio::test]
async fn a_presence_watch_on_one_replica_sees_a_scan_handled_by_the_other() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let mut conn = app.db.conn().await;
    let s = School::create(&mut conn, 1).await;
    let mut setup = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    school::start_session(&mut setup, s.rooms[0], s.activity, s.staff).await;
    let second = ReplicaProcess::start(&app, &[Domain::Active]).await;
    let proxy = RoundRobin::start([app.addr(Domain::Active), second.addr(Domain::Active)]).await;
    let (on_first, on_second) = one_on_each(&proxy).await;

    let (_, admin) = admin_token(&app).await;
    let mut presence = PresenceServiceClient::new(on_first);
    let cursor = presence
        .get_presence_board(bearer(active_pb::GetPresenceBoardRequest::default(), &admin))
        .await
        .expect("board")
        .into_inner()
        .cursor;
    let mut stream = presence
        .watch_presence(bearer(active_pb::WatchPresenceRequest { cursor, ..Default::default() }, &admin))
        .await
        .expect("WatchPresence on replica 1")
        .into_inner();
    let gateway = mint_token(&app, "service:gateway", &[], &["scans:process".to_owned()]).await;
    let mut active = ActiveServiceClient::new(on_second);
    let scanned = Instant::now();
    let answer = active
        .process_scan(bearer(
            active_pb::ProcessScanRequest {
                device_id: s.readers[0].clone(),
                scan_id: "replica-presence-1".into(),
                tag: s.pupils[0].tag.clone(),
                scanned_at: Some(phoenix_common::time::to_timestamp(Utc::now())),
            },
            &gateway,
        ))
        .await
        .expect("ProcessScan on replica 2")
        .into_inner();
    println!("ProcessScan on replica 2: {answer:?}");
    let event = loop {
        let message = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("an event on replica 1 within 10 s")
            .expect("stream open")
            .expect("a message");
        let event = message.event.expect("an event");
        if event.kind() != active_pb::PresenceEventKind::Heartbeat {
            break event;
        }
    };
    let latency = scanned.elapsed();
    println!("replica 1's watcher saw replica 2's scan {:.0} ms after it was sent", latency.as_secs_f64() * 1e3);
    assert_eq!(event.kind(), active_pb::PresenceEventKind::CheckedIn);
    assert_eq!(event.pupil.map(|p| p.student_id), Some(s.pupils[0].id));
    assert_eq!(event.room_id, Some(s.rooms[0]));
    assert_eq!(proxy.dealt(), [1, 1], "no call took another path");
    drop(stream);
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_flag_changed_through_one_replica_is_evaluated_so_by_the_other_within_the_notice_bound() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let second = ReplicaProcess::start(&app, &[Domain::Config]).await;
    let proxy = RoundRobin::start([app.addr(Domain::Config), second.addr(Domain::Config)]).await;
    let (on_first, on_second) = one_on_each(&proxy).await;
    let (_, admin) = admin_token(&app).await;
    let (mut first, mut other) = (ConfigServiceClient::new(on_first), ConfigServiceClient::new(on_second));
    let key = "replica.check";
    let evaluate = async |client: &mut ConfigServiceClient<tonic::transport::Channel>| {
        client
            .evaluate_feature_flag(bearer(
                config_pb::EvaluateFeatureFlagRequest { key: key.into(), subject_account_id: None },
                &admin,
            ))
            .await
    };
    assert_eq!(evaluate(&mut other).await.expect_err("no flag yet").code(), tonic::Code::NotFound);

    let flag = config_pb::FeatureFlag {
        key: key.into(),
        enabled: false,
        description: "replica test".into(),
        ..Default::default()
    };
    first
        .create_feature_flag(bearer(config_pb::CreateFeatureFlagRequest { feature_flag: Some(flag.clone()) }, &admin))
        .await
        .expect("create through replica 1");
    let created = Instant::now();
    let seen = loop {
        match evaluate(&mut other).await {
            Ok(e) => break e.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound && created.elapsed() < NOTICE_BOUND => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(s) => panic!("replica 2 after {:?}: {s:?}", created.elapsed()),
        }
    };
    let create_lag = created.elapsed();
    assert!(!seen.enabled, "created switched off");

    first
        .update_feature_flag(bearer(
            config_pb::UpdateFeatureFlagRequest {
                feature_flag: Some(config_pb::FeatureFlag { enabled: true, ..flag }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
            },
            &admin,
        ))
        .await
        .expect("switch on through replica 1");
    let updated = Instant::now();
    while !evaluate(&mut other).await.expect("evaluate on replica 2").into_inner().enabled {
        assert!(updated.elapsed() < NOTICE_BOUND, "replica 2 still evaluates the flag off after {NOTICE_BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let update_lag = updated.elapsed();
    println!(
        "replica 2's cache: the created flag after {:.0} ms, switched on after {:.0} ms (bound {NOTICE_BOUND:?})",
        create_lag.as_secs_f64() * 1e3,
        update_lag.as_secs_f64() * 1e3
    );
    assert_eq!(proxy.dealt(), [1, 1]);
    second.stop().await;
    app.stop().await;
}

/// A run of `session_end` as recorded in `config.job_runs`.
#[derive(diesel::QueryableByName, Debug)]
struct Run {
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sessions: i64,
}

/// Two active replicas with two running sessions; each schedules `session_end` as
/// `phoenix serve` does (its own specs, settings and pool) on a clock of its own. `skew`:
/// how long after the first replica's run the second's clock reaches the due time (`None`:
/// both at once). Returns the recorded runs once the sessions ended and both had their turn.
async fn session_end_on_two_replicas(skew: Option<Duration>) -> Vec<Run> {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let mut conn = app.db.conn().await;
    let s = School::create(&mut conn, 1).await;
    let mut setup = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    for &room in &s.rooms[..2] {
        school::start_session(&mut setup, room, s.activity, s.staff).await;
    }
    let second = Replica::start(&app, &[Domain::Active]).await;
    let shutdown = ShutdownToken::new();
    let now = Utc::now();
    let mut clocks = Vec::new();
    let mut tasks = Vec::new();
    let mut due = None;
    for ctx in [&app.context, &second.ctx] {
        let spec = services::job_specs(&[Domain::Active], ctx, &shutdown)
            .await
            .into_iter()
            .map(|(_, spec)| spec)
            .find(|spec| spec.job == Job::SessionEnd)
            .expect("active schedules session_end");
        let clock = Arc::new(ManualClock::new(now));
        let zone = ctx.live_settings().await.time_zone();
        let scheduler = Scheduler { zone, clock: clock.clone(), step: Duration::from_millis(5) };
        due = scheduler.next_due(&spec.schedule, now);
        tasks.push(tokio::spawn(scheduler.run(ctx.pool_for(Domain::Active), spec, shutdown.clone())));
        clocks.push(clock);
    }
    let due = due.expect("a daily job");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(school::events(&mut conn, &["session_ended"]).await.is_empty(), "not due yet");
    let ended_twice = async |conn: &mut diesel_async::AsyncPgConnection| {
        let deadline = Instant::now() + WAIT;
        while school::events(conn, &["session_ended"]).await.len() < 2 {
            assert!(Instant::now() < deadline, "the sessions did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let runs = async |conn: &mut diesel_async::AsyncPgConnection| -> Vec<Run> {
        diesel_async::RunQueryDsl::load(
            diesel::sql_query(
                "SELECT outcome, coalesce((counts->>'sessions_ended')::bigint, 0) AS sessions \
                 FROM config.job_runs WHERE job = 'session_end' ORDER BY id",
            ),
            conn,
        )
        .await
        .expect("job runs")
    };
    match skew {
        None => {
            for clock in &clocks {
                clock.set(due);
            }
            ended_twice(&mut conn).await;
        }
        Some(skew) => {
            clocks[0].set(due);
            ended_twice(&mut conn).await;
            let deadline = Instant::now() + WAIT;
            while runs(&mut conn).await.is_empty() {
                assert!(Instant::now() < deadline, "the first run was not recorded");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(skew).await;
            clocks[1].set(due);
        }
    }
    // Both schedulers have had their turn (a step is 5 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ended = school::events(&mut conn, &["session_ended"]).await;
    let runs = runs(&mut conn).await;
    println!("session_end due at {due}, skew {skew:?}: runs recorded {runs:?}; session_ended events {}", ended.len());
    assert_eq!(ended.len(), 2, "each session ended once: {ended:?}");
    assert_eq!(runs.iter().map(|r| r.sessions).sum::<i64>(), 2, "the work was done once: {runs:?}");
    assert_eq!(runs.iter().filter(|r| r.sessions > 0).count(), 1, "by one run: {runs:?}");
    assert!(runs.iter().all(|r| r.outcome == "ok"), "no run failed: {runs:?}");
    shutdown.cancel();
    for t in tasks {
        tokio::time::timeout(WAIT, t).await.expect("schedulers stop").expect("scheduler task");
    }
    second.stop().await;
    app.stop().await;
    runs
}

#[tokio::test]
async fn both_replicas_schedulers_due_at_once_end_the_sessions_once() {
    // Usually the other replica finds the advisory lock taken and skips (not recorded); on a
    // loaded machine its turn may come after the run ended, and it runs finding nothing.
    let runs = session_end_on_two_replicas(None).await;
    assert!(runs.len() <= 2, "{runs:?}");
}

#[tokio::test]
async fn a_replica_whose_clock_lags_runs_the_due_job_again_and_finds_nothing_left() {
    // The lock does not span a skew longer than the run: the late replica runs too, and the
    // job, which derives what is due from the data, ends nothing more.
    let runs = session_end_on_two_replicas(Some(Duration::from_millis(300))).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].sessions, 0, "the late run ended nothing: {runs:?}");
}

#[tokio::test]
async fn the_gateway_counts_forwarded_calls_by_exactly_what_it_forwarded() {
    let mut config = phoenix_common::config::Config::from_lookup(|_| None).expect("defaults");
    config.metrics_port = Some(0);
    let stop_metrics = ShutdownToken::new();
    let metrics = m::start(&config, false, stop_metrics.clone()).await.expect("metrics").expect("not off");
    let app = TestApp::spawn(&[Domain::Active]).await;
    let second = ReplicaProcess::start(&app, &[Domain::Active]).await;
    let proxy = RoundRobin::start([app.addr(Domain::Active), second.addr(Domain::Active)]).await;
    // Active behind the proxy; users at an address where nothing listens.
    let upstreams =
        vec![(Domain::Active, format!("http://{}", proxy.addr)), (Domain::Users, "http://127.0.0.1:9".into())];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway_addr = listener.local_addr().expect("addr");
    let stop_gateway = ShutdownToken::new();
    let gateway = tokio::spawn(phoenix_gateway::web::serve(
        listener,
        phoenix_gateway::web::WebOptions::new(upstreams),
        stop_gateway.clone(),
    ));
    let (_, admin) = admin_token(&app).await;
    let channel = connect(gateway_addr).await;
    let mut presence = PresenceServiceClient::new(channel.clone());
    let mut users = UsersServiceClient::new(channel);
    let board = async |p: &mut PresenceServiceClient<tonic::transport::Channel>| {
        p.get_presence_board(bearer(active_pb::GetPresenceBoardRequest::default(), &admin)).await
    };
    board(&mut presence).await.expect("a first call through the gateway");

    let before = scrape(metrics).await;
    const CALLS: usize = 5;
    for _ in 0..CALLS {
        board(&mut presence).await.expect("GetPresenceBoard through the gateway");
    }
    for _ in 0..2 {
        let err = users
            .get_student(bearer(users_pb::GetStudentRequest { id: 1 }, &admin))
            .await
            .expect_err("users is unreachable");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    let after = scrape(metrics).await;
    let delta =
        |labels: &[(&str, &str)]| after.get(m::GATEWAY_FORWARDED, labels) - before.get(m::GATEWAY_FORWARDED, labels);
    let presence_rpcs =
        [("service", "phoenix.active.v1.PresenceService"), ("method", "GetPresenceBoard"), ("code", "OK")];
    let served = after.get(m::RPC_REQUESTS, &presence_rpcs) - before.get(m::RPC_REQUESTS, &presence_rpcs);
    println!(
        "forwarded: active {} (served by the domains: {served}), users unavailable {}; proxy connections {:?}",
        delta(&[("domain", "active"), ("result", "forwarded")]),
        delta(&[("domain", "users"), ("result", "unavailable")]),
        proxy.dealt()
    );
    assert_eq!(delta(&[("domain", "active"), ("result", "forwarded")]), CALLS as f64);
    assert_eq!(delta(&[("domain", "active"), ("result", "unavailable")]), 0.0);
    assert_eq!(delta(&[("domain", "users"), ("result", "unavailable")]), 2.0);
    assert_eq!(delta(&[("domain", "users"), ("result", "forwarded")]), 0.0);
    assert_eq!(served, CALLS as f64, "what the gateway counts as forwarded, the domains served");
    // One HTTP/2 connection per domain: a gateway stays on the replica it connected to.
    assert_eq!(proxy.dealt(), [1, 0]);
    stop_gateway.cancel();
    gateway.await.expect("gateway task").expect("gateway stops cleanly");
    stop_metrics.cancel();
    second.stop().await;
    app.stop().await;
}
