//! `phoenix import students FILE [--dry-run]`: the pupil import of docs/import.md from the
//! command line, straight against the database (no gateway, so no request-size limit
//! beyond [`MAX_CLI_FILE_BYTES`]). `--dry-run` is the preview; without it the file is
//! committed, all or nothing, and recorded in `audit.data_imports` (imported by nobody:
//! `imported_by` is NULL, `metadata.via` is `cli`).

use std::path::Path;

use phoenix_common::Error;
use phoenix_common::db::{self, DbPool};
use phoenix_users::import::{self, Counts, Via};

/// The largest file the command reads (64 MiB).
pub const MAX_CLI_FILE_BYTES: usize = 64 * 1024 * 1024;

/// Previews (`dry_run`) or commits the file at `path`; the report to print. A file with
/// problems is an error listing each by row and column.
pub async fn students(pool: &DbPool, path: &Path, dry_run: bool) -> anyhow::Result<String> {
    let content = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = import::check_file(&filename, content, MAX_CLI_FILE_BYTES).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = db::conn(pool).await?;
    if dry_run {
        let preview = import::preview(&mut conn, &file).await?;
        if !preview.problems.is_empty() {
            anyhow::bail!("{}", problems_text(&preview.problems));
        }
        return Ok(format!("Dry run ({}, nothing changed): {}", preview.format.name(), counts_text(&preview.counts)));
    }
    match import::commit(&mut conn, &file, None, Via::Cli).await {
        Ok(done) => Ok(format!(
            "Imported ({}, audit.data_imports #{}): {}",
            done.format.name(),
            done.import_id,
            counts_text(&done.counts)
        )),
        Err(Error::InvalidArgument(_)) => {
            // The refusal names only the first problems: list them all, as the preview does.
            let preview = import::preview(&mut conn, &file).await?;
            anyhow::bail!("{}", problems_text(&preview.problems))
        }
        Err(e) => Err(e.into()),
    }
}

/// One line per problem: `row 3, Gruppe: UNKNOWN_GROUP: no group named "Drachen"; …`.
pub fn problems_text(problems: &[import::Problem]) -> String {
    let mut out = format!("{} problems; nothing imported:\n", problems.len());
    for p in problems {
        let place = match (p.row, p.column.as_str()) {
            (0, _) => "file".to_owned(),
            (r, "") => format!("row {r}"),
            (r, c) => format!("row {r}, {c}"),
        };
        out.push_str(&format!("  {place}: {}: {}\n", p.code.as_str(), p.message));
    }
    out.trim_end().to_owned()
}

/// `rows=5 students_created=5 …`.
pub fn counts_text(c: &Counts) -> String {
    format!(
        "rows={} students_created={} students_updated={} students_unchanged={} guardians_created={} \
         guardians_updated={} links_created={} links_updated={} phone_numbers_created={} cards_created={} \
         cards_assigned={}",
        c.rows,
        c.students_created,
        c.students_updated,
        c.students_unchanged,
        c.guardians_created,
        c.guardians_updated,
        c.links_created,
        c.links_updated,
        c.phone_numbers_created,
        c.cards_created,
        c.cards_assigned
    )
}
