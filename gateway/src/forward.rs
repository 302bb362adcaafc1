//! Forwarding gRPC calls to the domain services: one HTTP/2 channel per domain (tonic
//! `Channel`, connected lazily and re-connected by tonic), the request and response bodies
//! streamed through unchanged in both directions, headers included (`authorization` passes
//! untouched: the services authenticate).
//!
//! - A domain that cannot be reached answers UNAVAILABLE naming the domain.
//! - A trailers-only answer (`grpc-status` in the response headers, e.g. UNAUTHENTICATED
//!   before a stream starts) is forwarded trailers-only, for unary calls and streams alike.
//! - A response stream the upstream breaks off ends with UNAVAILABLE trailers rather than a
//!   reset, so a browser's grpc-web client sees a status.
//! - Every forwarded call is counted (`phoenix_gateway_forwarded_total` by domain and
//!   whether the domain was reached).
//! - On shutdown, open server streams end with UNAVAILABLE (clients reconnect, to another
//!   replica), so a draining gateway is not held open by a watcher; unary calls finish.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version, header};
use http_body::Frame;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt as _;
use tracing::Instrument as _;

/// How long connecting to a domain may take before the call is UNAVAILABLE.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on idle upstream connections detect a vanished domain under a long stream.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Request headers that belong to one connection and are never forwarded.
const HOP_BY_HOP: [header::HeaderName; 5] =
    [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE, header::HOST, header::PROXY_AUTHORIZATION];

/// The domain services the gateway forwards to.
#[derive(Clone)]
pub struct Upstreams {
    channels: HashMap<Domain, Channel>,
    shutdown: ShutdownToken,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("domains", &self.channels.keys().collect::<Vec<_>>()).finish()
    }
}

impl Upstreams {
    /// Lazily connecting channels to each domain at its URL (`http://host:port`).
    pub fn new(urls: &[(Domain, String)], shutdown: ShutdownToken) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for (domain, url) in urls {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| anyhow::anyhow!("upstream URL of {domain} ({url}): {e}"))?
                .connect_timeout(CONNECT_TIMEOUT)
                .http2_keep_alive_interval(KEEP_ALIVE)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(true);
            channels.insert(*domain, endpoint.connect_lazy());
        }
        Ok(Self { channels, shutdown })
    }

    /// Forwards `request` to `domain`. `streaming` marks a server-streaming method (ended
    /// on shutdown).
    pub async fn forward(&self, domain: Domain, request: Request<Body>, streaming: bool) -> Response<Body> {
        let Some(channel) = self.channels.get(&domain).cloned() else {
            return Status::unimplemented(format!("the gateway does not forward to the {domain} service")).into_http();
        };
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_2;
        // One span per forwarded call: it continues a caller's trace context and hands its
        // own to the domain (docs/observability.md).
        let span = tracing::info_span!("forward", rpc.method = %parts.uri.path(), %domain);
        phoenix_common::trace_context::continue_from(&span, &parts.headers);
        span.in_scope(|| phoenix_common::trace_context::inject(&mut parts.headers));
        let body = Body::new(UnknownLength(body));
        match channel.oneshot(Request::from_parts(parts, body)).instrument(span).await {
            // Trailers-only (the status in the HEADERS frame, which ends the stream): pass it
            // on as such, with no body that would end in a bare END_STREAM DATA frame
            // (a client then sees UNKNOWN instead of the domain's status).
            Ok(response) if response.headers().contains_key("grpc-status") => {
                phoenix_common::metrics::forwarded(domain.name(), "forwarded");
                response.map(|_| Body::empty())
            }
            Ok(response) => {
                phoenix_common::metrics::forwarded(domain.name(), "forwarded");
                let shutdown = streaming.then(|| self.shutdown.clone());
                response.map(|inner| Body::new(UpstreamBody::new(inner, domain, shutdown)))
            }
            Err(e) => {
                tracing::warn!(%domain, error = %e, "upstream unavailable");
                phoenix_common::metrics::forwarded(domain.name(), "unavailable");
                unavailable(domain).into_http()
            }
        }
    }
}

/// The status of a call whose domain cannot be reached.
pub fn unavailable(domain: Domain) -> Status {
    Status::unavailable(format!("the {domain} service is unavailable; try again shortly"))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by `connection` are hop-by-hop too.
    let named: Vec<header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if headers.get(header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(header::TE);
    }
}

/// A request body that does not claim a length. tonic-web passes the size of the base64
/// text on as the exact size of the decoded grpc-web-text body; HTTP/2 would send that as
/// `content-length`, and the domain would reset the stream for the shorter body.
struct UnknownLength(Body);

impl http_body::Body for UnknownLength {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// An upstream response body that always ends with a gRPC status.
struct UpstreamBody {
    inner: Body,
    domain: Domain,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    done: bool,
}

impl UpstreamBody {
    fn new(inner: Body, domain: Domain, shutdown: Option<ShutdownToken>) -> Self {
        let shutdown = shutdown.map(|t| Box::pin(t.cancelled_owned()) as Pin<Box<dyn Future<Output = ()> + Send>>);
        Self { inner, domain, shutdown, done: false }
    }

    fn end_with(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        let mut trailers = HeaderMap::new();
        match status.add_header(&mut trailers) {
            Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Err(_) => Poll::Ready(Some(Err(status))),
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(shutdown) = self.shutdown.as_mut()
            && shutdown.as_mut().poll(cx).is_ready()
        {
            return self.end_with(Status::unavailable("the gateway is shutting down; reconnect"));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                let domain = self.domain;
                tracing::warn!(%domain, code = ?e.code(), "upstream response broke off");
                self.end_with(Status::unavailable(format!("the {domain} service ended the call unexpectedly")))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.shutdown.is_none() && self.inner.is_end_stream())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_not_forwarded_but_authorization_is() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-hop".parse().expect("value"));
        headers.insert("keep-alive", "timeout=5".parse().expect("value"));
        headers.insert("x-hop", "1".parse().expect("value"));
        headers.insert(header::HOST, "gateway:8080".parse().expect("value"));
        headers.insert(header::TE, "trailers".parse().expect("value"));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("value"));
        headers.insert("x-user-agent", "grpc-web-javascript/0.1".parse().expect("value"));
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "te", "x-user-agent"]);
        assert_eq!(headers[header::AUTHORIZATION], "Bearer abc");
    }

    #[tokio::test]
    async fn an_unreachable_domain_is_unavailable_and_named() {
        // Nothing listens on port 9 of localhost (discard; refused).
        let upstreams =
            Upstreams::new(&[(Domain::Users, "http://127.0.0.1:9".into())], ShutdownToken::new()).expect("valid");
        let request = Request::builder()
            .uri("/phoenix.users.v1.UsersService/GetStudent")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .expect("request");
        let response = upstreams.forward(Domain::Users, request, false).await;
        assert_eq!(response.headers()["grpc-status"], "14");
        let message = response.headers()["grpc-message"].to_str().expect("ascii");
        assert!(message.contains("users"), "{message}");
    }
}
