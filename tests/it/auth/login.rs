//! `phoenix.auth.v1.AuthService` over real gRPC against a real database: login and each
//! failure, refresh rotation and reuse detection, logout, deactivation, password change,
//! who-am-i, signing keys, token verification, service credentials.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::authz::{Principal, TokenVerifier, VerificationKey};
use phoenix_common::domain::Domain;
use phoenix_db::schema::audit::auth_events;
use phoenix_db::schema::auth::{accounts, signing_keys, tokens};
use phoenix_proto::auth::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client, bearer, create_account, login};
use tonic::Code;
use tonic_types::StatusExt as _;

type Event = (Option<i64>, Option<Vec<u8>>, String, bool, Option<String>);

async fn events(app: &TestApp) -> Vec<Event> {
    let mut conn = app.db.conn().await;
    auth_events::table
        .order(auth_events::id)
        .select((
            auth_events::account_id,
            auth_events::email_hash,
            auth_events::event_type,
            auth_events::success,
            auth_events::error_message,
        ))
        .load(&mut conn)
        .await
        .expect("auth events")
}

async fn who_am_i(app: &TestApp, access_token: &str) -> Result<pb::WhoAmIResponse, tonic::Status> {
    Ok(auth_client(app).await.who_am_i(bearer(pb::WhoAmIRequest {}, access_token)).await?.into_inner())
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Result<pb::TokenPair, tonic::Status> {
    let reply =
        auth_client(app).await.refresh(pb::RefreshRequest { refresh_token: refresh_token.into() }).await?.into_inner();
    Ok(reply.tokens.expect("tokens"))
}

#[tokio::test]
async fn first_admin_logs_in_and_who_am_i_reports_roles_and_permissions() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, "Head@School.de", PASSWORD).await.expect("create admin"));

    let tokens = login(&app, "  head@SCHOOL.de ", PASSWORD).await.expect("admin logs in (email normalised)");
    assert_eq!(tokens.token_type, "Bearer");
    assert!(!tokens.refresh_token.is_empty());
    let expires = tokens.access_token_expire_time.expect("expiry").seconds;
    let ttl = expires - chrono::Utc::now().timestamp();
    assert!((14 * 60..=15 * 60).contains(&ttl), "access token lives 15 min, got {ttl} s");

    let me = who_am_i(&app, &tokens.access_token).await.expect("who am i");
    let account = me.account.expect("account");
    assert_eq!(account.email, "head@school.de");
    assert!(account.active);
    assert!(account.last_login_time.is_some());
    assert_eq!(me.roles, ["admin"]);
    assert_eq!(me.permissions, ["*:*"]);
    assert_eq!(me.person_id, None);

    // The login is audited with the account, in the same transaction as the session.
    let evs = events(&app).await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].0, evs[0].2.as_str(), evs[0].3), (Some(account.id), "login", true));
    app.stop().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_fail_with_the_same_message_and_are_audited() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "teacher@school.de", PASSWORD, &["staff"], true).await;

    let unknown = login(&app, "nobody@school.de", PASSWORD).await.unwrap_err();
    let wrong = login(&app, "teacher@school.de", "Wrong-Horse-9").await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(unknown.message(), wrong.message(), "no account-existence leak in the message");
    assert_eq!(unknown.message(), "invalid email or password");

    let evs = events(&app).await;
    assert_eq!(evs.len(), 2, "{evs:?}");
    let expected_hash = app.config.secret_key.hmac_sha256(b"nobody@school.de").to_vec();
    assert_eq!(evs[0], (None, Some(expected_hash), "login".into(), false, Some("unknown email".into())));
    assert_eq!(evs[1], (Some(id), None, "login".into(), false, Some("wrong password".into())));

    // Bad input is InvalidArgument naming the field, before any lookup.
    let bad = login(&app, "not-an-email", "").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<_> = bad
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["email", "password"]);
    app.stop().await;
}

#[tokio::test]
async fn an_inactive_account_cannot_log_in() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "gone@school.de", PASSWORD, &["staff"], false).await;
    let err = login(&app, "gone@school.de", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("inactive"), "{}", err.message());
    // With a wrong password it says nothing about the account.
    let err = login(&app, "gone@school.de", "Wrong-Horse-9").await.unwrap_err();
    assert_eq!(err.message(), "invalid email or password");
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_throttle_unknown_emails_alike() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "target@school.de", PASSWORD, &["staff"], true).await;
    for _ in 0..5 {
        let err = login(&app, "target@school.de", "Wrong-Horse-9").await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // Even the right password is refused now, with a retry hint.
    let locked = login(&app, "target@school.de", PASSWORD).await.unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
    let retry = locked.get_error_details().retry_info().cloned().expect("RetryInfo");
    let delay = retry.retry_delay.expect("delay");
    assert!(delay.as_secs() > 0 && delay.as_secs() <= 15 * 60, "{delay:?}");

    let mut conn = app.db.conn().await;
    let until: Option<chrono::DateTime<chrono::Utc>> =
        accounts::table.find(id).select(accounts::login_locked_until).first(&mut conn).await.expect("account");
    assert!(until.expect("locked") > chrono::Utc::now());
    let evs = events(&app).await;
    assert_eq!(evs.iter().filter(|e| e.2 == "account_locked" && e.0 == Some(id)).count(), 1, "{evs:?}");

    // An unknown email gets the same answer after as many failures.
    for _ in 0..5 {
        assert_eq!(login(&app, "ghost@school.de", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    }
    let throttled = login(&app, "ghost@school.de", PASSWORD).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    assert_eq!(throttled.message().split(';').next(), locked.message().split(';').next());
    assert!(throttled.get_error_details().retry_info().is_some());
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "staff@school.de", PASSWORD, &["staff"], true).await;
    let first = login(&app, "staff@school.de", PASSWORD).await.expect("login");
    let second = refresh(&app, &first.refresh_token).await.expect("refresh");
    assert_ne!(second.refresh_token, first.refresh_token, "a new refresh token every time");
    assert_ne!(second.access_token, first.access_token);
    let me = who_am_i(&app, &second.access_token).await.expect("new access token works");
    assert_eq!(me.account.expect("account").id, id);
    assert!(me.permissions.contains(&"users:read".to_owned()));
    let third = refresh(&app, &second.refresh_token).await.expect("the rotated token refreshes again");

    // One family, generations 0..=2, the older two used; only hashes are stored.
    let mut conn = app.db.conn().await;
    let rows: Vec<(uuid::Uuid, i32, bool, Vec<u8>)> = tokens::table
        .filter(tokens::account_id.eq(id))
        .order(tokens::generation)
        .select((tokens::family_id, tokens::generation, tokens::used_at.is_not_null(), tokens::token_hash))
        .load(&mut conn)
        .await
        .expect("tokens");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.0 == rows[0].0), "same family");
    assert_eq!(rows.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(), [(0, true), (1, true), (2, false)]);
    assert!(rows.iter().all(|r| r.3 != third.refresh_token.as_bytes()), "no plaintext tokens stored");
    assert_eq!(events(&app).await.iter().filter(|e| e.2 == "token_refresh" && e.3).count(), 2);
    app.stop().await;
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "victim@school.de", PASSWORD, &["staff"], true).await;
    let stolen = login(&app, "victim@school.de", PASSWORD).await.expect("login");
    let fresh = refresh(&app, &stolen.refresh_token).await.expect("rotation");
    let other_session = login(&app, "victim@school.de", PASSWORD).await.expect("second device");

    let reuse = refresh(&app, &stolen.refresh_token).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    let after = refresh(&app, &fresh.refresh_token).await.unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated, "the freshly rotated token stops working too");

    let mut conn = app.db.conn().await;
    let reasons: Vec<Option<String>> = tokens::table
        .filter(tokens::account_id.eq(id))
        .filter(tokens::revoked_at.is_not_null())
        .select(tokens::revoked_reason)
        .load(&mut conn)
        .await
        .expect("tokens");
    assert_eq!(reasons, [Some("reuse_detected".to_owned()), Some("reuse_detected".to_owned())]);
    let evs = events(&app).await;
    assert_eq!(evs.iter().filter(|e| e.2 == "token_reuse_detected" && e.0 == Some(id)).count(), 1, "{evs:?}");
    refresh(&app, &other_session.refresh_token).await.expect("other sessions are untouched");
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_session_and_needs_an_access_token() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "leaver@school.de", PASSWORD, &["guest"], true).await;
    let session = login(&app, "leaver@school.de", PASSWORD).await.expect("login");
    let other = login(&app, "leaver@school.de", PASSWORD).await.expect("second session");
    let mut client = auth_client(&app).await;

    let anonymous = client.logout(pb::LogoutRequest { refresh_token: session.refresh_token.clone() }).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);

    client
        .logout(bearer(pb::LogoutRequest { refresh_token: session.refresh_token.clone() }, &session.access_token))
        .await
        .expect("logout");
    let err = refresh(&app, &session.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("revoked"), "{}", err.message());
    refresh(&app, &other.refresh_token).await.expect("the other session lives on");
    let evs = events(&app).await;
    assert_eq!(evs.iter().filter(|e| e.2 == "logout" && e.0 == Some(id)).count(), 1);

    // Logging out again, or with a token nobody has, is fine (idempotent, says nothing).
    client
        .logout(bearer(pb::LogoutRequest { refresh_token: session.refresh_token.clone() }, &other.access_token))
        .await
        .expect("again");
    app.stop().await;
}

#[tokio::test]
async fn a_deactivated_accounts_refresh_tokens_stop_working() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "temp@school.de", PASSWORD, &["staff"], true).await;
    let session = login(&app, "temp@school.de", PASSWORD).await.expect("login");
    let mut conn = app.db.conn().await;
    diesel::update(accounts::table.find(id))
        .set(accounts::active.eq(false))
        .execute(&mut conn)
        .await
        .expect("deactivate");
    let err = refresh(&app, &session.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let revoked: Vec<Option<String>> = tokens::table
        .filter(tokens::account_id.eq(id))
        .select(tokens::revoked_reason)
        .load(&mut conn)
        .await
        .expect("rows");
    assert_eq!(revoked, [Some("account_deactivated".to_owned())]);
    app.stop().await;
}

#[tokio::test]
async fn change_password_ends_the_other_sessions_only() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "mover@school.de", PASSWORD, &["staff"], true).await;
    let here = login(&app, "mover@school.de", PASSWORD).await.expect("login");
    let elsewhere = login(&app, "mover@school.de", PASSWORD).await.expect("second device");
    let mut client = auth_client(&app).await;

    let wrong = client
        .change_password(bearer(
            pb::ChangePasswordRequest { current_password: "Nope-nope-1".into(), new_password: "New-Horse-10".into() },
            &here.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert_eq!(
        wrong.get_error_details().bad_request().expect("BadRequest").field_violations[0].field,
        "current_password"
    );
    let weak = client
        .change_password(bearer(
            pb::ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "weak".into() },
            &here.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);

    let reply = client
        .change_password(bearer(
            pb::ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "New-Horse-10".into() },
            &here.access_token,
        ))
        .await
        .expect("change password")
        .into_inner();
    assert_eq!(reply.revoked_session_count, 1);
    assert_eq!(refresh(&app, &elsewhere.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    refresh(&app, &here.refresh_token).await.expect("the caller's own session continues");
    assert_eq!(login(&app, "mover@school.de", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    login(&app, "mover@school.de", "New-Horse-10").await.expect("new password works");
    assert_eq!(events(&app).await.iter().filter(|e| e.2 == "password_changed").count(), 1);
    app.stop().await;
}

/// The current signing key's private half, decrypted as the auth service does.
async fn current_signer(app: &TestApp) -> phoenix_auth::keys::Signer {
    let mut conn = app.db.conn().await;
    let (kid, sealed): (String, Option<Vec<u8>>) = signing_keys::table
        .filter(signing_keys::retire_after.is_null())
        .select((signing_keys::kid, signing_keys::private_key_encrypted))
        .first(&mut conn)
        .await
        .expect("a signing key");
    let seed = phoenix_auth::keys::decrypt_seed(&app.config.secret_key, &kid, &sealed.expect("sealed"))
        .expect("decrypts with the server secret");
    phoenix_auth::keys::Signer::from_seed(kid, &seed)
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_are_unauthenticated() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let id = create_account(&app, "user@school.de", PASSWORD, &["staff"], true).await;
    let real = current_signer(&app).await;

    let missing = auth_client(&app).await.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("missing access token"), "{}", missing.message());
    assert_eq!(who_am_i(&app, "garbage").await.unwrap_err().code(), Code::Unauthenticated);

    // Same kid, another key: a forgery.
    let (seed, _) = phoenix_auth::keys::generate_keypair();
    let forger = phoenix_auth::keys::Signer::from_seed(real.kid.clone(), &seed);
    let subject = || phoenix_auth::tokens::Subject {
        sub: id.to_string(),
        roles: vec!["admin".into()],
        permissions: vec!["*:*".into()],
        session_id: None,
    };
    let forged = phoenix_auth::tokens::issue_access_token(&forger, subject(), std::time::Duration::from_secs(600))
        .expect("sign");
    let err = who_am_i(&app, &forged.token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The real key, but expired long ago.
    let claims = phoenix_common::authz::Claims {
        sub: id.to_string(),
        roles: vec![],
        perms: vec![],
        iss: phoenix_common::authz::ISSUER.into(),
        aud: phoenix_common::authz::AUDIENCE.into(),
        jti: "t".into(),
        iat: chrono::Utc::now().timestamp() - 7200,
        exp: chrono::Utc::now().timestamp() - 3600,
        iat_ms: None,
        sid: None,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(real.kid.clone());
    let expired = jsonwebtoken::encode(&header, &claims, real.encoding_key()).expect("sign");
    let err = who_am_i(&app, &expired).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{}", err.message());

    // And the real key, valid: accepted (so the rejections above are about the token).
    let good =
        phoenix_auth::tokens::issue_access_token(&real, subject(), std::time::Duration::from_secs(600)).expect("sign");
    who_am_i(&app, &good.token).await.expect("a properly signed token is accepted");
    app.stop().await;
}

#[tokio::test]
async fn published_signing_keys_verify_issued_tokens() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "k@school.de", PASSWORD, &["guest"], true).await;
    let tokens = login(&app, "k@school.de", PASSWORD).await.expect("login");
    let keys = auth_client(&app)
        .await
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .expect("public, no token needed")
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key.algorithm, pb::SigningAlgorithm::Eddsa as i32);
    assert_eq!(key.public_key.len(), 32);
    assert_eq!(key.public_key_x.len(), 43);
    let verifier = TokenVerifier::with_keys(vec![VerificationKey {
        kid: key.kid.clone(),
        public_key: key.public_key.clone(),
        retire_after: None,
    }]);
    let ctx = verifier.verify(&tokens.access_token).await.expect("verifies with the published key");
    assert!(matches!(ctx.principal, Principal::Account(_)));
    assert_eq!(ctx.roles, ["guest"]);
    app.stop().await;
}

#[tokio::test]
async fn signing_keys_survive_restarts_and_rotate_when_the_secret_changes() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    let options = phoenix_auth::AuthOptions::default();
    let first = current_signer(&app).await;
    let again = phoenix_auth::keys::ensure_signing_key(&pool, &app.config.secret_key, &options).await.expect("again");
    assert_eq!(again.kid, first.kid, "the stored key is reused across starts");

    let other_secret = phoenix_common::config::ServerSecret::generate();
    let rotated = phoenix_auth::keys::ensure_signing_key(&pool, &other_secret, &options).await.expect("rotate");
    assert_ne!(rotated.kid, first.kid, "an undecryptable key is replaced");
    let mut conn = app.db.conn().await;
    let (retire, sealed): (Option<chrono::DateTime<chrono::Utc>>, Option<Vec<u8>>) = signing_keys::table
        .find(&first.kid)
        .select((signing_keys::retire_after, signing_keys::private_key_encrypted))
        .first(&mut conn)
        .await
        .expect("old key row");
    let retire = retire.expect("the old key retires");
    let overlap = retire - chrono::Utc::now();
    assert!(overlap > chrono::Duration::minutes(14) && overlap <= chrono::Duration::minutes(16), "{overlap}");
    assert!(sealed.is_none(), "a retired key's private half is dropped");
    app.stop().await;
}

#[tokio::test]
async fn service_credentials_exchange_for_a_token_with_the_clients_permissions() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    let secret = phoenix_auth::service_clients::create_or_rotate(&pool, "gateway", &["scans:process".to_owned()])
        .await
        .expect("create client");
    let mut client = auth_client(&app).await;
    let reply = client
        .exchange_client_credentials(pb::ExchangeClientCredentialsRequest {
            client_id: "gateway".into(),
            client_secret: secret.clone(),
        })
        .await
        .expect("exchange")
        .into_inner();
    assert_eq!(reply.permissions, ["scans:process"]);
    assert_eq!(reply.token_type, "Bearer");
    let me = who_am_i(&app, &reply.access_token).await.expect("service token is accepted");
    assert_eq!(me.service_client_id, "gateway");
    assert_eq!(me.permissions, ["scans:process"]);
    assert!(me.account.is_none());

    // A service has no account: account-only calls refuse it.
    let err = client
        .change_password(bearer(
            pb::ChangePasswordRequest { current_password: "A-bcdefg1".into(), new_password: "B-bcdefg2".into() },
            &reply.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let wrong = client
        .exchange_client_credentials(pb::ExchangeClientCredentialsRequest {
            client_id: "gateway".into(),
            client_secret: "not-the-secret".into(),
        })
        .await
        .unwrap_err();
    let unknown = client
        .exchange_client_credentials(pb::ExchangeClientCredentialsRequest {
            client_id: "nobody".into(),
            client_secret: secret.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), unknown.message());

    // Every exchange is audited under the client id, with no secret stored.
    {
        let mut conn = app.db.conn().await;
        let rows: Vec<(Option<String>, bool, Option<i64>, serde_json::Value)> = auth_events::table
            .filter(auth_events::event_type.eq("service_token"))
            .order(auth_events::id)
            .select((auth_events::client_id, auth_events::success, auth_events::account_id, auth_events::metadata))
            .load(&mut conn)
            .await
            .expect("auth events");
        let summary: Vec<_> = rows.iter().map(|(c, ok, account, _)| (c.as_deref(), *ok, *account)).collect();
        assert_eq!(
            summary,
            [(Some("gateway"), true, None), (Some("gateway"), false, None), (Some("nobody"), false, None)]
        );
        assert!(rows.iter().all(|(.., meta)| !meta.to_string().contains(&secret)), "no secret in the audit trail");
    }

    // Rotation replaces the secret.
    let rotated = phoenix_auth::service_clients::create_or_rotate(&pool, "gateway", &["scans:process".to_owned()])
        .await
        .expect("rotate");
    assert_ne!(rotated, secret);
    let old = client
        .exchange_client_credentials(pb::ExchangeClientCredentialsRequest {
            client_id: "gateway".into(),
            client_secret: secret,
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);
    app.stop().await;
}
