//! The per-reader caches in front of the iot domain: credentials (key version), `last_seen`
//! stamping and device-log throttling.

use std::time::Instant;

use phoenix_iot::model::LogEvent;
use phoenix_iot::presence::{self, Credentials};
use phoenix_reader_protocol::{Scan, derive_device_key, verify_signature};

use super::{Context, MAX_CACHE_ENTRIES, lock};

impl Context {
    /// The reader's credentials, cached; `refresh` bypasses the cache (after a failed
    /// signature check, in case the key was just rotated).
    pub(super) async fn credentials(&self, device: &str, refresh: bool) -> phoenix_common::Result<Option<Credentials>> {
        if !refresh && let Some((cached, at)) = lock(&self.credentials).get(device).cloned() {
            let ttl = if cached.is_some() { self.config.credential_ttl } else { self.config.unknown_ttl };
            if at.elapsed() < ttl {
                return Ok(cached);
            }
        }
        let fresh = presence::credentials(&self.deps.pool, device).await?;
        let mut cache = lock(&self.credentials);
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(device.to_owned(), (fresh, Instant::now()));
        Ok(fresh)
    }

    pub(super) fn verifies(&self, device: &str, credentials: Credentials, scan: &Scan) -> bool {
        let key = derive_device_key(self.deps.secret.expose().as_bytes(), device, credentials.key_version);
        verify_signature(&key, device, scan)
    }

    /// Stamps `last_seen` at most every `seen_interval` per reader.
    pub(super) async fn seen(&self, device: &str, id: i64) {
        {
            let mut seen = lock(&self.seen);
            if seen.get(&id).is_some_and(|t| t.elapsed() < self.config.seen_interval) {
                return;
            }
            if seen.len() >= MAX_CACHE_ENTRIES {
                seen.clear();
            }
            seen.insert(id, Instant::now());
        }
        if let Err(e) = presence::record_seen(&self.deps.pool, id).await {
            lock(&self.seen).remove(&id);
            tracing::warn!(%device, error = %e, "could not record last_seen");
        }
    }

    /// Appends a device-log entry, at most one per reader and event per `log_interval`.
    pub(super) async fn log(&self, device: &str, id: i64, event: LogEvent, detail: serde_json::Value) {
        {
            let mut logged = lock(&self.logged);
            let key = (id, event.as_str());
            if logged.get(&key).is_some_and(|t| t.elapsed() < self.config.log_interval) {
                return;
            }
            if logged.len() >= MAX_CACHE_ENTRIES {
                logged.clear();
            }
            logged.insert(key, Instant::now());
        }
        if let Err(e) = presence::record_event(&self.deps.pool, id, event, detail).await {
            tracing::warn!(%device, event = event.as_str(), error = %e, "could not write the device log");
        }
    }
}
