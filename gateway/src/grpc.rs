//! Which protocol a request speaks, gRPC errors answered in that protocol, and [`Handler`],
//! the one adaptor from an async request handler to a `tower::Service`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response, header};
use tonic::Status;
use tonic::body::Body;

/// The protocol of a request, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/grpc[+proto]`: native gRPC (HTTP/2), e.g. grpcurl or a tonic client.
    Grpc,
    /// `application/grpc-web[+proto]` (binary) or `application/grpc-web-text[+proto]`
    /// (base64): a browser. Exactly the content types tonic-web translates.
    GrpcWeb {
        /// The answer is base64 text (`accept: application/grpc-web-text…`, as tonic-web
        /// decides).
        text: bool,
    },
    /// Anything else: the page and its assets.
    Http,
}

impl Protocol {
    /// The protocol `headers` announce.
    pub fn of(headers: &HeaderMap) -> Self {
        let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or_default();
        match text(header::CONTENT_TYPE) {
            "application/grpc-web"
            | "application/grpc-web+proto"
            | "application/grpc-web-text"
            | "application/grpc-web-text+proto" => Protocol::GrpcWeb {
                text: matches!(text(header::ACCEPT), "application/grpc-web-text" | "application/grpc-web-text+proto"),
            },
            t if t == "application/grpc"
                || t.starts_with("application/grpc+")
                || t.starts_with("application/grpc;") =>
            {
                Protocol::Grpc
            }
            _ => Protocol::Http,
        }
    }

    /// Whether this is an API call (gRPC or grpc-web).
    pub fn is_api(self) -> bool {
        self != Protocol::Http
    }
}

/// A trailers-only gRPC answer carrying `status` (`grpc-status`, `grpc-message`,
/// `grpc-status-details-bin` as headers), with the content type of `protocol` so a
/// grpc-web client reads it like any other error.
pub fn error_response(protocol: Protocol, status: Status) -> Response<Body> {
    let mut response = status.into_http::<Body>();
    if let Protocol::GrpcWeb { text } = protocol {
        let content_type = if text { "application/grpc-web-text+proto" } else { "application/grpc-web+proto" };
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// Answers one request; every failure is already an HTTP or gRPC response.
pub trait Handle: Clone + Send + 'static {
    /// The response to `request`.
    fn handle(self, request: Request<Body>) -> impl Future<Output = Response<Body>> + Send;
}

/// A [`Handle`] as a `tower::Service` that is always ready and never fails; each call runs
/// on a clone of the handler.
#[derive(Debug, Clone)]
pub struct Handler<H>(pub H);

impl<H: Handle> tower::Service<Request<Body>> for Handler<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move { Ok(handler.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(content_type: &str, accept: &str) -> Protocol {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("ascii"));
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).expect("ascii"));
        Protocol::of(&headers)
    }

    #[test]
    fn content_types_decide_the_protocol() {
        assert_eq!(of("application/grpc", ""), Protocol::Grpc);
        assert_eq!(of("application/grpc+proto", ""), Protocol::Grpc);
        assert_eq!(of("application/grpc-web+proto", ""), Protocol::GrpcWeb { text: false });
        assert_eq!(of("application/grpc-web", "*/*"), Protocol::GrpcWeb { text: false });
        assert_eq!(of("application/grpc-web-text", "application/grpc-web-text"), Protocol::GrpcWeb { text: true });
        assert_eq!(of("application/grpc-web-text+proto", ""), Protocol::GrpcWeb { text: false });
        assert_eq!(of("text/html", ""), Protocol::Http);
        assert_eq!(of("application/grpcx", ""), Protocol::Http);
        assert_eq!(of("application/grpc-web; charset=utf-8", ""), Protocol::Http, "tonic-web matches exactly");
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Http);
    }

    #[test]
    fn errors_keep_the_callers_content_type() {
        let r = error_response(Protocol::GrpcWeb { text: true }, Status::unavailable("down"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/grpc-web-text+proto");
        assert_eq!(r.headers()["grpc-status"], "14");
        let r = error_response(Protocol::Grpc, Status::unimplemented("x"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "12");
    }
}
