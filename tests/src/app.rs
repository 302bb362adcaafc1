//! In-process Phoenix services on ephemeral ports, against a test's own database.

use std::collections::HashMap;
use std::net::SocketAddr;

use phoenix::services::{self, ServiceContext};
use phoenix_common::config::Config;
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::server::HealthReporter;

use crate::TestDb;

/// The fixed `PHOENIX_DEVICE_KEY_SECRET` of the tests (device keys are derivable from it).
pub const TEST_DEVICE_KEY_SECRET: &str = "phoenix-test-device-key-secret-0123456789abcdef";

/// Configuration for tests: defaults, the test database, ephemeral ports, a fixed device-key secret.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default config is valid");
    config.device_key_secret = Some(phoenix_common::config::Secret::new(TEST_DEVICE_KEY_SECRET));
    // Tests share one broker (MQTT_URL) in parallel: own topics, own gateway session.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    config.mqtt_prefix = format!("t{}", &unique[..10]);
    config.mqtt_client_id = format!("gw-{}", &unique[..12]);
    config.database_url = Some(database_url.to_owned());
    config.db_pool_size = 4;
    config.grpc_base_port = 0;
    config.gateway_port = 0;
    config.mqtt_port = 0;
    // No /metrics endpoint unless a test starts one (tests/it/platform/metrics.rs).
    config.metrics_port = None;
    // No daily retention purge inside tests: a run at 02:00 would race the test's own.
    config.cleanup_time = None;
    // No scheduled jobs either: a test runs the job it tests, with its own clock.
    config.jobs_enabled = false;
    // Every domain works as its own PostgreSQL role (docs/database.md), so the whole suite proves
    // the grants suffice; `PHOENIX_TEST_DB_ROLES=off` runs it as the owner.
    config.db_roles = !std::env::var("PHOENIX_TEST_DB_ROLES").is_ok_and(|v| v == "off");
    config
}

/// Running services with their own database. Stop with [`TestApp::stop`] to assert a clean
/// shutdown; dropping it also stops them.
pub struct TestApp {
    /// The test's database.
    pub db: TestDb,
    /// The configuration the services run with (its generated `secret_key` included).
    pub config: Config,
    /// The context the services were built from (its shared config cache included).
    pub context: ServiceContext,
    addrs: HashMap<Domain, SocketAddr>,
    health: HashMap<Domain, HealthReporter>,
    shutdown: ShutdownToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Serves `domains` on ephemeral ports against a fresh migrated database.
    pub async fn spawn(domains: &[Domain]) -> Self {
        Self::spawn_with(domains, |_| {}).await
    }

    /// [`TestApp::spawn`] with the test configuration adjusted by `configure` first.
    pub async fn spawn_with(domains: &[Domain], configure: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let mut config = test_config(db.url());
        configure(&mut config);
        let ctx =
            ServiceContext::serving(db.pool().await, config.clone(), db.url(), domains).await.expect("domain pools");
        let shutdown = ShutdownToken::new();
        let running =
            services::start(domains, &ctx, config.listen_host, 0, false, &shutdown).await.expect("start services");
        let mut addrs = HashMap::new();
        let mut health = HashMap::new();
        let mut tasks = Vec::new();
        for r in running {
            addrs.insert(r.domain, r.addr);
            health.insert(r.domain, r.health);
            tasks.push(r.task);
        }
        Self { db, config, context: ctx, addrs, health, shutdown, tasks }
    }

    /// Where `domain` listens.
    pub fn addr(&self, domain: Domain) -> SocketAddr {
        *self.addrs.get(&domain).unwrap_or_else(|| panic!("{domain} is not running in this TestApp"))
    }

    /// The health reporter of `domain`'s server (to change what its health service says).
    pub fn health(&self, domain: Domain) -> HealthReporter {
        self.health.get(&domain).cloned().unwrap_or_else(|| panic!("{domain} is not running in this TestApp"))
    }

    /// A connected gRPC channel to `domain`.
    pub async fn channel(&self, domain: Domain) -> Channel {
        connect(self.addr(domain)).await
    }

    /// Stops every server and waits until they have drained.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            t.await.expect("server task panicked").expect("server failed");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A gRPC channel to `addr` (plaintext HTTP/2).
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// `grpc.health.v1.Health/Check` of `service` at `addr`.
pub async fn health_status(addr: SocketAddr, service: &str) -> Result<i32, tonic::Status> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(connect(addr).await);
    let reply = client.check(tonic_health::pb::HealthCheckRequest { service: service.to_owned() }).await?;
    Ok(reply.into_inner().status)
}
