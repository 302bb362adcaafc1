//! Issue #13, argon2 under load: each hash takes 64 MiB, so at most
//! `PHOENIX_AUTH_HASH_CONCURRENCY` run at once. 50 concurrent logins with the bound at 2:
//! every one is answered (signed in, or RESOURCE_EXHAUSTED with a RetryInfo; none internal
//! or hanging) and no more than 2 hashes ever run together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use phoenix_common::domain::Domain;
use phoenix_common::password;
use phoenix_proto::auth::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client};
use tonic::Code;
use tonic_types::StatusExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_logins_are_all_answered_with_at_most_two_hashes_at_once() {
    let app = TestApp::spawn_with(&[Domain::Auth], |c| c.auth_hash_concurrency = 2).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, "bound@school.example", PASSWORD).await.expect("create admin"));

    // Sample the gate while the logins run.
    let (done, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (done, seen) = (done.clone(), seen.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                seen.fetch_max(password::running(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut client = auth_client(&app).await;
        // Half the admin's right password, half unknown emails (verified against the dummy hash).
        let email = if i % 2 == 0 { "bound@school.example".to_owned() } else { format!("nobody-{i}@school.example") };
        calls.push(tokio::spawn(async move {
            let request = pb::LoginRequest { email, password: PASSWORD.into() };
            tokio::time::timeout(Duration::from_secs(60), client.login(request)).await
        }));
    }
    let (mut ok, mut exhausted, mut unknown) = (0, 0, 0);
    for call in calls {
        match call.await.expect("task").expect("answered within 60 s") {
            Ok(_) => ok += 1,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(s.get_error_details().retry_info().is_some(), "RetryInfo: {s:?}");
                exhausted += 1;
            }
            Err(s) if s.code() == Code::Unauthenticated => unknown += 1,
            Err(s) => panic!("neither answered nor throttled: {s:?}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    assert_eq!(ok + exhausted + unknown, 50);
    assert!(ok >= 1, "some logins get through (ok {ok}, exhausted {exhausted}, unknown {unknown})");
    assert!(seen.load(Ordering::Relaxed) <= 2, "sampled {} hashes at once", seen.load(Ordering::Relaxed));
    assert!(password::peak_running() <= 2, "peak {} hashes at once", password::peak_running());
    eprintln!("ok {ok}, resource exhausted {exhausted}, unknown email {unknown}");
}
