//! The gateway as the browsers' single entry point: a real gateway in front of real domain
//! services (TestApp), called from outside over raw HTTP/1.1 (grpc-web, binary and base64
//! text, framed by hand) and over HTTP/2 with tonic clients. Covers forwarding (unary and a
//! server stream), reflection, unknown services, a domain that is down, CORS, security
//! headers, the size limit, the rate limit and the embedded dashboard.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use phoenix_common::authz::TokenVerifier;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::web::{RateLimit, WebOptions};
use phoenix_proto::auth::v1 as auth;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{admin_token, bearer};
use prost::Message;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic_health::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::StatusExt as _;

const GRPC_WEB: &str = "application/grpc-web+proto";
const GRPC_WEB_TEXT: &str = "application/grpc-web-text";
const ORIGIN: &str = "https://board.school.example";

/// A gateway on an ephemeral port forwarding to the app's domains; domains the app does
/// not run point at a closed port (down).
struct Gateway {
    addr: SocketAddr,
    shutdown: ShutdownToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    async fn start(app: &TestApp, running: &[Domain], tweak: impl FnOnce(&mut WebOptions)) -> Self {
        let down = closed_port().await;
        let upstreams = Domain::ALL
            .iter()
            .map(|&d| {
                let addr = if running.contains(&d) { app.addr(d) } else { down };
                (d, format!("http://{addr}"))
            })
            .collect();
        let mut options = WebOptions::new(upstreams);
        options.verifier = Some(Arc::new(TokenVerifier::new(app.db.pool().await)));
        tweak(&mut options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = ShutdownToken::new();
        let task = tokio::spawn(phoenix_gateway::web::serve(listener, options, shutdown.clone()));
        Self { addr, shutdown, task }
    }

    /// An HTTP/2 gRPC channel to the gateway.
    async fn channel(&self) -> tonic::transport::Channel {
        phoenix_tests::app::connect(self.addr).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("gateway task").expect("gateway stops cleanly");
    }
}

/// A local port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// One HTTP/1.1 request on a fresh connection (as a browser's fetch would send it).
async fn http1(addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Incoming> {
    http1_from([127, 0, 0, 1], addr, request).await
}

/// [`http1`] from the loopback address `source` (another client address on this machine).
async fn http1_from(source: [u8; 4], addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Incoming> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind the source address");
    let stream = socket.connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("HTTP/1.1 response")
}

/// A gRPC frame around `message` (flag 0, big-endian length).
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0];
    out.extend((body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

/// A grpc-web POST of `message` to `path`; `text` sends and accepts base64.
fn grpc_web(path: &str, message: &impl Message, text: bool, token: Option<&str>) -> Request<Full<Bytes>> {
    let body = frame(message);
    let (content_type, body) = if text {
        (GRPC_WEB_TEXT, base64::engine::general_purpose::STANDARD.encode(body).into_bytes())
    } else {
        (GRPC_WEB, body)
    };
    let mut builder = Request::post(path)
        .header(header::HOST, "gateway.test")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, content_type)
        .header("x-grpc-web", "1")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Full::new(Bytes::from(body))).expect("request")
}

/// A grpc-web response body split into its messages and its trailers.
#[derive(Debug, Default)]
struct Decoded {
    messages: Vec<Bytes>,
    trailers: Vec<(String, String)>,
}

impl Decoded {
    fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Base64 text as tonic-web writes it: each chunk encoded (and padded) on its own.
fn decode_text(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for quad in text.chunks(4) {
        pending.extend_from_slice(quad);
        if quad.contains(&b'=') {
            out.extend(base64::engine::general_purpose::STANDARD.decode(&pending).expect("base64"));
            pending.clear();
        }
    }
    out.extend(base64::engine::general_purpose::STANDARD.decode(&pending).expect("base64"));
    out
}

/// Splits complete grpc-web frames off the front of `buf`.
fn take_frames(buf: &mut Vec<u8>, into: &mut Decoded) {
    loop {
        if buf.len() < 5 {
            return;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            return;
        }
        let flag = buf[0];
        let payload: Vec<u8> = buf.drain(..5 + len).skip(5).collect();
        if flag & 0x80 != 0 {
            let text = String::from_utf8(payload).expect("trailers are text");
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once(':').expect("name:value");
                into.trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        } else {
            into.messages.push(Bytes::from(payload));
        }
    }
}

/// The whole grpc-web body of `response`, decoded.
async fn decode_body(response: Response<Incoming>, text: bool) -> Decoded {
    let raw = response.into_body().collect().await.expect("body").to_bytes();
    let mut buf = if text { decode_text(&raw) } else { raw.to_vec() };
    let mut decoded = Decoded::default();
    take_frames(&mut buf, &mut decoded);
    assert!(buf.is_empty(), "a partial frame is left: {buf:?}");
    decoded
}

/// The gRPC status of a grpc-web answer: its trailers, or its headers (trailers-only).
fn grpc_status<B>(response: &Response<B>, decoded: Option<&Decoded>) -> Option<String> {
    decoded
        .and_then(|d| d.trailer("grpc-status").map(str::to_owned))
        .or_else(|| response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned))
}

fn assert_security_headers<B>(response: &Response<B>, what: &str) {
    let h = response.headers();
    assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()), Some(&b"nosniff"[..]), "{what}");
    assert_eq!(h.get(header::REFERRER_POLICY).map(|v| v.as_bytes()), Some(&b"no-referrer"[..]), "{what}");
    assert_eq!(h.get(header::X_FRAME_OPTIONS).map(|v| v.as_bytes()), Some(&b"DENY"[..]), "{what}");
    let csp = h.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.starts_with("default-src 'self'"), "{what}: {csp:?}");
}

fn header<B>(response: &Response<B>, name: impl header::AsHeaderName) -> &str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn a_grpc_web_unary_call_is_forwarded_in_binary_and_text() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth], |_| {}).await;
    let (admin, token) = admin_token(&app).await;
    let path = "/phoenix.auth.v1.AuthService/WhoAmI";

    for text in [false, true] {
        let response = http1(gateway.addr, grpc_web(path, &auth::WhoAmIRequest {}, text, Some(&token))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            if text { "application/grpc-web-text+proto" } else { GRPC_WEB }
        );
        assert_security_headers(&response, "grpc-web answer");
        assert_eq!(header(&response, header::CACHE_CONTROL), "no-store");
        let headers = response.headers().clone();
        let decoded = decode_body(response, text).await;
        assert_eq!(decoded.messages.len(), 1, "{decoded:?} {headers:?}");
        let me = auth::WhoAmIResponse::decode(decoded.messages[0].clone()).expect("WhoAmIResponse");
        assert_eq!(me.account.map(|a| a.id), Some(admin), "text = {text}");
        assert!(me.roles.contains(&"admin".to_owned()));
        assert_eq!(decoded.trailer("grpc-status"), Some("0"), "{decoded:?}");
    }

    // The authorization header passes unchanged: without it the service refuses.
    let response = http1(gateway.addr, grpc_web(path, &auth::WhoAmIRequest {}, false, None)).await;
    let status = grpc_status(&response, None);
    let decoded = decode_body(response, false).await;
    assert_eq!(status.or_else(|| decoded.trailer("grpc-status").map(str::to_owned)).as_deref(), Some("16"));

    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_server_stream_delivers_each_message_as_it_happens() {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let gateway = Gateway::start(&app, &[Domain::Users], |_| {}).await;
    let users = Domain::Users.grpc_service();
    let watch = HealthCheckRequest { service: users.to_owned() };
    let response = http1(gateway.addr, grpc_web("/grpc.health.v1.Health/Watch", &watch, false, None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, header::CONTENT_TYPE), GRPC_WEB);

    // Read the chunked HTTP/1.1 body frame by frame while the domain's health changes.
    let mut body = response.into_body();
    let mut buf = Vec::new();
    let mut decoded = Decoded::default();
    let health = app.health(Domain::Users);
    let expected = [ServingStatus::Serving, ServingStatus::NotServing, ServingStatus::Serving];
    for (i, status) in expected.iter().enumerate() {
        while decoded.messages.len() <= i {
            let frame = body.frame().await.expect("the stream stays open").expect("a frame");
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                take_frames(&mut buf, &mut decoded);
            }
        }
        let message = HealthCheckResponse::decode(decoded.messages[i].clone()).expect("HealthCheckResponse");
        assert_eq!(message.status, *status as i32, "message {i}");
        if let Some(next) = expected.get(i + 1) {
            health.set_service_status(users, *next).await;
        }
    }
    assert!(decoded.trailers.is_empty(), "the stream is still open");
    drop(body);

    // The gateway's own health is answered by the gateway (no domain named).
    let mut client = HealthClient::new(gateway.channel().await);
    for service in ["", phoenix_gateway::GATEWAY_HEALTH_NAME] {
        let reply = client.check(HealthCheckRequest { service: service.into() }).await.expect("gateway health");
        assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32, "{service:?}");
    }

    // Over HTTP/2 as well; and a gateway shutting down ends open streams with UNAVAILABLE
    // (clients reconnect elsewhere) instead of being held open by them.
    let mut stream = client.watch(watch).await.expect("watch via HTTP/2").into_inner();
    let first = stream.message().await.expect("first message").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    gateway.shutdown.cancel();
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("shutting down"), "{ended:?}");
    gateway.task.await.expect("gateway task").expect("the gateway drains with a stream open");
    app.stop().await;
}

#[tokio::test]
async fn plain_grpc_clients_use_the_gateway_too() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(&[Domain::Auth, Domain::Users]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth, Domain::Users], |_| {}).await;
    let (admin, token) = admin_token(&app).await;

    let mut auth_client = AuthServiceClient::new(gateway.channel().await);
    let me = auth_client.who_am_i(bearer(auth::WhoAmIRequest {}, &token)).await.expect("WhoAmI via the gateway");
    assert_eq!(me.into_inner().account.map(|a| a.id), Some(admin));
    // Errors of the domain come back as they are (details included).
    let mut users = phoenix_proto::users::v1::users_service_client::UsersServiceClient::new(gateway.channel().await);
    let missing = users
        .get_student(bearer(phoenix_proto::users::v1::GetStudentRequest { id: 999_999 }, &token))
        .await
        .expect_err("no such student");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    // Reflection at the gateway lists every Phoenix service.
    let mut reflection = ServerReflectionClient::new(gateway.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("reflection").into_inner();
    let reply = stream.message().await.expect("reply").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {:?}", reply.message_response);
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for domain in Domain::ALL {
        assert!(names.contains(&domain.grpc_service().to_owned()), "{domain} missing in {names:?}");
    }

    // An unknown service is UNIMPLEMENTED at the gateway.
    let mut grpc = tonic::client::Grpc::new(gateway.channel().await);
    grpc.ready().await.expect("ready");
    let unknown = grpc
        .unary::<_, HealthCheckResponse, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/phoenix.nope.v1.NopeService/Get"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::Unimplemented, "{unknown:?}");
    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_domain_that_is_down_is_unavailable_and_named() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth], |_| {}).await;
    let (_, token) = admin_token(&app).await;

    let mut users = phoenix_proto::users::v1::users_service_client::UsersServiceClient::new(gateway.channel().await);
    let err = users
        .get_student(bearer(phoenix_proto::users::v1::GetStudentRequest { id: 1 }, &token))
        .await
        .expect_err("users is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("users service"), "{err:?}");

    // The same for a browser, and the domain's health through the gateway.
    let response = http1(
        gateway.addr,
        grpc_web(
            "/phoenix.users.v1.UsersService/GetStudent",
            &phoenix_proto::users::v1::GetStudentRequest { id: 1 },
            false,
            Some(&token),
        ),
    )
    .await;
    assert_eq!(grpc_status(&response, None).as_deref(), Some("14"));
    let health = HealthClient::new(gateway.channel().await)
        .check(HealthCheckRequest { service: Domain::Users.grpc_service().into() })
        .await
        .expect_err("users is down");
    assert_eq!(health.code(), Code::Unavailable);
    // Other domains are unaffected.
    let mut auth_client = AuthServiceClient::new(gateway.channel().await);
    auth_client.who_am_i(bearer(auth::WhoAmIRequest {}, &token)).await.expect("auth is up");
    gateway.stop().await;
    app.stop().await;
}

fn preflight(origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/phoenix.auth.v1.AuthService/WhoAmI")
        .header(header::HOST, "gateway.test")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type,x-grpc-web,x-user-agent")
        .body(Full::default())
        .expect("request")
}

#[tokio::test]
async fn cors_answers_preflights_for_listed_origins_only() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth], |o| o.cors_origins = vec![ORIGIN.to_owned()]).await;

    let allowed = http1(gateway.addr, preflight(ORIGIN)).await;
    assert!(allowed.status().is_success(), "{:?}", allowed.status());
    assert_eq!(header(&allowed, header::ACCESS_CONTROL_ALLOW_ORIGIN), ORIGIN);
    let allow_headers = header(&allowed, header::ACCESS_CONTROL_ALLOW_HEADERS).to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
        assert!(allow_headers.contains(h), "{h} not allowed: {allow_headers}");
    }
    assert!(header(&allowed, header::ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    assert!(allowed.headers().get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none(), "never credentials");
    assert_security_headers(&allowed, "preflight");

    let refused = http1(gateway.addr, preflight("https://evil.example")).await;
    assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{:?}", refused.headers());

    // The call itself exposes the gRPC status headers to the listed origin.
    let (_, token) = admin_token(&app).await;
    let mut call = grpc_web("/phoenix.auth.v1.AuthService/WhoAmI", &auth::WhoAmIRequest {}, false, Some(&token));
    call.headers_mut().insert(header::ORIGIN, ORIGIN.parse().expect("value"));
    let response = http1(gateway.addr, call).await;
    assert_eq!(header(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), ORIGIN);
    let exposed = header(&response, header::ACCESS_CONTROL_EXPOSE_HEADERS).to_ascii_lowercase();
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
    gateway.stop().await;

    // Without configured origins, no origin is allowed (same-origin only).
    let same_origin_only = Gateway::start(&app, &[Domain::Auth], |_| {}).await;
    let response = http1(same_origin_only.addr, preflight(ORIGIN)).await;
    assert!(response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    same_origin_only.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_served_with_security_headers() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth], |_| {}).await;
    let get =
        |path: &str| Request::get(path).header(header::HOST, "gateway.test").body(Full::default()).expect("request");

    let page = http1(gateway.addr, get("/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&page, header::CACHE_CONTROL), "no-cache", "the page is revalidated on every load");
    assert!(!header(&page, header::ETAG).is_empty());
    assert_security_headers(&page, "page");
    let html = page.into_body().collect().await.expect("body").to_bytes();
    let embedded = phoenix_gateway::assets::find("/").expect("index.html is embedded");
    assert_eq!(&html[..], embedded.bytes);
    assert!(String::from_utf8_lossy(&html).to_ascii_lowercase().contains("<html"));

    let missing = http1(gateway.addr, get("/no/such/file.js")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "404");
    assert_eq!(header(&missing, header::CACHE_CONTROL), "no-store");
    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let gateway = Gateway::start(&app, &[Domain::Auth], |o| o.max_request_bytes = 1024).await;
    let big_login = auth::LoginRequest { email: "a@b.example".into(), password: "x".repeat(2000) };

    // grpc-web with a declared length: RESOURCE_EXHAUSTED before anything runs.
    let response = http1(gateway.addr, grpc_web("/phoenix.auth.v1.AuthService/Login", &big_login, false, None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(grpc_status(&response, None).as_deref(), Some("8"));
    assert_eq!(header(&response, header::CONTENT_TYPE), GRPC_WEB);
    assert_security_headers(&response, "too large");

    // gRPC over HTTP/2 (no declared length): counted as it arrives.
    let mut client = AuthServiceClient::new(gateway.channel().await);
    let err = client.login(big_login.clone()).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Within the limit the call goes through (and fails on its merits).
    let small = client
        .login(auth::LoginRequest { email: "nobody@b.example".into(), password: "Wrong-Horse-9".into() })
        .await
        .expect_err("no such account");
    assert_eq!(small.code(), Code::Unauthenticated, "{small:?}");

    // Plain HTTP: 413.
    let post = Request::post("/")
        .header(header::HOST, "gateway.test")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(vec![b'x'; 4096])))
        .expect("request");
    assert_eq!(http1(gateway.addr, post).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_resource_exhausted_with_retry_info_after_the_burst() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    // One token per 1000 s: the burst is all a client gets within the test.
    let gateway = Gateway::start(&app, &[Domain::Auth], |o| o.rate = RateLimit { per_second: 0.001, burst: 3 }).await;
    let check = || HealthCheckRequest { service: phoenix_gateway::GATEWAY_HEALTH_NAME.into() };

    let mut client = HealthClient::new(gateway.channel().await);
    for i in 0..3 {
        client.check(check()).await.unwrap_or_else(|e| panic!("call {i} is within the burst: {e:?}"));
    }
    let refused = client.check(check()).await.expect_err("burst used up");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused.get_error_details().retry_info().cloned().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a retry delay");
    assert!(delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(1000), "{delay:?}");

    // A browser from the same address is refused the same way, in grpc-web.
    let response = http1(gateway.addr, grpc_web("/grpc.health.v1.Health/Check", &check(), false, None)).await;
    assert_eq!(grpc_status(&response, None).as_deref(), Some("8"));
    assert!(response.headers().contains_key("grpc-status-details-bin"));

    // Another address has its own bucket.
    let other =
        http1_from([127, 0, 0, 2], gateway.addr, grpc_web("/grpc.health.v1.Health/Check", &check(), false, None)).await;
    let decoded = decode_body(other, false).await;
    assert_eq!(decoded.trailer("grpc-status"), Some("0"), "{decoded:?}");

    // An invented token buys no new bucket; a verified account has its own.
    let forged = client.check(bearer(check(), "not.a.token")).await.expect_err("still this address");
    assert_eq!(forged.code(), Code::ResourceExhausted);
    let (_, token) = admin_token(&app).await;
    client.check(bearer(check(), &token)).await.expect("the account's own bucket");
    gateway.stop().await;
    app.stop().await;
}
