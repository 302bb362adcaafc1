//! The pupil import (docs/import.md): pupils, their guardians (links, phone numbers) and
//! RFID cards from a CSV or XLSX file, previewed (every problem by row and column, what a
//! commit would do) or committed (all or nothing, one transaction, one `audit.data_imports`
//! row). Served by [`crate::import_service`] and `phoenix import students`.
//!
//! | module | job |
//! |---|---|
//! | [`parse`] | bytes → checked rows (format, headers in English or German, cell values) |
//! | `plan` | rows + the database → what to create and change, and the problems that need the database |
//! | `apply` | a plan → rows written, inside the caller's transaction |
//! | `repo` | the bulk reads of `plan` and the audit row |

mod apply;
pub mod parse;
mod plan;
mod repo;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::{Error, FieldViolations, Result};
use sha2::{Digest as _, Sha256};

pub use parse::Format;

/// The largest file the RPC takes (5 MiB).
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;

/// How many problems a refused commit names in its status (the preview lists all).
const REFUSAL_PROBLEMS: usize = 20;

/// The kind of a problem (docs/import.md "Problems").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    Required,
    UnknownColumn,
    DuplicateColumn,
    MissingColumn,
    BadDate,
    BadEmail,
    BadPhone,
    BadTag,
    BadValue,
    UnknownGroup,
    DuplicateTag,
    TagAssigned,
    TagInactive,
    DuplicateStudent,
    DuplicateGuardian,
    AmbiguousStudent,
    EmailConflict,
    Unreadable,
    Empty,
}

impl ProblemCode {
    /// The code as the API sends it (`UNKNOWN_GROUP`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Required => "REQUIRED",
            ProblemCode::UnknownColumn => "UNKNOWN_COLUMN",
            ProblemCode::DuplicateColumn => "DUPLICATE_COLUMN",
            ProblemCode::MissingColumn => "MISSING_COLUMN",
            ProblemCode::BadDate => "BAD_DATE",
            ProblemCode::BadEmail => "BAD_EMAIL",
            ProblemCode::BadPhone => "BAD_PHONE",
            ProblemCode::BadTag => "BAD_TAG",
            ProblemCode::BadValue => "BAD_VALUE",
            ProblemCode::UnknownGroup => "UNKNOWN_GROUP",
            ProblemCode::DuplicateTag => "DUPLICATE_TAG",
            ProblemCode::TagAssigned => "TAG_ASSIGNED",
            ProblemCode::TagInactive => "TAG_INACTIVE",
            ProblemCode::DuplicateStudent => "DUPLICATE_STUDENT",
            ProblemCode::DuplicateGuardian => "DUPLICATE_GUARDIAN",
            ProblemCode::AmbiguousStudent => "AMBIGUOUS_STUDENT",
            ProblemCode::EmailConflict => "EMAIL_CONFLICT",
            ProblemCode::Unreadable => "UNREADABLE",
            ProblemCode::Empty => "EMPTY",
        }
    }
}

/// One problem of a file: where (row, column header) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Spreadsheet row (1 = header); 0 for the file as a whole.
    pub row: u32,
    /// The column's header as the file has it; empty for the row or file.
    pub column: String,
    pub code: ProblemCode,
    pub message: String,
}

impl Problem {
    /// A problem of the cell at `row`, `column`.
    pub fn at(row: u32, column: &str, code: ProblemCode, message: impl Into<String>) -> Self {
        Problem { row, column: column.to_owned(), code, message: message.into() }
    }

    /// A problem of the whole file.
    pub fn file(code: ProblemCode, message: impl Into<String>) -> Self {
        Problem { row: 0, column: String::new(), code, message: message.into() }
    }
}

/// What an import does (or would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rows: u32,
    pub students_created: u32,
    pub students_updated: u32,
    pub students_unchanged: u32,
    pub guardians_created: u32,
    pub guardians_updated: u32,
    pub links_created: u32,
    pub links_updated: u32,
    pub phone_numbers_created: u32,
    pub cards_created: u32,
    pub cards_assigned: u32,
}

/// A file to import, checked for size and name.
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// As the user named it.
    pub filename: String,
    pub content: Vec<u8>,
}

impl ImportFile {
    /// SHA-256 of the content.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.content).into()
    }
}

/// Checks a file as the RPC receives it: a name of 1–255 characters, 1 byte to `max_bytes`.
pub fn check_file(filename: &str, content: Vec<u8>, max_bytes: usize) -> Result<ImportFile> {
    let mut v = FieldViolations::default();
    let name = filename.trim();
    if name.is_empty() {
        v.add("file.filename", "must not be empty (the file's name, e.g. schueler.csv)");
    } else if name.chars().count() > 255 {
        v.add("file.filename", "must be at most 255 characters");
    }
    if content.is_empty() {
        v.add("file.content", "the file is empty");
    } else if content.len() > max_bytes {
        v.add("file.content", format!("the file has {} bytes; at most {max_bytes} are accepted", content.len()));
    }
    v.into_result()?;
    Ok(ImportFile { filename: name.to_owned(), content })
}

/// What the preview found.
#[derive(Debug, Clone)]
pub struct Preview {
    pub format: Format,
    pub counts: Counts,
    /// By row, in the order found within a row.
    pub problems: Vec<Problem>,
    pub file_sha256: [u8; 32],
}

/// A committed import.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Its `audit.data_imports` row.
    pub import_id: i64,
    pub format: Format,
    pub counts: Counts,
    pub file_sha256: [u8; 32],
}

/// How the import was started (recorded in the audit row's metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Rpc,
    Cli,
}

/// Reads and checks `file` against one snapshot of the database; changes nothing.
pub async fn preview(conn: &mut AsyncPgConnection, file: &ImportFile) -> Result<Preview> {
    let parsed = parse::parse(&file.filename, &file.content);
    let format = parsed.format;
    let (counts, problems) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async |c| {
            let plan = plan::plan(c, parsed).await?;
            Ok((plan.counts, plan.problems))
        })
        .await?;
    Ok(Preview { format, counts, problems, file_sha256: file.sha256() })
}

/// Applies `file` in one transaction when it has no problem, with its audit row (imported
/// by `account_id`); refused with `InvalidArgument` naming the first problems otherwise.
/// Imports run one at a time (a transaction-level advisory lock).
pub async fn commit(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
    account_id: Option<i64>,
    via: Via,
) -> Result<Committed> {
    let started_at = Utc::now();
    let parsed = parse::parse(&file.filename, &file.content);
    let format = parsed.format;
    let sha = file.sha256();
    let (import_id, counts) = conn
        .transaction::<_, Error, _>(async |c| {
            repo::lock_imports(c).await?;
            let plan = plan::plan(c, parsed).await?;
            if !plan.problems.is_empty() {
                return Err(refusal(&plan.problems));
            }
            apply::apply(c, &plan).await?;
            let record = repo::ImportRecord {
                filename: &file.filename,
                counts: plan.counts,
                format,
                via,
                imported_by: account_id,
                started_at,
                file_sha256: &sha,
            };
            let id = repo::insert_audit(c, &record).await?;
            Ok((id, plan.counts))
        })
        .await?;
    Ok(Committed { import_id, format, counts, file_sha256: sha })
}

/// The refusal of a commit: the first problems as field violations `rows[<row>].<column>`.
fn refusal(problems: &[Problem]) -> Error {
    let mut v = FieldViolations::default();
    for p in problems.iter().take(REFUSAL_PROBLEMS) {
        v.add(problem_field(p), format!("{}: {}", p.code.as_str(), p.message));
    }
    if problems.len() > REFUSAL_PROBLEMS {
        v.add(
            "file",
            format!("{} more problems; PreviewStudentImport lists them all", problems.len() - REFUSAL_PROBLEMS),
        );
    }
    Error::InvalidArgument(v)
}

/// `rows[3].Gruppe`, `rows[3]`, or `file` for the whole file.
pub fn problem_field(p: &Problem) -> String {
    match (p.row, p.column.is_empty()) {
        (0, _) => "file".to_owned(),
        (r, true) => format!("rows[{r}]"),
        (r, false) => format!("rows[{r}].{}", p.column),
    }
}

/// Problems in row order (stable: within a row, in the order found).
fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by_key(|p| p.row);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_size_and_name_are_checked() {
        assert!(check_file("a.csv", vec![b'x'; 10], 10).is_ok());
        let fields = |r: Result<ImportFile>| match r {
            Err(Error::InvalidArgument(v)) => v.iter().map(|(f, _)| f.to_owned()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(check_file("a.csv", vec![b'x'; 11], 10)), ["file.content"]);
        assert_eq!(fields(check_file(" ", Vec::new(), 10)), ["file.filename", "file.content"]);
    }

    #[test]
    fn refusals_name_rows_and_columns() {
        let problems: Vec<Problem> =
            (0..22).map(|i| Problem::at(i + 2, "Gruppe", ProblemCode::UnknownGroup, "no group named \"X\"")).collect();
        let Error::InvalidArgument(v) = refusal(&problems) else { panic!("not invalid") };
        let fields: Vec<&str> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields.len(), 21);
        assert_eq!((fields[0], fields[20]), ("rows[2].Gruppe", "file"));
        assert_eq!(problem_field(&Problem::file(ProblemCode::Empty, "")), "file");
    }
}
