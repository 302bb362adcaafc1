//! W3C trace context (`traceparent`, `tracestate`) across processes (docs/observability.md):
//! the gateway injects the current span's context into every call it makes
//! ([`inject`]: forwarded calls and ProcessScan), and `Authorized` continues the caller's
//! trace in its `rpc` span ([`continue_from`]), so one scan is one trace from the MQTT
//! message to the database commit.
//!
//! Both use the process's global propagator, which [`crate::telemetry::init`] sets to the W3C
//! one when OTLP export is on; without export both are no-ops (there is no trace to continue).

use opentelemetry::propagation::{Extractor, Injector};
use tonic::codegen::http::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes `span` a child of the trace context in `headers`, if they carry one.
pub fn continue_from(span: &tracing::Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    use opentelemetry::trace::TraceContextExt as _;
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes the context of the current span into `headers` (replacing a caller's own).
pub fn inject(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeadersMut(headers)));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}
