//! Reads that may be a moment stale (the presence board, lists, analytics, reports) go to a
//! streaming read replica (`PHOENIX_DATABASE_READ_URL`) while it keeps up; everything else,
//! and every read that must see the caller's own write, stays on the primary.
//!
//! [`ReadPool`] is the one mechanism: a domain asks it for a connection (`read.conn()`), and
//! it answers from the replica when the replica's last measured lag is within the bound
//! (`PHOENIX_DATABASE_READ_MAX_LAG_MS`), else from the primary. A task measures the lag on the
//! replica every [`ReadPool::check_interval`]:
//!
//! - `pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()`: everything received is replayed,
//!   lag 0 (an idle primary sends nothing, so the age of the last replayed transaction is
//!   not lag);
//! - otherwise `now() - pg_last_xact_replay_timestamp()`: how far behind replay is.
//!
//! A replica that cannot be reached (the check fails, or a checkout fails) is bypassed until
//! a later check succeeds; the checkout that found it down is served by the primary, so a
//! stopped replica costs one short connection timeout, never an error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Double, Nullable};

use super::{DbConn, DbPool, PoolOptions, build_pool, conn};

/// How long a checkout waits for a replica connection before the primary serves it.
const REPLICA_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

/// The lag query (module doc); `NULL` lag = not a standby (then nothing lags).
const LAG_SQL: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN 0 \
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
    ELSE COALESCE(EXTRACT(EPOCH FROM (clock_timestamp() - pg_last_xact_replay_timestamp())) * 1000, 0) \
    END::float8 AS lag_ms";

/// Where reads that tolerate replication lag go: the replica while it keeps up, else the
/// primary (module doc). Cheap to clone; without a replica it is the primary.
#[derive(Clone)]
pub struct ReadPool {
    primary: DbPool,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    pool: DbPool,
    max_lag: Duration,
    /// The last check reached the replica and found its lag within the bound.
    usable: AtomicBool,
    /// The last measured lag in milliseconds (`u64::MAX` = unreachable).
    lag_ms: AtomicU64,
}

/// Which server a [`ReadPool`] checkout went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTarget {
    /// The streaming replica.
    Replica,
    /// The primary (no replica configured, or it lags or is down).
    Primary,
}

impl ReadPool {
    /// Every read on `primary`.
    pub fn primary(primary: DbPool) -> Self {
        Self { primary, replica: None }
    }

    /// Reads on the replica at `url` (connections run `setup` first, as the primary's do)
    /// while its lag is within `max_lag`. The first lag check runs before this returns, so a
    /// replica that is down at start-up is bypassed from the first read; it is not an error.
    pub async fn with_replica(
        primary: DbPool,
        url: &str,
        options: PoolOptions,
        setup: String,
        max_lag: Duration,
    ) -> anyhow::Result<Self> {
        let options =
            PoolOptions { connection_timeout: options.connection_timeout.min(REPLICA_CHECKOUT_TIMEOUT), ..options };
        let pool = build_pool(url, options, setup).await?;
        let replica =
            Arc::new(Replica { pool, max_lag, usable: AtomicBool::new(false), lag_ms: AtomicU64::new(u64::MAX) });
        replica.check().await;
        tokio::spawn(watch(Arc::downgrade(&replica), Self::check_interval(max_lag)));
        Ok(Self { primary, replica: Some(replica) })
    }

    /// How often the lag is measured: twice per bound, between 50 ms and 1 s.
    pub fn check_interval(max_lag: Duration) -> Duration {
        (max_lag / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// A connection for a read that tolerates lag, and where it came from; a pool that
    /// cannot hand one out in time maps to a retryable error, as [`conn`] does.
    pub async fn conn_from(&self) -> crate::Result<(DbConn<'_>, ReadTarget)> {
        if let Some(replica) = self.replica.as_deref().filter(|r| r.usable.load(Ordering::Relaxed)) {
            match replica.pool.get().await {
                Ok(c) => return Ok((c, ReadTarget::Replica)),
                Err(e) => {
                    replica.mark_unreachable();
                    tracing::warn!(error = %e, "read replica unreachable; reading from the primary");
                }
            }
        }
        Ok((conn(&self.primary).await?, ReadTarget::Primary))
    }

    /// [`ReadPool::conn_from`] without saying where: what handlers use
    /// (`let mut conn = self.read.conn().await?;`).
    pub async fn conn(&self) -> crate::Result<DbConn<'_>> {
        Ok(self.conn_from().await?.0)
    }

    /// Where the next read goes, by the last check.
    pub fn target(&self) -> ReadTarget {
        match &self.replica {
            Some(r) if r.usable.load(Ordering::Relaxed) => ReadTarget::Replica,
            _ => ReadTarget::Primary,
        }
    }

    /// The replica's last measured lag; `None` without a replica or when it was unreachable.
    pub fn replica_lag(&self) -> Option<Duration> {
        let ms = self.replica.as_ref()?.lag_ms.load(Ordering::Relaxed);
        (ms != u64::MAX).then(|| Duration::from_millis(ms))
    }

    /// The primary, for the reads of a handler that must see its own writes.
    pub fn primary_pool(&self) -> &DbPool {
        &self.primary
    }
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool").field("replica", &self.replica.is_some()).finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct Lag {
    #[diesel(sql_type = Nullable<Double>)]
    lag_ms: Option<f64>,
}

impl Replica {
    /// Measures the lag and decides whether reads may use the replica.
    async fn check(&self) {
        match self.measure().await {
            Ok(lag) => {
                let ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX - 1);
                self.lag_ms.store(ms, Ordering::Relaxed);
                let usable = lag <= self.max_lag;
                if self.usable.swap(usable, Ordering::Relaxed) != usable {
                    if usable {
                        tracing::info!(lag_ms = ms, "read replica in use");
                    } else {
                        tracing::warn!(lag_ms = ms, "read replica lags beyond the bound; reading from the primary");
                    }
                }
            }
            Err(e) => {
                if self.usable.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "read replica unreachable; reading from the primary");
                }
                self.mark_unreachable();
            }
        }
    }

    async fn measure(&self) -> crate::Result<Duration> {
        // Scoped: its `load` would shadow the atomics' `load` in this file.
        use diesel_async::RunQueryDsl as _;
        let mut c = self.pool.get().await?;
        let lag = diesel::sql_query(LAG_SQL).get_result::<Lag>(&mut c).await?;
        Ok(Duration::from_secs_f64(lag.lag_ms.unwrap_or(0.0).max(0.0) / 1000.0))
    }

    fn mark_unreachable(&self) {
        self.usable.store(false, Ordering::Relaxed);
        self.lag_ms.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Measures the lag every `interval` until the last [`ReadPool`] of the replica is dropped.
async fn watch(replica: Weak<Replica>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(replica) = replica.upgrade() else { return };
        replica.check().await;
    }
}
