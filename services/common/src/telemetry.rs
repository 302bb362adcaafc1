//! Logging and tracing: a `tracing` subscriber writing pretty or JSON lines, plus OTLP trace
//! export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (off otherwise, so nothing waits on a
//! collector that is not there).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Flushes and stops trace export when dropped; keep it alive for the life of the process.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").field("otlp", &self.provider.is_some()).finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Flush spans still in the batch; an unreachable collector must not block exit for long.
            let _ = provider.shutdown();
        }
    }
}

fn env_filter() -> EnvFilter {
    // `RUST_LOG` wins. The default keeps noisy dependencies quiet; the embedded broker
    // (rumqttd) logs every ordinary client disconnect as an error, so it is off unless asked
    // for (`RUST_LOG=info,rumqttd=info`).
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,rumqttd=off,rumqttc=warn"))
}

/// Installs the global subscriber. Calling it again (tests) keeps the first one.
pub fn init(service_name: &str, format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<TelemetryGuard> {
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let mut layers: Vec<Boxed> = Vec::new();
    let fmt: Boxed = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).with_filter(env_filter()).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(env_filter())
            .boxed(),
    };
    layers.push(fmt);

    let mut provider = None;
    if let Some(endpoint) = otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
        let p = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
            .build();
        let tracer = p.tracer("phoenix");
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(env_filter()).boxed());
        provider = Some(p);
    }

    // A second init (several in-process servers in one test binary) is not an error.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(TelemetryGuard { provider })
}
