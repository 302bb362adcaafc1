//! The daily device-log purge: `iot.device_logs` rows older than [`KEEP`] go, in batches of
//! [`BATCH`] (one statement each, at most [`MAX_BATCHES`] per run, so a backlog drains over
//! several days rather than in one long transaction). A dry run counts them.

use chrono::NaiveTime;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::jobs::{Job, JobReport, JobRun, JobSpec, Schedule};
use phoenix_db::schema::iot::device_logs::dsl as l;

/// How long a device log row is kept.
pub const KEEP: chrono::Duration = chrono::Duration::days(90);
/// Rows per statement.
pub const BATCH: i64 = 10_000;
/// Statements per run.
pub const MAX_BATCHES: usize = 50;

/// The job: daily at 03:30 local time (after the retention purge's default 02:00).
pub fn spec() -> JobSpec {
    let at = NaiveTime::from_hms_opt(3, 30, 0).unwrap_or(NaiveTime::MIN);
    JobSpec::new(Job::DeviceLogPurge, Schedule::daily_at(at), |conn, run| Box::pin(work(conn, run)))
}

/// One run acting for `run.now`.
pub async fn work(conn: &mut AsyncPgConnection, run: JobRun) -> Result<JobReport> {
    let before = run.now - KEEP;
    let mut report = JobReport::default();
    if run.dry_run {
        let n: i64 = l::device_logs.filter(l::created_at.lt(before)).count().get_result(conn).await?;
        report.add("device_logs", n);
        return Ok(report);
    }
    for _ in 0..MAX_BATCHES {
        let ids: Vec<i64> =
            l::device_logs.filter(l::created_at.lt(before)).select(l::id).order(l::id).limit(BATCH).load(conn).await?;
        if ids.is_empty() {
            break;
        }
        let n = diesel::delete(l::device_logs.filter(l::id.eq_any(&ids))).execute(conn).await?;
        report.add("device_logs", i64::try_from(n).unwrap_or(i64::MAX));
        if ids.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(report)
}
