//! Statuses through the gateway: a domain's trailers-only answer (grpc-status in the HEADERS
//! frame, e.g. UNAUTHENTICATED before a stream starts) reaches the caller as the domain sent
//! it, over gRPC (tonic and python grpcio, HTTP/2) and grpc-web (HTTP/1.1, binary and text),
//! for unary calls and server streams; and reflection on a domain port lists only what that
//! port serves.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::web::WebOptions;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::TestApp;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::Code;

/// A gateway on an ephemeral port in front of the app's active domain.
struct Gateway {
    addr: SocketAddr,
    shutdown: ShutdownToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    async fn start(app: &TestApp) -> Self {
        let options = WebOptions::new(vec![(Domain::Active, format!("http://{}", app.addr(Domain::Active)))]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = ShutdownToken::new();
        let task = tokio::spawn(phoenix_gateway::web::serve(listener, options, shutdown.clone()));
        Self { addr, shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("gateway task").expect("gateway stops cleanly");
    }
}

/// A grpc-web POST of `message` to `path` over a fresh HTTP/1.1 connection, without a
/// token: (HTTP status, grpc-status in the headers, grpc-status in the body's trailers
/// frame, number of message frames).
async fn grpc_web_without_token(
    addr: SocketAddr,
    path: &str,
    message: &impl Message,
    text: bool,
) -> (StatusCode, Option<String>, Option<String>, usize) {
    let mut framed = vec![0];
    let encoded = message.encode_to_vec();
    framed.extend((encoded.len() as u32).to_be_bytes());
    framed.extend(encoded);
    let content_type = if text { "application/grpc-web-text" } else { "application/grpc-web+proto" };
    let body = if text { base64::engine::general_purpose::STANDARD.encode(framed).into_bytes() } else { framed };
    let request = Request::post(path)
        .header(header::HOST, "gateway.test")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, content_type)
        .header("x-grpc-web", "1")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("HTTP/1.1 response");
    let status = response.status();
    let in_headers = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let raw = tokio::time::timeout(std::time::Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the answer ends (no stream left open)")
        .expect("body")
        .to_bytes();
    let mut buf = if text && !raw.is_empty() {
        base64::engine::general_purpose::STANDARD.decode(raw.as_ref()).expect("base64")
    } else {
        raw.to_vec()
    };
    let (mut in_trailers, mut messages) = (None, 0);
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        let flag = buf[0];
        let payload: Vec<u8> = buf.drain(..5 + len).skip(5).collect();
        if flag & 0x80 != 0 {
            let text = String::from_utf8(payload).expect("trailers are text");
            in_trailers = text
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("grpc-status"))
                .map(|(_, v)| v.trim().to_owned());
        } else {
            messages += 1;
        }
    }
    assert!(buf.is_empty(), "a partial frame is left: {buf:?}");
    (status, in_headers, in_trailers, messages)
}

async fn watch_without_token(addr: SocketAddr) -> tonic::Status {
    let channel = phoenix_tests::app::connect(addr).await;
    let mut client = PresenceServiceClient::new(channel);
    match client.watch_presence(pb::WatchPresenceRequest::default()).await {
        Err(status) => status,
        Ok(stream) => {
            let mut stream = stream.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("the stream ended without an error"),
                    Err(status) => break status,
                }
            }
        }
    }
}

async fn unary_without_token(addr: SocketAddr) -> tonic::Status {
    let mut client = ActiveServiceClient::new(phoenix_tests::app::connect(addr).await);
    client.get_session(pb::GetSessionRequest { id: 1 }).await.expect_err("no token")
}

#[tokio::test]
async fn a_stream_refused_before_it_starts_is_unauthenticated_through_the_gateway_as_at_the_domain() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let gateway = Gateway::start(&app).await;

    let direct = watch_without_token(app.addr(Domain::Active)).await;
    assert_eq!(direct.code(), Code::Unauthenticated, "domain port: {direct:?}");
    let through = watch_without_token(gateway.addr).await;
    assert_eq!(through.code(), Code::Unauthenticated, "gateway: {through:?}");
    assert_eq!(through.message(), direct.message(), "the domain's own message");

    let direct = unary_without_token(app.addr(Domain::Active)).await;
    let through = unary_without_token(gateway.addr).await;
    assert_eq!((direct.code(), through.code()), (Code::Unauthenticated, Code::Unauthenticated), "{through:?}");

    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn grpc_web_callers_get_the_domains_trailers_only_status_for_streams_and_unary_calls() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let gateway = Gateway::start(&app).await;
    let watch = "/phoenix.active.v1.PresenceService/WatchPresence";
    let get = "/phoenix.active.v1.ActiveService/GetSession";
    for text in [false, true] {
        let (http, headers, trailers, messages) =
            grpc_web_without_token(gateway.addr, watch, &pb::WatchPresenceRequest::default(), text).await;
        assert_eq!(http, StatusCode::OK, "text = {text}");
        assert_eq!(messages, 0, "text = {text}");
        // Trailers-only, as the domain sent it: the status in the headers, an empty body.
        assert_eq!((headers.as_deref(), trailers.as_deref()), (Some("16"), None), "WatchPresence, text = {text}");
        let (_, headers, trailers, messages) =
            grpc_web_without_token(gateway.addr, get, &pb::GetSessionRequest { id: 1 }, text).await;
        assert_eq!(messages, 0, "text = {text}");
        assert_eq!((headers.as_deref(), trailers.as_deref()), (Some("16"), None), "GetSession, text = {text}");
    }
    gateway.stop().await;
    app.stop().await;
}

/// A grpc-core client (python grpcio) reads a status only from a HEADERS or trailers frame
/// that ends the stream; a bare END_STREAM DATA frame after the headers is UNKNOWN to it
/// ("Data frame with END_STREAM flag received"), where tonic is lenient.
const GRPCIO_CALLS: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
ident = lambda b: b
watch = channel.unary_stream("/phoenix.active.v1.PresenceService/WatchPresence", request_serializer=ident, response_deserializer=ident)
get = channel.unary_unary("/phoenix.active.v1.ActiveService/GetSession", request_serializer=ident, response_deserializer=ident)
for call in (lambda: list(watch(b"", timeout=10)), lambda: get(b"\x08\x01", timeout=10)):
    try:
        call()
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name, "|", e.details())
"#;

#[tokio::test]
async fn a_grpc_core_client_reads_the_trailers_only_status_of_a_stream_and_a_unary_call_through_the_gateway() {
    let python = std::env::var("PHOENIX_PYTHON").ok().filter(|p| !p.trim().is_empty()).unwrap_or("python3".into());
    let Some(python) =
        phoenix_tests::require_tool("python3", python, "install it with scripts/lib.sh ensure_python_grpc")
    else {
        return;
    };
    let app = TestApp::spawn(&[Domain::Active]).await;
    let gateway = Gateway::start(&app).await;
    for addr in [app.addr(Domain::Active), gateway.addr] {
        let out = tokio::process::Command::new(&python)
            .args(["-c", GRPCIO_CALLS, &addr.to_string()])
            .output()
            .await
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}{stderr}");
        let codes: Vec<&str> = stdout.lines().map(|l| l.split(" |").next().unwrap_or_default()).collect();
        assert_eq!(codes, ["UNAUTHENTICATED", "UNAUTHENTICATED"], "at {addr}: {stdout}");
    }
    gateway.stop().await;
    app.stop().await;
}

/// The service names a server's reflection lists.
async fn listed_services(addr: SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let mut client = ServerReflectionClient::new(phoenix_tests::app::connect(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        client.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("reflection").into_inner();
    let reply = stream.message().await.expect("reply").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {:?}", reply.message_response);
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn reflection_on_a_domain_port_lists_only_its_services_and_the_gateway_lists_all() {
    let app = TestApp::spawn(&[Domain::Active, Domain::Users]).await;
    let standard =
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
    let expected = |own: &[&str]| {
        let mut v: Vec<String> = own.iter().chain(&standard).map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let active = listed_services(app.addr(Domain::Active)).await;
    // Exactly the services the active domain registers (its SERVERS list), nothing of users'.
    let own = phoenix::services::service_names(Domain::Active);
    assert!(own.contains(&"phoenix.active.v1.PresenceService"), "{own:?}");
    assert_eq!(active, expected(&own));
    let users = listed_services(app.addr(Domain::Users)).await;
    assert!(users.contains(&Domain::Users.grpc_service().to_owned()), "{users:?}");
    assert!(!users.iter().any(|s| s.starts_with("phoenix.active.")), "{users:?}");

    let gateway = Gateway::start(&app).await;
    let all = listed_services(gateway.addr).await;
    for domain in Domain::ALL {
        assert!(all.contains(&domain.grpc_service().to_owned()), "{domain} missing at the gateway: {all:?}");
    }
    gateway.stop().await;
    app.stop().await;
}
