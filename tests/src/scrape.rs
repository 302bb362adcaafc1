//! `GET /metrics` of a running process, parsed (tests of replicas that each serve their own
//! page): a scrape is a map of (name, labels) → value, read by exact labels or summed over a
//! label filter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One scrape: (name, labels) → value.
#[derive(Debug, Default)]
pub struct Page(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Page {
    /// The sample of `name` with exactly `labels`; 0 when it does not exist (yet).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0.get(&(name.to_owned(), labels)).copied().unwrap_or(0.0)
    }

    /// Whether a sample of `name` with exactly `labels` exists (whatever its value).
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0.contains_key(&(name.to_owned(), labels))
    }

    /// The sum of every sample of `name` whose labels include `having`.
    pub fn sum(&self, name: &str, having: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|((n, labels), _)| {
                n == name && having.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// `GET /metrics` at `addr` over a fresh HTTP/1.1 connection; panics unless it is a 200 with
/// the Prometheus text format.
pub async fn scrape(addr: SocketAddr) -> Page {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut raw))
        .await
        .expect("answered")
        .expect("utf-8 page");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    Page(body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(parse_line).collect())
}

/// `name{k="v",…} value` (Phoenix's label values never hold `"` or `,`).
fn parse_line(line: &str) -> ((String, BTreeMap<String, String>), f64) {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
    let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line:?}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let labels = rest
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("label in {line:?}"));
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels)
        }
        None => (series.to_owned(), BTreeMap::new()),
    };
    ((name, labels), value)
}
