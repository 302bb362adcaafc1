//! Scheduled jobs: one replica at a time through a
//! PostgreSQL advisory lock, and a daily schedule at a local wall-clock time.
//!
//! [`JobLock::try_acquire`] takes a *session* advisory lock on a dedicated (non-pooled)
//! connection and keeps that connection for the job's work: when the job ends, fails,
//! panics or is cancelled, the connection closes and PostgreSQL releases the lock, so a
//! crashed replica can never leave it held, and no pooled connection ever carries it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::DbPool;
use crate::server::ShutdownToken;

/// Advisory-lock namespace of Phoenix jobs (first key of `pg_try_advisory_lock(int, int)`):
/// "PHNX" in ASCII.
pub const LOCK_NAMESPACE: i32 = 0x5048_4E58;

/// The scheduled jobs, each with its own advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The daily retention purge (visits, scan receipts, presence events).
    RetentionPurge,
}

impl Job {
    /// The second key of the job's advisory lock (stable: other replicas must agree).
    pub const fn lock_id(self) -> i32 {
        match self {
            Job::RetentionPurge => 1,
        }
    }

    /// Name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Job::RetentionPurge => "retention_purge",
        }
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// A held job lock and the dedicated connection it lives on; do the job's work on
/// [`JobLock::conn`]. Dropping it closes the connection, which releases the lock.
pub struct JobLock {
    conn: AsyncPgConnection,
    job: Job,
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLock").field("job", &self.job).finish_non_exhaustive()
    }
}

impl JobLock {
    /// Takes `job`'s lock without waiting; `Ok(None)` when another session holds it.
    pub async fn try_acquire(pool: &DbPool, job: Job) -> anyhow::Result<Option<Self>> {
        let mut conn = pool.dedicated_connection().await?;
        let row: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS locked")
            .bind::<Integer, _>(LOCK_NAMESPACE)
            .bind::<Integer, _>(job.lock_id())
            .get_result(&mut conn)
            .await?;
        Ok(row.locked.then_some(Self { conn, job }))
    }

    /// The connection holding the lock.
    pub fn conn(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }

    /// Releases the lock and closes the connection.
    pub async fn release(mut self) {
        let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1, $2)")
            .bind::<Integer, _>(LOCK_NAMESPACE)
            .bind::<Integer, _>(self.job.lock_id())
            .execute(&mut self.conn)
            .await;
        if let Err(e) = unlocked {
            // Closing the connection (on drop) releases it anyway.
            tracing::warn!(job = self.job.name(), error = %e, "job lock: explicit unlock failed");
        }
    }
}

/// The first instant strictly after `now` whose wall-clock time in `zone` is `at`. On a day
/// where `at` does not exist (spring forward), the first instant after the gap; where it
/// exists twice (fall back), the earlier one.
pub fn next_daily_run(now: DateTime<Utc>, at: NaiveTime, zone: Tz) -> DateTime<Utc> {
    let mut day = now.with_timezone(&zone).date_naive();
    loop {
        let local = day.and_time(at);
        let candidate = match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => Some(t),
            chrono::LocalResult::Ambiguous(early, _) => Some(early),
            // Inside a DST gap: step minute by minute to the first valid local time.
            chrono::LocalResult::None => {
                (1..=180).find_map(|m| zone.from_local_datetime(&(local + chrono::Duration::minutes(m))).earliest())
            }
        };
        if let Some(t) = candidate.map(|t| t.with_timezone(&Utc))
            && t > now
        {
            return t;
        }
        day = match day.checked_add_days(Days::new(1)) {
            Some(d) => d,
            None => return now + chrono::Duration::days(1),
        };
    }
}

/// Runs `job` every day at `at` (local time in `zone`) until `shutdown`. Sleeps in short
/// steps and compares against the wall clock, so a suspended host or a clock change does
/// not shift the schedule. A run in progress is dropped on shutdown (its transaction rolls
/// back; jobs are written to be resumable).
pub async fn run_daily<F, Fut>(job: Job, at: NaiveTime, zone: Tz, shutdown: ShutdownToken, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    const STEP: Duration = Duration::from_secs(60);
    loop {
        let next = next_daily_run(Utc::now(), at, zone);
        tracing::info!(job = job.name(), next = %next, "scheduled");
        loop {
            let left = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(left.min(STEP)) => {}
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = run() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
    }

    fn two() -> NaiveTime {
        NaiveTime::from_hms_opt(2, 0, 0).expect("valid")
    }

    #[test]
    fn next_run_is_today_or_tomorrow_local_time() {
        let berlin = chrono_tz::Europe::Berlin;
        // 00:30 CET on 10 Jan → 02:00 CET the same day.
        assert_eq!(next_daily_run(utc("2026-01-09T23:30:00Z"), two(), berlin), utc("2026-01-10T01:00:00Z"));
        // Exactly at 02:00 → tomorrow (strictly after now).
        assert_eq!(next_daily_run(utc("2026-01-10T01:00:00Z"), two(), berlin), utc("2026-01-11T01:00:00Z"));
        // Summer: 02:00 CEST = 00:00 UTC.
        assert_eq!(next_daily_run(utc("2026-07-01T12:00:00Z"), two(), berlin), utc("2026-07-02T00:00:00Z"));
    }

    #[test]
    fn dst_gap_and_overlap() {
        let berlin = chrono_tz::Europe::Berlin;
        // 29 Mar 2026: 02:00–03:00 does not exist → 03:00 CEST = 01:00 UTC.
        assert_eq!(next_daily_run(utc("2026-03-28T23:00:00Z"), two(), berlin), utc("2026-03-29T01:00:00Z"));
        // 25 Oct 2026: 02:30 happens twice → the first (CEST) one, 00:30 UTC.
        let half_past = NaiveTime::from_hms_opt(2, 30, 0).expect("valid");
        assert_eq!(next_daily_run(utc("2026-10-24T22:00:00Z"), half_past, berlin), utc("2026-10-25T00:30:00Z"));
    }
}
