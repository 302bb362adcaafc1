//! Token buckets per key: the per-client rate limit on API calls, and the per-reader limit
//! on scans (`bridge`, keyed by device id).
//!
//! The per-client rate limit on API calls: a token bucket per client, refilled at
//! `per_second` up to `burst`. A call takes one token when it starts (a stream counts once,
//! at its open); without one it is answered RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`
//! saying when the next token is there.
//!
//! Clients are accounts (or service clients) whose bearer token verifies, else IP addresses
//! (IPv6 by /64, what one host usually holds): the real client's, as `client_addr.rs`
//! resolves it (`X-Forwarded-For` only from a trusted proxy), never the ingress's. A bucket that has been idle long enough to be
//! full again is the same as none and is forgotten, so memory is bounded by the clients
//! active within one refill time, capped at `max_clients`; past the cap, new clients share
//! one overflow bucket until idle ones are swept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use phoenix_common::authz::{Principal, TokenVerifier};

/// Requests per second per client, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained rate; 0 = no limit.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit { per_second: 0.0, burst: 1 };

    fn is_off(self) -> bool {
        self.per_second <= 0.0 || !self.per_second.is_finite()
    }

    /// How long an untouched bucket takes to be full again.
    fn refill_time(self) -> Duration {
        Duration::from_secs_f64((f64::from(self.burst.max(1)) / self.per_second).min(1e9))
    }
}

/// Whose bucket a call takes its token from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A verified account.
    Account(i64),
    /// A verified service client.
    Service(String),
    /// An unauthenticated (or unverifiable) caller, by address (IPv6 masked to /64).
    Ip(IpAddr),
    /// Clients past the cap, together.
    Overflow,
}

impl ClientKey {
    /// The key for a caller at `ip`.
    pub fn ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::Ip(IpAddr::V4(v4)),
                None => ClientKey::Ip(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
            },
            v4 => ClientKey::Ip(v4),
        }
    }

    /// The caller of a request: the principal of its bearer token when `verifier` accepts
    /// it, else its address (`client`, the resolved real client address). An invalid token never gets a bucket of its own (a client
    /// inventing tokens would otherwise escape the limit).
    pub async fn of(headers: &HeaderMap, client: Option<IpAddr>, verifier: Option<&TokenVerifier>) -> Self {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        if let (Some(token), Some(verifier)) = (token, verifier)
            && let Ok(context) = verifier.verify(token).await
        {
            return match context.principal {
                Principal::Account(id) => ClientKey::Account(id),
                Principal::Service(client) => ClientKey::Service(client),
            };
        }
        match client {
            Some(ip) => ClientKey::ip(ip),
            None => ClientKey::Overflow,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a bucket is kept for: a client, a reader.
pub trait LimitKey: std::hash::Hash + Eq {
    /// The one bucket newcomers share once `max_clients` busy keys are tracked.
    fn overflow() -> Self;
}

impl LimitKey for ClientKey {
    fn overflow() -> Self {
        ClientKey::Overflow
    }
}

/// Readers by device id (1–64 characters, so the empty id never collides).
impl LimitKey for String {
    fn overflow() -> Self {
        String::new()
    }
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    swept_at: Instant,
}

/// Token buckets per key (clients by default).
#[derive(Debug)]
pub struct RateLimiter<K = ClientKey> {
    limit: RateLimit,
    max_clients: usize,
    buckets: Mutex<Buckets<K>>,
}

/// Idle buckets are swept at least this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl<K: LimitKey> RateLimiter<K> {
    /// Default cap on tracked clients (a bucket is a few dozen bytes).
    pub const MAX_CLIENTS: usize = 100_000;

    /// A limiter for `limit`, tracking at most `max_clients` clients.
    pub fn new(limit: RateLimit, max_clients: usize) -> Self {
        let buckets = Buckets { map: HashMap::new(), swept_at: Instant::now() };
        Self { limit, max_clients: max_clients.max(1), buckets: Mutex::new(buckets) }
    }

    /// Whether this limiter limits anything.
    pub fn is_off(&self) -> bool {
        self.limit.is_off()
    }

    /// The configured limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token for `key` at `now`: `Ok` to go ahead, or how long until a token is
    /// there.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        if self.limit.is_off() {
            return Ok(());
        }
        let mut guard = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let buckets = &mut *guard;
        let refill = self.limit.refill_time();
        let idle = |b: &Bucket| now.saturating_duration_since(b.at) >= refill;
        if now.saturating_duration_since(buckets.swept_at) >= SWEEP_EVERY {
            buckets.map.retain(|_, b| !idle(b));
            buckets.swept_at = now;
        }
        let key = if buckets.map.contains_key(&key) || buckets.map.len() < self.max_clients {
            key
        } else {
            buckets.map.retain(|_, b| !idle(b));
            buckets.swept_at = now;
            if buckets.map.len() < self.max_clients { key } else { K::overflow() }
        };
        let burst = f64::from(self.limit.burst.max(1));
        let bucket = buckets.map.entry(key).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait.min(1e9)).max(Duration::from_millis(1)))
        }
    }

    /// How many clients are tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.map.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> ClientKey {
        ClientKey::ip(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let limiter = RateLimiter::<ClientKey>::new(RateLimit { per_second: 2.0, burst: 3 }, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), t0), Ok(()));
        }
        let wait = limiter.check(ip(1), t0).expect_err("burst used up");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(limiter.check(ip(2), t0), Ok(()), "another client has its own bucket");
        assert_eq!(limiter.check(ip(1), t0 + Duration::from_millis(500)), Ok(()));
        assert!(limiter.check(ip(1), t0 + Duration::from_millis(500)).is_err());
        // Refilled, but never above the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), later), Ok(()));
        }
        assert!(limiter.check(ip(1), later).is_err());
    }

    #[test]
    fn readers_are_limited_by_device_id() {
        let limiter = RateLimiter::<String>::new(RateLimit { per_second: 1.0, burst: 2 }, 10);
        let t0 = Instant::now();
        assert_eq!(limiter.check("reader-a".to_owned(), t0), Ok(()));
        assert_eq!(limiter.check("reader-a".to_owned(), t0), Ok(()));
        assert!(limiter.check("reader-a".to_owned(), t0).is_err());
        assert_eq!(limiter.check("reader-b".to_owned(), t0), Ok(()));
    }

    #[test]
    fn off_never_limits() {
        let limiter = RateLimiter::<ClientKey>::new(RateLimit::OFF, 1);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert_eq!(limiter.check(ip((i % 250) as u8), t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_and_idle_buckets_are_forgotten() {
        let limiter = RateLimiter::<ClientKey>::new(RateLimit { per_second: 1.0, burst: 2 }, 3);
        let t0 = Instant::now();
        for last in 1..=3 {
            limiter.check(ip(last), t0).expect("first call");
        }
        assert_eq!(limiter.tracked(), 3);
        // Past the cap while all are busy: newcomers share the overflow bucket.
        limiter.check(ip(4), t0).expect("overflow bucket");
        limiter.check(ip(5), t0).expect("overflow bucket");
        assert!(limiter.check(ip(6), t0).is_err(), "the overflow bucket is shared");
        assert_eq!(limiter.tracked(), 3 + 1);
        // Once the others are full again (idle for burst / rate), they make room.
        let later = t0 + Duration::from_secs(2);
        limiter.check(ip(7), later).expect("room after the sweep");
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ClientKey::ip(a), ClientKey::ip(b));
        assert_ne!(ClientKey::ip(a), ClientKey::ip(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(ClientKey::ip(mapped), ip(1));
    }
}
