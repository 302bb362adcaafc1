//! Delivery of `auth.outbox` to a real SMTP server (aiosmtpd, `phoenix_tests::smtp`): the
//! reset and invitation links in the mail work, the token leaves the row once sent, a down
//! server loses nothing, two senders send each message once, a dry run changes nothing, and
//! the message's language is the recipient's preference or `PHOENIX_MAIL_LANGUAGE`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_auth::outbox::{self, Mailer, OutboxOptions};
use phoenix_common::config::MailLanguage;
use phoenix_common::domain::Domain;
use phoenix_db::schema::auth::outbox as outbox_table;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::invitation_service_client::InvitationServiceClient;
use phoenix_tests::auth::{PASSWORD, admin_token, auth_client, bearer, create_account, login};
use phoenix_tests::smtp::{Received, SmtpServer};
use phoenix_tests::{TestApp, fixtures};

const PUBLIC_URL: &str = "https://phoenix.school.example";
const NEW_PASSWORD: &str = "Brand-New-Pass7";
const WAIT: Duration = Duration::from_secs(10);

fn options() -> OutboxOptions {
    OutboxOptions { public_url: PUBLIC_URL.into(), ..OutboxOptions::default() }
}

fn mailer(server: &SmtpServer) -> Mailer {
    Mailer::smtp(&server.url(), "Phoenix <phoenix@school.example>", Duration::from_secs(5)).expect("mailer")
}

async fn start_reset(app: &TestApp, email: &str) {
    let req = pb::StartPasswordResetRequest { email: email.into() };
    auth_client(app).await.start_password_reset(req).await.expect("start reset");
}

async fn confirm_reset(app: &TestApp, token: &str) -> Result<(), tonic::Status> {
    let req = pb::ConfirmPasswordResetRequest { token: token.into(), new_password: NEW_PASSWORD.into() };
    auth_client(app).await.confirm_password_reset(req).await.map(drop)
}

/// `(id, attempts, last_error, sent_at, payload)` of every outbox row, by id.
type Row = (i64, i32, Option<String>, Option<DateTime<Utc>>, serde_json::Value);

async fn rows(app: &TestApp) -> Vec<Row> {
    outbox_table::table
        .order(outbox_table::id)
        .select((
            outbox_table::id,
            outbox_table::attempts,
            outbox_table::last_error,
            outbox_table::sent_at,
            outbox_table::payload,
        ))
        .load(&mut app.db.conn().await)
        .await
        .expect("outbox rows")
}

async fn deliver(app: &TestApp, mailer: &Mailer, options: &OutboxOptions, now: DateTime<Utc>) -> [i64; 5] {
    let pool = app.db.pool().await;
    let report = outbox::deliver_due(&pool, mailer, options, now, false).await.expect("deliver");
    ["sent", "failed", "gave_up", "obsolete", "pending"].map(|k| report.get(k))
}

/// The invitation service as the office (admin).
async fn office(app: &TestApp) -> (InvitationServiceClient<tonic::transport::Channel>, String) {
    let (_, token) = admin_token(app).await;
    (InvitationServiceClient::new(app.channel(Domain::Auth).await), token)
}

fn assert_link(message: &Received, path: &str) -> String {
    let link = message.link().expect("a link in the text");
    assert!(link.starts_with(&format!("{PUBLIC_URL}{path}?token=")), "{link}");
    assert!(message.html.contains(link), "the HTML part carries the same link");
    message.token().expect("token").to_owned()
}

#[tokio::test]
async fn a_password_reset_arrives_with_a_working_link_and_the_token_leaves_the_row() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "lehrerin@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "lehrerin@school.de").await;

    let [sent, failed, ..] = deliver(&app, &mailer(&server), &options(), Utc::now()).await;
    assert_eq!((sent, failed), (1, 0));
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let mail = &got[0];
    assert_eq!(mail.rcpt_tos, ["lehrerin@school.de"]);
    assert_eq!(mail.mail_from, "phoenix@school.example");
    assert_eq!(mail.subject, "Phoenix: Passwort zurücksetzen", "German by default");
    assert!(mail.text.contains("Neues Passwort festlegen"), "{}", mail.text);
    let token = assert_link(mail, "/reset-password");

    // The row: sent once, no error, and the token no longer in it.
    let [(_, attempts, last_error, sent_at, payload)] = <[Row; 1]>::try_from(rows(&app).await).expect("one row");
    assert_eq!((attempts, last_error), (1, None));
    assert!(sent_at.is_some());
    assert!(payload.get("token").is_none(), "token cleared: {payload}");
    assert!(!payload.to_string().contains(&token));
    assert!(payload.get("reset_token_id").is_some(), "the ids stay");

    // The link's token resets the password.
    confirm_reset(&app, &token).await.expect("the mailed token resets the password");
    login(&app, "lehrerin@school.de", NEW_PASSWORD).await.expect("the new password signs in");
    // Nothing more to send.
    assert_eq!(deliver(&app, &mailer(&server), &options(), Utc::now()).await, [0, 0, 0, 0, 0]);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn staff_and_guardian_invitations_arrive_in_the_recipients_language_and_their_links_work() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth, Domain::Users]).await;
    let (mut client, admin) = office(&app).await;
    let staff = pb::CreateInvitationRequest {
        email: "neu@school.de".into(),
        role_name: "staff".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        position: String::new(),
    };
    client.create_invitation(bearer(staff, &admin)).await.expect("staff invitation");
    let guardian = {
        let mut conn = app.db.conn().await;
        let child = fixtures::student(&mut conn, "Mia", "Muster", &fixtures::tag(1)).await;
        let g = fixtures::guardian_of(&mut conn, child, "Petra", "Muster", true).await;
        diesel::sql_query(format!("UPDATE users.guardians SET language_preference = 'en' WHERE id = {g}"))
            .execute(&mut conn)
            .await
            .expect("English");
        g
    };
    let req = pb::CreateGuardianInvitationRequest { guardian_id: guardian };
    client.create_guardian_invitation(bearer(req, &admin)).await.expect("guardian invitation");

    let [sent, ..] = deliver(&app, &mailer(&server), &options(), Utc::now()).await;
    assert_eq!(sent, 2);
    let got = server.wait_for(2, WAIT).await;
    let to = |addr: &str| got.iter().find(|m| m.rcpt_tos == [addr]).unwrap_or_else(|| panic!("mail to {addr}"));
    let (staff_mail, parent_mail) = (to("neu@school.de"), to("petra@example.org"));
    assert_eq!(staff_mail.subject, "Phoenix: Einladung", "no preference: PHOENIX_MAIL_LANGUAGE (de)");
    assert_eq!(parent_mail.subject, "Phoenix: invitation for parents and guardians", "the guardian's preference");
    assert!(parent_mail.text.contains("Accept the invitation"), "{}", parent_mail.text);

    let staff_token = assert_link(staff_mail, "/invitation");
    let accept =
        pb::AcceptInvitationRequest { token: staff_token, password: "Invited-Pass5!".into(), ..Default::default() };
    client.accept_invitation(accept).await.expect("the mailed staff token accepts");
    login(&app, "neu@school.de", "Invited-Pass5!").await.expect("the invited account signs in");

    let parent_token = assert_link(parent_mail, "/guardian-invitation");
    let accept = pb::AcceptGuardianInvitationRequest { token: parent_token, password: "Eltern-Pass7!".into() };
    let accepted = client.accept_guardian_invitation(accept).await.expect("the mailed guardian token accepts");
    assert_eq!(accepted.into_inner().guardian_id, guardian);

    for (_, attempts, last_error, sent_at, payload) in rows(&app).await {
        assert_eq!((attempts, last_error), (1, None));
        assert!(sent_at.is_some() && payload.get("token").is_none(), "{payload}");
    }
}

#[tokio::test]
async fn phoenix_mail_language_en_sends_english() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "teacher@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "teacher@school.de").await;
    let english = OutboxOptions { default_language: MailLanguage::En, ..options() };
    assert_eq!(deliver(&app, &mailer(&server), &english, Utc::now()).await[0], 1);
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got[0].subject, "Phoenix: reset your password");
    assert!(got[0].text.contains("Choose a new password") && got[0].text.contains("The link is valid until"));
}

#[tokio::test]
async fn a_down_server_costs_attempts_not_messages_and_each_is_delivered_once_it_is_back() {
    let Some(mut server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    for email in ["a@school.de", "b@school.de"] {
        create_account(&app, email, PASSWORD, &["staff"], true).await;
        start_reset(&app, email).await;
    }
    let (mailer, options) = (mailer(&server), options());
    server.stop();
    let t0 = Utc::now();

    // A connection failure ends the pass: one message tried per pass, each then backs off.
    assert_eq!(deliver(&app, &mailer, &options, t0).await, [0, 1, 0, 0, 2]);
    assert_eq!(deliver(&app, &mailer, &options, t0).await, [0, 1, 0, 0, 2]);
    assert_eq!(deliver(&app, &mailer, &options, t0).await, [0, 0, 0, 0, 2], "both wait for their backoff");
    // After the first backoff (30 s) both are tried again.
    let t1 = t0 + chrono::Duration::seconds(31);
    assert_eq!(deliver(&app, &mailer, &options, t1).await, [0, 1, 0, 0, 2]);
    assert_eq!(deliver(&app, &mailer, &options, t1).await, [0, 1, 0, 0, 2]);
    for (_, attempts, last_error, sent_at, payload) in rows(&app).await {
        assert_eq!(attempts, 2);
        assert!(sent_at.is_none());
        let error = last_error.expect("last_error");
        assert!(error.starts_with("smtp:"), "{error}");
        let token = payload["token"].as_str().expect("the token waits in the row");
        assert!(!error.contains('@') && !error.contains(token), "no address or token in last_error: {error}");
    }

    server.restart();
    let t2 = t1 + chrono::Duration::seconds(61);
    assert_eq!(deliver(&app, &mailer, &options, t2).await, [2, 0, 0, 0, 0]);
    let got = server.wait_for(2, WAIT).await;
    let mut to: Vec<_> = got.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    to.sort();
    assert_eq!(to, ["a@school.de", "b@school.de"]);
    for (_, attempts, last_error, sent_at, _) in rows(&app).await {
        assert_eq!((attempts, last_error), (3, None));
        assert!(sent_at.is_some());
    }
    // Delivered once: later passes send nothing more.
    assert_eq!(deliver(&app, &mailer, &options, t2 + chrono::Duration::hours(5)).await[0], 0);
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn a_message_is_given_up_at_the_attempt_bound_and_keeps_its_error() {
    let Some(mut server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "c@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "c@school.de").await;
    let (mailer, options) = (mailer(&server), OutboxOptions { max_attempts: 3, ..options() });
    server.stop();
    let t0 = Utc::now();
    assert_eq!(deliver(&app, &mailer, &options, t0).await, [0, 1, 0, 0, 1]);
    assert_eq!(deliver(&app, &mailer, &options, t0 + chrono::Duration::minutes(1)).await, [0, 1, 0, 0, 1]);
    assert_eq!(deliver(&app, &mailer, &options, t0 + chrono::Duration::minutes(2)).await, [0, 0, 1, 0, 0]);
    server.restart();
    assert_eq!(deliver(&app, &mailer, &options, t0 + chrono::Duration::days(1)).await, [0, 0, 0, 0, 0]);
    assert!(server.messages().is_empty());
    let [(_, attempts, last_error, sent_at, payload)] = <[Row; 1]>::try_from(rows(&app).await).expect("one row");
    assert_eq!(attempts, 3);
    assert!(last_error.is_some_and(|e| e.starts_with("smtp:")), "the error stays visible");
    assert!(sent_at.is_none());
    assert!(payload.get("token").is_none(), "a given-up token is not kept either: {payload}");
}

#[tokio::test]
async fn a_superseded_reset_token_is_never_mailed() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "d@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "d@school.de").await;
    start_reset(&app, "d@school.de").await;
    assert_eq!(deliver(&app, &mailer(&server), &options(), Utc::now()).await, [1, 0, 0, 1, 0]);
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let token = got[0].token().expect("token").to_owned();
    confirm_reset(&app, &token).await.expect("the mailed (newest) token works");
    let rows = rows(&app).await;
    assert!(rows[0].2.as_deref().is_some_and(|e| e.starts_with("not sent")), "{:?}", rows[0]);
    assert!(rows[0].3.is_none() && rows[0].4.get("token").is_none());
}

#[tokio::test]
async fn two_senders_at_once_deliver_each_message_exactly_once() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let emails: Vec<String> = (0..8).map(|i| format!("p{i}@school.de")).collect();
    for email in &emails {
        create_account(&app, email, PASSWORD, &["staff"], true).await;
        start_reset(&app, email).await;
    }
    let (mailer, options, now) = (mailer(&server), options(), Utc::now());
    let (pool_a, pool_b) = (app.db.pool().await, app.db.pool().await);
    let (a, b) = tokio::join!(
        outbox::deliver_due(&pool_a, &mailer, &options, now, false),
        outbox::deliver_due(&pool_b, &mailer, &options, now, false),
    );
    let (a, b) = (a.expect("sender a"), b.expect("sender b"));
    assert_eq!(a.get("sent") + b.get("sent"), 8, "{a:?} {b:?}");
    // And the background senders (job lock + SKIP LOCKED) add nothing.
    let shutdown = phoenix_common::server::ShutdownToken::new();
    let fast = OutboxOptions { poll_interval: Duration::from_millis(20), ..options.clone() };
    let senders: Vec<_> = (0..2)
        .map(|_| tokio::spawn(outbox::run_sender(pool_a.clone(), mailer.clone(), fast.clone(), shutdown.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    for s in senders {
        s.await.expect("sender task");
    }
    let got = server.wait_for(8, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got_later = server.messages();
    assert_eq!(got.len(), 8);
    assert_eq!(got_later.len(), 8, "no message twice");
    let mut to: Vec<String> = got_later.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    to.sort();
    assert_eq!(to, emails);
    assert!(rows(&app).await.iter().all(|r| r.1 == 1 && r.3.is_some()), "each sent on its first attempt");
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_changes_nothing() {
    let Some(server) = SmtpServer::start() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "e@school.de", PASSWORD, &["staff"], true).await;
    create_account(&app, "f@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "e@school.de").await;
    start_reset(&app, "f@school.de").await;
    start_reset(&app, "f@school.de").await;
    let before = rows(&app).await;

    let pool = app.db.pool().await;
    let report = outbox::deliver_due(&pool, &mailer(&server), &options(), Utc::now(), true).await.expect("dry run");
    assert_eq!((report.get("sent"), report.get("obsolete"), report.get("pending")), (2, 1, 3), "{report:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.messages().is_empty(), "a dry run sends nothing");
    assert_eq!(rows(&app).await, before, "a dry run changes nothing");

    // The real run does what the dry run said.
    assert_eq!(deliver(&app, &mailer(&server), &options(), Utc::now()).await, [2, 0, 0, 1, 0]);
    assert_eq!(server.wait_for(2, WAIT).await.len(), 2);
}

#[tokio::test]
async fn the_dev_log_mailer_settles_messages_without_an_smtp_server() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "g@school.de", PASSWORD, &["staff"], true).await;
    start_reset(&app, "g@school.de").await;
    assert_eq!(deliver(&app, &Mailer::dev_log(), &options(), Utc::now()).await, [1, 0, 0, 0, 0]);
    let [(_, attempts, _, sent_at, payload)] = <[Row; 1]>::try_from(rows(&app).await).expect("one row");
    assert_eq!(attempts, 1);
    assert!(sent_at.is_some() && payload.get("token").is_none(), "{payload}");
}
