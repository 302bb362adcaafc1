//! [`Authorized`]: the layer every domain server sits behind — the method's declared
//! requirement checked against the verified token, and one `rpc` span per call.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tracing::Instrument as _;

use super::{AuthContext, MethodTable, Requirement, TokenVerifier};
use crate::error::Error;

/// Checks one request against `table`: `Ok(None)` for a public method, `Ok(Some(ctx))`
/// for an authorised caller, else the status to answer with.
pub async fn authorize(
    table: MethodTable,
    verifier: &TokenVerifier,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<AuthContext>, Error> {
    let Some((_, requirement)) = table.iter().find(|(m, _)| *m == path) else {
        // Refused rather than served unchecked; the declaration test catches it first.
        return Err(Error::PermissionDenied(format!("method {path} declares no permission and is refused")));
    };
    if *requirement == Requirement::Public {
        return Ok(None);
    }
    let token = bearer_token(headers)?;
    let ctx = verifier.verify(token).await?;
    if let Requirement::Permission(p) = requirement {
        ctx.require(p)?;
    }
    Ok(Some(ctx))
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Error> {
    let missing = || Error::Unauthenticated("missing access token: send `authorization: Bearer <token>`".into());
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// A tonic server behind the authorization check. Build it with [`Authorized::new`]; add it
/// with [`crate::server::ServiceRoutes::add_service`].
pub struct Authorized<S> {
    inner: S,
    table: MethodTable,
    verifier: Arc<TokenVerifier>,
    /// `S::NAME`, for the metrics' `service` label.
    service: &'static str,
}

impl<S: Clone> Clone for Authorized<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), table: self.table, verifier: self.verifier.clone(), service: self.service }
    }
}

impl<S: NamedService> Authorized<S> {
    /// Wraps `inner`. Fails when `table` names a method of another service, or names one
    /// twice (a table is checked once, at start-up).
    pub fn new(inner: S, table: MethodTable, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        let prefix = format!("/{}/", S::NAME);
        for (i, (method, _)) in table.iter().enumerate() {
            anyhow::ensure!(
                method.strip_prefix(&prefix).is_some_and(|m| !m.is_empty() && !m.contains('/')),
                "method table of {}: {method:?} is not a method of this service",
                S::NAME
            );
            anyhow::ensure!(
                !table[..i].iter().any(|(m, _)| m == method),
                "method table of {}: {method:?} is declared twice",
                S::NAME
            );
        }
        Ok(Self { inner, table, verifier, service: S::NAME })
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authorized<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone-and-swap of tower middleware: the ready service goes into the future.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (table, verifier) = (self.table, self.verifier.clone());
        let span = rpc_span(request.uri().path());
        crate::trace_context::continue_from(&span, request.headers());
        let labels = RpcLabels { service: self.service, method: method_label(table, request.uri().path()) };
        let started = Instant::now();
        Box::pin(
            async move {
                let response = match authorize(table, &verifier, request.uri().path(), request.headers()).await {
                    Ok(ctx) => {
                        if let Some(ctx) = &ctx {
                            tracing::Span::current().record("rpc.caller", tracing::field::display(&ctx.principal));
                        }
                        if let Some(ctx) = ctx {
                            request.extensions_mut().insert(ctx);
                        }
                        inner.call(request).await?
                    }
                    Err(e) => tonic::Status::from(e).into_http(),
                };
                Ok(finish_rpc_span(response, tracing::Span::current(), labels, started))
            }
            .instrument(span),
        )
    }
}

/// The span every served RPC runs in (house style: handlers add no `#[instrument]` of
/// their own): method, caller (account id or service client, never a name), and on
/// completion the gRPC status and latency.
fn rpc_span(method: &str) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        rpc.method = %method,
        rpc.caller = tracing::field::Empty,
        rpc.status = tracing::field::Empty,
        rpc.latency_ms = tracing::field::Empty,
    )
}

/// The metric labels of one RPC (`phoenix_rpc_*`, [`crate::metrics::rpc_finished`]).
#[derive(Clone, Copy)]
struct RpcLabels {
    service: &'static str,
    method: &'static str,
}

/// The method's name as declared in `table` (a bounded label set), `unknown` for a path the
/// table does not declare (refused).
fn method_label(table: MethodTable, path: &str) -> &'static str {
    table.iter().find(|(m, _)| *m == path).and_then(|(m, _)| m.rsplit_once('/')).map_or("unknown", |(_, name)| name)
}

/// Records the status and latency of `response` on `span` (and in the metrics) once it is known: at once for
/// a trailers-only answer (errors), otherwise when the body's trailers go out (so a stream's
/// latency is its whole duration).
fn finish_rpc_span(
    response: http::Response<tonic::body::Body>,
    span: tracing::Span,
    labels: RpcLabels,
    started: Instant,
) -> http::Response<tonic::body::Body> {
    use http_body_util::BodyExt as _;
    if let Some(code) = grpc_status(response.headers()) {
        record_rpc_end(&span, labels, code, started);
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
            record_rpc_end(&span, labels, code, started);
        }
        frame
    });
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

fn record_rpc_end(span: &tracing::Span, labels: RpcLabels, code: tonic::Code, started: Instant) {
    let elapsed = started.elapsed();
    crate::metrics::rpc_finished(labels.service, labels.method, code, elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.record("rpc.status", tracing::field::debug(code));
    span.record("rpc.latency_ms", latency_ms);
    let _entered = span.enter();
    match code {
        tonic::Code::Ok => tracing::debug!(status = ?code, latency_ms, "rpc finished"),
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss | tonic::Code::Unavailable => {
            tracing::warn!(status = ?code, latency_ms, "rpc failed")
        }
        _ => tracing::info!(status = ?code, latency_ms, "rpc refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut h = http::HeaderMap::new();
        assert!(bearer_token(&h).is_err());
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer_token(&h).expect("token"), "abc.def");
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&h).is_err());
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer "));
        assert!(bearer_token(&h).is_err());
    }
}
