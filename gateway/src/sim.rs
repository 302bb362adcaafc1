//! A simulated RFID reader that speaks the reader protocol (docs/reader-pipeline.md) as real firmware would: it signs
//! scans with its device key, publishes them with QoS 1, waits for the Result on its result
//! topic, re-sends an unanswered scan unchanged every 5 s, can replay an offline buffer, and
//! announces itself `online` (retained) with an `offline` Last Will. It logs in to the broker
//! as its device id with the password derived from its key ([`crate::broker_acl::reader_password`]).
//!
//! Used by `phoenix reader-sim`, the integration tests and the bench.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use phoenix_reader_protocol::{Scan, ScanResult, sign, topics};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::bridge::parse_mqtt_url;
use crate::broker_acl::MqttLogin;

/// How long a reader waits for a Result before re-sending (docs/reader-pipeline.md).
pub const RESEND_AFTER: Duration = Duration::from_secs(5);

/// A Result as received: the exact payload, and its parse.
#[derive(Debug, Clone)]
pub struct Received {
    /// The payload, byte for byte.
    pub raw: String,
    /// The decoded Result (`None` if the payload did not decode).
    pub result: Option<ScanResult>,
}

impl Received {
    /// The decoded Result; panics with the raw payload when it did not decode (tests).
    pub fn expect_result(&self) -> &ScanResult {
        self.result.as_ref().unwrap_or_else(|| panic!("undecodable result: {}", self.raw))
    }

    fn scan_id(&self) -> Option<&str> {
        self.result.as_ref().map(|r| r.scan_id.as_str())
    }
}

/// A connected simulated reader.
pub struct SimReader {
    client: AsyncClient,
    prefix: String,
    device_id: String,
    key: String,
    results: mpsc::UnboundedReceiver<Received>,
    unclaimed: VecDeque<Received>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SimReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimReader").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// `scanned_at` as a reader writes it: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl SimReader {
    /// Connects to the broker at `url` as reader `device_id` with device key `key` (its
    /// broker login: [`MqttLogin::reader`]), and returns once it is subscribed to its result topic.
    pub async fn connect(url: &str, prefix: &str, device_id: &str, key: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, prefix, device_id, key, &MqttLogin::reader(device_id, key)).await
    }

    /// Like [`SimReader::connect`], logging in to the broker with `login`.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        device_id: &str,
        key: &str,
        login: &MqttLogin,
    ) -> anyhow::Result<Self> {
        let (host, port) = parse_mqtt_url(url)?;
        let suffix: u32 = {
            use rand::RngExt as _;
            rand::rng().random()
        };
        let mut options = MqttOptions::new(format!("sim-{device_id}-{suffix:08x}"), host, port);
        let status = topics::status(prefix, device_id);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1024 * 1024, 1024 * 1024)
            .set_credentials(login.username.clone(), login.password.expose())
            .set_last_will(LastWill::new(status.clone(), "offline", QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        // Scans and Results are small packets on a request/response path: no Nagle delay.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let result_topic = topics::result(prefix, device_id);
        let subscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Clean session: subscribe on every (re)connect.
                        let (c, t) = (subscriber.clone(), result_topic.clone());
                        tokio::spawn(async move { c.subscribe(t, QoS::AtLeastOnce).await });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == result_topic => {
                        let raw = String::from_utf8_lossy(&p.payload).into_owned();
                        let result = serde_json::from_str(&raw).ok();
                        if tx.send(Received { raw, result }).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => return,
                    // Refused credentials do not get better by retrying: say so at once.
                    Err(rumqttc::ConnectionError::ConnectionRefused(code)) if ready.is_some() => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(format!("the broker refused the login: {code:?}")));
                        }
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("reader {device_id}: not subscribed within 10 s (is the broker at {url}?)"))?
            .map_err(|_| anyhow::anyhow!("reader {device_id}: connection task ended"))?
            .map_err(|e| anyhow::anyhow!("reader {device_id}: {e}"))?;
        client.publish(status, QoS::AtLeastOnce, true, "online").await?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            device_id: device_id.to_owned(),
            key: key.to_owned(),
            results: rx,
            unclaimed: VecDeque::new(),
            task,
        })
    }

    /// The reader's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// A scan signed with this reader's key.
    pub fn sign(&self, scan_id: &str, tag: &str, scanned_at: DateTime<Utc>) -> Scan {
        self.sign_raw(scan_id, tag, &timestamp(scanned_at))
    }

    /// A scan with `scanned_at` exactly as given, signed with this reader's key.
    pub fn sign_raw(&self, scan_id: &str, tag: &str, scanned_at: &str) -> Scan {
        Scan {
            scan_id: scan_id.to_owned(),
            tag: tag.to_owned(),
            scanned_at: scanned_at.to_owned(),
            sig: Some(sign(&self.key, &self.device_id, scan_id, tag, scanned_at)),
        }
    }

    /// Publishes a scan (QoS 1) without waiting for its Result.
    pub async fn publish(&self, scan: &Scan) -> anyhow::Result<()> {
        self.publish_payload(&self.device_id.clone(), scan.to_json()).await
    }

    /// Publishes any payload on `{p}/readers/{device}/scan` (for malformed-input tests).
    pub async fn publish_payload(&self, device: &str, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        let topic = topics::scan(&self.prefix, device);
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await?;
        Ok(())
    }

    /// Publishes a status message (retained, as firmware does).
    pub async fn publish_status(&self, payload: &str) -> anyhow::Result<()> {
        let topic = topics::status(&self.prefix, &self.device_id);
        self.client.publish(topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec()).await?;
        Ok(())
    }

    /// The next Result for `scan_id` within `timeout` (others are kept for later calls).
    pub async fn result_for(&mut self, scan_id: &str, timeout: Duration) -> Option<Received> {
        if let Some(i) = self.unclaimed.iter().position(|r| r.scan_id() == Some(scan_id)) {
            return self.unclaimed.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, self.results.recv()).await.ok()??;
            if received.scan_id() == Some(scan_id) {
                return Some(received);
            }
            self.unclaimed.push_back(received);
        }
    }

    /// The next Result of any scan within `timeout`.
    pub async fn next_result(&mut self, timeout: Duration) -> Option<Received> {
        if let Some(r) = self.unclaimed.pop_front() {
            return Some(r);
        }
        tokio::time::timeout(timeout, self.results.recv()).await.ok()?
    }

    /// Sends a scan like a reader: publish, wait up to 5 s for its Result, re-send unchanged,
    /// until a Result arrives or `timeout` passes.
    pub async fn send(&mut self, scan: &Scan, timeout: Duration) -> anyhow::Result<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.publish(scan).await?;
            let wait = RESEND_AFTER.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if let Some(r) = self.result_for(&scan.scan_id, wait).await {
                return Ok(r);
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("no result for scan {} within {timeout:?}", scan.scan_id);
            }
        }
    }

    /// Replays an offline buffer: publishes every scan, then collects their Results (in the
    /// buffer's order), re-sending any still unanswered after 5 s.
    pub async fn replay(&mut self, scans: &[Scan], timeout: Duration) -> anyhow::Result<Vec<Received>> {
        for scan in scans {
            self.publish(scan).await?;
        }
        let mut out = Vec::with_capacity(scans.len());
        for scan in scans {
            let r = match self.result_for(&scan.scan_id, RESEND_AFTER).await {
                Some(r) => r,
                None => self.send(scan, timeout).await?,
            };
            out.push(r);
        }
        Ok(out)
    }

    /// Disconnects cleanly (no Last Will).
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for SimReader {
    fn drop(&mut self) {
        // The connection task would otherwise keep reconnecting.
        self.task.abort();
    }
}
