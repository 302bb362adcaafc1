//! `phoenix reader-sim`: a simulated RFID reader on the command line. It signs each scan with
//! the device key, publishes it, waits for the Result (re-sending every 5 s like firmware)
//! and prints it; `--replay` publishes a whole offline buffer at once. It logs in to the broker
//! as its device id with the key-derived password (or `--mqtt-password`).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use phoenix_gateway::broker_acl::MqttLogin;
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::Scan;

/// What to send.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// `mqtt://host:port`.
    pub broker: String,
    /// Topic prefix.
    pub prefix: String,
    /// The reader's device id.
    pub device: String,
    /// The reader's device key.
    pub key: String,
    /// Tags to scan now, one after the other.
    pub tags: Vec<String>,
    /// An offline buffer: lines `tag` or `tag,scanned_at` (RFC 3339); `#` comments.
    pub replay: Option<std::path::PathBuf>,
    /// How long to wait for each Result.
    pub timeout: Duration,
    /// The broker password (`None`: derived from the key; the username is the device id).
    pub mqtt_password: Option<String>,
}

/// Parses an offline buffer file.
pub fn read_buffer(path: &Path, now: DateTime<Utc>) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    parse_buffer(&text, now)
}

/// Parses offline-buffer lines (`tag` or `tag,scanned_at`); lines without a time are spread
/// one second apart, ending now.
pub fn parse_buffer(text: &str, now: DateTime<Utc>) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let n = lines.len() as i64;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| match line.split_once(',') {
            Some((tag, at)) => {
                let at = DateTime::parse_from_rfc3339(at.trim())
                    .map_err(|e| anyhow::anyhow!("line {}: bad scanned_at {at:?}: {e}", i + 1))?;
                Ok((tag.trim().to_owned(), at.to_utc()))
            }
            None => Ok((line.to_string(), now - chrono::Duration::seconds(n - 1 - i as i64))),
        })
        .collect()
}

fn print(scan: &Scan, raw: &str) {
    println!("{} → {raw}", scan.scan_id);
}

/// Runs the simulator.
pub async fn run(opts: SimOptions) -> anyhow::Result<()> {
    let login = match &opts.mqtt_password {
        Some(password) => MqttLogin::new(opts.device.clone(), password.clone()),
        None => MqttLogin::reader(&opts.device, &opts.key),
    };
    let mut reader = SimReader::connect_with(&opts.broker, &opts.prefix, &opts.device, &opts.key, &login).await?;
    let now = Utc::now();
    let stamp = now.timestamp_millis();
    let id = |i: usize| format!("{}-{stamp}-{i}", opts.device);

    if let Some(path) = &opts.replay {
        let buffer = read_buffer(path, now)?;
        let scans: Vec<Scan> = buffer.iter().enumerate().map(|(i, (tag, at))| reader.sign(&id(i), tag, *at)).collect();
        println!("replaying {} buffered scans from {}", scans.len(), path.display());
        let results = reader.replay(&scans, opts.timeout).await?;
        for (scan, r) in scans.iter().zip(&results) {
            print(scan, &r.raw);
        }
    }
    let offset = opts.replay.as_ref().map(|_| 100_000).unwrap_or(0);
    for (i, tag) in opts.tags.iter().enumerate() {
        let scan = reader.sign(&id(offset + i), tag, Utc::now());
        let r = reader.send(&scan, opts.timeout).await?;
        print(&scan, &r.raw);
    }
    reader.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_parse_with_and_without_times() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").expect("valid").to_utc();
        let parsed =
            parse_buffer("# buffer\n04A1B2C3\n\n04A1B2C4, 2026-11-25T09:00:00+01:00\n04A1B2C5\n", now).expect("valid");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], ("04A1B2C3".into(), now - chrono::Duration::seconds(2)));
        assert_eq!(parsed[1].1.to_rfc3339(), "2026-11-25T08:00:00+00:00");
        assert_eq!(parsed[2].1, now);
        assert!(parse_buffer("04A1,yesterday", now).is_err());
    }
}
