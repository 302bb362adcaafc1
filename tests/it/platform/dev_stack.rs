//! `phoenix dev` end to end (its library entry point): every service and the gateway answer
//! health SERVING over real gRPC (every domain also through the gateway), the demo school and the admin exist, and it stops cleanly.

use diesel::QueryDsl as _;
use diesel_async::RunQueryDsl;
use phoenix::dev::{DevOptions, DevStack};
use phoenix_common::domain::Domain;
use phoenix_db::schema::{auth, iot, users};
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use phoenix_tests::TestDb;
use phoenix_tests::app::{health_status, test_config};
use tonic_health::ServingStatus;

#[tokio::test]
async fn dev_stack_starts_every_service_healthy_and_stops_cleanly() {
    let db = TestDb::new().await;
    let data_dir = std::env::temp_dir().join(format!("phoenix-dev-test-{}", uuid::Uuid::new_v4().simple()));
    let mut config = test_config(db.url());
    config.mqtt_url = None; // exercise the embedded broker start path
    let stack = DevStack::start(DevOptions { config, data_dir: data_dir.clone(), demo: true, port_fallback: false })
        .await
        .expect("dev stack starts");

    assert_eq!(stack.services.len(), Domain::ALL.len(), "every domain is started");
    for (domain, addr) in &stack.services {
        let status = health_status(*addr, domain.grpc_service()).await.expect("health check answers");
        assert_eq!(status, ServingStatus::Serving as i32, "{domain} at {addr} is SERVING");
        // A name the server does not serve is NOT_FOUND, so the check above is meaningful.
        let other = health_status(*addr, "phoenix.nothing.v1.Nothing").await.unwrap_err();
        assert_eq!(other.code(), tonic::Code::NotFound);
    }
    let gateway = health_status(stack.gateway, phoenix_gateway::GATEWAY_HEALTH_NAME).await.expect("gateway health");
    assert_eq!(gateway, ServingStatus::Serving as i32);
    // The gateway forwards to the in-process domains: each one's health through it.
    for domain in Domain::ALL {
        let status = health_status(stack.gateway, domain.grpc_service()).await.expect("health through the gateway");
        assert_eq!(status, ServingStatus::Serving as i32, "{domain} through the gateway");
    }
    // The broker accepts MQTT connections.
    let broker = stack.mqtt_url.trim_start_matches("mqtt://").to_owned();
    std::net::TcpStream::connect(&broker).expect("embedded broker accepts connections");

    let mut conn = db.conn().await;
    let pupils: i64 = users::students::table.count().get_result(&mut conn).await.expect("count");
    assert_eq!(pupils as usize, phoenix::demo::DEMO_STUDENTS);
    assert!(stack.demo_loaded);
    let readers: i64 = iot::devices::table.count().get_result(&mut conn).await.expect("count");
    assert!(readers > 10, "demo readers plus the virtual device ({readers})");
    let admin = stack.admin.clone().expect("admin credentials");
    assert!(admin.created);
    let hash: Option<String> = auth::accounts::table
        .filter(diesel::ExpressionMethods::eq(auth::accounts::email, &admin.email))
        .select(auth::accounts::password_hash)
        .first(&mut conn)
        .await
        .expect("admin account row");
    assert!(phoenix_common::password::verify(&admin.password, &hash.expect("password set")));
    // The admin logs in over gRPC at the dev stack's auth service.
    let auth_addr = stack.services.iter().find(|(d, _)| *d == Domain::Auth).expect("auth runs").1;
    let mut auth = AuthServiceClient::new(phoenix_tests::app::connect(auth_addr).await);
    let login = pb::LoginRequest { email: admin.email.clone(), password: admin.password.clone() };
    let first_token = auth.login(login).await.expect("admin login").into_inner().tokens.expect("tokens").access_token;

    let addrs: Vec<_> = stack.services.iter().map(|(_, a)| *a).collect();
    stack.stop().await.expect("clean shutdown");
    for addr in addrs {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} no longer accepts connections");
    }

    // A second start on the same data finds the demo and admin already there.
    let mut config = test_config(db.url());
    config.mqtt_url = Some(phoenix_tests::mqtt_url());
    let again = DevStack::start(DevOptions { config, data_dir: data_dir.clone(), demo: true, port_fallback: false })
        .await
        .expect("second start");
    assert!(!again.demo_loaded, "demo data is loaded once");
    let admin_again = again.admin.clone().expect("admin");
    assert!(!admin_again.created);
    assert_eq!(admin_again.password, admin.password, "the generated password is kept in the data directory");
    // The generated server secret is kept too, so the stored signing key is reused and a
    // token from the first start still verifies.
    let auth_addr = again.services.iter().find(|(d, _)| *d == Domain::Auth).expect("auth runs").1;
    let mut auth = AuthServiceClient::new(phoenix_tests::app::connect(auth_addr).await);
    let me = auth.who_am_i(phoenix_tests::auth::bearer(pb::WhoAmIRequest {}, &first_token)).await.expect("old token");
    assert_eq!(me.into_inner().roles, ["admin"]);
    let keys = auth.get_signing_keys(pb::GetSigningKeysRequest {}).await.expect("keys").into_inner().keys;
    assert_eq!(keys.len(), 1, "no rotation on restart");
    again.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(data_dir);
}

/// The walkthrough of the README: `phoenix dev` with the demo school, then a simulated reader
/// checks a pupil in (Raum 101), transfers them (Raum 102) and checks them out.
#[tokio::test]
async fn dev_stack_walkthrough_checks_a_pupil_in_transfers_and_out() {
    use phoenix_gateway::sim::SimReader;
    use phoenix_reader_protocol::{Code, Outcome, derive_device_key};

    let db = TestDb::new().await;
    let data_dir = std::env::temp_dir().join(format!("phoenix-dev-test-{}", uuid::Uuid::new_v4().simple()));
    let mut config = test_config(db.url());
    config.mqtt_url = None;
    let stack = DevStack::start(DevOptions { config, data_dir: data_dir.clone(), demo: true, port_fallback: false })
        .await
        .expect("dev stack starts");
    let key = |device: &str| derive_device_key(phoenix_tests::app::TEST_DEVICE_KEY_SECRET.as_bytes(), device, 1);
    let tag = phoenix::demo::demo_tag(0);
    let wait = std::time::Duration::from_secs(20);
    let mut steps = Vec::new();
    for (i, device) in ["reader-01", "reader-02", "reader-02"].into_iter().enumerate() {
        let mut reader =
            SimReader::connect(&stack.mqtt_url, &stack.mqtt_prefix, device, &key(device)).await.expect("reader");
        let scan = reader.sign(&format!("walk-{i}"), &tag, chrono::Utc::now());
        let r = reader.send(&scan, wait).await.expect("result");
        let r = r.expect_result();
        steps.push((r.outcome, r.code, r.room.as_ref().map(|r| r.name.clone())));
        reader.disconnect().await;
    }
    assert_eq!(
        steps,
        [
            (Outcome::CheckedIn, Code::Ok, Some("Raum 101".to_owned())),
            (Outcome::Transferred, Code::Ok, Some("Raum 102".to_owned())),
            (Outcome::CheckedOut, Code::Ok, Some("Raum 102".to_owned())),
        ]
    );
    assert!(stack.bridge_stats.snapshot().processed >= 3);
    stack.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(data_dir);
}
