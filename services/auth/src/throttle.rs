//! In-memory failure counters (reference §2.8, [R]: per email and per client address).
//!
//! Keys are never one bucket for everyone: the address is the real caller's (behind the
//! gateway, the one it signed into `x-phoenix-client-addr`, see
//! [`phoenix_common::client_addr`]), not the gateway's, and service-credential exchanges
//! count in their own limiter, per client id and address, so failed logins never block a
//! service's token renewal.
//!
//! Per process: with several auth replicas an attacker gets up to `replicas × limit`
//! attempts per window. The durable per-account lockout (`auth.accounts.login_locked_until`)
//! holds across replicas; this limiter adds the same throttle for emails that have no
//! account (so throttling reveals nothing) and for noisy client addresses.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept (bounds memory under a flood of keys).
const SWEEP_AT: usize = 10_000;

/// Counts failures per key in fixed windows; a key with `limit` failures in its current
/// window is blocked until the window ends.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    /// A limiter allowing `limit` failures per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` while `key` is blocked.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((count, start)) if *count >= self.limit && start.elapsed() < self.window => {
                Err(self.window.saturating_sub(start.elapsed()).max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Records one failure of `key`.
    pub fn record_failure(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= SWEEP_AT {
            let window = self.window;
            entries.retain(|_, (_, start)| start.elapsed() < window);
        }
        let entry = entries.entry(key.clone()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets `key` (after a success).
    pub fn reset(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_reset() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        assert!(l.check(&"a").is_ok());
        l.record_failure(&"a");
        assert!(l.check(&"a").is_ok());
        l.record_failure(&"a");
        let retry = l.check(&"a").unwrap_err();
        assert!(retry > Duration::from_secs(50) && retry <= Duration::from_secs(60), "{retry:?}");
        assert!(l.check(&"b").is_ok(), "keys are independent");
        l.reset(&"a");
        assert!(l.check(&"a").is_ok());
    }

    #[test]
    fn a_window_ends() {
        let l = FailureLimiter::new(1, Duration::from_millis(20));
        l.record_failure(&1);
        assert!(l.check(&1).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.check(&1).is_ok());
    }
}
