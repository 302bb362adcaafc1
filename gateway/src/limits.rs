//! The request size limit: a declared `content-length` over the limit is refused before
//! anything runs; a body without one (HTTP/2 streams, chunked uploads) is counted as it
//! arrives and fails as soon as it passes the limit, and the call is answered
//! RESOURCE_EXHAUSTED (HTTP 413 outside the API).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, header};
use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;

/// The largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub u64);

/// Set once a counted body passed the limit.
#[derive(Debug, Clone, Default)]
pub struct Overflow(Arc<AtomicBool>);

impl Overflow {
    /// Whether the body passed the limit.
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl BodyLimit {
    /// Whether the request declares a body larger than the limit.
    pub fn declared_too_large<B>(self, request: &Request<B>) -> bool {
        request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > self.0)
    }

    /// The request with its body counted against the limit, and the flag that tells
    /// whether it overflowed.
    pub fn count(self, request: Request<Body>) -> (Request<Body>, Overflow) {
        let overflow = Overflow::default();
        let flag = overflow.clone();
        let request = request.map(|inner| Body::new(Limited { inner, remaining: self.0, overflow: flag }));
        (request, overflow)
    }

    /// The status a call over the limit is answered with.
    pub fn status(self) -> Status {
        Status::resource_exhausted(format!("the request is larger than the gateway's limit of {} bytes", self.0))
    }
}

struct Limited {
    inner: Body,
    remaining: u64,
    overflow: Overflow,
}

impl http_body::Body for Limited {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                self.overflow.0.store(true, Ordering::Release);
                self.remaining = 0;
                return Poll::Ready(Some(Err(Status::resource_exhausted(
                    "the request is larger than the gateway's limit",
                ))));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn request(body: &'static [u8], declared: Option<u64>) -> Request<Body> {
        let mut r = Request::new(Body::new(http_body_util::Full::new(Bytes::from_static(body))));
        if let Some(len) = declared {
            r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
        }
        r
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_up_front() {
        let limit = BodyLimit(10);
        assert!(limit.declared_too_large(&request(b"", Some(11))));
        assert!(!limit.declared_too_large(&request(b"", Some(10))));
        assert!(!limit.declared_too_large(&request(b"", None)));
    }

    #[tokio::test]
    async fn an_undeclared_body_is_counted_as_it_arrives() {
        let (ok, overflow) = BodyLimit(10).count(request(b"0123456789", None));
        assert_eq!(ok.into_body().collect().await.expect("within the limit").to_bytes().len(), 10);
        assert!(!overflow.happened());
        let (big, overflow) = BodyLimit(10).count(request(b"0123456789A", None));
        let err = big.into_body().collect().await.expect_err("over the limit");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(overflow.happened());
    }
}
