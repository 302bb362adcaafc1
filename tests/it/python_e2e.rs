//! A Python `grpcio` client against the real servers (tests/e2e/people_places.py): creates a
//! room, a teacher, a group and a pupil with a card, and checks the pupil's redaction.
//! Needs `python3` with `grpcio` and `grpcio-tools` (`scripts/test` installs them).

use phoenix_common::domain::Domain;
use phoenix_tests::TestApp;

#[tokio::test]
async fn a_python_grpcio_client_creates_a_room_a_group_and_a_pupil_with_a_card() {
    let app = TestApp::spawn(&[Domain::Users, Domain::Education, Domain::Facilities]).await;
    let script = phoenix_tests::workspace_root().join("tests/e2e/people_places.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--users", &app.addr(Domain::Users).to_string()])
        .args(["--education", &app.addr(Domain::Education).to_string()])
        .args(["--facilities", &app.addr(Domain::Facilities).to_string()])
        .output()
        .await
        .expect("run python3 (install python3 with grpcio and grpcio-tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python e2e failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("end to end: ok"), "{stdout}");
    app.stop().await;
}
