//! End to end with a real, out-of-process client (grpcio, stubs generated from `proto/` at
//! run time): `tests/python/auth_e2e.py` logs in as the first admin and calls `WhoAmI`;
//! `tests/python/people_places.py` creates a room, staff, a group and a pupil with a card and
//! checks the pupil's redaction for a teacher of the group and for other staff, each logged
//! in with their own account.
//!
//! The interpreter is `PHOENIX_PYTHON` when set (scripts/test sets it when it had to put
//! grpcio into a virtualenv), else `python3`; `scripts/lib.sh` `ensure_python_grpc`
//! installs what is missing. A missing package fails the test; a missing interpreter fails it
//! under `CI` and makes it return early with a message outside CI ([`phoenix_tests::require_tool`]).

use std::time::Duration;

use phoenix_common::domain::Domain;
use phoenix_tests::TestApp;
use phoenix_tests::auth::PASSWORD;

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
