//! `phoenix jobs list` and `phoenix jobs run <name> [--dry-run]`: every domain's scheduled
//! jobs, as the process serving the domain would build them, run by hand on the same advisory
//! lock as the schedule (so a hand run never overlaps a replica's scheduled one).

use chrono::Utc;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{self, Job, JobSpec, RunOutcome, Trigger};
use phoenix_common::server::ShutdownToken;

use crate::services::{self, ServiceContext};

/// Every job of every domain.
pub async fn all_specs(ctx: &ServiceContext) -> Vec<(Domain, JobSpec)> {
    services::job_specs(&Domain::ALL, ctx, &ShutdownToken::new()).await
}

/// The `phoenix jobs list` table: job, domain, schedule, last run, its outcome and counts.
pub async fn list(ctx: &ServiceContext) -> anyhow::Result<String> {
    let mut conn = phoenix_common::db::conn(&ctx.pool).await?;
    let mut out =
        format!("{:<18} {:<11} {:<15} {:<22} {:<8} counts\n", "job", "domain", "schedule", "last run (UTC)", "outcome");
    for (domain, spec) in all_specs(ctx).await {
        let last = jobs::last_run(&mut conn, spec.job).await?;
        let (when, outcome, counts) = match last {
            Some(run) => (
                format!("{} {}", run.started_at.format("%Y-%m-%d %H:%M:%S"), run.trigger),
                if run.dry_run { format!("{} (dry)", run.outcome) } else { run.outcome },
                run.error.unwrap_or_else(|| counts_text(&run.counts)),
            ),
            None => ("never".to_owned(), "-".to_owned(), String::new()),
        };
        out.push_str(&format!(
            "{:<18} {:<11} {:<15} {:<22} {:<8} {}\n",
            spec.job.name(),
            domain.to_string(),
            spec.schedule.describe(),
            when,
            outcome,
            counts
        ));
    }
    Ok(out)
}

/// Runs job `name` once now; the report as text.
pub async fn run(ctx: &ServiceContext, name: &str, dry_run: bool) -> anyhow::Result<String> {
    let job = Job::from_name(name).ok_or_else(|| {
        let known: Vec<_> = Job::ALL.iter().map(|j| j.name()).collect();
        anyhow::anyhow!("unknown job {name:?}; the jobs are: {}", known.join(", "))
    })?;
    let specs = all_specs(ctx).await;
    let Some((_, spec)) = specs.iter().find(|(_, s)| s.job == job) else {
        anyhow::bail!("job {name} is not available in this build or configuration");
    };
    Ok(match jobs::run_once(&ctx.pool, spec, Trigger::Cli, Utc::now(), dry_run).await? {
        RunOutcome::AlreadyRunning => format!("{name} is already running (another replica or process); nothing done."),
        RunOutcome::Done(report) => {
            let verb = if dry_run { "dry run (nothing changed)" } else { "done" };
            let counts: Vec<_> = report.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name} {verb}: {}", if counts.is_empty() { "nothing to do".to_owned() } else { counts.join(" ") })
        }
    })
}

fn counts_text(counts: &serde_json::Value) -> String {
    counts
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
