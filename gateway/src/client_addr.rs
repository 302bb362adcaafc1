//! Who a call really comes from, and telling the services.
//!
//! - The TCP peer is the client, unless it is one of `PHOENIX_TRUSTED_PROXIES` (an ingress
//!   in front of the gateway): then `X-Forwarded-For` is read from the right, skipping
//!   trusted hops, and the first untrusted address is the client. Anyone else's
//!   `X-Forwarded-For` is ignored (it is the client's own claim).
//! - That address keys the per-client rate limit (`rate.rs`) and is signed into
//!   `x-phoenix-client-addr` ([`phoenix_common::client_addr`]) on every forwarded call, so
//!   the services throttle logins and write audit rows by it. A header of that name a
//!   client sent is always dropped first.

use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};
use phoenix_common::client_addr::{Cidr, ForwardingKey, HEADER};

/// Trusted proxies and the forwarding key.
#[derive(Debug, Clone, Default)]
pub struct ClientAddr {
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
    /// Signs the header for the services; `None`: no header (services see the gateway).
    pub key: Option<ForwardingKey>,
}

impl ClientAddr {
    /// The real client of a call from `peer` with `headers`.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Hops are appended left to right; walk back from the nearest.
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(client)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// Replaces any client-sent `x-phoenix-client-addr` with the signed `client`.
    pub fn stamp(&self, headers: &mut HeaderMap, client: Option<IpAddr>) {
        headers.remove(HEADER);
        if let (Some(key), Some(ip)) = (&self.key, client)
            && let Ok(value) = HeaderValue::from_str(&key.sign(ip, SystemTime::now()))
        {
            headers.insert(HEADER, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).expect("ascii"));
        h
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let addr = ClientAddr { trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")], key: None };
        let h = xff("198.51.100.9, 203.0.113.5, 10.0.0.2");
        assert_eq!(addr.resolve(Some(ip("10.0.0.1")), &h), Some(ip("203.0.113.5")), "nearest untrusted hop");
        assert_eq!(addr.resolve(Some(ip("192.0.2.1")), &h), Some(ip("192.0.2.1")), "untrusted peer: ignored");
        assert_eq!(addr.resolve(Some(ip("10.0.0.1")), &HeaderMap::new()), Some(ip("10.0.0.1")));
        assert_eq!(addr.resolve(Some(ip("10.0.0.1")), &xff("garbage, 203.0.113.5")), Some(ip("10.0.0.1")));
        assert_eq!(addr.resolve(Some(ip("10.0.0.1")), &xff("10.0.0.3")), Some(ip("10.0.0.3")), "all trusted");
        assert_eq!(addr.resolve(None, &h), None);
    }

    #[test]
    fn a_client_sent_header_is_replaced() {
        let key = ForwardingKey::from_secret(b"a forwarding secret of 32 characters..");
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("127.0.0.1 0 00"));
        ClientAddr { trusted_proxies: Vec::new(), key: None }.stamp(&mut headers, Some(ip("192.0.2.1")));
        assert!(headers.get(HEADER).is_none(), "without a key: dropped, not passed on");
        headers.insert(HEADER, HeaderValue::from_static("127.0.0.1 0 00"));
        ClientAddr { trusted_proxies: Vec::new(), key: Some(key.clone()) }.stamp(&mut headers, Some(ip("192.0.2.1")));
        let value = headers.get(HEADER).and_then(|v| v.to_str().ok()).expect("stamped");
        assert_eq!(key.verify(value, SystemTime::now()), Some(ip("192.0.2.1")));
        assert_eq!(headers.get_all(HEADER).iter().count(), 1);
    }
}
