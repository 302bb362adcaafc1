//! What `WatchPresence` streams may take: a slot per stream, at most
//! [`PresenceSettings::max_streams_per_account`] per account (or service client) in this
//! process, and a bounded share of the database pool for their reads
//! ([`PresenceSettings::stream_reads`] connections at once), so that many streams opening or
//! resuming together queue among themselves instead of starving `ProcessScan` of
//! connections (docs/presence.md "Limits").

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use phoenix_common::authz::Principal;
use phoenix_common::db::{self, DbConn, DbPool};
use phoenix_common::{Error, Result};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::PresenceSettings;

/// The stream slots and the read bound of one presence server (shared by its clones).
#[derive(Debug)]
pub struct Limits {
    per_account: usize,
    slots: Mutex<HashMap<Principal, usize>>,
    reads: Semaphore,
}

impl Limits {
    pub fn new(settings: &PresenceSettings) -> Arc<Self> {
        Arc::new(Self {
            per_account: settings.max_streams_per_account,
            slots: Mutex::new(HashMap::new()),
            reads: Semaphore::new(settings.stream_reads.max(1)),
        })
    }

    /// A stream slot for `who`, or `ResourceExhausted` when it already has the maximum open.
    /// The slot is free again when the returned [`Slot`] is dropped (the stream ended).
    pub fn claim(self: &Arc<Self>, who: &Principal) -> Result<Slot> {
        let mut slots = self.slots.lock().map_err(|_| poisoned())?;
        let open = slots.entry(who.clone()).or_default();
        if *open >= self.per_account {
            return Err(Error::ResourceExhausted {
                message: format!(
                    "{who} already has {} open WatchPresence streams (the maximum); close one before opening another",
                    self.per_account
                ),
                retry_after: Duration::from_secs(5),
            });
        }
        *open += 1;
        Ok(Slot { limits: self.clone(), who: who.clone() })
    }

    /// A pool connection for a stream's read, once one of the bounded read permits is free.
    pub async fn conn<'a>(&'a self, pool: &'a DbPool) -> Result<ReadConn<'a>> {
        let permit = self.reads.acquire().await.map_err(|_| Error::Unavailable("presence reads closed".into()))?;
        let conn = db::conn(pool).await?;
        Ok(ReadConn { conn, _permit: permit })
    }

    /// Open streams of `who` (tests, diagnostics).
    pub fn open_streams(&self, who: &Principal) -> usize {
        self.slots.lock().map(|s| s.get(who).copied().unwrap_or(0)).unwrap_or(0)
    }
}

fn poisoned() -> Error {
    Error::Internal(anyhow::anyhow!("presence stream slots lock poisoned"))
}

/// One open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    who: Principal,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.limits.slots.lock()
            && let Some(open) = slots.get_mut(&self.who)
        {
            *open = open.saturating_sub(1);
            if *open == 0 {
                slots.remove(&self.who);
            }
        }
    }
}

/// A pool connection held under a read permit (the connection is returned first).
pub struct ReadConn<'a> {
    conn: DbConn<'a>,
    _permit: SemaphorePermit<'a>,
}

impl Deref for ReadConn<'_> {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for ReadConn<'_> {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_per_stream_up_to_the_cap_and_freed_on_drop() {
        let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
        settings.max_streams_per_account = 2;
        let limits = Limits::new(&settings);
        let (a, b) = (Principal::Account(1), Principal::Account(2));
        let first = limits.claim(&a).expect("first");
        let _second = limits.claim(&a).expect("second");
        assert!(matches!(limits.claim(&a), Err(Error::ResourceExhausted { .. })));
        let _other = limits.claim(&b).expect("another account has its own slots");
        drop(first);
        assert_eq!(limits.open_streams(&a), 1);
        let _third = limits.claim(&a).expect("a freed slot");
    }
}
