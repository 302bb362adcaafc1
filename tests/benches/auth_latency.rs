//! Login and token-verification latency (not a test).
//!
//! Starts the auth service in-process on an ephemeral port against a private database
//! (`DATABASE_URL`, else the harness's own PostgreSQL cluster), creates one account, then
//! measures at fixed concurrency:
//!
//! - `login`: `AuthService/Login` over real gRPC (argon2id verification, one transaction,
//!   token signing),
//! - `verify`: `TokenVerifier::verify` of an access token with the public keys read from
//!   `auth.signing_keys` (what every service's authorization layer does per request).
//!
//! Prints the parameters, ops/s and p50/p95/p99/max (HDR histogram).
//!
//! ```text
//! cargo bench -p phoenix-tests --bench auth_latency -- --logins 200 --verifications 50000 --concurrency 4
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use phoenix_common::authz::TokenVerifier;
use phoenix_common::domain::Domain;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, create_account};

const EMAIL: &str = "bench@school.de";

#[derive(Debug, Clone, Copy)]
struct Params {
    logins: usize,
    verifications: usize,
    concurrency: usize,
}

fn params() -> Params {
    let mut p = Params { logins: 200, verifications: 50_000, concurrency: 4 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match (args[i].as_str(), value) {
            ("--logins", Some(v)) => p.logins = v,
            ("--verifications", Some(v)) => p.verifications = v,
            ("--concurrency", Some(v)) => p.concurrency = v.max(1),
            // `cargo bench` passes `--bench`; anything else is ignored too.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    p
}

/// Runs `total` operations on `concurrency` tasks; each operation returns its latency.
async fn run<F, Fut>(total: usize, concurrency: usize, op: F) -> (Histogram<u64>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                op().await;
                h.record(t.elapsed().as_micros().max(1) as u64).expect("latency within bounds");
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for t in tasks {
        all.add(t.await.expect("bench task")).expect("merge histograms");
    }
    (all, started.elapsed())
}

fn report(name: &str, h: &Histogram<u64>, elapsed: Duration) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{name:<7} n={:<6} ops/s={:>10.1}  p50={:>8.3} ms  p95={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        h.len(),
        h.len() as f64 / elapsed.as_secs_f64(),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
}

#[tokio::main]
async fn main() {
    let p = params();
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, EMAIL, PASSWORD, &["staff"], true).await;
    let channel = app.channel(Domain::Auth).await;
    println!(
        "auth_latency: logins={} verifications={} concurrency={} db_pool_size={} cores={} profile={}",
        p.logins,
        p.verifications,
        p.concurrency,
        app.config.db_pool_size,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );

    let login = |channel: tonic::transport::Channel| async move {
        AuthServiceClient::new(channel)
            .login(pb::LoginRequest { email: EMAIL.into(), password: PASSWORD.into() })
            .await
            .expect("login succeeds")
            .into_inner()
            .tokens
            .expect("tokens")
    };
    // Warm-up: connection, key cache, argon2 memory.
    let token = login(channel.clone()).await.access_token;
    let (h, elapsed) = {
        let channel = channel.clone();
        run(p.logins, p.concurrency, move || {
            let channel = channel.clone();
            async move {
                login(channel).await;
            }
        })
        .await
    };
    report("login", &h, elapsed);

    let verifier = Arc::new(TokenVerifier::new(app.db.pool().await));
    verifier.verify(&token).await.expect("the token verifies");
    let token = Arc::new(token);
    let (h, elapsed) = run(p.verifications, p.concurrency, move || {
        let (verifier, token) = (verifier.clone(), token.clone());
        async move {
            verifier.verify(&token).await.expect("the token verifies");
        }
    })
    .await;
    report("verify", &h, elapsed);
    app.stop().await;
}
