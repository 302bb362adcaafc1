//! The hourly cleanup job of the auth schema: what has expired and can no longer be used goes,
//! after a grace period in which the office can still see it (an invitation shown as
//! expired, a refresh token's family for reuse detection).
//!
//! | rows | go when |
//! |---|---|
//! | `auth.tokens` (refresh tokens) | expired more than [`TOKEN_GRACE`] ago |
//! | `auth.password_reset_tokens` | expired or used more than [`TOKEN_GRACE`] ago |
//! | `auth.password_reset_rate_limits` | window started more than [`TOKEN_GRACE`] ago |
//! | `auth.invitations`, `auth.guardian_invitations` | expired unaccepted more than [`INVITATION_GRACE`] ago (their outbox rows cascade) |
//! | `auth.outbox` | sent more than [`INVITATION_GRACE`] ago; unsent (given up, obsolete) after [`MAIL_LIMIT`] — no token it carries lives that long |
//!
//! Each table in batches of [`BATCH`] rows, one statement (and transaction) each, at most
//! [`MAX_BATCHES`] per table per run: a backlog drains over several runs, never one long
//! transaction. A dry run counts the same selection.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::jobs::{Job, JobReport, JobRun, JobSpec, Schedule};
use phoenix_db::schema::auth;

/// Rows per statement.
pub const BATCH: i64 = 5_000;
/// Statements per table per run.
pub const MAX_BATCHES: usize = 20;
/// Expired tokens are kept this long.
pub const TOKEN_GRACE: chrono::Duration = chrono::Duration::days(1);
/// Expired invitations and sent mail are kept this long.
pub const INVITATION_GRACE: chrono::Duration = chrono::Duration::days(7);

/// Unsent mail older than this goes too.
pub const MAIL_LIMIT: chrono::Duration = chrono::Duration::days(30);

/// The job, hourly.
pub fn spec() -> JobSpec {
    JobSpec::new(Job::Cleanup, Schedule::Every(Duration::from_secs(3600)), |conn, run| Box::pin(work(conn, run)))
}

macro_rules! purge {
    ($conn:expr, $run:expr, $report:expr, $name:literal, $table:path, $id:path: $ty:ty, $filter:expr) => {{
        let mut total = 0;
        if $run.dry_run {
            total = $table.filter($filter).count().get_result::<i64>($conn).await?;
        } else {
            for _ in 0..MAX_BATCHES {
                let ids: Vec<$ty> = $table.filter($filter).select($id).limit(BATCH).load($conn).await?;
                if ids.is_empty() {
                    break;
                }
                let n = diesel::delete($table.filter($id.eq_any(&ids))).execute($conn).await?;
                total += i64::try_from(n).unwrap_or(i64::MAX);
                if i64::try_from(n).unwrap_or(i64::MAX) < BATCH {
                    break;
                }
            }
        }
        $report.add($name, total);
    }};
}

/// One run acting for `run.now`.
pub async fn work(conn: &mut AsyncPgConnection, run: JobRun) -> Result<JobReport> {
    let tokens_before: DateTime<Utc> = run.now - TOKEN_GRACE;
    let invitations_before: DateTime<Utc> = run.now - INVITATION_GRACE;
    let mut report = JobReport::default();
    {
        use auth::tokens::dsl as t;
        purge!(conn, run, report, "refresh_tokens", t::tokens, t::id: i64, t::expires_at.lt(tokens_before));
    }
    {
        use auth::password_reset_tokens::dsl as t;
        let done = t::expires_at.lt(tokens_before).or(t::used_at.lt(tokens_before));
        purge!(conn, run, report, "password_reset_tokens", t::password_reset_tokens, t::id: i64, done);
    }
    {
        use auth::password_reset_rate_limits::dsl as t;
        let old = t::window_start.lt(tokens_before);
        purge!(conn, run, report, "rate_limit_rows", t::password_reset_rate_limits, t::email_hash: Vec<u8>, old);
    }
    {
        use auth::invitations::dsl as t;
        let expired = t::used_at.is_null().and(t::expires_at.lt(invitations_before));
        purge!(conn, run, report, "invitations", t::invitations, t::id: i64, expired);
    }
    {
        use auth::guardian_invitations::dsl as t;
        let expired = t::accepted_at.is_null().and(t::expires_at.lt(invitations_before));
        purge!(conn, run, report, "guardian_invitations", t::guardian_invitations, t::id: i64, expired);
    }
    {
        use auth::outbox::dsl as t;
        purge!(conn, run, report, "sent_mail", t::outbox, t::id: i64, t::sent_at.lt(invitations_before));
        let stale = t::sent_at.is_null().and(t::created_at.lt(run.now - MAIL_LIMIT));
        purge!(conn, run, report, "unsent_mail", t::outbox, t::id: i64, stale);
    }
    Ok(report)
}
