//! Monthly reports for the school office (docs/reports.md): attendance per pupil and group
//! ([`attendance`]) and room utilisation per room and day ([`rooms`]), rendered as CSV or
//! XLSX ([`render`]). Each report is one `REPEATABLE READ` snapshot; what a caller may see
//! is decided by [`crate::scope`] (admins: all; staff: their own groups today).
//!
//! | module | holds |
//! |---|---|
//! | [`attendance`] | the attendance report: rows per pupil, a total per group |
//! | [`rooms`] | the room-utilisation report: sessions, visits, distinct pupils, peak occupancy |
//! | [`render`] | a [`Table`] as CSV or XLSX bytes |

pub mod attendance;
pub mod render;
pub mod rooms;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use phoenix_common::error::FieldViolations;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;

/// A calendar month of business dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// The first day.
    pub first: NaiveDate,
}

impl Month {
    /// Parses `YYYY-MM`; a violation of `field` otherwise.
    pub fn parse(field: &str, value: &str, v: &mut FieldViolations) -> Option<Month> {
        let first = NaiveDate::parse_from_str(&format!("{}-01", value.trim()), "%Y-%m-%d").ok();
        match first {
            Some(first) if value.trim().len() == 7 => Some(Month { first }),
            _ => {
                v.add(field, "must be a month as YYYY-MM, e.g. 2026-11");
                None
            }
        }
    }

    /// The first day of the next month.
    pub fn next_first(self) -> NaiveDate {
        self.first + Months::new(1)
    }

    /// The last day.
    pub fn last(self) -> NaiveDate {
        self.next_first().pred_opt().unwrap_or(self.first)
    }

    /// `2026-11`.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.first.year(), self.first.month())
    }

    /// The month's instants in zone `tz`: from local midnight of the first day to local
    /// midnight of the next month's first day.
    pub fn range(self, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        (local_midnight(self.first, tz), local_midnight(self.next_first(), tz))
    }
}

/// Local midnight of `date` in `tz` as an instant (the earliest, across a DST change).
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        chrono::LocalResult::None => Utc.from_utc_datetime(&naive),
    }
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// The proto enum (unspecified: CSV); `None` for an unknown value.
    pub fn from_pb(value: i32) -> Option<Format> {
        match pb::ReportFormat::try_from(value).ok()? {
            pb::ReportFormat::Unspecified | pb::ReportFormat::Csv => Some(Format::Csv),
            pb::ReportFormat::Xlsx => Some(Format::Xlsx),
        }
    }

    /// `csv` / `xlsx`, as the CLI and the file name spell it.
    pub fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// One cell of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

/// A report as one table: a sheet name, the header and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub sheet: &'static str,
    pub header: &'static [&'static str],
    pub rows: Vec<Vec<Cell>>,
}

/// A rendered report file.
#[derive(Debug, Clone)]
pub struct Report {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Report {
    /// `table` rendered as `format`, named `<stem>.<ext>`.
    pub fn render(stem: &str, table: &Table, format: Format) -> Result<Report> {
        let bytes = match format {
            Format::Csv => render::csv(table)?,
            Format::Xlsx => render::xlsx(table)?,
        };
        Ok(Report { filename: format!("{stem}.{}", format.extension()), content_type: format.content_type(), bytes })
    }

    /// The stream messages: the first with content type and file name; each at most
    /// [`CHUNK_BYTES`] of data (one empty-data message for an empty file).
    pub fn chunks(self) -> Vec<pb::ReportChunk> {
        let mut out: Vec<pb::ReportChunk> = self
            .bytes
            .chunks(CHUNK_BYTES)
            .map(|c| pb::ReportChunk { data: c.to_vec(), ..Default::default() })
            .collect();
        if out.is_empty() {
            out.push(pb::ReportChunk::default());
        }
        out[0].content_type = self.content_type.to_owned();
        out[0].filename = self.filename;
        out
    }
}

/// The largest data of one stream message (64 KiB).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// `HH:MM` of `t` in `tz`.
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M").to_string()
}

/// `InvalidArgument` for an unknown format value.
pub fn format_of(field: &str, value: i32, v: &mut FieldViolations) -> Format {
    Format::from_pb(value).unwrap_or_else(|| {
        v.add(field, "must be REPORT_FORMAT_CSV or REPORT_FORMAT_XLSX");
        Format::Csv
    })
}

/// `PermissionDenied` for staff asking for a group that is not theirs.
pub fn not_your_group(group: i64) -> Error {
    Error::PermissionDenied(format!(
        "education group {group} is not one of your groups: its reports are for admins and its leaders or substitutes"
    ))
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `NotFound` unless row `id` of `table` (a fixed table name, never input) exists.
pub async fn require_exists(
    conn: &mut diesel_async::AsyncPgConnection,
    resource: &'static str,
    table: &'static str,
    id: i64,
) -> Result<()> {
    use diesel_async::RunQueryDsl;
    let found: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE id = $1"))
        .bind::<diesel::sql_types::BigInt, _>(id)
        .get_result(conn)
        .await?;
    if found.n == 0 { Err(Error::not_found(resource, id)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_span_local_midnights() {
        let mut v = FieldViolations::default();
        let m = Month::parse("month", "2026-11", &mut v).expect("month");
        assert_eq!(
            (m.first, m.last(), m.label()),
            (
                NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                "2026-11".into()
            )
        );
        let (from, to) = m.range(chrono_tz::Europe::Berlin);
        assert_eq!(from.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        assert!(Month::parse("month", "2026-13", &mut v).is_none());
        assert!(Month::parse("month", "2026-1", &mut v).is_none());
        assert_eq!(v.iter().count(), 2);
    }

    #[test]
    fn chunks_carry_the_name_first_and_split_the_bytes() {
        let r = Report { filename: "a.csv".into(), content_type: "text/csv", bytes: vec![7; CHUNK_BYTES + 3] };
        let c = r.chunks();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].filename.as_str(), c[0].content_type.as_str(), c[0].data.len()),
            ("a.csv", "text/csv", CHUNK_BYTES)
        );
        assert_eq!((c[1].filename.as_str(), c[1].data.len()), ("", 3));
    }
}
