//! Scheduled jobs: one replica at a time through a
//! PostgreSQL advisory lock, and a daily schedule at a local wall-clock time.
//!
//! [`JobLock::try_acquire`] takes a *session* advisory lock on a dedicated (non-pooled)
//! connection and keeps that connection for the job's work: when the job ends, fails,
//! panics or is cancelled, the connection closes and PostgreSQL releases the lock, so a
//! crashed replica can never leave it held, and no pooled connection ever carries it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// The daily retention purge (visits, scan receipts, presence events).
    RetentionPurge,
    /// Daily at `session.end_time`: running sessions end, open visits close.
    SessionEnd,
    /// Every 15 minutes: sessions with no scan for `session.timeout_minutes` and an
    /// offline reader end as abandoned.
    AbandonedSweep,
    /// End of the school day: pupils still present get a check-out by the system.
    AttendanceClose,
    /// Hourly: expired refresh/reset tokens, invitations, rate-limit rows, sent outbox rows.
    Cleanup,
    /// Daily: device logs older than 90 days.
    DeviceLogPurge,
    /// Continuously: delivers `auth.outbox` messages over SMTP.
    OutboxDelivery,
}

impl Job {
    /// Every job, in the order `phoenix jobs list` shows them.
    pub const ALL: [Job; 7] = [
        Job::SessionEnd,
        Job::AbandonedSweep,
        Job::AttendanceClose,
        Job::Cleanup,
        Job::DeviceLogPurge,
        Job::RetentionPurge,
        Job::OutboxDelivery,
    ];

    /// The second key of the job's advisory lock (stable: other replicas must agree).
    pub const fn lock_id(self) -> i32 {
        match self {
            Job::RetentionPurge => 1,
            Job::SessionEnd => 2,
            Job::AbandonedSweep => 3,
            Job::AttendanceClose => 4,
            Job::Cleanup => 5,
            Job::DeviceLogPurge => 6,
            Job::OutboxDelivery => 7,
        }
    }

    /// Name for logs, the CLI (`phoenix jobs run <name>`) and `config.job_runs`.
    pub const fn name(self) -> &'static str {
        match self {
            Job::RetentionPurge => "retention_purge",
            Job::SessionEnd => "session_end",
            Job::AbandonedSweep => "abandoned_sweep",
            Job::AttendanceClose => "attendance_close",
            Job::Cleanup => "cleanup",
            Job::DeviceLogPurge => "device_log_purge",
            Job::OutboxDelivery => "outbox_delivery",
        }
    }

    /// The job called `name`.
    pub fn from_name(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == name)
    }
}

/// One run of a job: when "now" is (the scheduler's clock, or a test's), and whether it is a
/// dry run (count what would change, change nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRun {
    /// Which job.
    pub job: Job,
    /// The instant the run acts for (a job never reads the wall clock itself).
    pub now: DateTime<Utc>,
    /// Count, change nothing.
    pub dry_run: bool,
}

/// The future a job's work returns; it borrows the lock's connection.
pub type JobFuture<'c> = Pin<Box<dyn Future<Output = crate::Result<JobReport>> + Send + 'c>>;

/// A job's work: given the connection that holds its advisory lock and the run, does one
/// bounded pass and reports what it did.
pub type JobFn = Arc<dyn for<'c> Fn(&'c mut AsyncPgConnection, JobRun) -> JobFuture<'c> + Send + Sync>;

/// When a job runs.
#[derive(Clone)]
pub enum Schedule {
    /// Every day at a local wall-clock time in the school's zone, read again before every
    /// wait (a live setting such as `session.end_time`).
    Daily(Arc<dyn Fn() -> NaiveTime + Send + Sync>),
    /// Every interval (counted from the end of the previous run).
    Every(Duration),
}

impl Schedule {
    /// A daily schedule at a fixed time.
    pub fn daily_at(at: NaiveTime) -> Self {
        Schedule::Daily(Arc::new(move || at))
    }

    /// For `phoenix jobs list`: "daily 18:00" or "every 15 min".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Daily(at) => format!("daily {}", at().format("%H:%M")),
            Schedule::Every(d) if d.as_secs() % 60 == 0 => format!("every {} min", d.as_secs() / 60),
            Schedule::Every(d) => format!("every {} s", d.as_secs()),
        }
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A job a domain runs: which, when, and its work.
#[derive(Clone)]
pub struct JobSpec {
    /// Which job.
    pub job: Job,
    /// When.
    pub schedule: Schedule,
    /// The work.
    pub run: JobFn,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec").field("job", &self.job).field("schedule", &self.schedule).finish_non_exhaustive()
    }
}

impl JobSpec {
    /// A job with work `run`, e.g.
    /// `JobSpec::new(Job::Cleanup, Schedule::Every(HOUR), move |conn, run| Box::pin(cleanup(conn, run)))`.
    pub fn new<F>(job: Job, schedule: Schedule, run: F) -> Self
    where
        F: for<'c> Fn(&'c mut AsyncPgConnection, JobRun) -> JobFuture<'c> + Send + Sync + 'static,
    {
        Self { job, schedule, run: Arc::new(run) }
    }
}

/// A domain without scheduled jobs (for [`crate::server::DomainServers::jobs`]).
pub fn no_jobs(_: &crate::server::DomainContext) -> Vec<JobSpec> {
    Vec::new()
}

/// What one run of a job did: named counts ("sessions_ended" → 3), for the log, the CLI and
/// `config.job_runs`. A dry run reports what it would have done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Named counts, in a stable order.
    pub counts: std::collections::BTreeMap<&'static str, i64>,
}

impl JobReport {
    /// Adds `n` to count `name`.
    pub fn add(&mut self, name: &'static str, n: i64) {
        *self.counts.entry(name).or_insert(0) += n;
    }

    /// Count `name` (0 when never added).
    pub fn get(&self, name: &str) -> i64 {
        self.counts.get(name).copied().unwrap_or(0)
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
