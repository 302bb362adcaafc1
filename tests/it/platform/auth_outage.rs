//! The auth service stopped for longer than the gateway's service token lives while readers
//! scan, then started again (docs/faults.md): the bridge holds a real `ClientCredentials`
//! token source exchanging at that auth server (service tokens of 1 s, accepted 30 s past
//! their expiry by the verifiers' leeway), so its token lapses during the outage and
//! ProcessScan answers UNAUTHENTICATED; the bridge retries, the readers re-send, and once auth
//! is back the token is renewed: 0 lost, 0 doubled.

use std::time::{Duration, Instant};

use chrono::Utc;
use phoenix_auth::AuthOptions;
use phoenix_common::authz::Authorized;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::auth::ClientCredentials;
use phoenix_gateway::bridge::{self, BridgeConfig, BridgeDeps};
use phoenix_proto::auth::v1::auth_service_server::AuthServiceServer;
use phoenix_reader_protocol::{Code, Outcome};
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school::{self, visit_count};
use phoenix_tests::{TestApp, mqtt_url};
use tokio::task::JoinHandle;

const READERS: usize = 4;
const PER_READER: usize = 11;
/// One scan per reader this often, so scans keep coming before, during and after the outage.
const EVERY: Duration = Duration::from_secs(4);
const TOKEN_TTL: Duration = Duration::from_secs(1);
/// Past the token's lifetime and the verifiers' 30 s leeway.
const OUTAGE: Duration = Duration::from_secs(35);
const ANSWER_WITHIN: Duration = Duration::from_secs(50);

/// The auth domain's `AuthService` alone, with service tokens of [`TOKEN_TTL`], on `port`
/// until `stop`.
async fn serve_auth(app: &TestApp, port: u16, stop: ShutdownToken) -> JoinHandle<()> {
    let pool = app.db.pool().await;
    let options = AuthOptions { service_token_ttl: TOKEN_TTL, ..AuthOptions::default() };
    let signer =
        phoenix_auth::keys::ensure_signing_key(&pool, &app.config.secret_key, &options).await.expect("signing key");
    let api = phoenix_auth::service::AuthApi::new(pool, app.config.secret_key.clone(), signer, options).expect("auth");
    let server =
        Authorized::new(AuthServiceServer::new(api), phoenix_auth::service::METHODS, app.context.verifier.clone())
            .expect("authorized");
    let listener = phoenix_common::server::bind([127, 0, 0, 1].into(), port, false).await.expect("auth port");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(phoenix_common::server::incoming(listener), stop.cancelled_owned())
            .await
            .expect("auth server");
    })
}

#[tokio::test]
async fn auth_down_longer_than_the_gateway_token_loses_and_doubles_nothing() {
    let started = Instant::now();
    let mut stack = ReaderStack::spawn(READERS * PER_READER).await;
    stack.stop_bridge().await;
    let s = stack.school.clone();
    for &room in &s.rooms[..READERS] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }

    // The auth server on a port of its own, kept across the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let stop_auth = ShutdownToken::new();
    let auth = serve_auth(&stack.app, port, stop_auth.clone()).await;
    let pool = stack.app.db.pool().await;
    let secret = phoenix_auth::service_clients::create_or_rotate(&pool, "gateway-outage", &["scans:process".into()])
        .await
        .expect("service client");
    let stop_bridge = ShutdownToken::new();
    let credentials = ClientCredentials::start(
        &format!("http://127.0.0.1:{port}"),
        "gateway-outage".into(),
        secret,
        stop_bridge.clone(),
    )
    .await
    .expect("service credential");
    let config = stack.config();
    let active_url = format!("http://{}", stack.app.addr(phoenix_common::domain::Domain::Active));
    let deps = BridgeDeps {
        pool: pool.clone(),
        secret: config.device_key_secret.clone().expect("test secret"),
        active: bridge::active_client(&active_url, credentials).expect("client"),
    };
    let bridge =
        bridge::start(BridgeConfig::from_config(&config, &mqtt_url()), deps, stop_bridge.clone()).expect("bridge");
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.stats().connections == 0 {
        assert!(Instant::now() < deadline, "bridge did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Readers scan one pupil each every 4 s, re-sending each scan until answered.
    let mut tasks = Vec::new();
    for r in 0..READERS {
        let mut reader = stack.reader(&s.readers[r]).await;
        let pupils = s.pupils[r * PER_READER..(r + 1) * PER_READER].to_vec();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut results = Vec::new();
            let mut slow = 0;
            for (i, pupil) in pupils.iter().enumerate() {
                tokio::time::sleep_until((t0 + EVERY * i as u32).into()).await;
                let scan = reader.sign(&format!("outage-{r}-{i}"), &pupil.tag, Utc::now());
                let sent = Instant::now();
                let got = reader.send(&scan, ANSWER_WITHIN).await.unwrap_or_else(|e| panic!("reader {r}: {e}"));
                slow += usize::from(sent.elapsed() > Duration::from_secs(5));
                results.push(got.expect_result().clone());
            }
            let mut extra = Vec::new();
            while let Some(x) = reader.next_result(Duration::from_millis(300)).await {
                extra.push(x.expect_result().clone());
            }
            reader.disconnect().await;
            (results, extra, slow)
        }));
    }

    // Auth goes away right after the first scans, for longer than the token is accepted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_auth.cancel();
    auth.await.expect("auth stopped");
    tokio::time::sleep(OUTAGE).await;
    let stop_again = ShutdownToken::new();
    let restarted = serve_auth(&stack.app, port, stop_again.clone()).await;

    let (mut sent, mut results, mut duplicates, mut extras, mut resent) = (0, 0, 0, 0, 0);
    for task in tasks {
        let (got, extra, slow) = task.await.expect("reader task");
        sent += PER_READER;
        results += got.len();
        for r in &got {
            assert_eq!((r.outcome, r.code), (Outcome::CheckedIn, Code::Ok), "{r:?}");
            duplicates += usize::from(r.duplicate);
        }
        for r in &extra {
            assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, true), "extra: {r:?}");
        }
        extras += extra.len();
        resent += slow;
    }
    let mut conn = stack.app.db.conn().await;
    let mut visits = 0;
    for p in &s.pupils[..READERS * PER_READER] {
        let v = visit_count(&mut conn, p.id).await;
        assert_eq!(v, 1, "pupil {} has {v} visits", p.id);
        visits += v;
    }
    let receipts = school::count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts").await;
    println!(
        "auth down {} s (service token {} s): {sent} scans sent, {results} results ({duplicates} duplicate: true, \
         {extras} extra Results), {resent} answered only after re-sends, {visits} visits, {receipts} receipts; {:.1} s",
        OUTAGE.as_secs(),
        TOKEN_TTL.as_secs(),
        started.elapsed().as_secs_f64()
    );
    assert!(resent > 0, "the token never lapsed: the outage proved nothing");
    assert_eq!(results, sent, "0 lost");
    assert_eq!(visits, sent as i64, "0 doubled: one visit per scan");
    assert_eq!(receipts, sent as i64, "0 doubled: one receipt per scan");
    stop_bridge.cancel();
    bridge.join().await.expect("bridge stopped");
    stop_again.cancel();
    restarted.await.expect("auth stopped");
}
