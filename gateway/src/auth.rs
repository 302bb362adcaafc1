//! The seam for the gateway's service credential on outgoing calls (ARCHITECTURE.md:
//! internal calls authenticate with a service credential, never with a user's token
//! and never unauthenticated).
//!
//! Every outgoing `ProcessScan` goes through [`AuthInterceptor`], which asks a
//! [`TokenSource`] for a bearer token. In service, that is [`ClientCredentials`]: the
//! gateway's client id and secret exchanged at the auth service for a short-lived token,
//! refreshed in the background (interceptors are synchronous, so they read the cached one).

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

/// The gateway's service credential (`auth.service_clients`), exchanged at the auth service
/// (`ExchangeClientCredentials`) for access tokens that carry the client's own permissions.
pub struct ClientCredentials {
    token: std::sync::RwLock<Option<String>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCredentials(<redacted>)")
    }
}

impl TokenSource for ClientCredentials {
    fn token(&self) -> Option<String> {
        self.token.read().ok()?.clone()
    }
}

/// Renew this long before the token expires.
const RENEW_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);
/// After a failed exchange, try again this soon.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl ClientCredentials {
    /// Exchanges the credential once (a wrong id or secret fails start-up, not the first
    /// scan), then renews the token in the background until `shutdown`.
    pub async fn start(
        auth_url: &str,
        client_id: String,
        client_secret: String,
        shutdown: phoenix_common::server::ShutdownToken,
    ) -> anyhow::Result<Arc<Self>> {
        use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
        let channel = tonic::transport::Endpoint::from_shared(auth_url.to_owned())?.connect_lazy();
        let mut client = AuthServiceClient::new(channel);
        let (first, mut valid_for) = exchange(&mut client, &client_id, &client_secret)
            .await
            .map_err(|s| anyhow::anyhow!("service credential {client_id:?} refused by {auth_url}: {}", s.message()))?;
        let this = Arc::new(Self { token: std::sync::RwLock::new(Some(first)) });
        let shared = this.clone();
        tokio::spawn(async move {
            loop {
                let wait = valid_for.saturating_sub(RENEW_MARGIN).max(RETRY_AFTER);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                match exchange(&mut client, &client_id, &client_secret).await {
                    Ok((token, ttl)) => {
                        if let Ok(mut slot) = shared.token.write() {
                            *slot = Some(token);
                        }
                        valid_for = ttl;
                    }
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), "renewing the gateway's service token failed; retrying");
                        valid_for = RENEW_MARGIN + RETRY_AFTER;
                    }
                }
            }
        });
        Ok(this)
    }
}

/// One exchange: the token and how long it stays valid.
async fn exchange(
    client: &mut phoenix_proto::auth::v1::auth_service_client::AuthServiceClient<tonic::transport::Channel>,
    client_id: &str,
    client_secret: &str,
) -> Result<(String, std::time::Duration), Status> {
    let reply = client
        .exchange_client_credentials(phoenix_proto::auth::v1::ExchangeClientCredentialsRequest {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        })
        .await?
        .into_inner();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let expires = reply.access_token_expire_time.map(|t| t.seconds).unwrap_or(now + 300);
    Ok((reply.access_token, std::time::Duration::from_secs(expires.saturating_sub(now).max(0) as u64)))
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
        // The bridge's `scan` span continues in the active service (docs/observability.md).
        phoenix_common::trace_context::inject(request.metadata_mut().as_mut());
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
