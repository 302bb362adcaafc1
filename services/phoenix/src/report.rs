//! `phoenix report attendance|rooms --month YYYY-MM [--group G | --room R] --format csv|xlsx
//! --out FILE` and `phoenix rollover --mapping FILE [--dry-run]`: the reports and the
//! school-year rollover of docs/reports.md from the command line, straight against the
//! database as the administration (every group; the rollover's audit rows say `system`).

use std::path::Path;

use chrono::Utc;
use phoenix_active::reports::{self, Format, Month};
use phoenix_common::access::Caller;
use phoenix_common::db::{self, DbPool};
use phoenix_common::error::FieldViolations;
use phoenix_common::time::business_date_in;
use phoenix_education::rollover;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Attendance per pupil and group; the id is a group.
    Attendance,
    /// Room utilisation; the id is a room.
    Rooms,
}

/// Writes the report of `month` (`YYYY-MM`) to `out`; the line to print.
pub async fn write(
    pool: &DbPool,
    tz: chrono_tz::Tz,
    kind: Kind,
    month: &str,
    id: Option<i64>,
    format: &str,
    out: &Path,
) -> anyhow::Result<String> {
    let mut v = FieldViolations::default();
    let month = Month::parse("--month", month, &mut v);
    let format = Format::parse(format);
    let (Some(month), Some(format)) = (month, format) else {
        anyhow::bail!("--month must be YYYY-MM (e.g. 2026-11) and --format csv or xlsx");
    };
    let mut conn = db::conn(pool).await?;
    let now = Utc::now();
    let report = match kind {
        Kind::Attendance => {
            let cmd = reports::attendance::AttendanceReport { month, group: id, format };
            reports::attendance::build(&mut conn, &Caller::ADMIN, cmd, tz, business_date_in(now, tz)).await?
        }
        Kind::Rooms => {
            let cmd = reports::rooms::RoomReport { month, room: id, format };
            reports::rooms::build(&mut conn, &Caller::ADMIN, cmd, tz, now).await?
        }
    };
    std::fs::write(out, &report.bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    Ok(format!("Wrote {} ({} bytes, {}).", out.display(), report.bytes.len(), report.filename))
}

/// Runs (or dry-runs) the rollover of the mapping file at `path`; the summary to print.
pub async fn rollover(pool: &DbPool, path: &Path, dry_run: bool, reason: Option<String>) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let rows = rollover::parse_mapping(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let req = phoenix_proto::education::v1::RolloverRequest {
        mapping: rows
            .into_iter()
            .map(|r| phoenix_proto::education::v1::RolloverMapping { from: r.from, to: r.to.unwrap_or_default() })
            .collect(),
        dry_run,
        reason: reason.unwrap_or_default(),
    };
    let cmd = rollover::validate(req)?;
    let mut conn = db::conn(pool).await?;
    let done = rollover::run(&mut conn, &cmd, "system").await?;
    let mut text = String::new();
    for g in &done.groups {
        let to = g.to.as_deref().map_or_else(|| "(leavers: deactivated)".to_owned(), |t| format!("{t:?}"));
        text.push_str(&format!("  {:?} → {to}: {} pupils\n", g.from, g.student_ids.len()));
    }
    let head = if done.dry_run { "Dry run, nothing changed" } else { "Rolled over" };
    Ok(format!(
        "{head}: {} pupils moved, {} archived, {} cards released, {} audit rows\n{}",
        done.moved,
        done.archived,
        done.cards_released,
        done.audit_rows,
        text.trim_end()
    ))
}
