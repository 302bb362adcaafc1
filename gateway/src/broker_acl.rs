//! Credentials and topic ACLs of the embedded broker (issue #13).
//!
//! rumqttd checks no topic ACLs, so [`crate::broker::EmbeddedBroker`] runs it on a loopback
//! port and puts this MQTT-aware proxy on the public one. The proxy reads every packet a
//! client sends (MQTT 3.1.1, rumqttc's `mqttbytes::v4`) and forwards it unchanged when it is
//! allowed; what the broker sends back is copied byte for byte.
//!
//! | who | username / password | may publish | may subscribe |
//! |---|---|---|---|
//! | the gateway | `PHOENIX_MQTT_USERNAME` / `PHOENIX_MQTT_PASSWORD` (else [`derived_gateway_password`]) | `{p}/readers/{any}/result` | `{p}/readers/{+ or any}/scan` and `…/status`, also as `$share/{group}/…` |
//! | a reader | its device id / [`reader_password`] of its device key | `{p}/readers/{own}/scan`, `…/{own}/status` (its Last Will too) | `{p}/readers/{own}/result` |
//!
//! A CONNECT without valid credentials, from an unknown device id, with a Last Will on a
//! topic it may not publish, or with a client id that another user holds (the gateway's
//! client id is always the gateway's) is answered with a refusing CONNACK and never reaches
//! the broker, so nobody can take over another's session. A PUBLISH or SUBSCRIBE outside the
//! ACL closes the connection (counted in [`AclStats`]). The same rules for Mosquitto:
//! `deploy/mosquitto/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::BytesMut;
use hmac::{Hmac, KeyInit, Mac};
use phoenix_common::config::{Config, Secret};
use phoenix_common::db::DbPool;
use phoenix_reader_protocol::{derive_device_key, is_valid_device_id};
use rumqttc::mqttbytes::v4::{Connect, Packet};
use rumqttc::mqttbytes::{self, PacketType};
use sha2::{Sha256, Sha512};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What a reader's MQTT password is derived from, besides its device key.
pub const READER_PASSWORD_LABEL: &str = "phoenix mqtt password v1";
const GATEWAY_PASSWORD_LABEL: &str = "phoenix mqtt gateway password v1";

/// Largest packet a client may send through the proxy: the broker's payload cap plus room
/// for the topic and header (rumqttd drops a connection over its cap anyway).
const MAX_PACKET: usize = crate::broker::MAX_PAYLOAD_BYTES + 70 * 1024;
/// How long a client has to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a device's key version is cached (an unknown id: [`UNKNOWN_TTL`]).
const KNOWN_TTL: Duration = Duration::from_secs(5);
const UNKNOWN_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 20_000;

/// A reader's MQTT password: lowercase hex of HMAC-SHA256(device key, [`READER_PASSWORD_LABEL`]).
///
/// Whoever holds the device key (RegisterDevice / RotateDeviceKey show it once) can compute
/// it, so installers need nothing new; the password does not reveal the key, and a key
/// rotation changes it. The label has no `\n`, so it is never a signature input.
pub fn reader_password(device_key: &str) -> String {
    hex::encode(hmac256(device_key.as_bytes(), READER_PASSWORD_LABEL.as_bytes()))
}

/// The gateway's MQTT password when `PHOENIX_MQTT_PASSWORD` is unset: lowercase hex of
/// HMAC-SHA256(`PHOENIX_DEVICE_KEY_SECRET`, label ‖ `\n` ‖ username).
pub fn derived_gateway_password(device_key_secret: &str, username: &str) -> String {
    let input = format!("{GATEWAY_PASSWORD_LABEL}\n{username}");
    hex::encode(hmac256(device_key_secret.as_bytes(), input.as_bytes()))
}

fn hmac256(key: &[u8], input: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    m.update(input);
    m.finalize().into_bytes().into()
}

/// A broker login. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttLogin {
    /// MQTT username.
    pub username: String,
    /// MQTT password.
    pub password: Secret,
}

impl std::fmt::Debug for MqttLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLogin").field("username", &self.username).finish_non_exhaustive()
    }
}

impl MqttLogin {
    /// A login.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: Secret::new(password) }
    }

    /// The gateway's login: `PHOENIX_MQTT_USERNAME` with `PHOENIX_MQTT_PASSWORD`, else with
    /// [`derived_gateway_password`]; `None` when neither password nor device-key secret is set.
    pub fn gateway(config: &Config) -> Option<Self> {
        let password = match (&config.mqtt_password, &config.device_key_secret) {
            (Some(p), _) => p.expose().to_owned(),
            (None, Some(secret)) => derived_gateway_password(secret.expose(), &config.mqtt_username),
            (None, None) => return None,
        };
        Some(Self::new(config.mqtt_username.clone(), password))
    }

    /// A reader's login: its device id and [`reader_password`] of `device_key`.
    pub fn reader(device_id: &str, device_key: &str) -> Self {
        Self::new(device_id, reader_password(device_key))
    }
}

/// One line of a Mosquitto password file (`mosquitto_passwd` format, Mosquitto 2.x):
/// `username:$7$101$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, 101 rounds, 64 bytes)>`.
pub fn mosquitto_password_line(login: &MqttLogin, salt: &[u8; 12]) -> String {
    const ITERATIONS: u32 = 101;
    // PBKDF2 with a 64-byte output is exactly one HMAC-SHA512 block.
    let prf = |input: &[u8]| -> [u8; 64] {
        let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(login.password.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("any key length"));
        m.update(input);
        m.finalize().into_bytes().into()
    };
    let mut u = prf(&[salt.as_slice(), &1u32.to_be_bytes()].concat());
    let mut out = u;
    for _ in 1..ITERATIONS {
        u = prf(&u);
        out.iter_mut().zip(u).for_each(|(o, b)| *o ^= b);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("{}:$7${ITERATIONS}${}${}", login.username, b64.encode(salt), b64.encode(out))
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The gateway (the bridge).
    Gateway,
    /// The reader with this device id.
    Reader(String),
}

/// The topic rules of [`Identity`]s under one prefix (the table in the module doc).
#[derive(Debug, Clone)]
pub struct Acl {
    prefix: String,
}

impl Acl {
    /// Rules for topic prefix `prefix` (`PHOENIX_MQTT_PREFIX`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// `(device, leaf)` of `{p}/readers/{device}/{leaf}`.
    fn reader_topic<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(self.prefix.as_str())?.strip_prefix("/readers/")?;
        let (device, leaf) = rest.split_once('/')?;
        Some((device, leaf))
    }

    /// Whether `who` may publish to `topic`.
    pub fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        let Some((device, leaf)) = self.reader_topic(topic) else { return false };
        match who {
            Identity::Gateway => leaf == "result" && is_valid_device_id(device),
            Identity::Reader(own) => device == own && matches!(leaf, "scan" | "status"),
        }
    }

    /// Whether `who` may subscribe to `filter`.
    pub fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        match who {
            Identity::Gateway => {
                let filter = match filter.strip_prefix("$share/") {
                    Some(rest) => match rest.split_once('/') {
                        Some((group, f)) if !group.is_empty() && !group.contains(['+', '#']) => f,
                        _ => return false,
                    },
                    None => filter,
                };
                let Some((device, leaf)) = self.reader_topic(filter) else { return false };
                (device == "+" || is_valid_device_id(device)) && matches!(leaf, "scan" | "status")
            }
            Identity::Reader(own) => self.reader_topic(filter) == Some((own.as_str(), "result")),
        }
    }
}

/// Counters of the proxy.
#[derive(Debug, Default)]
pub struct AclStats {
    /// CONNECTs refused (no or wrong credentials, unknown device, foreign client id or will).
    pub refused_connects: AtomicU64,
    /// Connections closed for a PUBLISH or SUBSCRIBE outside the ACL.
    pub violations: AtomicU64,
    /// Connections admitted.
    pub admitted: AtomicU64,
}

/// A snapshot of [`AclStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclSnapshot {
    /// See [`AclStats::refused_connects`].
    pub refused_connects: u64,
    /// See [`AclStats::violations`].
    pub violations: u64,
    /// See [`AclStats::admitted`].
    pub admitted: u64,
}

impl AclStats {
    /// The counters now.
    pub fn snapshot(&self) -> AclSnapshot {
        AclSnapshot {
            refused_connects: self.refused_connects.load(Ordering::Relaxed),
            violations: self.violations.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
        }
    }
}

/// Why a CONNECT is refused: the CONNACK return code (MQTT 3.1.1 §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 2: identifier rejected (a client id another user holds).
    Identifier = 2,
    /// 4: bad user name or password (also: none, an unknown device).
    Credentials = 4,
    /// 5: not authorised (a Last Will outside the ACL).
    NotAuthorized = 5,
}

/// Who may connect: the gateway's login, readers by the iot registry, and the ACL.
pub struct BrokerAuth {
    acl: Acl,
    gateway: MqttLogin,
    gateway_client_id: String,
    device_key_secret: Secret,
    pool: DbPool,
    /// device id → (key version, or `None` for unknown; when read).
    devices: Mutex<HashMap<String, (Option<i32>, Instant)>>,
    /// client id → (username, connection generation, persistent session).
    owners: Mutex<HashMap<String, (String, u64, bool)>>,
    generation: AtomicU64,
    stats: Arc<AclStats>,
}

impl std::fmt::Debug for BrokerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAuth").field("acl", &self.acl).field("gateway", &self.gateway).finish_non_exhaustive()
    }
}

impl BrokerAuth {
    /// The rules of `config` (prefix, the gateway's login and client id, the device-key
    /// secret) with readers looked up in `pool` (`iot.devices`).
    pub fn from_config(config: &Config, pool: DbPool) -> anyhow::Result<Self> {
        let device_key_secret = config.device_key_secret.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "PHOENIX_DEVICE_KEY_SECRET is not set: the embedded broker derives reader passwords from it"
            )
        })?;
        let gateway = MqttLogin::gateway(config).ok_or_else(|| anyhow::anyhow!("no MQTT password for the gateway"))?;
        Ok(Self {
            acl: Acl::new(config.mqtt_prefix.clone()),
            gateway,
            gateway_client_id: config.mqtt_client_id.clone(),
            device_key_secret,
            pool,
            devices: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            stats: Arc::default(),
        })
    }

    /// The proxy's counters.
    pub fn stats(&self) -> Arc<AclStats> {
        self.stats.clone()
    }

    async fn key_version(&self, device: &str, fresh: bool) -> Option<i32> {
        let now = Instant::now();
        if !fresh && let Some((version, at)) = self.devices.lock().expect("cache").get(device).copied() {
            let ttl = if version.is_some() { KNOWN_TTL } else { UNKNOWN_TTL };
            if now.duration_since(at) < ttl {
                return version;
            }
        }
        // A database outage refuses the CONNECT (the client retries); nothing is cached.
        let version = match phoenix_iot::presence::credentials(&self.pool, device).await {
            Ok(c) => c.map(|c| c.key_version),
            Err(e) => {
                tracing::warn!(error = %e, device, "broker: reader look-up failed; CONNECT refused");
                return None;
            }
        };
        let mut cache = self.devices.lock().expect("cache");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(device.to_owned(), (version, now));
        version
    }

    async fn reader_password_ok(&self, device: &str, password: &str) -> bool {
        for fresh in [false, true] {
            let Some(version) = self.key_version(device, fresh).await else { return false };
            let key = derive_device_key(self.device_key_secret.expose().as_bytes(), device, version);
            if constant_time_eq(reader_password(&key).as_bytes(), password.as_bytes()) {
                return true;
            }
        }
        false
    }

    /// Checks a CONNECT: credentials, client id, Last Will.
    async fn authenticate(&self, connect: &Connect) -> Result<Identity, Refusal> {
        let login = connect.login.as_ref().filter(|l| !l.username.is_empty()).ok_or(Refusal::Credentials)?;
        let who = if login.username == self.gateway.username {
            if !constant_time_eq(login.password.as_bytes(), self.gateway.password.expose().as_bytes()) {
                return Err(Refusal::Credentials);
            }
            Identity::Gateway
        } else {
            if !is_valid_device_id(&login.username) || !self.reader_password_ok(&login.username, &login.password).await
            {
                return Err(Refusal::Credentials);
            }
            Identity::Reader(login.username.clone())
        };
        if who != Identity::Gateway && connect.client_id == self.gateway_client_id {
            return Err(Refusal::Identifier);
        }
        if let Some(will) = &connect.last_will
            && !self.acl.may_publish(&who, &will.topic)
        {
            return Err(Refusal::NotAuthorized);
        }
        Ok(who)
    }

    /// Claims `client_id` for `username`; `None` when another user holds it. An empty client
    /// id (the broker assigns one) is nobody's.
    fn claim(&self, client_id: &str, username: &str, persistent: bool) -> Option<u64> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if client_id.is_empty() {
            return Some(generation);
        }
        let mut owners = self.owners.lock().expect("owners");
        match owners.get(client_id) {
            Some((owner, _, _)) if owner != username => None,
            _ => {
                owners.insert(client_id.to_owned(), (username.to_owned(), generation, persistent));
                Some(generation)
            }
        }
    }

    /// A connection ended: a clean session's client id is free again.
    fn release(&self, client_id: &str, generation: u64) {
        let mut owners = self.owners.lock().expect("owners");
        if let Some((_, g, persistent)) = owners.get(client_id)
            && *g == generation
            && !*persistent
        {
            owners.remove(client_id);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts clients on `listener` and proxies each to the broker at `upstream` under `auth`'s
/// rules, until the task is dropped.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, auth: Arc<BrokerAuth>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "broker: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let auth = auth.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(client, upstream, &auth).await {
                tracing::debug!(%peer, error = %e, "broker: connection ended");
            }
        });
    }
}

/// Reads one whole packet into `buf`; returns its raw bytes and the parse.
async fn read_packet(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<(BytesMut, Packet)>> {
    loop {
        match mqttbytes::check(buf.iter(), MAX_PACKET) {
            Ok(header) => {
                let frame = buf.split_to(header.frame_length());
                // Only PUBLISH, SUBSCRIBE and CONNECT need a parse; the rest passes as it is.
                let packet = match header.packet_type()? {
                    PacketType::Connect | PacketType::Publish | PacketType::Subscribe => {
                        Packet::read(&mut frame.clone(), MAX_PACKET)?
                    }
                    _ => Packet::PingReq,
                };
                return Ok(Some((frame, packet)));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                if stream.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(e) => anyhow::bail!("bad MQTT packet: {e:?}"),
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, auth: &BrokerAuth) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let mut buf = BytesMut::with_capacity(1024);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut client_rx, &mut buf)).await??;
    let Some((frame, Packet::Connect(connect))) = first else { anyhow::bail!("first packet is not CONNECT") };
    let checked = auth.authenticate(&connect).await;
    let username = connect.login.as_ref().map(|l| l.username.clone()).unwrap_or_default();
    let claimed = checked.and_then(|who| {
        auth.claim(&connect.client_id, &username, !connect.clean_session).map(|g| (who, g)).ok_or(Refusal::Identifier)
    });
    let (who, generation) = match claimed {
        Ok(ok) => ok,
        Err(refusal) => {
            auth.stats.refused_connects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(username = %username, reason = ?refusal, "broker: CONNECT refused");
            client_tx.write_all(&[0x20, 0x02, 0x00, refusal as u8]).await?;
            client_tx.shutdown().await?;
            return Ok(());
        }
    };
    auth.stats.admitted.fetch_add(1, Ordering::Relaxed);
    let result = relay(client_rx, client_tx, buf, frame, upstream, auth, &who).await;
    auth.release(&connect.client_id, generation);
    result
}

async fn relay(
    mut client_rx: tokio::net::tcp::OwnedReadHalf,
    mut client_tx: tokio::net::tcp::OwnedWriteHalf,
    mut buf: BytesMut,
    connect: BytesMut,
    upstream: SocketAddr,
    auth: &BrokerAuth,
    who: &Identity,
) -> anyhow::Result<()> {
    let broker = TcpStream::connect(upstream).await?;
    broker.set_nodelay(true)?;
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    broker_tx.write_all(&connect).await?;
    // Broker → client: untouched. It ends when either side closes.
    let mut down = tokio::spawn(async move {
        let _ = copy_acking_at_once(&mut broker_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    });
    let up = async {
        loop {
            let Some((frame, packet)) = read_packet(&mut client_rx, &mut buf).await? else { return Ok(()) };
            let allowed = match &packet {
                Packet::Publish(p) => auth.acl.may_publish(who, &p.topic),
                Packet::Subscribe(s) => s.filters.iter().all(|f| auth.acl.may_subscribe(who, &f.path)),
                Packet::Connect(_) => false,
                _ => true,
            };
            if !allowed {
                auth.stats.violations.fetch_add(1, Ordering::Relaxed);
                let (kind, topic) = match &packet {
                    Packet::Publish(p) => ("publish", p.topic.clone()),
                    Packet::Subscribe(s) => {
                        ("subscribe", s.filters.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(","))
                    }
                    _ => ("connect", String::new()),
                };
                tracing::warn!(who = ?who, kind, topic = %topic, "broker: outside the ACL; connection closed");
                return Ok(());
            }
            broker_tx.write_all(&frame).await?;
        }
    };
    let result: anyhow::Result<()> = tokio::select! {
        r = up => r,
        _ = &mut down => Ok(()),
    };
    // Closing the broker side ends the copy above (and rumqttd publishes a Last Will, as
    // for any dropped connection).
    let _ = broker_tx.shutdown().await;
    drop(broker_tx);
    down.abort();
    result
}

/// Copies what rumqttd sends to the client, acknowledging every segment at once.
///
/// rumqttd sets no `TCP_NODELAY` on the connections it accepts, so a small packet it writes
/// while an earlier one is unacknowledged (a Result PUBLISH after the scan's PUBACK) waits
/// for the ACK, which a delayed-ACK receiver sends only after ~40 ms: the one-reader latency
/// floor of issue #17. `TCP_QUICKACK` on our side of the loopback connection, re-armed after
/// every read (the kernel drops it again), answers each segment at once, so Nagle never
/// holds a packet back.
///
/// The buffer is small: what rumqttd sends a reader is a CONNACK, acknowledgements and
/// Results of a few hundred bytes, and a larger packet just takes more reads. With 1,000
/// readers connected it is memory every one of them holds (the gateway's RSS, issue #17).
async fn copy_acking_at_once(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        quickack(from.as_ref());
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// [`copy_acking_at_once`]'s buffer per connection.
const COPY_BUFFER_BYTES: usize = 2 * 1024;

#[cfg(target_os = "linux")]
fn quickack(stream: &TcpStream) {
    // Best effort: without it the relay still works, only slower.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(target_os = "linux"))]
fn quickack(_stream: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_publish_and_subscribe_only_their_own_topics() {
        let acl = Acl::new("phoenix");
        let a = Identity::Reader("reader-01".into());
        assert!(acl.may_publish(&a, "phoenix/readers/reader-01/scan"));
        assert!(acl.may_publish(&a, "phoenix/readers/reader-01/status"));
        assert!(!acl.may_publish(&a, "phoenix/readers/reader-01/result"));
        assert!(!acl.may_publish(&a, "phoenix/readers/reader-02/scan"));
        assert!(!acl.may_publish(&a, "other/readers/reader-01/scan"));
        assert!(!acl.may_publish(&a, "phoenix/readers/reader-01/scan/x"));
        assert!(acl.may_subscribe(&a, "phoenix/readers/reader-01/result"));
        assert!(!acl.may_subscribe(&a, "phoenix/readers/+/result"));
        assert!(!acl.may_subscribe(&a, "phoenix/readers/reader-02/result"));
        assert!(!acl.may_subscribe(&a, "#"));
    }

    #[test]
    fn the_gateway_reads_every_reader_and_answers_them() {
        let acl = Acl::new("phoenix");
        let g = Identity::Gateway;
        assert!(acl.may_subscribe(&g, "phoenix/readers/+/scan"));
        assert!(acl.may_subscribe(&g, "phoenix/readers/+/status"));
        assert!(acl.may_subscribe(&g, "$share/gw/phoenix/readers/+/scan"));
        assert!(!acl.may_subscribe(&g, "$share//phoenix/readers/+/scan"));
        assert!(!acl.may_subscribe(&g, "phoenix/readers/+/result"));
        assert!(!acl.may_subscribe(&g, "phoenix/#"));
        assert!(acl.may_publish(&g, "phoenix/readers/reader-07/result"));
        assert!(!acl.may_publish(&g, "phoenix/readers/reader-07/scan"));
        assert!(!acl.may_publish(&g, "phoenix/readers/+/result"));
    }

    #[test]
    fn mosquitto_lines_have_the_pbkdf2_sha512_format() {
        let line = mosquitto_password_line(&MqttLogin::new("reader-01", "pw"), &[7; 12]);
        let parts: Vec<&str> = line.split('$').collect();
        assert_eq!(parts[0], "reader-01:");
        assert_eq!(parts[1], "7");
        assert_eq!(parts[2], "101");
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(parts[3]).expect("salt").len(), 12);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(parts[4]).expect("hash").len(), 64);
    }

    #[test]
    fn mosquitto_lines_match_mosquitto_passwd() {
        // `mosquitto_passwd -b file u1 secretpw` (Mosquitto 2.0) wrote this line.
        let expected = "u1:$7$101$7c0zi0wg9Brs9ClU$eOIIQG2eXqMxJzHMintPOq4K3OE4dX+B33lbiIO7B0Ut3sU6Nu/zlIQ3ZrP77aqEQ0WKYof/gNDWfwiyeGfACA==";
        let salt: [u8; 12] =
            base64::engine::general_purpose::STANDARD.decode("7c0zi0wg9Brs9ClU").expect("b64").try_into().expect("12");
        assert_eq!(mosquitto_password_line(&MqttLogin::new("u1", "secretpw"), &salt), expected);
    }

    #[test]
    fn reader_passwords_follow_the_key() {
        let k1 = derive_device_key(b"s".repeat(32).as_slice(), "reader-01", 1);
        let k2 = derive_device_key(b"s".repeat(32).as_slice(), "reader-01", 2);
        assert_ne!(reader_password(&k1), reader_password(&k2));
        assert_eq!(reader_password(&k1).len(), 64);
        assert_ne!(reader_password(&k1), k1);
    }
}
