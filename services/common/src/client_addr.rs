//! The caller's real address behind the gateway.
//!
//! Every call through the gateway arrives from the gateway's address, so the gateway passes
//! the address it saw (or the one a trusted proxy in front of it reported) in
//! [`HEADER`]: `x-phoenix-client-addr: <ip> <unix seconds> <hex HMAC-SHA256>`, the HMAC over
//! `"<ip> <unix seconds>"` with a key the gateway and the services share ([`ForwardingKey`],
//! from `PHOENIX_FORWARDING_SECRET`). A service believes the header only when its signature
//! verifies and it is at most [`MAX_AGE`] old; otherwise (a client setting it itself, a
//! gateway without the secret) it uses the TCP peer address. The gateway always drops a
//! header it received, so nobody can name an address but the gateway.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit as _, Mac as _};

use crate::config::{Config, Environment};

/// The request header carrying the signed client address.
pub const HEADER: &str = "x-phoenix-client-addr";

/// How old (or how far in the future, clock skew) a signed address may be.
pub const MAX_AGE: Duration = Duration::from_secs(300);

const PURPOSE: &str = "phoenix/forwarding/v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The key the client-address header is signed with. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardingKey([u8; 32]);

impl std::fmt::Debug for ForwardingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardingKey(<redacted>)")
    }
}

impl ForwardingKey {
    /// The key of this deployment: derived from `PHOENIX_FORWARDING_SECRET`; unset, in
    /// development from `PHOENIX_SECRET_KEY` (`phoenix dev` runs the gateway and the
    /// services in one process with one secret); unset in production: none (services then
    /// see the gateway's address, and the gateway warns at start).
    pub fn from_config(config: &Config) -> Option<Self> {
        match &config.forwarding_secret {
            Some(secret) => Some(Self::from_secret(secret.expose().as_bytes())),
            None if config.environment == Environment::Development => Some(Self(config.secret_key.derive_key(PURPOSE))),
            None => None,
        }
    }

    /// A key derived from `secret`.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self(mac(secret, format!("phoenix derive-key {PURPOSE}").as_bytes()).finalize().into_bytes().into())
    }

    /// The header value naming `ip` at `now`.
    pub fn sign(&self, ip: IpAddr, now: SystemTime) -> String {
        let message = format!("{ip} {}", unix(now));
        let tag = mac(&self.0, message.as_bytes()).finalize().into_bytes();
        format!("{message} {}", hex::encode(tag))
    }

    /// The address a header value names, when it was signed with this key within
    /// [`MAX_AGE`] of `now`.
    pub fn verify(&self, value: &str, now: SystemTime) -> Option<IpAddr> {
        let (message, tag) = value.trim().rsplit_once(' ')?;
        let (ip, at) = message.split_once(' ')?;
        let tag = hex::decode(tag).ok()?;
        mac(&self.0, message.as_bytes()).verify_slice(&tag).ok()?;
        let at: u64 = at.parse().ok()?;
        (unix(now).abs_diff(at) <= MAX_AGE.as_secs()).then_some(())?;
        ip.parse().ok()
    }
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The caller's address: the gateway's signed header when `key` verifies it, else the TCP
/// peer.
pub fn of<T>(request: &tonic::Request<T>, key: Option<&ForwardingKey>) -> Option<IpAddr> {
    let forwarded = key.and_then(|key| {
        let value = request.metadata().get(HEADER)?.to_str().ok()?;
        key.verify(value, SystemTime::now())
    });
    forwarded.or_else(|| request.remote_addr().map(|a| a.ip()))
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), 32, self.prefix) == masked(u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(n.into(), 128, self.prefix) == masked(a.into(), 128, self.prefix),
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    let host_bits = u32::from(width - prefix.min(width));
    if host_bits >= 128 { 0 } else { bits >> host_bits }
}

impl Cidr {
    /// A comma list of networks (`PHOENIX_TRUSTED_PROXIES`); blank entries are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Cidr>, String> {
        list.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::parse).collect()
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = canonical(addr.trim().parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address"))?);
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_address_verifies_only_with_its_key_and_while_fresh() {
        let key = ForwardingKey::from_secret(b"a forwarding secret of 32 characters..");
        let now = SystemTime::now();
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let value = key.sign(ip, now);
        assert_eq!(key.verify(&value, now), Some(ip));
        assert_eq!(key.verify(&value, now + Duration::from_secs(60)), Some(ip));
        assert_eq!(key.verify(&value, now + MAX_AGE + Duration::from_secs(2)), None, "too old");
        let other = ForwardingKey::from_secret(b"another secret of 32 characters.........");
        assert_eq!(other.verify(&value, now), None, "another key");
        let forged = value.replacen("203.0.113.7", "203.0.113.8", 1);
        assert_eq!(key.verify(&forged, now), None, "the address is signed");
        assert_eq!(key.verify("203.0.113.7", now), None);
        assert_eq!(key.verify("", now), None);
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.1".parse().expect("ip")), "IPv4-mapped");
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        let one: Cidr = "192.0.2.1".parse().expect("cidr");
        assert!(one.contains("192.0.2.1".parse().expect("ip")) && !one.contains("192.0.2.2".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")) && !v6.contains("2001:db9::1".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/8".parse::<Cidr>().is_err());
    }
}
