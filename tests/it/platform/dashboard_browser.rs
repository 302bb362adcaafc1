//! The dashboard (gateway/dashboard/dist) in Debian's chromium, driven by playwright-core
//! scripts in tests/browser (`scripts/test` installs chromium and runs `npm ci` there).
//!
//! - [`dashboard_page_works_in_chromium`]: the committed page against a canned grpc-web
//!   stand-in (tests/browser/page-check.mjs): labels, keyboard, language switch, token
//!   renewal, live updates, resume and reload, sign-out; screenshots under target/.
//! - [`dashboard_shows_a_scanned_pupil_live`]: the whole system (`phoenix dev`'s stack:
//!   services, gateway, MQTT bridge) with a test school; the admin signs in through the page,
//!   a reader publishes a signed scan over MQTT, and the pupil appears in the room on the
//!   board within 2 s, without a reload (tests/browser/dashboard.mjs).
//! - [`dashboard_board_acts_across_browsers`]: the same stack; an admin (German) and a
//!   teacher (English) in two contexts of one chromium act on the board through the real
//!   RPCs, and each action appears on the other's board through WatchPresence
//!   (tests/browser/actions.mjs lists the steps).
//!
//! - [`dashboard_completes_the_links_of_the_mail`]: the same stack delivering its mail to a
//!   real SMTP server (aiosmtpd); a parent accepts the invitation from the mail's link, the
//!   link is spent after, "forgot password" sends a reset mail whose link sets a new password
//!   (tests/browser/account.mjs lists the steps).
//!
//! Without chromium these tests say so loudly and pass, except under CI (`CI` set), where
//! they fail: CI must run them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use phoenix::dev::{DevOptions, DevStack};
use phoenix_common::config::{Config, Secret};
use phoenix_common::domain::Domain;
use phoenix_gateway::sim::SimReader;
use phoenix_proto::active::v1 as active_pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::auth::v1 as auth_pb;
use phoenix_proto::auth::v1::account_service_client::AccountServiceClient;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use phoenix_proto::auth::v1::invitation_service_client::InvitationServiceClient;
use phoenix_proto::education::v1 as edu_pb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::users::v1 as users_pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_reader_protocol::{Code, Outcome, derive_device_key};
use phoenix_tests::TestDb;
use phoenix_tests::app::{TEST_DEVICE_KEY_SECRET, connect, test_config};
use phoenix_tests::auth::{PASSWORD, bearer};
use phoenix_tests::school::School;
use phoenix_tests::smtp::SmtpServer;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// Chromium for playwright-core: `CHROMIUM_PATH`, else Debian's. `None` outside CI when it is
/// missing (the caller returns early); under CI a missing browser fails the test.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM_PATH").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    phoenix_tests::require_tool(
        "chromium",
        path,
        "install it with `sudo apt-get install -y chromium` (scripts/test does, as root)",
    )
}

/// `node tests/browser/<name>` from the workspace root with `env` set and its stdio piped:
/// lines to its stdin, its stdout read line by line, and all it printed shown when it fails.
struct Script {
    name: &'static str,
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Script {
    fn start<'a>(name: &'static str, env: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let root = phoenix_tests::workspace_root();
        assert!(
            root.join("tests/browser/node_modules/playwright-core").exists(),
            "tests/browser/node_modules is missing: run `(cd tests/browser && npm ci)` (scripts/test does)"
        );
        let mut child = tokio::process::Command::new("node")
            .current_dir(root)
            .arg(format!("tests/browser/{name}"))
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (install nodejs)");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { name, child, stdin, stdout, seen: Vec::new() }
    }

    /// Reads its stdout until the line `marker`; if that does not come `within`, ends the
    /// script and panics with all it printed.
    async fn until(&mut self, marker: &str, within: Duration) {
        let (stdout, seen) = (&mut self.stdout, &mut self.seen);
        let found = tokio::time::timeout(within, async {
            while let Some(line) = stdout.next_line().await.expect("read stdout") {
                let done = line == marker;
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !found {
            let _ = self.child.start_kill();
            while let Ok(Some(line)) = self.stdout.next_line().await {
                self.seen.push(line);
            }
            let mut stderr = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut stderr).await;
            }
            panic!("{} stopped before {marker:?}:\n{}\n{stderr}", self.name, self.seen.join("\n"));
        }
    }

    /// Writes `line` to its stdin.
    async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write to the script");
        stdin.flush().await.expect("flush");
    }

    /// Closes its stdin and reads the rest `within`; asserts it exited successfully after
    /// printing a `PASS …` line. Returns every line it printed.
    async fn passes(mut self, within: Duration) -> Vec<String> {
        drop(self.stdin.take());
        let (stdout, seen) = (&mut self.stdout, &mut self.seen);
        let finished = tokio::time::timeout(within, async {
            while let Some(line) = stdout.next_line().await.expect("read stdout") {
                seen.push(line);
            }
        })
        .await;
        let name = self.name;
        if finished.is_err() {
            let _ = self.child.start_kill();
        }
        let output = self.child.wait_with_output().await.expect("node exits");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines = self.seen.join("\n");
        assert!(finished.is_ok(), "{name} did not finish within {within:?}:\n{lines}\n{stderr}");
        assert!(output.status.success(), "{name} failed ({}):\n{lines}\n{stderr}", output.status);
        assert!(self.seen.iter().any(|l| l.starts_with("PASS ")), "{name} printed no PASS line:\n{lines}\n{stderr}");
        self.seen
    }
}

#[tokio::test]
async fn dashboard_page_works_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let lines = Script::start("page-check.mjs", [("CHROMIUM_PATH", chromium.display().to_string())])
        .passes(Duration::from_secs(120))
        .await;
    assert!(lines.iter().any(|l| l == "PASS page check"), "{}", lines.join("\n"));
}

/// The whole system as `phoenix dev` runs it, on `db` and the test broker, in a fresh data
/// directory (removed by the caller after `stop`); `configure` adjusts the test config.
async fn dev_stack(db: &TestDb, configure: impl FnOnce(&mut Config)) -> (DevStack, PathBuf) {
    let data_dir = std::env::temp_dir().join(format!("phoenix-dashboard-test-{}", uuid::Uuid::new_v4().simple()));
    let mut config = test_config(db.url());
    config.mqtt_url = Some(phoenix_tests::mqtt_url());
    configure(&mut config);
    let stack = DevStack::start(DevOptions { config, data_dir: data_dir.clone(), demo: false, port_fallback: false })
        .await
        .expect("the dev stack starts");
    (stack, data_dir)
}

/// Where `domain` listens in `stack`.
fn addr(stack: &DevStack, domain: Domain) -> std::net::SocketAddr {
    stack.services.iter().find(|(d, _)| *d == domain).expect("domain runs").1
}

/// The dev stack's admin, signed in: their access token.
async fn admin_token(stack: &DevStack) -> String {
    let admin = stack.admin.clone().expect("admin credentials");
    let mut auth = AuthServiceClient::new(connect(addr(stack, Domain::Auth)).await);
    auth.login(auth_pb::LoginRequest { email: admin.email, password: admin.password })
        .await
        .expect("admin login")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token
}

/// Starts a session in the school's Raum A (supervised by its staff member) and connects
/// the room's reader.
async fn open_room_a(stack: &DevStack, school: &School, token: &str) -> SimReader {
    let mut active = ActiveServiceClient::new(connect(addr(stack, Domain::Active)).await);
    let start = active_pb::StartSessionRequest {
        room_id: school.rooms[0],
        activity_id: Some(school.activity),
        supervisor_staff_ids: vec![school.staff],
        ..Default::default()
    };
    active.start_session(bearer(start, token)).await.expect("start the session in Raum A");
    let device = &school.readers[0];
    let key = derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), device, 1);
    SimReader::connect(&stack.mqtt_url, &stack.mqtt_prefix, device, &key).await.expect("reader")
}

#[tokio::test]
async fn dashboard_shows_a_scanned_pupil_live() {
    let Some(chromium) = chromium() else { return };
    let db = TestDb::new().await;
    let (stack, data_dir) = dev_stack(&db, |_| {}).await;
    let admin = stack.admin.clone().expect("admin credentials");

    // A room with a reader and a running session, and a pupil with a card ("Kind0 T.").
    let mut conn = db.conn().await;
    let school = School::create(&mut conn, 1).await;
    let mut reader = open_room_a(&stack, &school, &admin_token(&stack).await).await;

    // The page: signs in and waits for the live board.
    let mut page = Script::start(
        "dashboard.mjs",
        [
            ("CHROMIUM_PATH", chromium.display().to_string()),
            ("PHOENIX_URL", format!("http://{}/", stack.gateway)),
            ("PHOENIX_EMAIL", admin.email.clone()),
            ("PHOENIX_PASSWORD", admin.password.clone()),
            ("EXPECT_ROOM", "Raum A".into()),
            ("EXPECT_PUPIL", "Kind0 T.".into()),
            ("EXPECT_WITHIN_MS", "2000".into()),
        ],
    );
    page.until("READY", Duration::from_secs(90)).await;

    // A signed scan over MQTT; the page has 2 s from here.
    let pupil = &school.pupils[0];
    let scan = reader.sign("dashboard-1", &pupil.tag, chrono::Utc::now());
    reader.publish(&scan).await.expect("publish the scan");
    page.send("published").await;
    let result = reader.result_for("dashboard-1", Duration::from_secs(20)).await.expect("a Result");
    let r = result.expect_result();
    assert_eq!((r.outcome, r.code), (Outcome::CheckedIn, Code::Ok), "{}", result.raw);

    page.passes(Duration::from_secs(60)).await;

    reader.disconnect().await;
    stack.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(data_dir);
}

/// The school of [`dashboard_board_acts_across_browsers`], made through the services' own
/// RPCs as an admin would: teacher Tina Lehrerin (staff role, a login) leads "Füchse" with
/// Kind0 and Kind1 (Kind2 has no group); sessions run in Raum A and Raum B (Erika) and in
/// Raum C, which nobody supervises any more (Erika left it). Returns Tina's login email.
async fn acting_school(stack: &DevStack, school: &School, admin_token: &str) -> String {
    let addr = |domain: Domain| addr(stack, domain);
    let mut users = UsersServiceClient::new(connect(addr(Domain::Users)).await);
    let mut education = EducationServiceClient::new(connect(addr(Domain::Education)).await);
    let mut accounts = AccountServiceClient::new(connect(addr(Domain::Auth)).await);
    let mut active = ActiveServiceClient::new(connect(addr(Domain::Active)).await);

    let staff = users_pb::Staff {
        first_name: "Tina".into(),
        last_name: "Lehrerin".into(),
        is_teacher: true,
        ..Default::default()
    };
    let tina = users
        .create_staff(bearer(users_pb::CreateStaffRequest { staff: Some(staff) }, admin_token))
        .await
        .expect("create the teacher")
        .into_inner()
        .staff
        .expect("staff");
    let group = edu_pb::Group {
        name: "Füchse".into(),
        teacher_ids: vec![tina.teacher_id.expect("a teacher record")],
        ..Default::default()
    };
    let group = education
        .create_group(bearer(edu_pb::CreateGroupRequest { group: Some(group) }, admin_token))
        .await
        .expect("create the group")
        .into_inner()
        .group
        .expect("group");
    for pupil in &school.pupils[..2] {
        let student = users_pb::Student { id: pupil.id, group_id: Some(group.id), ..Default::default() };
        let mask = prost_types::FieldMask { paths: vec!["group_id".into()] };
        users
            .update_student(bearer(
                users_pb::UpdateStudentRequest { student: Some(student), update_mask: Some(mask) },
                admin_token,
            ))
            .await
            .expect("put the pupil in Füchse");
    }
    let email = format!("tina-{}@schule.example", uuid::Uuid::new_v4().simple());
    let account = accounts
        .create_account(bearer(
            auth_pb::CreateAccountRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                role_names: vec!["staff".into()],
                ..Default::default()
            },
            admin_token,
        ))
        .await
        .expect("create Tina's login")
        .into_inner()
        .account
        .expect("account");
    let person = users_pb::Person { id: tina.person_id, account_id: Some(account.id), ..Default::default() };
    users
        .update_person(bearer(
            users_pb::UpdatePersonRequest {
                person: Some(person),
                update_mask: Some(prost_types::FieldMask { paths: vec!["account_id".into()] }),
            },
            admin_token,
        ))
        .await
        .expect("link Tina's login to her person");

    let mut sessions = Vec::new();
    for room in &school.rooms[..3] {
        let start = active_pb::StartSessionRequest {
            room_id: *room,
            activity_id: Some(school.activity),
            supervisor_staff_ids: vec![school.staff],
            ..Default::default()
        };
        let session = active.start_session(bearer(start, admin_token)).await.expect("start a session");
        sessions.push(session.into_inner().session.expect("session").id);
    }
    let leave = active_pb::LeaveSessionRequest { session_id: sessions[2], staff_id: Some(school.staff) };
    active.leave_session(bearer(leave, admin_token)).await.expect("Erika leaves Raum C: unclaimed");
    email
}

#[tokio::test]
async fn dashboard_board_acts_across_browsers() {
    let Some(chromium) = chromium() else { return };
    let db = TestDb::new().await;
    let (stack, data_dir) = dev_stack(&db, |_| {}).await;
    let admin = stack.admin.clone().expect("admin credentials");
    let school = School::create(&mut db.conn().await, 3).await;
    let token = admin_token(&stack).await;
    let teacher_email = acting_school(&stack, &school, &token).await;

    let steps = Script::start(
        "actions.mjs",
        [
            ("CHROMIUM_PATH", chromium.display().to_string()),
            ("PHOENIX_URL", format!("http://{}/", stack.gateway)),
            ("ADMIN_EMAIL", admin.email.clone()),
            ("ADMIN_PASSWORD", admin.password.clone()),
            ("TEACHER_EMAIL", teacher_email.clone()),
            ("TEACHER_PASSWORD", PASSWORD.into()),
        ],
    )
    .passes(Duration::from_secs(150))
    .await;
    eprintln!("{}", steps.join("\n")); // the steps, shown with --no-capture

    // What the browsers did is what the database holds.
    let mut conn = db.conn().await;
    assert_eq!(phoenix_tests::school::open_visit_count(&mut conn, school.pupils[0].id).await, 0, "Kind0 checked out");
    assert_eq!(
        phoenix_tests::school::attendance_open(&mut conn, school.pupils[0].id).await,
        Some(false),
        "Kind0 gone home"
    );
    stack.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(data_dir);
}

/// The host the test stack writes into its mail's links; the test points them at the gateway.
const MAIL_HOST: &str = "http://phoenix.mail.test";

#[tokio::test]
async fn dashboard_completes_the_links_of_the_mail() {
    let Some(chromium) = chromium() else { return };
    let Some(smtp) = SmtpServer::start() else { return };
    let db = TestDb::new().await;
    let (stack, data_dir) = dev_stack(&db, |c| {
        c.smtp_url = Some(Secret::new(smtp.url()));
        c.mail_from = Some("Phoenix <phoenix@school.example>".into());
        c.public_url = Some(MAIL_HOST.into());
        c.jobs_enabled = true; // outbox_delivery sends the mail
    })
    .await;
    let token = admin_token(&stack).await;
    let mut auth = AuthServiceClient::new(connect(addr(&stack, Domain::Auth)).await);
    let login = |email: &str, password: &str| auth_pb::LoginRequest { email: email.into(), password: password.into() };

    // Kind0 and Kind1 are in Raum A; Kind0's guardian has an email and no account yet.
    let mut conn = db.conn().await;
    let school = School::create(&mut conn, 2).await;
    let mut reader = open_room_a(&stack, &school, &token).await;
    for (i, pupil) in school.pupils.iter().enumerate() {
        let id = format!("account-{i}");
        reader.publish(&reader.sign(&id, &pupil.tag, chrono::Utc::now())).await.expect("publish a scan");
        let result = reader.result_for(&id, Duration::from_secs(20)).await.expect("a Result");
        assert_eq!(result.expect_result().outcome, Outcome::CheckedIn, "{}", result.raw);
    }
    reader.disconnect().await;
    let guardian = phoenix_tests::fixtures::guardian_of(&mut conn, school.pupils[0].id, "Petra", "Muster", true).await;
    let parent = "petra@example.org"; // fixtures::guardian_of's address
    // The office invites the guardian.
    let mut invitations = InvitationServiceClient::new(connect(addr(&stack, Domain::Auth)).await);
    let invite = auth_pb::CreateGuardianInvitationRequest { guardian_id: guardian };
    invitations.create_guardian_invitation(bearer(invite, &token)).await.expect("invite the guardian");
    let gateway = format!("http://{}", stack.gateway);
    let mail_link = |n: usize| {
        let smtp = &smtp;
        let gateway = gateway.clone();
        async move {
            let mail = smtp.wait_for(n, Duration::from_secs(30)).await;
            assert_eq!(mail.len(), n, "mail {n} arrived: {mail:?}");
            let last = &mail[n - 1];
            assert_eq!(last.rcpt_tos, vec![parent.to_owned()], "sent to the parent");
            let link = last.link().unwrap_or_else(|| panic!("a link in {}", last.text));
            assert!(link.starts_with(MAIL_HOST), "{link}");
            link.replacen(MAIL_HOST, &gateway, 1)
        }
    };
    let invite_link = mail_link(1).await;
    assert!(invite_link.contains("/guardian-invitation?token="), "{invite_link}");

    let (first, new) = ("Erste-Wahl-1", "Neu-und-Besser-2");
    let mut page = Script::start(
        "account.mjs",
        [
            ("CHROMIUM_PATH", chromium.display().to_string()),
            ("PHOENIX_URL", format!("{gateway}/")),
            ("INVITE_LINK", invite_link.clone()),
            ("PHOENIX_EMAIL", parent.into()),
            ("FIRST_PASSWORD", first.into()),
            ("NEW_PASSWORD", new.into()),
            ("EXPECT_ROOM", "Raum A".into()),
            ("EXPECT_PUPIL", "Kind0 T.".into()),
            ("OTHER_PUPIL", "Kind1 T.".into()),
        ],
    );
    page.until("RESET REQUESTED", Duration::from_secs(120)).await;
    // The parent's account exists now, linked to the guardian record.
    let linked = phoenix_tests::school::count(
        &mut conn,
        &format!("SELECT count(*) AS n FROM users.guardians WHERE id = {guardian} AND account_id IS NOT NULL"),
    )
    .await;
    assert_eq!(linked, 1, "the accepted invitation linked an account to the guardian");

    let reset_link = mail_link(2).await;
    assert!(reset_link.contains("/reset-password?token="), "{reset_link}");
    page.send(&reset_link).await;
    page.passes(Duration::from_secs(90)).await;

    // What the page did is what the service holds: the new password only.
    assert!(auth.login(login(parent, first)).await.is_err(), "the first password no longer works");
    auth.login(login(parent, new)).await.expect("the new password signs in");
    stack.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(data_dir);
}
