//! The bridge's counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the bridge did (for tests, logs and later metrics).
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub(super) received: AtomicU64,
    pub(super) processed: AtomicU64,
    pub(super) results_published: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) bad_signature: AtomicU64,
    pub(super) unknown_device: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) unanswered: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) oversized: AtomicU64,
    pub(super) overflow: AtomicU64,
    pub(super) status_messages: AtomicU64,
    pub(super) connections: AtomicU64,
    pub(super) connection_errors: AtomicU64,
}

/// A copy of [`BridgeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received on the subscribed topics.
    pub received: u64,
    /// Scans answered by ProcessScan.
    pub processed: u64,
    /// Results published.
    pub results_published: u64,
    /// Scans answered `malformed`.
    pub malformed: u64,
    /// Messages dropped without an answer (bad topic or device id, bad status payload).
    pub dropped: u64,
    /// Scans refused for their signature.
    pub bad_signature: u64,
    /// Scans from unknown device ids.
    pub unknown_device: u64,
    /// Scans answered `rate_limited` (a reader sending faster than its limit).
    pub rate_limited: u64,
    /// Scans left unanswered after a transient failure outlasted the retry budget (the
    /// reader re-sends).
    pub unanswered: u64,
    /// Retries after a transient failure.
    pub retries: u64,
    /// Messages over 4 KiB (cut at once, answered `malformed`).
    pub oversized: u64,
    /// Messages dropped because their reader's queue or the bridge was full.
    pub overflow: u64,
    /// Status messages handled.
    pub status_messages: u64,
    /// Successful (re)connections.
    pub connections: u64,
    /// Connection errors (each followed by a backoff and a reconnect).
    pub connection_errors: u64,
}

impl BridgeStats {
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: get(&self.received),
            processed: get(&self.processed),
            results_published: get(&self.results_published),
            malformed: get(&self.malformed),
            dropped: get(&self.dropped),
            bad_signature: get(&self.bad_signature),
            unknown_device: get(&self.unknown_device),
            rate_limited: get(&self.rate_limited),
            unanswered: get(&self.unanswered),
            retries: get(&self.retries),
            oversized: get(&self.oversized),
            overflow: get(&self.overflow),
            status_messages: get(&self.status_messages),
            connections: get(&self.connections),
            connection_errors: get(&self.connection_errors),
        }
    }
}
