//! `visit_partitions`, daily at [`AT`]: `active.visits` is partitioned by month of
//! `entry_time` (docs/database.md "Partitioning"); this job makes sure the partitions of the
//! current month and the [`MONTHS_AHEAD`] months after it exist, so a visit never lands in the
//! DEFAULT partition because nobody created its month. It calls the SECURITY DEFINER
//! function `active.create_visit_partitions` (the domain role may not run DDL itself), which
//! skips months that exist: a second run the same day creates nothing. Months are UTC
//! calendar months. A dry run counts the missing months and creates nothing.

use chrono::NaiveTime;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::jobs::{Job, JobReport, JobRun, JobSpec, Schedule};

/// Months after the current one whose partitions exist after a run.
pub const MONTHS_AHEAD: i32 = 3;

/// Local time of the daily run (quiet hours, after the retention purge's default 02:00).
pub const AT: NaiveTime = match NaiveTime::from_hms_opt(3, 45, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// The job for the scheduler.
pub fn spec() -> JobSpec {
    JobSpec::new(Job::VisitPartitions, Schedule::daily_at(AT), |conn, run| Box::pin(work(conn, run)))
}

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One run acting for `run.now`: `partitions_created`.
pub async fn work(conn: &mut AsyncPgConnection, run: JobRun) -> Result<JobReport> {
    let months = MONTHS_AHEAD + 1;
    let sql = if run.dry_run {
        "SELECT count(*) AS n FROM generate_series(0, $2 - 1) i \
         WHERE to_regclass(format('active.%I', 'visits_' || to_char(date_trunc('month', $1 AT TIME ZONE 'UTC') \
               + make_interval(months => i), '\"y\"YYYY\"m\"MM'))) IS NULL"
    } else {
        "SELECT active.create_visit_partitions($1, $2)::bigint AS n"
    };
    let created: Created =
        diesel::sql_query(sql).bind::<Timestamptz, _>(run.now).bind::<Integer, _>(months).get_result(conn).await?;
    let mut report = JobReport::default();
    report.add("partitions_created", created.n);
    Ok(report)
}
