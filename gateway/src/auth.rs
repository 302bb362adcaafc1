//! The seam for the gateway's service credential on outgoing calls (api.md "Identity and
//! tokens": internal calls authenticate with a service credential, never with a user's token
//! and never unauthenticated).
//!
//! Every outgoing `ProcessScan` goes through [`AuthInterceptor`], which asks a
//! [`TokenSource`] for a bearer token. Until the auth service's client-credentials exchange
//! exists, [`NoToken`] supplies none; plugging the exchange in means implementing
//! [`TokenSource`] (refresh in the background, return the cached token here: interceptors
//! are synchronous) and passing it to [`crate::bridge::active_client`].

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Supplies the bearer token for outgoing calls, if any.
pub trait TokenSource: Send + Sync + 'static {
    /// The current access token (without `Bearer `), or `None` to send no credential.
    fn token(&self) -> Option<String>;
}

/// No credential (until the service-credential exchange lands).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoToken;

impl TokenSource for NoToken {
    fn token(&self) -> Option<String> {
        None
    }
}

/// A fixed token (tests, or a credential injected by the deployment).
#[derive(Clone)]
pub struct StaticToken(pub String);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> Option<String> {
        Some(self.0.clone())
    }
}

/// Adds `authorization: Bearer <token>` from a [`TokenSource`] to every request.
#[derive(Clone)]
pub struct AuthInterceptor {
    source: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInterceptor").finish_non_exhaustive()
    }
}

impl AuthInterceptor {
    /// An interceptor asking `source` for each call's token.
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self { source }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = self.source.token() {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("the service credential is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_bearer_token_only_when_there_is_one() {
        let mut none = AuthInterceptor::new(Arc::new(NoToken));
        let r = none.call(Request::new(())).expect("ok");
        assert!(r.metadata().get("authorization").is_none());
        let mut some = AuthInterceptor::new(Arc::new(StaticToken("abc".into())));
        let r = some.call(Request::new(())).expect("ok");
        assert_eq!(r.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer abc"));
        let mut bad = AuthInterceptor::new(Arc::new(StaticToken("a\nb".into())));
        assert!(bad.call(Request::new(())).is_err());
    }
}
