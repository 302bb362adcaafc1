//! The browser-facing server, the single entry point for browsers and other clients: one
//! port, HTTP/1.1 and HTTP/2.
//!
//! ```text
//! request ─► security headers ─► CORS (preflight answered) ─┬─ page/assets (assets.rs)
//!                                                          └─ API: size limit (limits.rs)
//!                                                                 rate limit (rate.rs)
//!                                                                 grpc-web ⇄ gRPC (tonic-web)
//!                                                                 route.rs: reflection, health,
//!                                                                   forward.rs ─► domain
//! ```
//!
//! API calls are gRPC (`application/grpc`, e.g. grpcurl, tonic) or grpc-web
//! (`application/grpc-web[-text]`, browsers); everything else is the dashboard.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, header};
use phoenix_common::authz::TokenVerifier;
use phoenix_common::domain::Domain;
use phoenix_common::server::{ServiceRoutes, ShutdownToken};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tonic_health::ServingStatus;
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};

pub use crate::client_addr::ClientAddr;
use crate::grpc::{Handle, Handler, Protocol, error_response};
use crate::limits::BodyLimit;
pub use crate::rate::RateLimit;
use crate::rate::{ClientKey, RateLimiter};
use crate::route::{ApiService, Catalog};
use crate::{assets, cors, forward, headers};

/// Default largest request body (1 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// What the gateway serves and how it guards it.
#[derive(Clone)]
pub struct WebOptions {
    /// Where each domain is reached (`http://host:port`).
    pub upstreams: Vec<(Domain, String)>,
    /// Origins allowed to call cross-origin (exact; empty = same-origin only).
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_request_bytes: u64,
    /// Per-client rate limit on API calls.
    pub rate: RateLimit,
    /// Verifies bearer tokens so the rate limit can key callers by account (else by IP).
    pub verifier: Option<Arc<TokenVerifier>>,
    /// The real client address (trusted proxies) and how the services learn it.
    pub client_addr: ClientAddr,
}

impl std::fmt::Debug for WebOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebOptions")
            .field("upstreams", &self.upstreams)
            .field("cors_origins", &self.cors_origins)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl WebOptions {
    /// Forwarding to `upstreams`, no cross-origin callers, the default size limit, no rate
    /// limit.
    pub fn new(upstreams: Vec<(Domain, String)>) -> Self {
        Self {
            upstreams,
            cors_origins: Vec::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            rate: RateLimit::OFF,
            verifier: None,
            client_addr: ClientAddr::default(),
        }
    }
}

/// Serves the gateway on `listener` until `shutdown` is cancelled; its own health turns
/// NOT_SERVING first, open forwarded streams end, then in-flight calls drain.
pub async fn serve(listener: TcpListener, options: WebOptions, shutdown: ShutdownToken) -> anyhow::Result<()> {
    let (routes, health) = ServiceRoutes::listing_all(&[crate::GATEWAY_HEALTH_NAME])?.into_serving().await;
    let catalog = Arc::new(Catalog::from_descriptors(phoenix_proto::FILE_DESCRIPTOR_SET)?);
    let upstreams = forward::Upstreams::new(&options.upstreams, shutdown.clone())?;
    let api = tonic_web::GrpcWebLayer::new().layer(Handler(ApiService::new(routes, upstreams, catalog)));
    let gateway = Gateway(Arc::new(Inner {
        api,
        limit: BodyLimit(options.max_request_bytes),
        limiter: RateLimiter::new(options.rate, RateLimiter::<ClientKey>::MAX_CLIENTS),
        verifier: options.verifier,
        client_addr: options.client_addr,
    }));
    let service = ServiceBuilder::new()
        .map_response(headers::secure::<Body>)
        .layer(cors::layer(&options.cors_origins)?)
        .service(Handler(gateway));
    let drain = async move {
        shutdown.cancelled().await;
        health.set_service_status(crate::GATEWAY_HEALTH_NAME, ServingStatus::NotServing).await;
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        .serve_with_incoming_shutdown(service, phoenix_common::server::incoming(listener), drain)
        .await?;
    Ok(())
}

type Api = tonic_web::GrpcWebService<Handler<ApiService>>;

struct Inner {
    api: Api,
    limit: BodyLimit,
    limiter: RateLimiter,
    verifier: Option<Arc<TokenVerifier>>,
    client_addr: ClientAddr,
}

/// Splits page requests from API calls and guards the API.
#[derive(Clone)]
struct Gateway(Arc<Inner>);

impl Gateway {
    async fn respond(self, mut request: Request<Body>) -> Response<Body> {
        let inner = &*self.0;
        let protocol = Protocol::of(request.headers());
        if !protocol.is_api() {
            if inner.limit.declared_too_large(&request) {
                return too_large();
            }
            return assets::respond(&request);
        }
        if inner.limit.declared_too_large(&request) {
            return error_response(protocol, inner.limit.status());
        }
        let peer = request.extensions().get::<TcpConnectInfo>().and_then(|c| c.remote_addr()).map(|a| a.ip());
        let client = inner.client_addr.resolve(peer, request.headers());
        inner.client_addr.stamp(request.headers_mut(), client);
        if !inner.limiter.is_off()
            && let Err(status) = self.take_token(request.headers(), client).await
        {
            return error_response(protocol, status);
        }
        let (request, overflow) = inner.limit.count(request);
        let response = match inner.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if overflow.happened() {
            return error_response(protocol, inner.limit.status());
        }
        response
    }

    /// One token from the caller's bucket, or RESOURCE_EXHAUSTED with RetryInfo.
    async fn take_token(&self, headers: &http::HeaderMap, peer: Option<IpAddr>) -> Result<(), tonic::Status> {
        let inner = &*self.0;
        let key = ClientKey::of(headers, peer, inner.verifier.as_deref()).await;
        inner.limiter.check(key, Instant::now()).map_err(|retry_after| {
            let limit = inner.limiter.limit();
            tracing::debug!(retry_after_ms = retry_after.as_millis() as u64, "rate limited");
            tonic::Status::from(phoenix_common::Error::ResourceExhausted {
                message: format!(
                    "too many requests: at most {} per second per client (bursts of {}); retry in {} ms",
                    limit.per_second,
                    limit.burst,
                    retry_after.as_millis().max(1)
                ),
                retry_after,
            })
        })
    }
}

fn too_large() -> Response<Body> {
    let mut r =
        Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from_static(b"request body too large\n"))));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

impl Handle for Gateway {
    fn handle(self, request: Request<Body>) -> impl Future<Output = Response<Body>> + Send {
        self.respond(request)
    }
}
