//! The reader pipeline end to end: iot + active services, the MQTT bridge on a real broker
//! ([`crate::mqtt_url`]), the test school, and simulated readers speaking the protocol.
//!
//! Readers and the bridge always log in (device id / key-derived password, the gateway's
//! login). [`ReaderStack::spawn`] uses the tests' shared broker, which checks neither
//! (`MQTT_URL`, e.g. a Mosquitto without a config, or the embedded broker started open), so
//! tests can play unknown and misbehaving readers; [`ReaderStack::spawn_secured`] starts the
//! embedded broker with its credentials and ACLs for this stack alone — the ACL tests run on
//! it whatever `MQTT_URL` says.

use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_gateway::bridge::{self, Bridge, BridgeConfig, BridgeDeps};
use phoenix_gateway::broker::EmbeddedBroker;
use phoenix_gateway::broker_acl::{AclSnapshot, BrokerAuth, MqttLogin};
use phoenix_gateway::sim::SimReader;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::iot::v1::iot_service_client::IotServiceClient;
use phoenix_reader_protocol::derive_device_key;

use crate::app::{TEST_DEVICE_KEY_SECRET, test_config};
use crate::school::School;
use crate::{TestApp, mqtt_url};

/// A running pipeline with its own database, topic prefix and gateway client id.
pub struct ReaderStack {
    pub app: TestApp,
    /// The broker everything connects to.
    pub mqtt_url: String,
    pub school: School,
    pub prefix: String,
    pub client_id: String,
    pub active: ActiveServiceClient<crate::auth::TestChannel>,
    pub iot: IotServiceClient<crate::auth::TestChannel>,
    bridge: Option<(Bridge, ShutdownToken)>,
    /// The bridge's per-reader limit (scans/s, burst), applied at the next bridge start.
    pub reader_rate: (u32, u32),
    /// This stack's own secured broker ([`ReaderStack::spawn_secured`]).
    secured: Option<EmbeddedBroker>,
}

impl ReaderStack {
    /// Services, school (with `pupils` pupils) and a running bridge on the tests' broker.
    pub async fn spawn(pupils: usize) -> Self {
        Self::spawn_on(pupils, &mqtt_url()).await
    }

    /// Like [`ReaderStack::spawn`], on the broker at `broker`.
    pub async fn spawn_on(pupils: usize, broker: &str) -> Self {
        let mut stack = Self::without_bridge(pupils, broker).await;
        stack.start_bridge().await;
        stack
    }

    /// Like [`ReaderStack::spawn`], on an embedded broker of its own that requires
    /// credentials and enforces the reader/gateway ACLs (`phoenix_gateway::broker_acl`).
    pub async fn spawn_secured(pupils: usize) -> Self {
        let mut stack = Self::without_bridge(pupils, "").await;
        let auth = BrokerAuth::from_config(&stack.config(), stack.app.db.pool().await).expect("broker auth");
        let broker = EmbeddedBroker::start([127, 0, 0, 1].into(), 0, false, auth).await.expect("secured broker");
        stack.mqtt_url = broker.url();
        stack.secured = Some(broker);
        stack.start_bridge().await;
        stack
    }

    async fn without_bridge(pupils: usize, broker: &str) -> Self {
        let app = TestApp::spawn(&[Domain::Iot, Domain::Active]).await;
        let mut conn = app.db.conn().await;
        let school = School::create(&mut conn, pupils).await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
        let iot = IotServiceClient::new(app.test_channel(Domain::Iot).await);
        Self {
            prefix: format!("t{}", &tag[..10]),
            client_id: format!("gw-{}", &tag[..12]),
            mqtt_url: broker.to_owned(),
            app,
            school,
            active,
            iot,
            bridge: None,
            reader_rate: (0, 1),
            secured: None,
        }
    }

    /// The process configuration the bridge (and the secured broker) run with.
    pub fn config(&self) -> phoenix_common::config::Config {
        let mut config = test_config(self.app.db.url());
        config.mqtt_prefix = self.prefix.clone();
        config.mqtt_client_id = self.client_id.clone();
        config
    }

    /// The gateway's broker login (derived from the test device-key secret).
    pub fn gateway_login(&self) -> MqttLogin {
        MqttLogin::gateway(&self.config()).expect("gateway login")
    }

    /// Counters of this stack's secured broker (`None` on the shared broker).
    pub fn acl_stats(&self) -> Option<AclSnapshot> {
        self.secured.as_ref().and_then(EmbeddedBroker::acl_stats)
    }

    /// Starts the bridge (again, after [`ReaderStack::stop_bridge`]: same client id, so the
    /// broker resumes its persistent session).
    pub async fn start_bridge(&mut self) {
        assert!(self.bridge.is_none(), "bridge already running");
        let config = self.config();
        let active_url = format!("http://{}", self.app.addr(Domain::Active));
        let deps = BridgeDeps {
            pool: self.app.db.pool().await,
            secret: config.device_key_secret.clone().expect("test secret"),
            // The gateway's service credential: a real token with `scans:process` only.
            active: bridge::active_client(
                &active_url,
                std::sync::Arc::new(phoenix_gateway::auth::StaticToken(
                    crate::auth::mint_token(&self.app, "service:gateway", &[], &["scans:process".to_owned()]).await,
                )),
            )
            .expect("client"),
        };
        let shutdown = ShutdownToken::new();
        let mut bridge_config = BridgeConfig::from_config(&config, &self.mqtt_url);
        bridge_config.reader_rate = self.reader_rate;
        let bridge = bridge::start(bridge_config, deps, shutdown.clone()).expect("bridge");
        // Wait until it is connected and subscribed (a SUBACK is not observable here: poll
        // the connection count, then give the subscription a moment).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while bridge.stats().connections == 0 {
            assert!(std::time::Instant::now() < deadline, "bridge did not connect");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.bridge = Some((bridge, shutdown));
    }

    /// Stops the bridge and waits for it.
    pub async fn stop_bridge(&mut self) {
        if let Some((bridge, shutdown)) = self.bridge.take() {
            shutdown.cancel();
            bridge.join().await.expect("bridge stopped cleanly");
        }
    }

    /// Counters of the running bridge.
    pub fn stats(&self) -> bridge::StatsSnapshot {
        self.bridge.as_ref().map(|(b, _)| b.stats()).unwrap_or_default()
    }

    /// The device key of a test reader (key version 1).
    pub fn key(&self, device: &str) -> String {
        derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), device, 1)
    }

    /// A simulated reader for `device` with its own key.
    pub async fn reader(&self, device: &str) -> SimReader {
        self.reader_with_key(device, &self.key(device)).await
    }

    /// A simulated reader for `device` signing with `key`.
    pub async fn reader_with_key(&self, device: &str, key: &str) -> SimReader {
        SimReader::connect(&self.mqtt_url, &self.prefix, device, key).await.expect("reader connects")
    }

    /// A simulated reader for `device` signing with its own key, logging in with `login`.
    pub async fn reader_with_login(&self, device: &str, login: &MqttLogin) -> anyhow::Result<SimReader> {
        SimReader::connect_with(&self.mqtt_url, &self.prefix, device, &self.key(device), login).await
    }

    /// Stops the bridge and the services.
    pub async fn stop(mut self) {
        self.stop_bridge().await;
        self.app.stop().await;
    }
}

/// A Mosquitto broker in a child process (killed on drop), for broker-restart tests.
pub struct Mosquitto {
    binary: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Mosquitto {
    /// The `mosquitto` binary (see [`crate::require_tool`]): `None` outside CI when it is not
    /// installed; under `CI` a missing broker fails the test.
    pub fn binary() -> Option<std::path::PathBuf> {
        crate::require_tool(
            "mosquitto",
            "mosquitto",
            "install it with `sudo apt-get install -y mosquitto` (scripts/test does)",
        )
    }

    /// Starts `binary` (see [`Mosquitto::binary`]) on a free port.
    pub async fn start(binary: std::path::PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut m = Self { binary, port, child: None };
        assert!(m.restart().await, "{} starts on port {port}", m.binary.display());
        m
    }

    /// `mqtt://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }

    /// Kills the broker (sessions and queued messages are lost: no persistence).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// (Re)starts the broker on the same port; false when it cannot be started.
    pub async fn restart(&mut self) -> bool {
        self.kill().await;
        let Ok(child) = tokio::process::Command::new(&self.binary)
            .args(["-p", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }
}
