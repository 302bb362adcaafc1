//! The gateway's MQTT bridge in a process of its own, so that a fault test can kill it
//! abruptly (SIGKILL) mid-stream and start it again (tests/it/platform/faults.rs). Not a
//! test. It runs what `phoenix gateway` runs for readers (`phoenix::edge::start_bridge`),
//! configured from the environment like it (`DATABASE_URL`, `MQTT_URL`, `PHOENIX_ACTIVE_URL`,
//! `PHOENIX_MQTT_PREFIX`, `PHOENIX_MQTT_CLIENT_ID`, `PHOENIX_DEVICE_KEY_SECRET`, …), except
//! that its service token comes from `PHOENIX_TEST_GATEWAY_TOKEN` (minted by the test)
//! instead of a credential exchanged at auth. `/metrics` only when `PHOENIX_METRICS_PORT` is
//! set (`0`: ephemeral); its address is printed first, as `fault-gateway: metrics on ADDR`
//! (tests/it/platform/replicas.rs scrapes each replica).

use std::sync::Arc;

use anyhow::Context as _;
use phoenix_common::config::Config;
use phoenix_common::db::{self, PoolOptions};
use phoenix_common::server::{self, ShutdownToken};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (tests/it/platform/traces.rs).
    let _telemetry =
        phoenix_common::telemetry::init("fault-gateway", config.log_format, config.otlp_endpoint.as_deref())?;
    let database_url = config.database_url.clone().context("DATABASE_URL is not set")?;
    let mqtt_url = config.mqtt_url.clone().context("MQTT_URL is not set")?;
    let token = std::env::var("PHOENIX_TEST_GATEWAY_TOKEN").context("PHOENIX_TEST_GATEWAY_TOKEN is not set")?;
    let pool = db::connect(&database_url, PoolOptions::from_config(&config)).await?;
    let active = phoenix::edge::active_url(&config, None);
    let shutdown = ShutdownToken::new();
    server::cancel_on_signal(shutdown.clone());
    if std::env::var_os("PHOENIX_METRICS_PORT").is_some()
        && let Some(addr) = phoenix_common::metrics::start(&config, false, shutdown.clone()).await?
    {
        println!("fault-gateway: metrics on {addr}");
    }
    let tokens = Arc::new(phoenix_gateway::auth::StaticToken(token));
    let bridge = phoenix::edge::start_bridge(&config, pool, &mqtt_url, &active, tokens, shutdown)?;
    println!("fault-gateway: bridge started (pid {})", std::process::id());
    bridge.join().await?;
    Ok(())
}
