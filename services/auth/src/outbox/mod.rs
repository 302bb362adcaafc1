//! Delivery of `auth.outbox`: password-reset links, staff and guardian invitations
//! (docs/email.md).
//!
//! | module | holds |
//! |---|---|
//! | [`mailer`] | [`Mailer`]: SMTP through lettre (plain, STARTTLS, TLS, AUTH), or the dev log |
//! | [`templates`] | German and English messages and their links |
//! | [`repo`] | the queue: due rows locked `FOR UPDATE SKIP LOCKED`, their recipients, the updates |
//!
//! Each message is sent in a transaction of its own that holds its row locked: two senders
//! never hold the same row, so a message goes out once, and a crash between sending and the
//! commit can at worst send that one message again. The address is read at delivery (rows
//! carry ids only). A failure counts an attempt and waits an exponential backoff counted
//! from `created_at`; at the bound the row keeps its `last_error` and is left alone. Once a
//! message is sent — or can never be (its token was replaced, used or expired) — the token
//! is removed from `payload`. Neither `last_error` nor a log line names an address or a token.

pub mod mailer;
pub mod repo;
pub mod templates;

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::config::{Config, MailLanguage};
use phoenix_common::db::{self, DbPool};
use phoenix_common::jobs::{Job, JobReport, JobSpec, Schedule, Scheduler};
use phoenix_common::server::ShutdownToken;
use phoenix_common::{Error, Result};

pub use mailer::{Mailer, SendError};
use repo::DueMessage;
use templates::Kind;

/// How the sender works. [`OutboxOptions::from_config`] takes the addresses and language from
/// the configuration; the rest are the defaults.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// Links start with it (`PHOENIX_PUBLIC_URL`, no trailing `/`).
    pub public_url: String,
    /// Language for recipients without a preference (`PHOENIX_MAIL_LANGUAGE`).
    pub default_language: MailLanguage,
    /// Expiry times in messages are shown in the school's zone.
    pub timezone: Tz,
    /// Messages per run at most (20).
    pub batch: i64,
    /// Attempts before a message is given up (10).
    pub max_attempts: i32,
    /// Wait after the first failure, doubled after each further one (30 s)…
    pub backoff_base: Duration,
    /// …up to this (1 h).
    pub backoff_cap: Duration,
    /// Pause between runs of [`run_sender`] (5 s).
    pub poll_interval: Duration,
    /// Longest wait for one SMTP command (10 s).
    pub smtp_timeout: Duration,
}

impl OutboxOptions {
    /// The defaults with `config`'s public address (in `log` mode without one: the gateway on
    /// the listen host), default language and time zone.
    pub fn from_config(config: &Config) -> Self {
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            let host =
                if config.listen_host.is_unspecified() { "localhost".into() } else { config.listen_host.to_string() };
            format!("http://{host}:{}", config.gateway_port)
        });
        Self { public_url, default_language: config.mail_language, timezone: config.timezone, ..Self::default() }
    }

    /// Seconds after `created_at` at which attempt `n + 1` is due, for `n` in `0..max_attempts`.
    fn delays(&self) -> Vec<f64> {
        let (base, cap) = (self.backoff_base.as_secs_f64(), self.backoff_cap.as_secs_f64());
        let mut total = 0.0;
        (0..self.max_attempts.max(0))
            .map(|n| {
                let due = total;
                total += (base * 2f64.powi(n)).min(cap);
                due
            })
            .collect()
    }
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            default_language: MailLanguage::De,
            timezone: chrono_tz::Europe::Berlin,
            batch: 20,
            max_attempts: 10,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            smtp_timeout: Duration::from_secs(10),
        }
    }
}

/// What a due message gets.
enum Plan {
    /// Send this to that address.
    Send { to: String, mail: templates::Rendered },
    /// Fails without trying (no address, unknown kind).
    Fail(&'static str),
    /// Never sent: the token no longer works.
    Obsolete,
}

fn plan(m: &DueMessage, options: &OutboxOptions) -> Plan {
    let Some(kind) = Kind::parse(&m.kind) else { return Plan::Fail("unknown message kind") };
    let Some(token) = m.token.as_deref().filter(|_| !m.stale) else { return Plan::Obsolete };
    let Some(to) = m.email.clone() else { return Plan::Fail("the recipient has no email address") };
    let lang = templates::language(m.language.as_deref(), options.default_language);
    let link = templates::link(&options.public_url, kind, token);
    Plan::Send { to, mail: templates::render(kind, lang, &link, m.expires_at, options.timezone) }
}

/// What happened to one message.
enum Outcome {
    Sent,
    Failed { connection: bool },
    GaveUp { connection: bool },
    Obsolete,
}

/// One bounded pass over the due messages through a pooled connection; see [`deliver_due_on`].
pub async fn deliver_due(
    pool: &DbPool,
    mailer: &Mailer,
    options: &OutboxOptions,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<JobReport> {
    let mut conn = db::conn(pool).await?;
    deliver_due_on(&mut conn, mailer, options, now, dry_run).await
}

/// One bounded pass (at most `options.batch` messages) over the messages due at `now`, on
/// `conn` (a job lock's connection, say). Counts `sent`, `failed` (will be retried),
/// `gave_up` (reached the attempt bound), `obsolete` (token replaced, used or expired: never
/// sent) and `pending` (unsent below the bound, afterwards). A connection failure ends the
/// pass: the server is down for the others too. A dry run sends nothing, changes nothing,
/// and counts what it would do (a would-be send as `sent`; every attempt as if it succeeded).
pub async fn deliver_due_on(
    conn: &mut AsyncPgConnection,
    mailer: &Mailer,
    options: &OutboxOptions,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<JobReport> {
    let mut report = JobReport::default();
    for name in ["sent", "failed", "gave_up", "obsolete"] {
        report.add(name, 0);
    }
    let delays = options.delays();
    if dry_run {
        for m in repo::due(conn, now, &delays, options.batch, false).await? {
            let would = match plan(&m, options) {
                Plan::Send { .. } => "sent",
                Plan::Fail(_) if m.attempts + 1 >= options.max_attempts => "gave_up",
                Plan::Fail(_) => "failed",
                Plan::Obsolete => "obsolete",
            };
            tracing::info!(outbox_id = m.id, kind = %m.kind, would, "outbox dry run");
            report.add(would, 1);
        }
    } else {
        for _ in 0..options.batch {
            let Some(outcome) = deliver_next(conn, mailer, options, now, &delays).await? else { break };
            let (name, connection) = match outcome {
                Outcome::Sent => ("sent", false),
                Outcome::Failed { connection } => ("failed", connection),
                Outcome::GaveUp { connection } => ("gave_up", connection),
                Outcome::Obsolete => ("obsolete", false),
            };
            report.add(name, 1);
            if connection {
                break;
            }
        }
    }
    report.add("pending", repo::pending(conn, options.max_attempts).await?);
    Ok(report)
}

/// Locks the next due message (skipping any another sender holds), delivers it and records
/// the outcome, in one transaction; `None` when nothing is due.
async fn deliver_next(
    conn: &mut AsyncPgConnection,
    mailer: &Mailer,
    options: &OutboxOptions,
    now: DateTime<Utc>,
    delays: &[f64],
) -> Result<Option<Outcome>> {
    conn.transaction::<_, Error, _>(async |c| {
        let Some(m) = repo::due(c, now, delays, 1, true).await?.pop() else { return Ok(None) };
        let (outbox_id, kind) = (m.id, m.kind.as_str());
        let error = match plan(&m, options) {
            Plan::Obsolete => {
                repo::mark_obsolete(c, m.id, options.max_attempts, "not sent: the token was replaced, used or expired")
                    .await?;
                tracing::info!(outbox_id, kind, "outbox message dropped: its token no longer works");
                return Ok(Some(Outcome::Obsolete));
            }
            Plan::Fail(why) => SendError { message: why.into(), connection: false },
            Plan::Send { to, mail } => match mailer.send(m.id, &to, &mail).await {
                Ok(()) => {
                    repo::mark_sent(c, m.id, now).await?;
                    tracing::info!(outbox_id, kind, attempts = m.attempts + 1, "outbox message sent");
                    return Ok(Some(Outcome::Sent));
                }
                Err(e) => e,
            },
        };
        let attempts = m.attempts + 1;
        repo::mark_failed(c, m.id, attempts, options.max_attempts, &error.message).await?;
        let connection = error.connection;
        if attempts >= options.max_attempts {
            tracing::warn!(outbox_id, kind, attempts, error = %error.message, "outbox message given up");
            Ok(Some(Outcome::GaveUp { connection }))
        } else {
            tracing::warn!(outbox_id, kind, attempts, error = %error.message, "outbox delivery failed; will retry");
            Ok(Some(Outcome::Failed { connection }))
        }
    })
    .await
}

/// The sender as a scheduled job: a pass every `options.poll_interval` on the
/// [`Job::OutboxDelivery`] lock, so one replica sends at a time (and `FOR UPDATE SKIP LOCKED`
/// keeps a message from going out twice even without it). Idle passes are not recorded in
/// `config.job_runs` (the job runs more often than [`phoenix_common::jobs::QUIET_BELOW`]).
pub fn spec(mailer: Mailer, options: OutboxOptions) -> JobSpec {
    JobSpec::new(Job::OutboxDelivery, Schedule::Every(options.poll_interval), move |conn, run| {
        let (mailer, options) = (mailer.clone(), options.clone());
        Box::pin(async move { deliver_due_on(conn, &mailer, &options, run.now, run.dry_run).await })
    })
}

/// Runs [`spec`] on the wall clock until `shutdown` (what the process serving auth does
/// through its job schedule; tests call it directly).
pub async fn run_sender(pool: DbPool, mailer: Mailer, options: OutboxOptions, shutdown: ShutdownToken) {
    let scheduler =
        Scheduler { step: options.poll_interval.min(Duration::from_secs(1)), ..Scheduler::system(options.timezone) };
    scheduler.run(pool, spec(mailer, options), shutdown).await;
}

/// The sender job of this process when `PHOENIX_SMTP_URL` names a server or `log`.
pub fn job(config: &Config) -> Option<JobSpec> {
    let options = OutboxOptions::from_config(config);
    let mailer = Mailer::from_config(config, options.smtp_timeout).ok().flatten()?;
    Some(spec(mailer, options))
}

/// Checks the mail configuration when the auth domain starts (a bad `PHOENIX_SMTP_URL` stops
/// it) and says once how mail goes out; without a server, that mail waits in `auth.outbox`.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let options = OutboxOptions::from_config(config);
    match Mailer::from_config(config, options.smtp_timeout)? {
        Some(mailer) if mailer.is_dev_log() => {
            tracing::warn!("outbox: mail is printed to the log as DEV MAIL (not sent), PHOENIX_SMTP_URL=log");
        }
        Some(_) => tracing::info!("outbox: sending mail through PHOENIX_SMTP_URL"),
        None => tracing::warn!(
            "outbox: PHOENIX_SMTP_URL is not set, so password-reset and invitation mail is not sent (it waits in auth.outbox)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_counted_from_creation() {
        let options = OutboxOptions {
            max_attempts: 6,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(200),
            ..OutboxOptions::default()
        };
        assert_eq!(options.delays(), [0.0, 30.0, 90.0, 210.0, 410.0, 610.0]);
    }
}
