//! The embedded MQTT broker: rumqttd, MQTT 3.1.1, in memory, behind the credential and ACL
//! proxy of [`crate::broker_acl`] (issue #13): rumqttd listens on a loopback port of its own,
//! clients reach it only through the proxy on the public port.
//!
//! rumqttd keeps sessions in memory only, so end-to-end reliability never rests on it:
//! readers re-send a scan until its result arrives and the server's scan receipts make
//! re-sends harmless (docs/reader-pipeline.md). Production may use any standard broker.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::broker_acl::{AclSnapshot, AclStats, BrokerAuth};

/// Largest MQTT payload the broker accepts. A scan is at most 4 KiB (reader protocol); the
/// margin lets oversized messages reach the gateway, which answers them `malformed`.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A running embedded broker. rumqttd lives until the process exits (it has no stop); the
/// proxy of a secured broker runs on the tokio runtime that started it.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    acl: Option<Arc<AclStats>>,
}

impl EmbeddedBroker {
    /// Starts the broker for clients on `host:port` (0 = a free port; a busy port with
    /// `fallback` set also takes a free one) with `auth`'s credentials and ACLs, and waits
    /// until it accepts connections. Must run inside a tokio runtime (the proxy's tasks).
    pub async fn start(host: IpAddr, port: u16, fallback: bool, auth: BrokerAuth) -> anyhow::Result<Self> {
        let inner = tokio::task::spawn_blocking(|| Self::start_open(Ipv4Addr::LOCALHOST.into(), 0, false)).await??;
        let listener = crate::broker::bind(host, port, fallback).await?;
        let addr = listener.local_addr()?;
        let auth = Arc::new(auth);
        let stats = auth.stats();
        tokio::spawn(crate::broker_acl::serve(listener, inner.addr, auth));
        Ok(Self { addr, acl: Some(stats) })
    }

    /// Starts rumqttd alone on `host:port`: **no credentials, no ACLs** — anyone who reaches
    /// the port may read and forge every reader's messages. Only for tests that must play
    /// unknown or misbehaving readers (the harness's shared broker), and as the inner broker
    /// of [`EmbeddedBroker::start`].
    pub fn start_open(host: IpAddr, port: u16, fallback: bool) -> anyhow::Result<Self> {
        let port = choose_port(host, port, fallback)?;
        let addr = SocketAddr::new(host, port);
        let server = ServerSettings {
            name: "phoenix-v4".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: MAX_PAYLOAD_BYTES,
                max_inflight_count: 500,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 10_010,
                max_outgoing_packet_count: 200,
                max_segment_size: 100 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_owned(), server)])),
            ..Default::default()
        };
        std::thread::Builder::new().name("mqtt-broker".into()).spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_mqtt(addr) {
            if Instant::now() > deadline {
                anyhow::bail!("embedded MQTT broker did not start listening on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { addr, acl: None })
    }

    /// Counters of the credential and ACL proxy (`None` for [`EmbeddedBroker::start_open`]).
    pub fn acl_stats(&self) -> Option<AclSnapshot> {
        self.acl.as_ref().map(|s| s.snapshot())
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://host:port` for `MQTT_URL`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// Readiness probe: a real MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT (a bare TCP connect
/// would make the broker log an aborted handshake as an error at every start).
fn answers_mqtt(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    const CLIENT_ID: &[u8] = b"phoenix-ready-probe";
    let mut connect = vec![0x10, (12 + CLIENT_ID.len()) as u8];
    // Protocol name "MQTT", level 4, clean session, keep-alive 10 s.
    connect.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0A]);
    connect.extend_from_slice(&[0x00, CLIENT_ID.len() as u8]);
    connect.extend_from_slice(CLIENT_ID);
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(&connect)?;
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack)?;
        stream.write_all(&[0xE0, 0x00])?;
        Ok(connack == [0x20, 0x02, 0x00, 0x00])
    };
    probe().unwrap_or(false)
}

/// The public listener of a secured broker (see [`choose_port`] for `fallback`).
async fn bind(host: IpAddr, port: u16, fallback: bool) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => Ok(l),
        Err(_) if fallback => {
            tracing::warn!(port, "MQTT port in use; using a free one instead");
            Ok(tokio::net::TcpListener::bind((host, 0)).await?)
        }
        Err(e) => Err(anyhow::anyhow!("cannot listen for MQTT on {host}:{port}: {e}")),
    }
}

fn choose_port(host: IpAddr, port: u16, fallback: bool) -> anyhow::Result<u16> {
    // rumqttd binds by itself and cannot report an ephemeral port back, so pick one here.
    let probe = |p: u16| TcpListener::bind((host, p)).and_then(|l| l.local_addr()).map(|a| a.port());
    match probe(port) {
        Ok(p) => Ok(p),
        Err(_) if fallback => {
            tracing::warn!(port, "MQTT port in use; using a free one instead");
            Ok(probe(0)?)
        }
        Err(e) => Err(anyhow::anyhow!("cannot listen for MQTT on {host}:{port}: {e}")),
    }
}
