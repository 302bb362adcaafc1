//! CORS for browsers on other origins (`PHOENIX_CORS_ORIGINS`): only the listed origins,
//! only what grpc-web needs. Credentials (cookies) are never allowed: the dashboard sends
//! its token in the `authorization` header, so no origin can make a browser call with a
//! user's ambient credentials. An empty list means same-origin only (the dashboard the
//! gateway serves itself needs no CORS).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a grpc-web client sends.
pub const ALLOWED_HEADERS: [&str; 5] = ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"];

/// Response headers a grpc-web client must read (the status of a call is in them).
pub const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for exactly `origins` (validated by the configuration: exact origins,
/// never `*`). Preflight requests are answered here; a refused origin gets no
/// `access-control-allow-origin`, so the browser blocks the call.
pub fn layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| {
            anyhow::ensure!(!o.contains('*'), "CORS origin {o:?}: wildcards are not allowed");
            HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("CORS origin {o:?} is not a valid header value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::GET])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(MAX_AGE))
}
