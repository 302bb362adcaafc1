//! Issue #13, logins under a flood: 1,000 failed logins through the gateway from one client
//! address (behind a trusted proxy) and a flood straight from the gateway's own address do
//! not lock anyone else out. The admin logs in from another address, the gateway's
//! service-credential exchange still works, password resets from elsewhere go through, and
//! the audit rows name the real client addresses. A client cannot name its own address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_async::RunQueryDsl;
use futures::StreamExt as _;
use phoenix_common::authz::TokenVerifier;
use phoenix_common::client_addr::{self, ForwardingKey};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_db::schema::audit::auth_events;
use phoenix_gateway::web::{ClientAddr, RateLimit, WebOptions};
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

const ADMIN: &str = "admin@flood.example";
const ATTACKER: &str = "198.51.100.7";

/// A gateway in front of the app's auth service, trusting the loopback as its proxy, with
/// the default per-client rate limit.
async fn gateway(app: &TestApp) -> (SocketAddr, ShutdownToken) {
    let upstreams = Domain::ALL.iter().map(|&d| (d, format!("http://{}", app.addr(Domain::Auth)))).collect();
    let mut options = WebOptions::new(upstreams);
    options.verifier = Some(Arc::new(TokenVerifier::new(app.db.pool().await)));
    options.rate = RateLimit { per_second: 50.0, burst: 100 };
    options.client_addr = ClientAddr {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        key: ForwardingKey::from_config(&app.config),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = ShutdownToken::new();
    tokio::spawn(phoenix_gateway::web::serve(listener, options, shutdown.clone()));
    (addr, shutdown)
}

/// `message` as sent by a proxy in front of the gateway for the client at `from`.
fn from<T>(message: T, from: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-forwarded-for", from.parse().expect("ascii"));
    request
}

fn login_request(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest { email: email.into(), password: password.into() }
}

async fn logins_from(address: &str, app: &TestApp) -> Vec<(bool, Option<String>)> {
    let mut conn = app.db.conn().await;
    auth_events::table
        .filter(auth_events::event_type.eq("login"))
        .order(auth_events::id)
        .select((auth_events::success, diesel::dsl::sql::<Nullable<Text>>("host(ip_address)")))
        .load::<(bool, Option<String>)>(&mut conn)
        .await
        .expect("auth events")
        .into_iter()
        .filter(|(_, ip)| ip.as_deref() == Some(address))
        .collect()
}

#[tokio::test]
async fn a_login_flood_from_one_address_locks_out_neither_the_admin_nor_the_gateway() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::admin::create_admin(&pool, ADMIN, PASSWORD).await.expect("create admin"));
    let secret = phoenix_auth::service_clients::create_or_rotate(&pool, "gateway", &["scans:process".to_owned()])
        .await
        .expect("service client");
    let (gw, shutdown) = gateway(&app).await;
    let channel: Channel = phoenix_tests::app::connect(gw).await;
    let started = Instant::now();

    // 1,000 bad logins for unknown emails from one address, 8 at a time. Every one is
    // refused; past the limits (100 per address at auth, 100 at once at the gateway) they
    // are throttled before any hashing.
    let codes: Vec<Code> = futures::stream::iter(0..1000)
        .map(|i| {
            let mut client = AuthServiceClient::new(channel.clone());
            async move {
                let request = from(login_request(&format!("ghost-{i}@flood.example"), "Wrong-Pass-1"), ATTACKER);
                client.login(request).await.expect_err("unknown email").code()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let exhausted = codes.iter().filter(|c| **c == Code::ResourceExhausted).count();
    let refused = codes.iter().filter(|c| **c == Code::Unauthenticated).count();
    assert_eq!(exhausted + refused, 1000, "only refusals: {codes:?}");
    assert!(exhausted >= 800, "the flood was throttled ({exhausted} of 1000)");
    assert!(refused <= 100 + 8, "at most the per-address limit (plus those in flight) was checked ({refused})");
    let flood_took = started.elapsed();

    // The attacker is throttled, and cannot escape by naming another address itself.
    let mut attacker = AuthServiceClient::new(channel.clone());
    let mut spoofed = from(login_request(ADMIN, PASSWORD), ATTACKER);
    let forged = ForwardingKey::from_secret(b"not the deployment's forwarding secret!!");
    let value = forged.sign("192.0.2.55".parse().expect("ip"), std::time::SystemTime::now());
    spoofed.metadata_mut().insert(client_addr::HEADER, value.parse().expect("ascii"));
    let status = attacker.login(spoofed).await.expect_err("still throttled");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.get_error_details().retry_info().is_some());

    // The admin, from another address through the same gateway.
    let mut admin = AuthServiceClient::new(channel.clone());
    let tokens = admin.login(from(login_request(ADMIN, PASSWORD), "203.0.113.9")).await.expect("admin logs in");
    assert!(tokens.into_inner().tokens.is_some());

    // A flood straight from the gateway's own address (no forwarded header): 150 failures,
    // past the per-address limit, then the gateway's credential exchange from that same
    // address still succeeds (its own bucket, per client id).
    let mut direct = auth_client(&app).await;
    let mut direct_throttled = 0;
    for i in 0..150 {
        let status = direct.login(login_request(&format!("direct-{i}@flood.example"), "Wrong-Pass-1")).await;
        if status.expect_err("unknown email").code() == Code::ResourceExhausted {
            direct_throttled += 1;
        }
    }
    assert!(direct_throttled >= 49, "the direct flood was throttled too ({direct_throttled})");
    let auth_url = format!("http://{}", app.addr(Domain::Auth));
    let renewal = ShutdownToken::new();
    let credentials =
        phoenix_gateway::auth::ClientCredentials::start(&auth_url, "gateway".into(), secret.clone(), renewal.clone())
            .await
            .expect("the gateway's service credential exchange is not throttled by failed logins");
    assert!(phoenix_gateway::auth::TokenSource::token(&*credentials).is_some());
    renewal.cancel();
    // … and through the gateway, from the attacker's address, too.
    let exchange = pb::ExchangeClientCredentialsRequest { client_id: "gateway".into(), client_secret: secret };
    let reply = attacker.exchange_client_credentials(from(exchange, ATTACKER)).await.expect("exchange");
    assert!(!reply.into_inner().access_token.is_empty());

    // Password reset from another address is not blocked; from the attacker's it is.
    let start = pb::StartPasswordResetRequest { email: ADMIN.into() };
    admin.start_password_reset(from(start, "203.0.113.10")).await.expect("reset starts");
    let confirm = || pb::ConfirmPasswordResetRequest { token: "x".repeat(43), new_password: "Another-Horse-8".into() };
    let status = admin.confirm_password_reset(from(confirm(), "203.0.113.10")).await.expect_err("bogus token");
    assert_eq!(status.code(), Code::InvalidArgument, "judged, not throttled: {status:?}");
    let status = attacker.confirm_password_reset(from(confirm(), ATTACKER)).await.expect_err("throttled");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The audit trail names the real addresses.
    let admin_rows = logins_from("203.0.113.9", &app).await;
    assert_eq!(admin_rows, vec![(true, Some("203.0.113.9".to_owned()))]);
    let attacker_rows = logins_from(ATTACKER, &app).await;
    assert!(attacker_rows.len() >= refused && attacker_rows.iter().all(|(ok, _)| !ok), "{}", attacker_rows.len());
    let gateway_ip: IpAddr = "127.0.0.1".parse().expect("ip");
    assert!(logins_from(&gateway_ip.to_string(), &app).await.len() >= 150, "the direct flood is the loopback's");
    shutdown.cancel();
    eprintln!("flood of 1000 through the gateway: {flood_took:?}; whole test {:?}", started.elapsed());
}
