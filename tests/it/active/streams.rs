//! `WatchPresence` streams end when the caller's access does (issue #12): logout,
//! deactivation, a removed role, token expiry — with a real login. Each account holds at most
//! five streams per server; streams resuming together cannot take the pool from scans.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_proto::auth::v1 as auth_pb;
use phoenix_proto::auth::v1::account_service_client::AccountServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{
    PASSWORD, admin_token, auth_client, bearer, create_account, login, mint_token_with_ttl, role_permissions,
};
use phoenix_tests::school::{self, School};
use tonic::Code;
use tonic::codec::Streaming;

/// A revoked stream must end within this (the verifier re-checks every 2 s, cached 5 s).
const ENDS_WITHIN: Duration = Duration::from_secs(12);

/// A logged-in guardian: account id, access and refresh token.
async fn logged_in(app: &TestApp) -> (i64, String, String) {
    let email = format!("parent-{}@test.example", uuid::Uuid::new_v4().simple());
    let account = create_account(app, &email, PASSWORD, &["guardian"], true).await;
    let tokens = login(app, &email, PASSWORD).await.expect("login");
    (account, tokens.access_token, tokens.refresh_token)
}

async fn watch(app: &TestApp, token: &str) -> Streaming<pb::WatchPresenceResponse> {
    let mut presence = PresenceServiceClient::new(app.channel(Domain::Active).await);
    presence.watch_presence(bearer(pb::WatchPresenceRequest::default(), token)).await.expect("watch").into_inner()
}

/// Waits for the stream's end and returns its status (heartbeats skipped).
async fn ended(stream: &mut Streaming<pb::WatchPresenceResponse>, within: Duration) -> tonic::Status {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Err(_) => panic!("the stream did not end within {within:?}"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => return status,
        }
    }
}

fn assert_revoked(status: &tonic::Status) {
    assert!(
        matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied),
        "ended with {:?}: {}",
        status.code(),
        status.message()
    );
}

#[tokio::test]
async fn logout_ends_the_sessions_streams() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Active]).await;
    let (_, access, refresh) = logged_in(&app).await;
    let mut stream = watch(&app, &access).await;
    auth_client(&app)
        .await
        .logout(bearer(auth_pb::LogoutRequest { refresh_token: refresh }, &access))
        .await
        .expect("logout");
    let status = ended(&mut stream, ENDS_WITHIN).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
}

#[tokio::test]
async fn deactivation_and_a_removed_role_end_the_accounts_streams() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Active]).await;
    let (_, admin) = admin_token(&app).await;
    let mut accounts = AccountServiceClient::new(app.channel(Domain::Auth).await);

    let (deactivated, access, _) = logged_in(&app).await;
    let mut stream = watch(&app, &access).await;
    accounts
        .deactivate_account(bearer(auth_pb::DeactivateAccountRequest { account_id: deactivated }, &admin))
        .await
        .expect("deactivate");
    assert_revoked(&ended(&mut stream, ENDS_WITHIN).await);

    let (demoted, access, _) = logged_in(&app).await;
    let mut stream = watch(&app, &access).await;
    // At once, in the token's own second: revocation compares milliseconds.
    accounts
        .remove_account_role(bearer(
            auth_pb::RemoveAccountRoleRequest { account_id: demoted, role_name: "guardian".into() },
            &admin,
        ))
        .await
        .expect("remove role");
    assert_revoked(&ended(&mut stream, ENDS_WITHIN).await);
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let email = format!("parent-{}@test.example", uuid::Uuid::new_v4().simple());
    let account = create_account(&app, &email, PASSWORD, &["guardian"], true).await;
    let perms = role_permissions(&app, "guardian").await;
    let token = mint_token_with_ttl(&app, &account.to_string(), &["guardian"], &perms, Duration::from_secs(3)).await;
    let mut stream = watch(&app, &token).await;
    let status = ended(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(status.message().contains("expired"), "{}", status.message());
}

#[tokio::test]
async fn an_account_holds_at_most_five_streams_and_closing_one_frees_a_slot() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let (_, token) = admin_token(&app).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(watch(&app, &token).await);
    }
    let mut presence = PresenceServiceClient::new(app.channel(Domain::Active).await);
    let refused =
        presence.watch_presence(bearer(pb::WatchPresenceRequest::default(), &token)).await.expect_err("a sixth");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("open WatchPresence streams"), "{}", refused.message());
    let (_, other) = admin_token(&app).await;
    let _others = watch(&app, &other).await; // another account has its own slots

    drop(open.pop());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match presence.watch_presence(bearer(pb::WatchPresenceRequest::default(), &token)).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s) => panic!("the freed slot was not given out: {s:?}"),
        }
    }
}

#[tokio::test]
async fn scans_keep_their_connections_while_many_streams_resume() {
    let app = TestApp::spawn_with(&[Domain::Active], |c| c.db_pool_size = 3).await;
    let mut active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let s = School::create(&mut conn, 1).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let (_, admin) = admin_token(&app).await;
    let mut presence = PresenceServiceClient::new(app.channel(Domain::Active).await);
    let cursor = presence
        .get_presence_board(bearer(pb::GetPresenceBoardRequest {}, &admin))
        .await
        .expect("board")
        .into_inner()
        .cursor;
    // 3,000 events after the cursor: every resuming stream reads six full pages.
    for _ in 0..6 {
        diesel::sql_query(format!(
            "INSERT INTO active.presence_events (kind, session_id, room_id) \
             SELECT 'supervisors_changed', {session}, {} FROM generate_series(1, 500)",
            s.rooms[0]
        ))
        .execute(&mut conn)
        .await
        .expect("events");
    }
    let mut tokens = Vec::new();
    for _ in 0..12 {
        tokens.push(admin_token(&app).await.1);
    }
    let mut streams = Vec::new();
    for token in &tokens {
        let mut client = PresenceServiceClient::new(app.channel(Domain::Active).await);
        let cursor = cursor.clone();
        let token = token.clone();
        streams.push(tokio::spawn(async move {
            client
                .watch_presence(bearer(pb::WatchPresenceRequest { cursor, alerts: false }, &token))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let started = Instant::now();
    let r = active
        .process_scan(pb::ProcessScanRequest {
            device_id: s.readers[0].clone(),
            scan_id: "while-resuming".into(),
            tag: s.pupils[0].tag.clone(),
            scanned_at: Some(phoenix_common::time::to_timestamp(Utc::now())),
        })
        .await
        .expect("the scan gets a connection while streams resume");
    assert_eq!(r.into_inner().code, "ok");
    let took = started.elapsed();
    for s in streams {
        s.await.expect("task").expect("every stream opened");
    }
    assert!(took < Duration::from_secs(5), "the scan waited {took:?}");
}
