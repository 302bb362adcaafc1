//! Token buckets per key (a reader's device id; a browser client), in memory.
//!
//! Each key refills at `per_second` up to `burst`. Memory stays bounded however many keys
//! arrive (topics and addresses are attacker-chosen): past [`MAX_KEYS`], buckets that have
//! refilled completely — indistinguishable from new ones — are dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are evicted.
pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key.
#[derive(Debug)]
pub struct KeyedLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyedLimiter {
    /// `per_second` sustained, `burst` at once; `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then(|| Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token of `key` at `now`: `Ok`, or `Err(wait)` until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
            if buckets.len() >= MAX_KEYS {
                // Everyone is busy: forget the lot rather than grow (errs on letting through).
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_the_sustained_rate() {
        let limiter = KeyedLimiter::new(2, 3).expect("limited");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("r1", t0).is_ok());
        }
        let wait = limiter.check("r1", t0).expect_err("burst used up");
        assert_eq!(wait, Duration::from_millis(500), "one token per half second");
        assert!(limiter.check("r2", t0).is_ok(), "keys are independent");
        assert!(limiter.check("r1", t0 + Duration::from_millis(500)).is_ok(), "refilled one");
        assert!(limiter.check("r1", t0 + Duration::from_millis(500)).is_err());
        for _ in 0..3 {
            assert!(limiter.check("r1", t0 + Duration::from_secs(60)).is_ok(), "refills up to the burst");
        }
        assert!(limiter.check("r1", t0 + Duration::from_secs(60)).is_err(), "never more than the burst");
    }

    #[test]
    fn zero_means_no_limit_and_memory_stays_bounded() {
        assert!(KeyedLimiter::new(0, 10).is_none());
        let limiter = KeyedLimiter::new(1, 1).expect("limited");
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 2) {
            let _ = limiter.check(&format!("k{i}"), t0);
        }
        assert!(limiter.buckets.lock().expect("lock").len() <= MAX_KEYS);
    }
}
