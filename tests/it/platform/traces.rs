//! Traces across processes (docs/observability.md): the gateway bridge in a process of its
//! own (`fault-gateway`) and the active service in this one both export to a real OTLP/gRPC
//! receiver (an in-test collector on `opentelemetry-proto`'s TraceService); one scan is one
//! trace — the gateway's `scan` span is the parent of the active service's `rpc` span of
//! ProcessScan, carried by the W3C `traceparent` header over the real gRPC hop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use phoenix_common::domain::Domain;
use phoenix_reader_protocol::{Code, Outcome};
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school;
use tokio::io::AsyncBufReadExt as _;

const WAIT: Duration = Duration::from_secs(20);

/// One exported span: (service.name, span name, trace id, span id, parent span id, rpc.method).
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    method: Option<String>,
}

#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| text(&a.value))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let method = span.attributes.iter().find(|a| a.key == "rpc.method").and_then(|a| text(&a.value));
                spans.push(Exported {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    method,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The collector on an ephemeral port: its URL and what it received.
async fn collector() -> (String, Collector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
    let addr = listener.local_addr().expect("addr");
    let collector = Collector::default();
    let server = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), collector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scan_is_one_trace_across_the_gateway_process_and_the_active_service() {
    let (endpoint, collector) = collector().await;
    // This process (the active service) exports as `phoenix-tests`; first, so the global
    // subscriber is the one with OTLP export.
    let guard =
        phoenix_common::telemetry::init("phoenix-tests", phoenix_common::config::LogFormat::Pretty, Some(&endpoint))
            .expect("telemetry");
    let mut stack = ReaderStack::spawn(1).await;
    let s = stack.school.clone();
    school::start_session(&mut stack.active, s.rooms[0], s.activity, s.staff).await;
    // The process takes over the in-process bridge's persistent session.
    stack.stop_bridge().await;
    let token =
        phoenix_tests::auth::mint_token(&stack.app, "service:gateway", &[], &["scans:process".to_owned()]).await;
    let mut gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_fault-gateway"))
        .env("DATABASE_URL", stack.app.db.url())
        .env("MQTT_URL", &stack.mqtt_url)
        .env("PHOENIX_MQTT_PREFIX", &stack.prefix)
        .env("PHOENIX_MQTT_CLIENT_ID", &stack.client_id)
        .env("PHOENIX_ACTIVE_URL", format!("http://{}", stack.app.addr(Domain::Active)))
        .env("PHOENIX_DEVICE_KEY_SECRET", phoenix_tests::app::TEST_DEVICE_KEY_SECRET)
        .env("PHOENIX_DB_POOL_SIZE", "2")
        .env("PHOENIX_TEST_GATEWAY_TOKEN", &token)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("RUST_LOG", "warn,phoenix_gateway=info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the fault-gateway process");
    let mut lines = tokio::io::BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let started = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("bridge started") {
                return true;
            }
        }
        false
    });
    assert!(started.await.expect("the gateway process starts in time"), "the gateway process started its bridge");

    let mut reader = stack.reader(&s.readers[0]).await;
    let scan = reader.sign("trace-1", &s.pupils[0].tag, Utc::now() - chrono::Duration::seconds(5));
    let result = reader.send(&scan, WAIT).await.expect("a result").expect_result().clone();
    assert_eq!((result.outcome, result.code), (Outcome::CheckedIn, Code::Ok));

    // SIGTERM: the process stops its bridge and flushes its spans on the way out.
    let pid = gateway.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(status.success());
    let exited = tokio::time::timeout(WAIT, gateway.wait()).await.expect("the gateway exits").expect("wait");
    assert!(exited.success(), "the gateway process stopped cleanly: {exited}");
    // This process's spans: flushed when the guard goes (blocking, so off the runtime's threads).
    tokio::task::spawn_blocking(move || drop(guard)).await.expect("flush");

    let spans = collector.spans.lock().expect("collector lock").clone();
    let scan_span = spans
        .iter()
        .find(|s| s.service == "fault-gateway" && s.name == "scan")
        .unwrap_or_else(|| panic!("the gateway process exported its scan span: {spans:#?}"));
    let rpc = spans
        .iter()
        .find(|s| {
            s.service == "phoenix-tests"
                && s.name == "rpc"
                && s.method.as_deref() == Some("/phoenix.active.v1.ActiveService/ProcessScan")
        })
        .unwrap_or_else(|| panic!("the active service exported ProcessScan's rpc span: {spans:#?}"));
    assert_eq!(rpc.trace_id, scan_span.trace_id, "one scan, one trace, across two processes");
    assert_eq!(rpc.parent_span_id, scan_span.span_id, "ProcessScan runs as a child of the gateway's scan span");
    assert_ne!(scan_span.trace_id, vec![0; 16]);
    stack.stop().await;
}
