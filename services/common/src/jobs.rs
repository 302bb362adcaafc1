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
    /// Every minute while `/metrics` is served: the database figures of `phoenix db stats`
    /// as Prometheus gauges (one process at a time, so they are not reported twice).
    DbStats,
    /// Daily: the monthly partitions of `active.visits` for the months ahead.
    VisitPartitions,
}

impl Job {
    /// Every job, in the order `phoenix jobs list` shows them.
    pub const ALL: [Job; 9] = [
        Job::SessionEnd,
        Job::AbandonedSweep,
        Job::AttendanceClose,
        Job::Cleanup,
        Job::DeviceLogPurge,
        Job::RetentionPurge,
        Job::OutboxDelivery,
        Job::DbStats,
        Job::VisitPartitions,
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
            Job::DbStats => 8,
            Job::VisitPartitions => 9,
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
            Job::DbStats => "db_stats",
            Job::VisitPartitions => "visit_partitions",
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
    /// Who started it.
    pub trigger: Trigger,
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
    /// Never by itself: only `phoenix jobs run` (e.g. `PHOENIX_CLEANUP_TIME=off`, a
    /// Kubernetes CronJob runs it instead).
    Manual,
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
            Schedule::Manual => "by hand".to_owned(),
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

/// Counts that describe state rather than what a run changed (the outbox's `pending`, the
/// gauges `db_stats` published).
pub const STATE_COUNTS: &[&str] = &["pending", "gauges"];

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

    /// Whether any count other than the [`STATE_COUNTS`] is non-zero.
    pub fn did_work(&self) -> bool {
        self.counts.iter().any(|(name, &n)| n != 0 && !STATE_COUNTS.contains(name))
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

/// Who started a run (recorded in `config.job_runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The process's schedule.
    Schedule,
    /// `phoenix jobs run`.
    Cli,
    /// An admin RPC.
    Rpc,
}

impl Trigger {
    /// As stored.
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
            Trigger::Rpc => "rpc",
        }
    }
}

/// How a run request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run happened; what it did.
    Done(JobReport),
    /// Another replica or process holds the job's lock; nothing was done here.
    AlreadyRunning,
}

/// Runs `spec` once now, acting for `now`: takes the job's advisory lock (another holder →
/// [`RunOutcome::AlreadyRunning`]), does the work on the lock's connection, releases it,
/// logs the counts and appends the run to `config.job_runs` (dry runs too, marked). A
/// failed run is recorded with its error and returned.
pub async fn run_once(
    pool: &DbPool,
    spec: &JobSpec,
    trigger: Trigger,
    now: DateTime<Utc>,
    dry_run: bool,
) -> crate::Result<RunOutcome> {
    let job = spec.job;
    let lock = JobLock::try_acquire(pool, job).await.map_err(|e| {
        tracing::warn!(job = job.name(), error = %e, "job: cannot take the job lock");
        crate::Error::Unavailable(format!("cannot reach the database to start job {}; retry shortly", job.name()))
    })?;
    let Some(mut lock) = lock else {
        crate::metrics::job_finished(job.name(), "already_running", None);
        tracing::info!(job = job.name(), trigger = trigger.name(), "job already running elsewhere; skipped");
        return Ok(RunOutcome::AlreadyRunning);
    };
    let started = Utc::now();
    let result = (spec.run)(lock.conn(), JobRun { job, now, dry_run, trigger }).await;
    lock.release().await;
    let finished = Utc::now();
    let millis = (finished - started).num_milliseconds();
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    crate::metrics::job_finished(job.name(), outcome, (finished - started).to_std().ok());
    match &result {
        Ok(report) => tracing::info!(
            job = job.name(),
            trigger = trigger.name(),
            dry_run,
            millis,
            counts = ?report.counts,
            "{}",
            if dry_run { "job dry run" } else { "job finished" }
        ),
        Err(e) => {
            tracing::error!(job = job.name(), trigger = trigger.name(), dry_run, millis, error = %e, "job failed")
        }
    }
    let quiet = matches!(spec.schedule, Schedule::Every(d) if d < QUIET_BELOW)
        && trigger == Trigger::Schedule
        && result.as_ref().is_ok_and(|r| !r.did_work());
    if !quiet {
        let record = Record { job, trigger, dry_run, started, finished, now, result: &result };
        if let Err(e) = record.append(pool).await {
            tracing::warn!(job = job.name(), error = %e, "job: could not record the run in config.job_runs");
        }
    }
    result.map(RunOutcome::Done)
}

/// Scheduled runs of jobs that run more often than this are recorded only when they did
/// something or failed (the outbox sender polls every few seconds).
pub const QUIET_BELOW: Duration = Duration::from_secs(300);

/// How long `config.job_runs` keeps a run.
pub const RUN_HISTORY: chrono::Duration = chrono::Duration::days(90);

struct Record<'a> {
    job: Job,
    trigger: Trigger,
    dry_run: bool,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    now: DateTime<Utc>,
    result: &'a crate::Result<JobReport>,
}

impl Record<'_> {
    /// Appends the run and prunes the job's runs older than [`RUN_HISTORY`].
    async fn append(&self, pool: &DbPool) -> crate::Result<()> {
        use diesel::ExpressionMethods as _;
        use phoenix_db::schema::config::job_runs as r;
        let (outcome, error, counts) = match self.result {
            Ok(report) => ("ok", None, serde_json::to_value(&report.counts).unwrap_or_default()),
            Err(e) => ("failed", Some(e.to_string()), serde_json::Value::Object(Default::default())),
        };
        let mut conn = crate::db::conn(pool).await?;
        diesel::insert_into(r::table)
            .values((
                r::job.eq(self.job.name()),
                r::trigger.eq(self.trigger.name()),
                r::dry_run.eq(self.dry_run),
                r::outcome.eq(outcome),
                r::started_at.eq(self.started),
                r::finished_at.eq(self.finished.max(self.started)),
                r::acted_for.eq(self.now),
                r::counts.eq(counts),
                r::error.eq(error),
            ))
            .execute(&mut conn)
            .await?;
        diesel::delete(r::table)
            .filter(r::job.eq(self.job.name()))
            .filter(r::started_at.lt(self.finished - RUN_HISTORY))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

/// The last recorded run of a job.
#[derive(Debug, Clone, diesel::Queryable)]
pub struct LastRun {
    /// `schedule`, `cli` or `rpc`.
    pub trigger: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// `ok` or `failed`.
    pub outcome: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Its counts.
    pub counts: serde_json::Value,
    /// Why it failed.
    pub error: Option<String>,
}

/// The last recorded run of `job`, if any.
pub async fn last_run(conn: &mut AsyncPgConnection, job: Job) -> crate::Result<Option<LastRun>> {
    use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _};
    use phoenix_db::schema::config::job_runs as r;
    Ok(r::table
        .filter(r::job.eq(job.name()))
        .order(r::started_at.desc())
        .select((r::trigger, r::dry_run, r::outcome, r::started_at, r::finished_at, r::counts, r::error))
        .first(conn)
        .await
        .optional()?)
}

/// The time source of the scheduler; tests inject their own.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock a test moves by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    /// Moves it to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map_or_else(|_| Utc::now(), |now| *now)
    }
}

/// How the scheduler waits.
#[derive(Clone)]
pub struct Scheduler {
    /// The school's zone, for daily times.
    pub zone: Tz,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// How often the clock is compared with the next due time (1 s; tests shorter). The
    /// wall clock is re-read every step, so a suspended host or a clock change does not
    /// shift the schedule, and a changed daily time applies to the next wait.
    pub step: Duration,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("zone", &self.zone).field("step", &self.step).finish_non_exhaustive()
    }
}

impl Scheduler {
    /// The wall clock in `zone`, checked every second.
    pub fn system(zone: Tz) -> Self {
        Self { zone, clock: Arc::new(SystemClock), step: Duration::from_secs(1) }
    }

    /// When `schedule` is next due after a wait that began at `since`.
    /// `None` for [`Schedule::Manual`].
    pub fn next_due(&self, schedule: &Schedule, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match schedule {
            Schedule::Daily(at) => Some(next_daily_run(since, at(), self.zone)),
            Schedule::Every(d) => Some(since + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::hours(1))),
            Schedule::Manual => None,
        }
    }

    /// Runs `spec` on its schedule until `shutdown`. Each run acts for the due instant's
    /// clock reading; another replica holding the lock makes this one skip that run. A run
    /// in progress is dropped on shutdown (its transaction rolls back; jobs are written to
    /// be resumable: what is due is derived from the data each time).
    pub async fn run(self, pool: DbPool, spec: JobSpec, shutdown: ShutdownToken) {
        if matches!(spec.schedule, Schedule::Manual) {
            return;
        }
        tracing::info!(job = spec.job.name(), schedule = %spec.schedule.describe(), "job scheduled");
        let mut since = self.clock.now();
        loop {
            loop {
                let now = self.clock.now();
                if self.next_due(&spec.schedule, since).is_none_or(|due| now >= due) {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.step) => {}
                }
            }
            let now = self.clock.now();
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = run_once(&pool, &spec, Trigger::Schedule, now, false) => {
                    if let Err(e) = result {
                        tracing::warn!(job = spec.job.name(), error = %e, "scheduled run failed; the next one tries again");
                    }
                }
            }
            since = now.max(self.clock.now());
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
