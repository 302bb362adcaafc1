//! The gateway's reader bridge as `phoenix dev` and `phoenix gateway` run it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use phoenix_common::config::Config;
use phoenix_common::db::DbPool;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::auth::{NoToken, TokenSource};
use phoenix_gateway::bridge::{self, Bridge, BridgeConfig, BridgeDeps};

use crate::services::port_for;

/// Where the bridge calls ProcessScan: `PHOENIX_ACTIVE_URL`, else `active` (a listening
/// address, an unspecified host meaning this machine).
pub fn active_url(config: &Config, active: Option<SocketAddr>) -> String {
    if let Some(url) = &config.active_url {
        return url.clone();
    }
    let addr =
        active.unwrap_or_else(|| SocketAddr::new(config.listen_host, port_for(Domain::Active, config.grpc_base_port)));
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

/// Starts the MQTT reader bridge. Outgoing calls carry the token of `tokens` (today
/// [`NoToken`]: the service-credential exchange is the auth issue's).
pub fn start_bridge(
    config: &Config,
    pool: DbPool,
    mqtt_url: &str,
    active_url: &str,
    tokens: Option<Arc<dyn TokenSource>>,
    shutdown: ShutdownToken,
) -> anyhow::Result<Bridge> {
    let secret = config.device_key_secret.clone().ok_or_else(|| {
        anyhow::anyhow!("PHOENIX_DEVICE_KEY_SECRET is not set: the gateway verifies reader signatures with it")
    })?;
    let active = bridge::active_client(active_url, tokens.unwrap_or_else(|| Arc::new(NoToken)))?;
    tracing::info!(mqtt = %mqtt_url, active = %active_url, prefix = %config.mqtt_prefix, "starting the MQTT reader bridge");
    bridge::start(BridgeConfig::from_config(config, mqtt_url), BridgeDeps { pool, secret, active }, shutdown)
}
