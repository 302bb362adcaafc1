//! The retention purge.
//!
//! **What goes.** Every student has an effective retention: `data_retention_days` (1–31) of
//! the student's newest accepted privacy consent, else the school default
//! `privacy.default_visit_retention_days` (read live through [`LiveSettings`]; 30 by
//! default). Students without a consent are purged on the default too (the original never
//! purged them). Then:
//!
//! - `active.visits`: completed visits (`exit_time` set) created before now − retention.
//!   Open visits are never touched.
//! - `active.scan_receipts`: receipts received before now − max(retention, scan window).
//!   They carry the pupil's id and the Result shown on the reader (first name, last
//!   initial), so they follow the pupil's retention; but they are also the exactly-once
//!   ledger of `ProcessScan`, and a reader may re-send a scan for as long as
//!   `PHOENIX_SCAN_MAX_AGE` accepts it, so a receipt is never purged inside that window
//!   (default 24 h, shorter than the 1-day minimum retention). Receipts of unknown cards
//!   (no pupil) follow the school default.
//! - `active.presence_events`: events older than 48 hours (a pupil's sooner when the
//!   pupil's retention is shorter, i.e. 1 day). They are the resume buffer of
//!   `WatchPresence`, not history; they get no audit rows (their expiry is the buffer's
//!   fixed life, not a retention decision), only counts in the report and the log.
//!
//! **Whole months first.** `active.visits` is partitioned by month of `entry_time`
//! (docs/database.md "Partitioning"). Before the row-wise batches, every monthly partition
//! whose month has ended is checked: when every row in it is past its pupil's retention (the
//! rule above, so no open visit) — or it is empty — the partition is dropped in one
//! transaction that locks `active.visits`, checks again under the lock, writes the same
//! per-student `audit.data_deletions` rows (metadata also names the `partition`) and drops it
//! through `active.drop_visit_partition`. A month with one row still inside retention keeps
//! the row-wise delete below. Dropping a month costs one catalogue change instead of a
//! delete of every row (and the vacuum after it). The DEFAULT partition is never dropped.
//!
//! **How.** In batches of at most `batch_size` rows per table, each batch ONE statement in
//! one transaction that deletes the rows and writes, per student of the batch, an
//! `audit.data_deletions` row (`entity_type` `student`, `entity_id` the student id,
//! `deletion_type` `visit_retention`, `records_deleted`, a reason, `deleted_by` `system`,
//! metadata: table, retention days and their source, consent id, cutoff, run id, trigger,
//! requesting account). A student whose rows span two batches gets two rows.
//!
//! **Once, resumable.** A run holds the advisory lock [`Job::RetentionPurge`] on a dedicated
//! connection ([`JobLock`]); a second run (another replica, the CLI, the RPC) is refused
//! with [`RunOutcome::AlreadyRunning`]. What expired is derived from the data each time, so
//! an interrupted run (crash, shutdown, the time budget) leaves committed batches done and
//! the next run simply continues. A dry run counts the same selection without the lock and
//! deletes nothing.
//!
//! Writing `active` and `audit` rows from the config domain is deliberate: the spec puts
//! the purge on `config.v1 RunRetentionCleanup`, and the deletion and its audit record must
//! commit in one transaction, which a call to another service could not give.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::db::DbPool;
use phoenix_common::jobs::{self, Job, JobLock, JobReport, JobRun, JobSpec, Schedule};
use phoenix_common::{Error, Result};

use phoenix_common::settings::LiveSettings;

/// Life of a presence event (the `WatchPresence` resume buffer).
pub const PRESENCE_EVENT_HORIZON: Duration = Duration::from_secs(48 * 3600);

/// Tuning of a run.
#[derive(Debug, Clone, Copy)]
pub struct RetentionOptions {
    /// Rows per batch (one transaction each), per table.
    pub batch_size: i64,
    /// No new batch starts after this long; the rest waits for the next run.
    pub time_budget: Duration,
    /// Scan receipts are kept at least this long (`PHOENIX_SCAN_MAX_AGE`, the replay window).
    pub scan_window: Duration,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            time_budget: Duration::from_secs(10 * 60),
            scan_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// What started a run (recorded in the audit metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daily schedule (`PHOENIX_CLEANUP_TIME`).
    Schedule,
    /// `config.v1 RunRetentionCleanup`, by this account (`None` for a service client).
    Rpc(Option<i64>),
    /// `phoenix cleanup`.
    Cli,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Rpc(_) => "rpc",
            Trigger::Cli => "cli",
        }
    }

    fn account(self) -> Option<i64> {
        match self {
            Trigger::Rpc(account) => account,
            Trigger::Schedule | Trigger::Cli => None,
        }
    }
}

/// What a run deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Completed visits.
    pub visits: i64,
    /// Scan receipts.
    pub scan_receipts: i64,
    /// Presence events.
    pub presence_events: i64,
    /// Monthly partitions of `active.visits` dropped whole (their rows are in `visits`).
    pub visit_partitions_dropped: i64,
    /// Students whose visits or scan receipts went.
    pub students: i64,
    /// `audit.data_deletions` rows written.
    pub audit_records: i64,
    /// False when the time budget stopped the run early.
    pub complete: bool,
    /// The school default that applied.
    pub default_retention_days: i32,
    /// The run's "now": rows are measured against it.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
}

/// The result of asking for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run happened.
    Done(Report),
    /// Another run holds the lock; nothing was done.
    AlreadyRunning,
}

/// Per-student effective retention: newest accepted consent, else the default (`$1`).
const EFFECTIVE: &str = "eff AS (
    SELECT s.id AS student_id, COALESCE(c.data_retention_days, $1) AS days, c.id AS consent_id
    FROM users.students s
    LEFT JOIN LATERAL (
        SELECT pc.id, pc.data_retention_days FROM users.privacy_consents pc
        WHERE pc.student_id = s.id AND pc.accepted
        ORDER BY pc.created_at DESC, pc.id DESC
        LIMIT 1
    ) c ON true
)";

// Parameters shared by every statement: $1 default days, $2 the run's now, $3 scan window
// (seconds), $4 presence-event horizon (seconds). Batches add $5 batch size, $6 run id,
// $7 trigger, $8 requesting account.

/// Expired completed visits (alias `v`, with `e` the student's retention).
const VISITS_EXPIRED: &str = "FROM active.visits v JOIN eff e ON e.student_id = v.student_id
    WHERE v.exit_time IS NOT NULL AND v.created_at < $2 - make_interval(days => e.days)";

/// Expired scan receipts (alias `r`; `e` is NULL for receipts without a pupil).
const RECEIPTS_EXPIRED: &str = "FROM active.scan_receipts r LEFT JOIN eff e ON e.student_id = r.student_id
    WHERE r.received_at < $2 - GREATEST(make_interval(days => COALESCE(e.days, $1)), make_interval(secs => $3))";

/// Expired presence events (alias `p`).
const EVENTS_EXPIRED: &str = "FROM active.presence_events p LEFT JOIN eff e ON e.student_id = p.student_id
    WHERE p.occurred_at < $2 - CASE WHEN e.days IS NULL THEN make_interval(secs => $4)
        ELSE LEAST(make_interval(secs => $4), make_interval(days => e.days)) END";

/// Moves `active.presence_log_purge` (the `WatchPresence` resume horizon) to the newest
/// presence event of CTE `gone`, never backwards.
const MARK_PURGED: &str = "mark AS (
    UPDATE active.presence_log_purge m
    SET tx_id = last.tx_id, event_id = last.event_id, purged_at = now(), deleted = last.n
    FROM (SELECT tx_id, event_id, count(*) OVER () AS n FROM gone ORDER BY tx_id DESC, event_id DESC LIMIT 1) last
    WHERE m.id = 1 AND (m.tx_id, m.event_id) < (last.tx_id, last.event_id)
)";

/// The audit insert of a batch: from CTE `gone (student_id, days, consent_id)`; `extra` adds
/// metadata pairs (`, 'key', value`).
fn audited(table: &str, extra: &str) -> String {
    format!(
        "per_student AS (
            SELECT student_id, days, consent_id, count(*)::int AS n FROM gone
            WHERE student_id IS NOT NULL GROUP BY student_id, days, consent_id
        ),
        audited AS (
            INSERT INTO audit.data_deletions
                (entity_type, entity_id, deletion_type, records_deleted, reason, deleted_by, metadata)
            SELECT 'student', student_id, 'visit_retention', n,
                format('{table}: retention of %s days passed', days),
                'system',
                jsonb_build_object(
                    'table', '{table}',
                    'retention_days', days,
                    'retention_source', CASE WHEN consent_id IS NULL THEN 'school_default' ELSE 'privacy_consent' END,
                    'consent_id', consent_id,
                    'cutoff', $2 - make_interval(days => days),
                    'run_id', $6,
                    'trigger', $7,
                    'requested_by_account_id', $8{extra})
            FROM per_student
            RETURNING entity_id
        )"
    )
}

#[derive(QueryableByName, Debug)]
struct BatchRow {
    /// A student audited in this batch; `NULL` on the summary row.
    #[diesel(sql_type = Nullable<BigInt>)]
    student_id: Option<i64>,
    /// Rows deleted in the batch (summary row only).
    #[diesel(sql_type = BigInt)]
    deleted: i64,
}

#[derive(QueryableByName, Debug)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    visits: i64,
    #[diesel(sql_type = BigInt)]
    receipts: i64,
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    students: i64,
}

/// The statement of one batch of `table`: delete at most `$5` rows, audit them, and return
/// one row per audited student plus a summary row (`student_id` NULL) with the total.
fn batch_sql(table: Table) -> String {
    let (expired, alias, target, key, audit) = match table {
        Table::Visits => (VISITS_EXPIRED, "v", "active.visits", "v.student_id, v.id", Some("active.visits")),
        Table::Receipts => (
            RECEIPTS_EXPIRED,
            "r",
            "active.scan_receipts",
            "r.student_id NULLS FIRST, r.id",
            Some("active.scan_receipts"),
        ),
        Table::Events => (EVENTS_EXPIRED, "p", "active.presence_events", "p.id", None),
    };
    let student = if table == Table::Events { "NULL::bigint" } else { "e.student_id" };
    let doomed = format!(
        "doomed AS (SELECT {alias}.id, {student} AS student_id, e.days, e.consent_id {expired} ORDER BY {key} LIMIT $5)"
    );
    // Presence events also return their stream position, for `mark` below.
    let position = if table == Table::Events { ", t.tx_id, t.id AS event_id" } else { "" };
    let gone = format!(
        "gone AS (DELETE FROM {target} t USING doomed d WHERE t.id = d.id \
         RETURNING d.student_id, d.days, d.consent_id{position})"
    );
    // Deleting presence events (not a prefix: a pupil's expire sooner) must move the log's
    // purge mark past them, as the hub's own purge does, so that a resume cursor from before
    // a deleted event is answered CURSOR_EXPIRED instead of resuming over a silent gap.
    let mark = if table == Table::Events { format!(", {MARK_PURGED}") } else { String::new() };
    let (audit_cte, audited_rows) = match audit {
        Some(table) => {
            (format!(", {}", audited(table, "")), "SELECT entity_id AS student_id, 0::bigint AS deleted FROM audited")
        }
        None => (String::new(), "SELECT NULL::bigint AS student_id, 0::bigint AS deleted WHERE false"),
    };
    format!(
        "WITH {EFFECTIVE}, {doomed}, {gone}{mark}{audit_cte}
        {audited_rows}
        UNION ALL SELECT NULL::bigint, count(*)::bigint FROM gone"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Visits,
    Receipts,
    Events,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Visits => "visits",
            Table::Receipts => "scan_receipts",
            Table::Events => "presence_events",
        }
    }
}

/// The fixed parameters of a run.
#[derive(Debug, Clone, Copy)]
struct Params {
    default_days: i32,
    now: DateTime<Utc>,
    scan_window_secs: f64,
    horizon_secs: f64,
}

/// Runs the purge (or, with `dry_run`, counts it); see the module docs.
pub async fn run(
    pool: &DbPool,
    settings: &LiveSettings,
    options: RetentionOptions,
    trigger: Trigger,
    dry_run: bool,
) -> Result<RunOutcome> {
    let params = params(settings, options, Utc::now()).await?;
    if dry_run {
        let mut conn = phoenix_common::db::conn(pool).await?;
        let report = count(&mut conn, params).await?;
        log_report(trigger, &report);
        return Ok(RunOutcome::Done(report));
    }
    let lock = JobLock::try_acquire(pool, Job::RetentionPurge).await.map_err(|e| {
        tracing::warn!(error = %e, "retention purge: cannot take the job lock");
        Error::Unavailable("cannot reach the database to start the purge; retry shortly".into())
    })?;
    let Some(mut lock) = lock else {
        tracing::info!(trigger = trigger.name(), "retention purge already running elsewhere; skipped");
        return Ok(RunOutcome::AlreadyRunning);
    };
    let result = purge(lock.conn(), params, options, trigger).await;
    lock.release().await;
    let report = result?;
    log_report(trigger, &report);
    Ok(RunOutcome::Done(report))
}

/// The run's parameters, the default read fresh (even if a notice was missed: this process
/// reloads now).
async fn params(settings: &LiveSettings, options: RetentionOptions, now: DateTime<Utc>) -> Result<Params> {
    settings.refresh().await.map_err(|e| {
        tracing::warn!(error = %e, "retention purge: cannot reload the settings");
        Error::Unavailable("cannot read the retention settings; the database is unavailable, retry shortly".into())
    })?;
    let default_days = settings.default_retention_days().clamp(1, 31);
    Ok(Params {
        default_days: i32::try_from(default_days).unwrap_or(30),
        now,
        scan_window_secs: options.scan_window.as_secs_f64(),
        horizon_secs: PRESENCE_EVENT_HORIZON.as_secs_f64(),
    })
}

/// One event per run: what it deleted (or, in a dry run, would delete); counts only.
fn log_report(trigger: Trigger, report: &Report) {
    tracing::info!(
        trigger = trigger.name(),
        dry_run = report.dry_run,
        visits = report.visits,
        scan_receipts = report.scan_receipts,
        presence_events = report.presence_events,
        visit_partitions_dropped = report.visit_partitions_dropped,
        students = report.students,
        audit_records = report.audit_records,
        complete = report.complete,
        "{}",
        if report.dry_run { "retention purge dry run" } else { "retention purge finished" }
    );
}

async fn count(conn: &mut AsyncPgConnection, p: Params) -> Result<Report> {
    let sql = format!(
        "WITH {EFFECTIVE},
        v AS (SELECT v.student_id {VISITS_EXPIRED}),
        r AS (SELECT r.student_id {RECEIPTS_EXPIRED}),
        p AS (SELECT p.id {EVENTS_EXPIRED})
        SELECT (SELECT count(*) FROM v) AS visits,
               (SELECT count(*) FROM r) AS receipts,
               (SELECT count(*) FROM p) AS events,
               (SELECT count(*) FROM (SELECT student_id FROM v UNION SELECT student_id FROM r
                                      WHERE student_id IS NOT NULL) s) AS students"
    );
    let counts: Counts = diesel::sql_query(sql)
        .bind::<Integer, _>(p.default_days)
        .bind::<Timestamptz, _>(p.now)
        .bind::<Double, _>(p.scan_window_secs)
        .bind::<Double, _>(p.horizon_secs)
        .get_result(conn)
        .await?;
    Ok(Report {
        dry_run: true,
        visits: counts.visits,
        scan_receipts: counts.receipts,
        presence_events: counts.events,
        visit_partitions_dropped: 0,
        students: counts.students,
        audit_records: 0,
        complete: true,
        default_retention_days: p.default_days,
        started_at: p.now,
        finished_at: Utc::now(),
    })
}

async fn purge(
    conn: &mut AsyncPgConnection,
    params: Params,
    options: RetentionOptions,
    trigger: Trigger,
) -> Result<Report> {
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    let batch_size = options.batch_size.max(1);
    let mut report = Report {
        dry_run: false,
        visits: 0,
        scan_receipts: 0,
        presence_events: 0,
        visit_partitions_dropped: 0,
        students: 0,
        audit_records: 0,
        complete: true,
        default_retention_days: params.default_days,
        started_at: params.now,
        finished_at: params.now,
    };
    let mut students = BTreeSet::new();
    drop_expired_partitions(conn, params, options, trigger, &run_id, started, &mut report, &mut students).await?;
    'tables: for table in [Table::Visits, Table::Receipts, Table::Events] {
        let sql = batch_sql(table);
        loop {
            if started.elapsed() >= options.time_budget {
                report.complete = false;
                break 'tables;
            }
            let rows: Vec<BatchRow> = conn
                .transaction::<_, Error, _>(async |conn| {
                    Ok(diesel::sql_query(&sql)
                        .bind::<Integer, _>(params.default_days)
                        .bind::<Timestamptz, _>(params.now)
                        .bind::<Double, _>(params.scan_window_secs)
                        .bind::<Double, _>(params.horizon_secs)
                        .bind::<BigInt, _>(batch_size)
                        .bind::<Text, _>(&run_id)
                        .bind::<Text, _>(trigger.name())
                        .bind::<Nullable<BigInt>, _>(trigger.account())
                        .load(conn)
                        .await?)
                })
                .await?;
            let deleted: i64 = rows.iter().filter(|r| r.student_id.is_none()).map(|r| r.deleted).sum();
            let audited: Vec<i64> = rows.iter().filter_map(|r| r.student_id).collect();
            tracing::debug!(run_id, table = table.name(), deleted, audited = audited.len(), "retention batch");
            report.audit_records += i64::try_from(audited.len()).unwrap_or(i64::MAX);
            students.extend(audited);
            match table {
                Table::Visits => report.visits += deleted,
                Table::Receipts => report.scan_receipts += deleted,
                Table::Events => report.presence_events += deleted,
            }
            if deleted < batch_size {
                break;
            }
        }
    }
    report.students = i64::try_from(students.len()).unwrap_or(i64::MAX);
    report.finished_at = Utc::now();
    Ok(report)
}

#[derive(QueryableByName, Debug)]
struct Partition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Timestamptz)]
    lower_bound: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    upper_bound: DateTime<Utc>,
}

#[derive(QueryableByName, Debug)]
struct Kept {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of the month `[$3, $4)` still inside retention (`$1` default days, `$2` now): open,
/// or created after now − the pupil's retention (the negation of [`VISITS_EXPIRED`]).
fn kept_in_month_sql() -> String {
    format!(
        "WITH {EFFECTIVE} SELECT count(*)::bigint AS n FROM active.visits v LEFT JOIN eff e ON e.student_id = v.student_id
         WHERE v.entry_time >= $3 AND v.entry_time < $4
           AND NOT (e.days IS NOT NULL AND v.exit_time IS NOT NULL AND v.created_at < $2 - make_interval(days => e.days))"
    )
}

/// The audit rows of every visit of the month `[$3, $4)` (partition `$5`), as [`batch_sql`]
/// returns them: one row per audited student and a summary row with the count.
fn month_audit_sql() -> String {
    let audit = audited("active.visits", ", 'partition', $5::text");
    format!(
        "WITH {EFFECTIVE},
        gone AS (SELECT v.student_id, e.days, e.consent_id FROM active.visits v JOIN eff e ON e.student_id = v.student_id
                 WHERE v.entry_time >= $3 AND v.entry_time < $4),
        {audit}
        SELECT entity_id AS student_id, 0::bigint AS deleted FROM audited
        UNION ALL SELECT NULL::bigint, count(*)::bigint FROM gone"
    )
}

/// Drops every monthly partition of `active.visits` whose month ended before the run's now
/// and whose rows are all past retention, auditing them (module docs, "Whole months first").
#[allow(clippy::too_many_arguments)]
async fn drop_expired_partitions(
    conn: &mut AsyncPgConnection,
    params: Params,
    options: RetentionOptions,
    trigger: Trigger,
    run_id: &str,
    started: Instant,
    report: &mut Report,
    students: &mut BTreeSet<i64>,
) -> Result<()> {
    let old: Vec<Partition> = diesel::sql_query(
        "SELECT name, lower_bound, upper_bound FROM active.visit_partitions() WHERE upper_bound <= $1 ORDER BY lower_bound",
    )
    .bind::<Timestamptz, _>(params.now)
    .load(conn)
    .await?;
    let kept_sql = kept_in_month_sql();
    let audit_sql = month_audit_sql();
    for p in old {
        if started.elapsed() >= options.time_budget {
            report.complete = false;
            return Ok(());
        }
        let kept = |sql: &str| {
            diesel::sql_query(sql.to_owned())
                .bind::<Integer, _>(params.default_days)
                .bind::<Timestamptz, _>(params.now)
                .bind::<Timestamptz, _>(p.lower_bound)
                .bind::<Timestamptz, _>(p.upper_bound)
        };
        // Without a lock first: most months of a running school are not expired yet.
        let before: Kept = kept(&kept_sql).get_result(conn).await?;
        if before.n > 0 {
            continue;
        }
        let dropped = conn
            .transaction::<_, Error, _>(async |conn| {
                // Nothing may enter or change the month between the check and the drop.
                diesel::sql_query("SET LOCAL lock_timeout = '5s'").execute(conn).await?;
                diesel::sql_query("LOCK TABLE active.visits IN ACCESS EXCLUSIVE MODE").execute(conn).await?;
                let now: Kept = kept(&kept_sql).get_result(conn).await?;
                if now.n > 0 {
                    return Ok(None);
                }
                let rows: Vec<BatchRow> = diesel::sql_query(&audit_sql)
                    .bind::<Integer, _>(params.default_days)
                    .bind::<Timestamptz, _>(params.now)
                    .bind::<Timestamptz, _>(p.lower_bound)
                    .bind::<Timestamptz, _>(p.upper_bound)
                    .bind::<Text, _>(&p.name)
                    .bind::<Text, _>(run_id)
                    .bind::<Text, _>(trigger.name())
                    .bind::<Nullable<BigInt>, _>(trigger.account())
                    .load(conn)
                    .await?;
                diesel::sql_query("SELECT active.drop_visit_partition($1)::text AS name")
                    .bind::<Text, _>(&p.name)
                    .execute(conn)
                    .await?;
                Ok(Some(rows))
            })
            .await;
        let rows = match dropped {
            Ok(Some(rows)) => rows,
            Ok(None) => continue,
            // A month that stays locked by a long query is left to the row-wise delete.
            Err(Error::Unavailable(e)) => {
                tracing::warn!(run_id, error = %e, "retention: a visits partition stayed locked; rows go one by one");
                continue;
            }
            Err(e) => return Err(e),
        };
        let deleted: i64 = rows.iter().filter(|r| r.student_id.is_none()).map(|r| r.deleted).sum();
        let audited: Vec<i64> = rows.iter().filter_map(|r| r.student_id).collect();
        tracing::info!(run_id, partition = %p.name, deleted, audited = audited.len(), "retention: visits partition dropped");
        report.visits += deleted;
        report.visit_partitions_dropped += 1;
        report.audit_records += i64::try_from(audited.len()).unwrap_or(i64::MAX);
        students.extend(audited);
    }
    Ok(())
}

/// The purge as a scheduled job: daily at `at` (`PHOENIX_CLEANUP_TIME`; `None` = by hand
/// only), run by the process serving config, or by `phoenix jobs run retention_purge`.
pub fn spec(settings: LiveSettings, options: RetentionOptions, at: Option<chrono::NaiveTime>) -> JobSpec {
    let schedule = at.map_or(Schedule::Manual, Schedule::daily_at);
    JobSpec::new(Job::RetentionPurge, schedule, move |conn, run| {
        let settings = settings.clone();
        Box::pin(async move { work(conn, &settings, options, run).await })
    })
}

/// One run on the job lock's connection; see the module docs.
async fn work(
    conn: &mut AsyncPgConnection,
    settings: &LiveSettings,
    options: RetentionOptions,
    run: JobRun,
) -> Result<JobReport> {
    let trigger = match run.trigger {
        jobs::Trigger::Schedule => Trigger::Schedule,
        jobs::Trigger::Cli => Trigger::Cli,
        jobs::Trigger::Rpc => Trigger::Rpc(None),
    };
    let params = params(settings, options, run.now).await?;
    let report = if run.dry_run { count(conn, params).await? } else { purge(conn, params, options, trigger).await? };
    log_report(trigger, &report);
    let mut out = JobReport::default();
    out.add("visits", report.visits);
    out.add("scan_receipts", report.scan_receipts);
    out.add("presence_events", report.presence_events);
    out.add("visit_partitions_dropped", report.visit_partitions_dropped);
    out.add("students", report.students);
    out.add("audit_records", report.audit_records);
    out.add("incomplete", i64::from(!report.complete));
    Ok(out)
}
