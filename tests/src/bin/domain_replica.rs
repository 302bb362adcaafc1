//! Domain services in a process of their own, for the replica tests
//! (tests/it/platform/domain_replicas.rs): what `phoenix serve --services <list>` runs
//! (`phoenix::services::start` on a `ServiceContext` of this process — its own pools, presence
//! hub, settings cache), configured from the environment like it (`DATABASE_URL`,
//! `PHOENIX_DB_ROLES`, `PHOENIX_JOBS`, …), serving the domains of `PHOENIX_TEST_DOMAINS`
//! (`active,config`) on ephemeral ports. Prints `domain-replica: <domain> on <addr>` for each,
//! then `domain-replica: ready`, and serves until SIGTERM/SIGINT. Not a test.

use anyhow::Context as _;
use phoenix::services::{self, ServiceContext};
use phoenix_common::config::Config;
use phoenix_common::db::{self, PoolOptions};
use phoenix_common::domain::Domain;
use phoenix_common::server::{self, ShutdownToken};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let _telemetry = phoenix_common::telemetry::init("domain-replica", config.log_format, None)?;
    let database_url = config.database_url.clone().context("DATABASE_URL is not set")?;
    let list = std::env::var("PHOENIX_TEST_DOMAINS").context("PHOENIX_TEST_DOMAINS is not set")?;
    let domains = Domain::parse_list(&list).map_err(|e| anyhow::anyhow!("PHOENIX_TEST_DOMAINS: {e}"))?;
    let pool = db::connect(&database_url, PoolOptions::from_config(&config)).await?;
    let ctx = ServiceContext::serving(pool, config.clone(), &database_url, &domains).await?;
    let shutdown = ShutdownToken::new();
    server::cancel_on_signal(shutdown.clone());
    let running = services::start(&domains, &ctx, config.listen_host, 0, false, &shutdown).await?;
    for r in &running {
        println!("domain-replica: {} on {}", r.domain.name(), r.addr);
    }
    println!("domain-replica: ready");
    for r in running {
        r.task.await??;
    }
    Ok(())
}
