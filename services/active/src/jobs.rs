//! The active domain's scheduled jobs (docs/presence.md "Active-domain jobs"): the daily
//! session end, the abandoned-session sweep and the end-of-day attendance close.
//!
//! Each takes the connection that holds its advisory lock, the live settings and the run
//! (its `now` injected, never the wall clock), works in batches of [`BATCH`] rows, one
//! transaction per batch, at most [`MAX_BATCHES`] per run (the next run continues), and
//! ends sessions the one way every session ends ([`sessions::end_locked`]: visits closed,
//! pupils in transit, supervisor terms ended, a `session_ended` presence event). A dry run
//! counts what the run would change and changes nothing. Logs carry counts only.
//!
//! | job | when | what |
//! |---|---|---|
//! | [`end_sessions`] | daily at `session.end_time` | sessions whose day has reached the end time end at it |
//! | [`sweep_abandoned`] | every 15 min | idle for their `timeout_minutes`, no reader online → end now |
//! | [`close_attendance`] | daily at 00:05 | the previous days' overdue sessions end; open attendance rows close at 23:59:59 of their date, `closed_by_system` |
//! | [`partitions::work`] | daily at 03:45 | the monthly partitions of `active.visits` for this month and the next three exist |

pub mod partitions;
mod repo;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::jobs::{Job, JobReport, JobRun, JobSpec, Schedule};
use phoenix_common::server::DomainContext;
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};

use crate::calendar::{at_local, day_start};
use crate::{sessions, store};

/// Rows per transaction.
pub const BATCH: i64 = 100;
/// Batches per run: a run touches at most `BATCH * MAX_BATCHES` rows; the next continues.
pub const MAX_BATCHES: usize = 50;
/// How often the abandoned-session sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(15 * 60);
/// Local time of the attendance close: just after the business day ends, so every row it
/// closes belongs to a finished day.
pub const ATTENDANCE_CLOSE_AT: NaiveTime = match NaiveTime::from_hms_opt(0, 5, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
/// The system's check-out time of a row left open: the last second of its date, local.
pub const END_OF_DAY: NaiveTime = match NaiveTime::from_hms_opt(23, 59, 59) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// The domain's jobs for the scheduler; daily times are read live before every wait.
pub fn specs(ctx: &DomainContext) -> Vec<JobSpec> {
    let settings = LiveSettings::of(ctx);
    let at = settings.clone();
    let (s1, s2, s3) = (settings.clone(), settings.clone(), settings);
    vec![
        JobSpec::new(Job::SessionEnd, Schedule::Daily(Arc::new(move || at.session_end_time())), move |conn, run| {
            let s = s1.clone();
            Box::pin(async move { end_sessions(conn, &s, run).await })
        }),
        JobSpec::new(Job::AbandonedSweep, Schedule::Every(SWEEP_EVERY), move |conn, run| {
            let s = s2.clone();
            Box::pin(async move { sweep_abandoned(conn, &s, run).await })
        }),
        JobSpec::new(Job::AttendanceClose, Schedule::daily_at(ATTENDANCE_CLOSE_AT), move |conn, run| {
            let s = s3.clone();
            Box::pin(async move { close_attendance(conn, &s, run).await })
        }),
        partitions::spec(),
    ]
}

/// The latest stored settings, even if a change notice was missed.
async fn refresh(settings: &LiveSettings, job: Job) -> Result<()> {
    settings.refresh().await.map_err(|e| {
        tracing::warn!(job = job.name(), error = %e, "job: cannot reload the settings");
        Error::Unavailable("cannot read the school settings; the database is unavailable, retry shortly".into())
    })
}

/// The first instant of the day after `date`.
fn next_day_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    day_start(date.checked_add_days(Days::new(1)).unwrap_or(date), tz)
}

/// When a session started at `start` is due to end: the end time of its business day, or,
/// for a session started at or after it (an evening event), the end of that day — no
/// session runs into the next school day.
pub fn deadline(start: DateTime<Utc>, end_time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let date = business_date_in(start, tz);
    let end = at_local(date, end_time, tz);
    if start < end { end } else { next_day_start(date, tz) }
}

/// Sessions due at `now` are exactly those started before this instant (every session of
/// an earlier day, and today's started before the end time once it has passed).
pub fn due_cutoff(now: DateTime<Utc>, end_time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let today = business_date_in(now, tz);
    let end = at_local(today, end_time, tz);
    if now >= end { end } else { day_start(today, tz) }
}

/// Ends every session due at `run.now` (see [`deadline`], [`due_cutoff`]) and returns the
/// counts `sessions_ended`, `visits_closed`, `supervisors_ended`.
async fn end_due(conn: &mut AsyncPgConnection, tz: Tz, end_time: NaiveTime, run: JobRun) -> Result<JobReport> {
    let cutoff = due_cutoff(run.now, end_time, tz);
    let mut report = JobReport::default();
    if run.dry_run {
        let due = repo::due_sessions(conn, cutoff, BATCH * MAX_BATCHES as i64, false).await?;
        let ids: Vec<i64> = due.iter().map(|s| s.id).collect();
        add_ending(&mut report, repo::what_ending_closes(conn, &ids).await?);
        return Ok(report);
    }
    for _ in 0..MAX_BATCHES {
        let (batch, ending) = conn
            .transaction::<_, Error, _>(async |c| {
                let due = repo::due_sessions(c, cutoff, BATCH, true).await?;
                let ids: Vec<i64> = due.iter().map(|s| s.id).collect();
                let ending = repo::what_ending_closes(c, &ids).await?;
                for s in &due {
                    // At the deadline; later when the session was still used after it (a
                    // late run, a missed day): never before its last scan, never after now.
                    let at = deadline(s.start_time, end_time, tz).max(s.last_activity).min(run.now);
                    let date = business_date_in(at - chrono::Duration::microseconds(1), tz);
                    sessions::end_locked(c, s.id, at, date).await?;
                }
                Ok((due.len() as i64, ending))
            })
            .await?;
        add_ending(&mut report, ending);
        if batch < BATCH {
            break;
        }
    }
    Ok(report)
}

fn add_ending(report: &mut JobReport, (sessions, visits, supervisors): repo::Ending) {
    report.add("sessions_ended", sessions);
    report.add("visits_closed", visits);
    report.add("supervisors_ended", supervisors);
}

fn log(run: JobRun, report: &JobReport) {
    let counts: Vec<String> = report.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // `phoenix_common::jobs::run_once` logs every run at info with its counts.
    tracing::debug!(job = run.job.name(), dry_run = run.dry_run, counts = %counts.join(" "), "active job pass done");
}

/// `session_end`, daily at `session.end_time`: every running session whose business day
/// has reached the end time ends at it. A session started after the end time (an evening
/// event) runs until the end of its day and is ended by the next run, or by
/// [`close_attendance`] just after midnight, whichever comes first. A session still used
/// after its deadline (a late or missed run) ends at its last activity, at most `now`.
pub async fn end_sessions(conn: &mut AsyncPgConnection, settings: &LiveSettings, run: JobRun) -> Result<JobReport> {
    refresh(settings, run.job).await?;
    let report = end_due(conn, settings.time_zone(), settings.session_end_time(), run).await?;
    log(run, &report);
    Ok(report)
}

/// `abandoned_sweep`, every 15 minutes: sessions idle (no scan, no manual check-in or
/// check-out) for their own `timeout_minutes` (a new session's default is
/// `session.timeout_minutes`) whose reader is offline end now: `sessions_abandoned`,
/// `visits_closed`, `supervisors_ended`.
pub async fn sweep_abandoned(conn: &mut AsyncPgConnection, settings: &LiveSettings, run: JobRun) -> Result<JobReport> {
    refresh(settings, run.job).await?;
    let tz = settings.time_zone();
    let mut report = JobReport::default();
    let add = |report: &mut JobReport, (sessions, visits, supervisors): repo::Ending| {
        report.add("sessions_abandoned", sessions);
        report.add("visits_closed", visits);
        report.add("supervisors_ended", supervisors);
    };
    if run.dry_run {
        let ids = repo::abandoned_sessions(conn, run.now, BATCH * MAX_BATCHES as i64, false).await?;
        add(&mut report, repo::what_ending_closes(conn, &ids).await?);
    } else {
        for _ in 0..MAX_BATCHES {
            let (batch, ending) = conn
                .transaction::<_, Error, _>(async |c| {
                    let ids = repo::abandoned_sessions(c, run.now, BATCH, true).await?;
                    let ending = repo::what_ending_closes(c, &ids).await?;
                    for id in &ids {
                        sessions::end_locked(c, *id, run.now, business_date_in(run.now, tz)).await?;
                    }
                    Ok((ids.len() as i64, ending))
                })
                .await?;
            add(&mut report, ending);
            if batch < BATCH {
                break;
            }
        }
    }
    log(run, &report);
    Ok(report)
}

/// `attendance_close`, daily at 00:05 local: first the sessions of finished days that are
/// still running end (as [`end_sessions`] would, so no visit stays open into a new day);
/// then every attendance row still open for a date before today is checked out at 23:59:59
/// local of its date (never before its check-in) with `closed_by_system`, oldest date first,
/// catching up on days the job missed: `sessions_ended`, `visits_closed`,
/// `supervisors_ended`, `attendance_closed`, `days`. No presence event for the rows: a
/// pupil's state today does not change (yesterday's row no longer counts on today's board).
pub async fn close_attendance(conn: &mut AsyncPgConnection, settings: &LiveSettings, run: JobRun) -> Result<JobReport> {
    refresh(settings, run.job).await?;
    let tz = settings.time_zone();
    let today = business_date_in(run.now, tz);
    let mut report = end_due(conn, tz, settings.session_end_time(), run).await?;
    if run.dry_run {
        let (rows, days) = repo::count_open_days_before(conn, today).await?;
        report.add("attendance_closed", rows.min(BATCH * MAX_BATCHES as i64));
        report.add("days", days);
        log(run, &report);
        return Ok(report);
    }
    let mut dates = std::collections::BTreeSet::new();
    for _ in 0..MAX_BATCHES {
        let (seen, closed) = conn
            .transaction::<_, Error, _>(async |c| {
                let open = repo::open_days_before(c, today, BATCH).await?;
                let mut closed = Vec::new();
                for (id, student, date, _) in &open {
                    // The scans' lock order: the pupil first, so a late replayed scan of
                    // that day and this close serialise.
                    store::lock_student(c, *student).await?;
                    if repo::close_by_system(c, *id, at_local(*date, END_OF_DAY, tz)).await? > 0 {
                        closed.push(*date);
                    }
                }
                Ok((open.len() as i64, closed))
            })
            .await?;
        report.add("attendance_closed", closed.len() as i64);
        dates.extend(closed);
        if seen < BATCH {
            break;
        }
    }
    report.add("days", dates.len() as i64);
    log(run, &report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
    }

    fn six() -> NaiveTime {
        NaiveTime::from_hms_opt(18, 0, 0).expect("time")
    }

    #[test]
    fn sessions_are_due_at_the_end_time_of_their_day_or_at_its_end() {
        let tz = chrono_tz::Europe::Berlin;
        // Started 09:00 CET → 18:00 CET that day.
        assert_eq!(deadline(utc("2026-01-12T08:00:00Z"), six(), tz), utc("2026-01-12T17:00:00Z"));
        // Started 19:00 CET (after the end time) → midnight.
        assert_eq!(deadline(utc("2026-01-12T18:00:00Z"), six(), tz), utc("2026-01-12T23:00:00Z"));
        // Spring-forward day: 18:00 CEST = 16:00 UTC; midnight after it is CEST too.
        assert_eq!(deadline(utc("2026-03-29T07:00:00Z"), six(), tz), utc("2026-03-29T16:00:00Z"));
        assert_eq!(deadline(utc("2026-03-29T17:00:00Z"), six(), tz), utc("2026-03-29T22:00:00Z"));
        // Fall-back day: 18:00 CET = 17:00 UTC.
        assert_eq!(deadline(utc("2026-10-25T07:00:00Z"), six(), tz), utc("2026-10-25T17:00:00Z"));

        // Before the end time only earlier days are due; from it, today's too.
        assert_eq!(due_cutoff(utc("2026-01-12T16:59:00Z"), six(), tz), utc("2026-01-11T23:00:00Z"));
        assert_eq!(due_cutoff(utc("2026-01-12T17:00:00Z"), six(), tz), utc("2026-01-12T17:00:00Z"));
        assert_eq!(due_cutoff(utc("2026-01-12T23:05:00Z"), six(), tz), utc("2026-01-12T23:00:00Z"));
    }
}
