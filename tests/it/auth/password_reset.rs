//! Password reset over real gRPC: the start call answers the same for known and unknown
//! emails (also when throttled), a reset works once, ends every session, and the token
//! travels only through `auth.outbox`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::audit::auth_events;
use phoenix_db::schema::auth::{outbox, password_reset_tokens, tokens};
use phoenix_proto::auth::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client, create_account, login};
use tonic::Code;
use tonic_types::StatusExt as _;

const NEW_PASSWORD: &str = "Brand-New-Pass7";

async fn start(app: &TestApp, email: &str) -> Result<pb::StartPasswordResetResponse, tonic::Status> {
    Ok(auth_client(app)
        .await
        .start_password_reset(pb::StartPasswordResetRequest { email: email.into() })
        .await?
        .into_inner())
}

async fn confirm(
    app: &TestApp,
    token: &str,
    new_password: &str,
) -> Result<pb::ConfirmPasswordResetResponse, tonic::Status> {
    Ok(auth_client(app)
        .await
        .confirm_password_reset(pb::ConfirmPasswordResetRequest {
            token: token.into(),
            new_password: new_password.into(),
        })
        .await?
        .into_inner())
}

/// The one-time token of the newest outbox message for `account_id` (what the mail sender
/// would put in the link).
async fn outbox_token(app: &TestApp, account_id: i64) -> String {
    let mut conn = app.db.conn().await;
    let (kind, payload): (String, serde_json::Value) = outbox::table
        .filter(outbox::account_id.eq(account_id))
        .order(outbox::id.desc())
        .select((outbox::kind, outbox::payload))
        .first(&mut conn)
        .await
        .expect("an outbox message");
    assert_eq!(kind, "password_reset");
    payload["token"].as_str().expect("payload.token").to_owned()
}

async fn outbox_count(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().await;
    outbox::table.count().get_result(&mut conn).await.expect("count")
}

#[tokio::test]
async fn known_and_unknown_emails_get_identical_answers_also_when_throttled() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "known@school.de", PASSWORD, &["staff"], true).await;

    let known = start(&app, "Known@School.de ").await.expect("known email");
    let unknown = start(&app, "unknown@school.de").await.expect("unknown email");
    assert_eq!(known, unknown);
    assert_eq!(outbox_count(&app).await, 1, "only the known email gets a message");
    let mut conn = app.db.conn().await;
    let live: i64 = password_reset_tokens::table
        .filter(password_reset_tokens::account_id.eq(id))
        .filter(password_reset_tokens::used_at.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(live, 1);

    // Two more each is the limit (3 an hour); the fourth is throttled for both alike.
    for _ in 0..2 {
        start(&app, "known@school.de").await.expect("within the limit");
        start(&app, "unknown@school.de").await.expect("within the limit");
    }
    let known = start(&app, "known@school.de").await.expect_err("throttled");
    let unknown = start(&app, "unknown@school.de").await.expect_err("throttled");
    for status in [&known, &unknown] {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let retry = status.get_error_details().retry_info().cloned().expect("RetryInfo");
        let delay = retry.retry_delay.expect("delay").as_secs();
        assert!((3500..=3600).contains(&delay), "about an hour, got {delay} s");
    }
    assert_eq!(known.message().split(';').next(), unknown.message().split(';').next());

    // Audited for both, unknown ones by email hash only; no email in any column.
    let rows: Vec<(Option<i64>, Option<Vec<u8>>, bool)> = auth_events::table
        .filter(auth_events::event_type.eq("password_reset_requested"))
        .select((auth_events::account_id, auth_events::email_hash, auth_events::success))
        .load(&mut conn)
        .await
        .expect("events");
    assert_eq!(rows.len(), 8);
    assert_eq!(rows.iter().filter(|r| r.0 == Some(id) && r.2).count(), 3);
    assert!(rows.iter().all(|r| r.1.as_ref().is_some_and(|h| h.len() == 32)));
    app.stop().await;
}

#[tokio::test]
async fn a_reset_works_once_and_ends_every_session() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "reset@school.de", PASSWORD, &["staff"], true).await;
    let session_a = login(&app, "reset@school.de", PASSWORD).await.expect("login");
    let session_b = login(&app, "reset@school.de", PASSWORD).await.expect("login");

    start(&app, "reset@school.de").await.expect("start");
    let token = outbox_token(&app, id).await;
    let reply = confirm(&app, &token, NEW_PASSWORD).await.expect("confirm");
    assert_eq!(reply.revoked_session_count, 2);

    // The old password is gone, the new one works.
    assert_eq!(login(&app, "reset@school.de", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    login(&app, "reset@school.de", NEW_PASSWORD).await.expect("new password logs in");

    // The sessions from before the reset no longer refresh.
    for old in [&session_a, &session_b] {
        let status = auth_client(&app)
            .await
            .refresh(pb::RefreshRequest { refresh_token: old.refresh_token.clone() })
            .await
            .expect_err("revoked");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let mut conn = app.db.conn().await;
    let reasons: Vec<Option<String>> = tokens::table
        .filter(tokens::account_id.eq(id))
        .filter(tokens::generation.eq(0))
        .order(tokens::id)
        .select(tokens::revoked_reason)
        .load(&mut conn)
        .await
        .expect("tokens");
    assert_eq!(reasons[..2], [Some("password_reset".to_owned()), Some("password_reset".to_owned())]);

    // The token is single use.
    let again = confirm(&app, &token, "Another-Pass8!").await.expect_err("used");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert_eq!(again.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(), Some("RESET_TOKEN_USED"));
    login(&app, "reset@school.de", NEW_PASSWORD).await.expect("the password did not change again");

    let unknown = confirm(&app, "no-such-token", NEW_PASSWORD).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::InvalidArgument);

    let stored: Vec<Vec<u8>> =
        password_reset_tokens::table.select(password_reset_tokens::token_hash).load(&mut conn).await.expect("hashes");
    assert!(stored.iter().all(|h| h.len() == 32 && *h != token.as_bytes()), "only the SHA-256 is stored");
    let events: Vec<(Option<i64>, bool)> = auth_events::table
        .filter(auth_events::event_type.eq("password_reset"))
        .order(auth_events::id)
        .select((auth_events::account_id, auth_events::success))
        .load(&mut conn)
        .await
        .expect("events");
    assert_eq!(events, [(Some(id), true), (Some(id), false)]);
    app.stop().await;
}

#[tokio::test]
async fn a_new_request_replaces_the_older_token_and_weak_passwords_are_rejected() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "twice@school.de", PASSWORD, &[], true).await;
    start(&app, "twice@school.de").await.expect("first");
    let first = outbox_token(&app, id).await;
    start(&app, "twice@school.de").await.expect("second");
    let second = outbox_token(&app, id).await;
    assert_ne!(first, second);

    let weak = confirm(&app, &second, "weakpass").await.expect_err("weak");
    assert_eq!(weak.code(), Code::InvalidArgument);
    let fields: Vec<String> = weak
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|f| f.field.clone())
        .collect();
    assert_eq!(fields, ["new_password"]);

    let replaced = confirm(&app, &first, NEW_PASSWORD).await.expect_err("superseded");
    assert_eq!(replaced.code(), Code::FailedPrecondition);
    confirm(&app, &second, NEW_PASSWORD).await.expect("the newest token works (a weak try did not use it up)");
    login(&app, "twice@school.de", NEW_PASSWORD).await.expect("login");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "late@school.de", PASSWORD, &[], true).await;
    start(&app, "late@school.de").await.expect("start");
    let token = outbox_token(&app, id).await;
    let mut conn = app.db.conn().await;
    // Backdate the token (the CHECK keeps expires_at after created_at).
    diesel::update(password_reset_tokens::table.filter(password_reset_tokens::account_id.eq(id)))
        .set((
            password_reset_tokens::created_at.eq(chrono::Utc::now() - chrono::Duration::hours(2)),
            password_reset_tokens::expires_at.eq(chrono::Utc::now() - chrono::Duration::hours(1)),
        ))
        .execute(&mut conn)
        .await
        .expect("backdate");
    let status = confirm(&app, &token, NEW_PASSWORD).await.expect_err("expired");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(),
        Some("RESET_TOKEN_EXPIRED")
    );
    login(&app, "late@school.de", PASSWORD).await.expect("the old password still works");
    app.stop().await;
}
