//! The bridge's settings, the broker URL and the gRPC client ProcessScan is called with.

use std::sync::Arc;
use std::time::Duration;

use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{AuthInterceptor, TokenSource};

/// How the bridge connects and subscribes.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `mqtt://host:port` (or `tcp://`).
    pub mqtt_url: String,
    /// Topic prefix (`PHOENIX_MQTT_PREFIX`).
    pub prefix: String,
    /// Fixed client id: the persistent session (`PHOENIX_MQTT_CLIENT_ID`).
    pub client_id: String,
    /// Shared-subscription group (`PHOENIX_MQTT_SHARED_GROUP`).
    pub shared_group: Option<String>,
    /// Messages worked on at once, across readers (each reader's own are one at a time).
    pub shards: usize,
    /// Messages waiting per reader; beyond, a reader's messages are dropped (`overflow`).
    pub reader_queue: usize,
    /// Messages waiting in the whole bridge; beyond, messages are dropped (`overflow`).
    pub max_queued: usize,
    /// How long a transient failure (see [`retryable`](super::retryable)) is retried, with
    /// exponential backoff, before the scan is left unanswered for the reader to re-send.
    pub retry_budget: Duration,
    /// How long a reader's key version is cached.
    pub credential_ttl: Duration,
    /// How long an unknown device id is remembered as unknown.
    pub unknown_ttl: Duration,
    /// `last_seen` is written at most this often per reader (online = seen within 5 min).
    pub seen_interval: Duration,
    /// At most one device-log entry per reader and refusal kind in this window.
    pub log_interval: Duration,
    /// Scans per second one reader may send (`PHOENIX_READER_RATE_LIMIT`, 0 = no limit) and
    /// at once (`PHOENIX_READER_BURST`); beyond, scans are answered `rate_limited`.
    pub reader_rate: (u32, u32),
    /// The gateway's broker login (`PHOENIX_MQTT_USERNAME` / `PHOENIX_MQTT_PASSWORD`).
    pub login: Option<crate::broker_acl::MqttLogin>,
}

impl BridgeConfig {
    /// Defaults for a broker URL and prefix.
    pub fn new(mqtt_url: impl Into<String>, prefix: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            mqtt_url: mqtt_url.into(),
            prefix: prefix.into(),
            client_id: client_id.into(),
            shared_group: None,
            shards: 8,
            reader_queue: 32,
            max_queued: 4096,
            retry_budget: Duration::from_secs(30),
            credential_ttl: Duration::from_secs(5),
            unknown_ttl: Duration::from_secs(2),
            seen_interval: Duration::from_secs(15),
            log_interval: Duration::from_secs(10),
            reader_rate: (20, 100),
            login: None,
        }
    }
}

impl BridgeConfig {
    /// The bridge settings of the process configuration, for the broker at `mqtt_url`.
    pub fn from_config(config: &phoenix_common::config::Config, mqtt_url: &str) -> Self {
        let mut c = Self::new(mqtt_url, config.mqtt_prefix.clone(), config.mqtt_client_id.clone());
        c.shared_group = config.mqtt_shared_group.clone();
        c.reader_rate = (config.reader_rate_limit, config.reader_burst);
        c.login = crate::broker_acl::MqttLogin::gateway(config);
        c
    }
}

/// `(host, port)` of an `mqtt://host:port` URL (port 1883 when omitted).
pub fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| anyhow::anyhow!("MQTT URL must start with mqtt:// or tcp://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| anyhow::anyhow!("MQTT URL has a bad port"))?),
        None => (authority, 1883),
    };
    anyhow::ensure!(!host.is_empty(), "MQTT URL has no host");
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

/// The gRPC client the bridge calls `ProcessScan` with; every call passes through the
/// [`AuthInterceptor`] (the seam for the gateway's service credential).
pub type ActiveClient = ActiveServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// A lazily connecting client for the active service at `url` (`http://host:port`).
pub fn active_client(url: &str, tokens: Arc<dyn TokenSource>) -> anyhow::Result<ActiveClient> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    Ok(ActiveServiceClient::with_interceptor(channel, AuthInterceptor::new(tokens)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1883").expect("ok"), ("127.0.0.1".into(), 1883));
        assert_eq!(parse_mqtt_url("tcp://broker").expect("ok"), ("broker".into(), 1883));
        assert_eq!(parse_mqtt_url("mqtt://[::1]:1884").expect("ok"), ("::1".into(), 1884));
        assert!(parse_mqtt_url("http://x:1").is_err());
        assert!(parse_mqtt_url("mqtt://:1").is_err());
        assert!(parse_mqtt_url("mqtt://x:port").is_err());
    }
}
