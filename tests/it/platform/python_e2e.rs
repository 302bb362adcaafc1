//! End to end with a real, out-of-process client (grpcio, stubs generated from `proto/` at
//! run time): `tests/python/auth_e2e.py` logs in as the first admin and calls `WhoAmI`;
//! `tests/python/people_places.py` creates a room, staff, a group and a pupil with a card and
//! checks the pupil's redaction for a teacher of the group and for other staff, each logged
//! in with their own account; `tests/python/guardian_e2e.py`, through the gateway only, has a
//! parent accept a guardian invitation, sign in, see exactly their child, watch the child
//! move between rooms on `WatchPresence`, and get NOT_FOUND / PERMISSION_DENIED for another
//! child (docs/access.md).
//!
//! The interpreter is `PHOENIX_PYTHON` when set (scripts/test sets it when it had to put
//! grpcio into a virtualenv), else `python3`; `scripts/lib.sh` `ensure_python_grpc`
//! installs what is missing. A missing package fails the test; a missing interpreter fails it
//! under `CI` and makes it return early with a message outside CI ([`phoenix_tests::require_tool`]).

use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::auth::v1 as auth_pb;
use phoenix_proto::auth::v1::invitation_service_client::InvitationServiceClient;
use phoenix_tests::auth::{PASSWORD, admin_token, bearer};
use phoenix_tests::{TestApp, fixtures, school};

#[tokio::test]
async fn python_grpcio_client_logs_in_and_calls_who_am_i() {
    let Some(python) = python() else { return };
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, "py-admin@school.de", PASSWORD).await.expect("create admin"));

    let addr = app.addr(Domain::Auth).to_string();
    let stdout = run_python(&python, "tests/python/auth_e2e.py", &[&addr, "py-admin@school.de", PASSWORD]).await;

    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"ok login token_type=Bearer"), "{stdout}");
    let whoami = lines.iter().find(|l| l.starts_with("ok whoami ")).unwrap_or_else(|| panic!("no WhoAmI: {stdout}"));
    assert!(whoami.contains("roles=admin"), "{whoami}");
    assert!(whoami.contains("permissions=*:*"), "{whoami}");
    assert!(lines.contains(&"ok anonymous whoami UNAUTHENTICATED"), "{stdout}");
    assert!(lines.contains(&"ok wrong password UNAUTHENTICATED"), "{stdout}");
    assert_eq!(lines.last(), Some(&"PASS"), "{stdout}");
    assert!(!stdout.contains(PASSWORD), "the client never prints the password");
    app.stop().await;
}

#[tokio::test]
async fn python_grpcio_client_creates_a_room_a_group_and_a_pupil_with_a_card() {
    let Some(python) = python() else { return };
    let app = TestApp::spawn(&[Domain::Auth, Domain::Users, Domain::Education, Domain::Facilities]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, "py-admin@school.de", PASSWORD).await.expect("create admin"));
    let addr = |d: Domain| app.addr(d).to_string();
    let stdout = run_python(
        &python,
        "tests/python/people_places.py",
        &[
            "--auth",
            &addr(Domain::Auth),
            "--users",
            &addr(Domain::Users),
            "--education",
            &addr(Domain::Education),
            "--facilities",
            &addr(Domain::Facilities),
            "--email",
            "py-admin@school.de",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(stdout.contains("people and places end to end: ok"), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn python_grpcio_guardian_accepts_an_invitation_and_watches_only_their_child_through_the_gateway() {
    let Some(python) = python() else { return };
    let app = TestApp::spawn(&[Domain::Auth, Domain::Users, Domain::Active]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, "py-admin@school.de", PASSWORD).await.expect("create admin"));

    // The school: two rooms with running sessions, the parent's child and another child
    // (each with a guardian record; the parent's has an email and no account yet).
    let mut conn = app.db.conn().await;
    let aula = fixtures::room(&mut conn, "Aula", None).await;
    let mensa = fixtures::room(&mut conn, "Mensa", None).await;
    let activity = fixtures::activity(&mut conn, "Freispiel", 30).await;
    let supervisor = fixtures::staff(&mut conn, "Vera", "Aufsicht").await;
    let child = fixtures::student(&mut conn, "Mia", "Muster", &fixtures::tag(1)).await;
    let other = fixtures::student(&mut conn, "Ben", "Beispiel", &fixtures::tag(2)).await;
    let guardian = fixtures::guardian_of(&mut conn, child, "Petra", "Muster", true).await;
    fixtures::guardian_of(&mut conn, other, "Olaf", "Beispiel", true).await;
    let mut office = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let session_a = school::start_session(&mut office, aula, activity, supervisor).await;
    let session_b = school::start_session(&mut office, mensa, activity, supervisor).await;

    // The office invites the guardian; the token is what the invitation email carries.
    let (_, admin) = admin_token(&app).await;
    let mut invitations = InvitationServiceClient::new(app.channel(Domain::Auth).await);
    let request = bearer(auth_pb::CreateGuardianInvitationRequest { guardian_id: guardian }, &admin);
    let invitation = invitations.create_guardian_invitation(request).await.expect("invite").into_inner();
    let invitation_id = invitation.invitation.expect("invitation").id;
    let token = invitation_token(&mut conn, invitation_id).await;

    let upstreams = [Domain::Auth, Domain::Users, Domain::Active]
        .into_iter()
        .map(|d| (d, format!("http://{}", app.addr(d))))
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = listener.local_addr().expect("addr").to_string();
    let shutdown = ShutdownToken::new();
    let options = phoenix_gateway::web::WebOptions::new(upstreams);
    let served = tokio::spawn(phoenix_gateway::web::serve(listener, options, shutdown.clone()));

    let ids = [child, other, session_a, session_b].map(|i| i.to_string());
    let stdout = run_python(
        &python,
        "tests/python/guardian_e2e.py",
        &[
            "--gateway",
            &gateway,
            "--admin-email",
            "py-admin@school.de",
            "--admin-password",
            PASSWORD,
            "--invitation-token",
            &token,
            "--child",
            &ids[0],
            "--other",
            &ids[1],
            "--session-a",
            &ids[2],
            "--session-b",
            &ids[3],
        ],
    )
    .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"ok parent signed in roles=guardian"), "{stdout}");
    assert!(lines.contains(&format!("ok my children=[{child}]").as_str()), "{stdout}");
    assert!(lines.contains(&"ok stream Aula -> Mensa"), "{stdout}");
    assert!(lines.contains(&"ok child presence room=Mensa"), "{stdout}");
    assert!(lines.contains(&"ok other child NOT_FOUND"), "{stdout}");
    assert!(lines.contains(&"ok GetStudent PERMISSION_DENIED"), "{stdout}");
    assert_eq!(lines.last(), Some(&"guardian end to end: ok"), "{stdout}");
    shutdown.cancel();
    served.await.expect("gateway task").expect("gateway stops cleanly");
    app.stop().await;
}

/// The token of the newest outbox message of guardian invitation `id` (the email's link).
async fn invitation_token(conn: &mut diesel_async::AsyncPgConnection, id: i64) -> String {
    use phoenix_db::schema::auth::outbox;
    let payload: serde_json::Value = outbox::table
        .filter(outbox::guardian_invitation_id.eq(id))
        .order(outbox::id.desc())
        .select(outbox::payload)
        .first(conn)
        .await
        .expect("the invitation's outbox message");
    payload["token"].as_str().expect("payload.token").to_owned()
}

/// The interpreter: `PHOENIX_PYTHON`, else `python3` (see [`phoenix_tests::require_tool`]).
fn python() -> Option<std::path::PathBuf> {
    let python = std::env::var("PHOENIX_PYTHON").ok().filter(|p| !p.trim().is_empty()).unwrap_or("python3".into());
    phoenix_tests::require_tool("python3", python, "install it with scripts/lib.sh ensure_python_grpc")
}

/// Runs a script of `tests/python` with `python` and returns its stdout; fails the test on a
/// non-zero exit.
async fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let child = tokio::process::Command::new(python)
        .current_dir(phoenix_tests::workspace_root())
        .arg(script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .expect("the Python client finishes within 180 s")
        .unwrap_or_else(|e| {
            panic!("run {} (install it with scripts/lib.sh ensure_python_grpc): {e}", python.display())
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    stdout
}
