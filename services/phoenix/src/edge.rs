//! The gateway as `phoenix dev` and `phoenix gateway` run it: where it reaches each domain,
//! its browser-facing server's options, its service credential and the MQTT reader bridge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use phoenix_common::authz::TokenVerifier;
use phoenix_common::client_addr::ForwardingKey;
use phoenix_common::config::Config;
use phoenix_common::db::DbPool;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::auth::TokenSource;
use phoenix_gateway::bridge::{self, Bridge, BridgeConfig, BridgeDeps};
use phoenix_gateway::web::{ClientAddr, RateLimit, WebOptions};

use crate::services::port_for;

/// Where the gateway reaches `domain`: `PHOENIX_<DOMAIN>_URL`, else `addr` (the in-process
/// address in `phoenix dev`; an unspecified host meaning this machine), else the domain's
/// port on the listen host.
pub fn service_url(config: &Config, domain: Domain, addr: Option<SocketAddr>) -> String {
    config.service_url(domain).map(str::to_owned).unwrap_or_else(|| local_url(config, domain, addr))
}

/// Where the bridge calls ProcessScan (`PHOENIX_ACTIVE_URL`, see [`service_url`]).
pub fn active_url(config: &Config, active: Option<SocketAddr>) -> String {
    service_url(config, Domain::Active, active)
}

/// Where the gateway exchanges its service credential (`PHOENIX_AUTH_URL`, see [`service_url`]).
pub fn auth_url(config: &Config, auth: Option<SocketAddr>) -> String {
    service_url(config, Domain::Auth, auth)
}

/// The browser-facing server's options: every domain's upstream ([`service_url`], with
/// `addr_of` giving in-process addresses in `phoenix dev`), CORS origins, size and rate
/// limits. `verifier` lets the rate limit key authenticated callers by account.
pub fn web_options(
    config: &Config,
    addr_of: impl Fn(Domain) -> Option<SocketAddr>,
    verifier: Option<Arc<TokenVerifier>>,
) -> WebOptions {
    WebOptions {
        upstreams: Domain::ALL.iter().map(|&d| (d, service_url(config, d, addr_of(d)))).collect(),
        cors_origins: config.cors_origins.clone(),
        max_request_bytes: config.gateway_max_request_bytes,
        rate: RateLimit { per_second: config.gateway_rate_limit, burst: config.gateway_rate_burst },
        verifier,
        client_addr: client_addr(config),
    }
}

/// Trusted proxies and the key the services check the client-address header with.
fn client_addr(config: &Config) -> ClientAddr {
    let key = ForwardingKey::from_config(config);
    if key.is_none() {
        tracing::warn!(
            "PHOENIX_FORWARDING_SECRET is not set: services see the gateway's address for every caller \
             (login throttling and audit rows cannot tell clients apart)"
        );
    }
    ClientAddr { trusted_proxies: config.trusted_proxies.clone(), key }
}

fn local_url(config: &Config, domain: Domain, addr: Option<SocketAddr>) -> String {
    let addr = addr.unwrap_or_else(|| SocketAddr::new(config.listen_host, port_for(domain, config.grpc_base_port)));
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

/// The gateway's service token source: its client credential exchanged at the auth service
/// at `auth_url` and renewed in the background.
pub async fn gateway_credentials(
    config: &Config,
    auth_url: &str,
    secret: &str,
    shutdown: ShutdownToken,
) -> anyhow::Result<Arc<dyn TokenSource>> {
    let source = phoenix_gateway::auth::ClientCredentials::start(
        auth_url,
        config.gateway_client_id.clone(),
        secret.to_owned(),
        shutdown,
    )
    .await?;
    Ok(source)
}

/// Starts the MQTT reader bridge. Outgoing calls carry the token of `tokens` (the
/// gateway's service credential, [`gateway_credentials`]).
pub fn start_bridge(
    config: &Config,
    pool: DbPool,
    mqtt_url: &str,
    active_url: &str,
    tokens: Arc<dyn TokenSource>,
    shutdown: ShutdownToken,
) -> anyhow::Result<Bridge> {
    let secret = config.device_key_secret.clone().ok_or_else(|| {
        anyhow::anyhow!("PHOENIX_DEVICE_KEY_SECRET is not set: the gateway verifies reader signatures with it")
    })?;
    let active = bridge::active_client(active_url, tokens)?;
    tracing::info!(mqtt = %mqtt_url, active = %active_url, prefix = %config.mqtt_prefix, "starting the MQTT reader bridge");
    bridge::start(BridgeConfig::from_config(config, mqtt_url), BridgeDeps { pool, secret, active }, shutdown)
}
