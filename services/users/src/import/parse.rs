//! Bytes → rows of typed cells: the file format (CSV or a spreadsheet, detected by content,
//! then by the file name), the header names (English or German, docs/import.md) and every
//! cell checked on its own. Pure: no database; what needs one is `plan`'s.

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, Reader as _};
use chrono::{NaiveDate, Utc};

use super::{Problem, ProblemCode};
use crate::validate::family::{normalize_email, normalize_phone};
use crate::validate::normalize_tag;

/// How many guardians a row can carry (column groups `guardian1_…`, `guardian2_…`).
pub const GUARDIAN_SLOTS: u8 = 2;

/// The format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-, semicolon- or tab-separated text, UTF-8.
    Csv,
    /// A spreadsheet (XLSX, also XLS and ODS), first sheet.
    Xlsx,
}

impl Format {
    /// `csv` or `xlsx`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    /// Spreadsheet when the bytes are a ZIP (XLSX, ODS) or an OLE file (XLS), or the name
    /// says so; CSV otherwise.
    pub fn detect(filename: &str, content: &[u8]) -> Format {
        let lower = filename.to_ascii_lowercase();
        let spreadsheet_name = [".xlsx", ".xlsm", ".xls", ".ods"].iter().any(|e| lower.ends_with(e));
        if content.starts_with(b"PK\x03\x04") || content.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) || spreadsheet_name {
            Format::Xlsx
        } else {
            Format::Csv
        }
    }
}

/// A pupil column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PupilField {
    FirstName,
    LastName,
    Birthday,
    SchoolClass,
    Group,
    Tag,
    HealthInfo,
    ExtraInfo,
    PickupStatus,
    Bus,
}

/// A column of a guardian group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardianField {
    FirstName,
    LastName,
    Email,
    Mobile,
    Phone,
    Relationship,
    CanPickup,
}

/// What a header means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Pupil(PupilField),
    Guardian(u8, GuardianField),
}

const PUPIL_ALIASES: &[(PupilField, &[&str])] = &[
    (PupilField::FirstName, &["firstname", "vorname"]),
    (PupilField::LastName, &["lastname", "nachname", "familienname"]),
    (PupilField::Birthday, &["birthday", "dateofbirth", "birthdate", "geburtsdatum", "geburtstag"]),
    (PupilField::SchoolClass, &["schoolclass", "class", "klasse"]),
    (PupilField::Group, &["group", "gruppe", "ogsgruppe"]),
    (PupilField::Tag, &["tagid", "tag", "rfid", "rfidtag", "card", "karte", "kartennummer", "rfidkarte"]),
    (PupilField::HealthInfo, &["healthinfo", "health", "gesundheit", "gesundheitshinweise"]),
    (PupilField::ExtraInfo, &["extrainfo", "notes", "hinweise", "bemerkungen"]),
    (PupilField::PickupStatus, &["pickupstatus", "abholstatus"]),
    (PupilField::Bus, &["bus", "buskind"]),
];

const GUARDIAN_PREFIXES: &[&str] = &["guardian", "elternteil", "erziehungsberechtigter", "sorgeberechtigter"];

const GUARDIAN_ALIASES: &[(GuardianField, &[&str])] = &[
    (GuardianField::FirstName, &["firstname", "vorname"]),
    (GuardianField::LastName, &["lastname", "nachname"]),
    (GuardianField::Email, &["email", "mail", "emailadresse"]),
    (GuardianField::Mobile, &["mobile", "mobil", "handy", "mobilnummer"]),
    (GuardianField::Phone, &["phone", "telefon", "tel", "festnetz"]),
    (GuardianField::Relationship, &["relationship", "beziehung", "verhaeltnis"]),
    (GuardianField::CanPickup, &["canpickup", "pickup", "darfabholen", "abholberechtigt"]),
];

/// A header reduced to what is compared: lower case, umlauts spelt out, letters and digits only.
fn header_key(header: &str) -> String {
    let lower = header.trim().to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c if c.is_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// The column a header names, if any.
pub fn column_of(header: &str) -> Option<Column> {
    let key = header_key(header);
    if let Some((f, _)) = PUPIL_ALIASES.iter().find(|(_, names)| names.contains(&key.as_str())) {
        return Some(Column::Pupil(*f));
    }
    for prefix in GUARDIAN_PREFIXES {
        let Some(rest) = key.strip_prefix(prefix) else { continue };
        let Some(slot) = rest.chars().next().and_then(|c| c.to_digit(10)) else { continue };
        let slot = slot as u8;
        if !(1..=GUARDIAN_SLOTS).contains(&slot) {
            continue;
        }
        let suffix = &rest[1..];
        if let Some((f, _)) = GUARDIAN_ALIASES.iter().find(|(_, names)| names.contains(&suffix)) {
            return Some(Column::Guardian(slot, *f));
        }
    }
    None
}

/// A guardian as one row's column group gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardianInput {
    /// 1 or 2.
    pub slot: u8,
    pub first_name: String,
    pub last_name: String,
    /// Lower-case.
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    /// Column value (`parent`, `guardian`, `relative`, `other`).
    pub relationship: Option<&'static str>,
    pub can_pickup: Option<bool>,
    /// The headers of the group's columns, for problems about the guardian as a whole.
    pub first_name_column: String,
    pub email_column: String,
}

/// One pupil row, every cell checked; a bad cell is `None` here and a problem.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PupilRow {
    /// Spreadsheet row number (the header is row 1).
    pub row: u32,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub school_class: Option<String>,
    pub group: Option<String>,
    pub tag: Option<String>,
    pub health_info: Option<String>,
    pub extra_info: Option<String>,
    pub pickup_status: Option<String>,
    pub bus: Option<bool>,
    pub guardians: Vec<GuardianInput>,
    /// Whether a cell of this row had a problem.
    pub has_problem: bool,
    /// The header of each pupil column present, for problems found later.
    pub headers: HashMap<PupilField, String>,
}

impl PupilRow {
    /// The header of `field` in this file (the English name if the file lacks it).
    pub fn header(&self, field: PupilField) -> String {
        self.headers.get(&field).cloned().unwrap_or_else(|| english(Column::Pupil(field)))
    }
}

/// The English header of a column.
pub fn english(column: Column) -> String {
    match column {
        Column::Pupil(f) => {
            PUPIL_ALIASES.iter().find(|(x, _)| *x == f).map(|(_, n)| canonical(n[0])).unwrap_or_default()
        }
        Column::Guardian(slot, f) => {
            let name = GUARDIAN_ALIASES.iter().find(|(x, _)| *x == f).map(|(_, n)| canonical(n[0])).unwrap_or_default();
            format!("guardian{slot}_{name}")
        }
    }
}

fn canonical(key: &str) -> String {
    match key {
        "firstname" => "first_name".into(),
        "lastname" => "last_name".into(),
        "schoolclass" => "school_class".into(),
        "tagid" => "tag_id".into(),
        "healthinfo" => "health_info".into(),
        "extrainfo" => "extra_info".into(),
        "pickupstatus" => "pickup_status".into(),
        "canpickup" => "can_pickup".into(),
        other => other.into(),
    }
}

/// A read file: its format, data rows and the problems of cells and headers.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub format: Format,
    pub rows: Vec<PupilRow>,
    pub problems: Vec<Problem>,
}

/// Reads `content` (named `filename`) into checked pupil rows.
pub fn parse(filename: &str, content: &[u8]) -> ParsedFile {
    let format = Format::detect(filename, content);
    let mut problems = Vec::new();
    let table = match format {
        Format::Csv => read_csv(content),
        Format::Xlsx => read_spreadsheet(content),
    };
    let table = match table {
        Ok(t) => t,
        Err(message) => {
            problems.push(Problem::file(ProblemCode::Unreadable, message));
            return ParsedFile { format, rows: Vec::new(), problems };
        }
    };
    let rows = rows_of(table, &mut problems);
    ParsedFile { format, rows, problems }
}

/// Raw rows: (row number, cells); the first is the header.
type Table = Vec<(u32, Vec<String>)>;

fn read_csv(content: &[u8]) -> Result<Table, String> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let text = std::str::from_utf8(content).map_err(|_| {
        "the file is neither an XLSX file nor UTF-8 text; save it as \"CSV UTF-8\" or as XLSX".to_owned()
    })?;
    let first_line = text.lines().next().unwrap_or("");
    let delimiter =
        [b';', b',', b'\t'].into_iter().max_by_key(|d| first_line.bytes().filter(|b| b == d).count()).unwrap_or(b',');
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut table = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("not a readable CSV file at record {}: {e}", i + 1))?;
        table.push((i as u32 + 1, record.iter().map(|c| c.trim().to_owned()).collect()));
    }
    Ok(table)
}

fn read_spreadsheet(content: &[u8]) -> Result<Table, String> {
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(content))
        .map_err(|e| format!("not a readable spreadsheet (XLSX, XLS or ODS): {e}"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| "the spreadsheet has no sheet".to_owned())?
        .map_err(|e| format!("the first sheet cannot be read: {e}"))?;
    let first_row = range.start().map(|(r, _)| r).unwrap_or(0);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, cells)| (first_row + i as u32 + 1, cells.iter().map(cell_text).collect()))
        .collect())
}

/// A spreadsheet cell as the text a CSV file would hold: whole numbers without a fraction,
/// dates as YYYY-MM-DD.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "ja" } else { "nein" }.to_owned(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(dt) => dt.date().format("%Y-%m-%d").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::DateTimeIso(s) => s.split('T').next().unwrap_or(s).to_owned(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn rows_of(table: Table, problems: &mut Vec<Problem>) -> Vec<PupilRow> {
    let mut iter = table.into_iter().skip_while(|(_, cells)| cells.iter().all(String::is_empty));
    let Some((header_row, headers)) = iter.next() else {
        problems.push(Problem::file(ProblemCode::Empty, "the file has no header row and no pupils"));
        return Vec::new();
    };
    let mut columns: Vec<Option<Column>> = Vec::with_capacity(headers.len());
    let mut seen: HashMap<Column, String> = HashMap::new();
    for h in &headers {
        let h = h.trim();
        if h.is_empty() || h.starts_with('#') {
            columns.push(None);
            continue;
        }
        match column_of(h) {
            Some(c) => {
                if let Some(first) = seen.get(&c) {
                    problems.push(Problem::at(
                        header_row,
                        h,
                        ProblemCode::DuplicateColumn,
                        format!("the same column as {first:?}; keep one of them"),
                    ));
                    columns.push(None);
                } else {
                    seen.insert(c, h.to_owned());
                    columns.push(Some(c));
                }
            }
            None => {
                problems.push(Problem::at(
                    header_row,
                    h,
                    ProblemCode::UnknownColumn,
                    "not a column of the import (docs/import.md); rename it, or start its header with # to ignore it",
                ));
                columns.push(None);
            }
        }
    }
    for required in [PupilField::FirstName, PupilField::LastName, PupilField::SchoolClass] {
        if !seen.contains_key(&Column::Pupil(required)) {
            let name = english(Column::Pupil(required));
            problems.push(Problem::at(
                header_row,
                &name,
                ProblemCode::MissingColumn,
                format!("the file needs a column {name} ({})", german(required)),
            ));
        }
    }
    let pupil_headers: HashMap<PupilField, String> = seen
        .iter()
        .filter_map(|(c, h)| match c {
            Column::Pupil(f) => Some((*f, h.clone())),
            Column::Guardian(..) => None,
        })
        .collect();
    let guardian_header = |slot: u8, f: GuardianField| {
        seen.get(&Column::Guardian(slot, f)).cloned().unwrap_or_else(|| english(Column::Guardian(slot, f)))
    };
    let mut rows = Vec::new();
    for (row, cells) in iter {
        if cells.iter().all(String::is_empty) {
            continue;
        }
        let mut out = PupilRow { row, headers: pupil_headers.clone(), ..Default::default() };
        let mut guardians: Vec<GuardianInput> = (1..=GUARDIAN_SLOTS)
            .map(|slot| GuardianInput {
                slot,
                first_name_column: guardian_header(slot, GuardianField::FirstName),
                email_column: guardian_header(slot, GuardianField::Email),
                ..Default::default()
            })
            .collect();
        let mut guardian_given = [false; GUARDIAN_SLOTS as usize];
        let mut cell_problems = Vec::new();
        for (i, raw) in cells.iter().enumerate() {
            let Some(Some(column)) = columns.get(i) else { continue };
            let value = raw.trim();
            if value.is_empty() {
                continue;
            }
            let header = headers[i].trim();
            let mut bad = |code: ProblemCode, message: String| {
                cell_problems.push(Problem::at(row, header, code, message));
            };
            match *column {
                Column::Pupil(f) => match f {
                    PupilField::FirstName => out.first_name = Some(value.to_owned()),
                    PupilField::LastName => out.last_name = Some(value.to_owned()),
                    PupilField::SchoolClass => out.school_class = Some(value.to_owned()),
                    PupilField::Group => out.group = Some(value.to_owned()),
                    PupilField::HealthInfo => out.health_info = Some(value.to_owned()),
                    PupilField::ExtraInfo => out.extra_info = Some(value.to_owned()),
                    PupilField::PickupStatus => out.pickup_status = Some(value.to_owned()),
                    PupilField::Birthday => match parse_date(value) {
                        Some(d) if d > Utc::now().date_naive() => {
                            bad(ProblemCode::BadDate, format!("{value:?} is in the future"));
                        }
                        Some(d) => out.birthday = Some(d),
                        None => {
                            bad(ProblemCode::BadDate, format!("{value:?} is not a date (YYYY-MM-DD or DD.MM.YYYY)"))
                        }
                    },
                    PupilField::Tag => match normalize_tag(value) {
                        Ok(t) => out.tag = Some(t),
                        Err(e) => bad(ProblemCode::BadTag, format!("the card number {e}")),
                    },
                    PupilField::Bus => match parse_bool(value) {
                        Some(b) => out.bus = Some(b),
                        None => bad(ProblemCode::BadValue, format!("{value:?} is not ja/nein (yes/no)")),
                    },
                },
                Column::Guardian(slot, f) => {
                    let g = &mut guardians[usize::from(slot - 1)];
                    guardian_given[usize::from(slot - 1)] = true;
                    match f {
                        GuardianField::FirstName => g.first_name = value.to_owned(),
                        GuardianField::LastName => g.last_name = value.to_owned(),
                        GuardianField::Email => match normalize_email(value) {
                            Ok(e) => g.email = Some(e),
                            Err(e) => bad(ProblemCode::BadEmail, e),
                        },
                        GuardianField::Mobile | GuardianField::Phone => match normalize_phone(value) {
                            Ok(p) if f == GuardianField::Mobile => g.mobile = Some(p),
                            Ok(p) => g.phone = Some(p),
                            Err(e) => bad(ProblemCode::BadPhone, format!("the phone number {e}")),
                        },
                        GuardianField::Relationship => match relationship(value) {
                            Some(r) => g.relationship = Some(r),
                            None => bad(
                                ProblemCode::BadValue,
                                format!(
                                    "{value:?} is not one of parent, guardian, relative, other (Elternteil, Vormund, Verwandte, Sonstige)"
                                ),
                            ),
                        },
                        GuardianField::CanPickup => match parse_bool(value) {
                            Some(b) => g.can_pickup = Some(b),
                            None => bad(ProblemCode::BadValue, format!("{value:?} is not ja/nein (yes/no)")),
                        },
                    }
                }
            }
        }
        for (field, present) in [
            (PupilField::FirstName, out.first_name.is_some()),
            (PupilField::LastName, out.last_name.is_some()),
            (PupilField::SchoolClass, out.school_class.is_some()),
        ] {
            if !present && pupil_headers.contains_key(&field) {
                cell_problems.push(Problem::at(row, &out.header(field), ProblemCode::Required, "must not be empty"));
            }
        }
        for (g, given) in guardians.into_iter().zip(guardian_given) {
            if !given {
                continue;
            }
            let mut complete = true;
            for (f, value) in [(GuardianField::FirstName, &g.first_name), (GuardianField::LastName, &g.last_name)] {
                if value.is_empty() {
                    complete = false;
                    cell_problems.push(Problem::at(
                        row,
                        &guardian_header(g.slot, f),
                        ProblemCode::Required,
                        format!("guardian {} has other columns filled in, so needs this one too", g.slot),
                    ));
                }
            }
            if complete {
                out.guardians.push(g);
            }
        }
        out.has_problem = !cell_problems.is_empty();
        problems.extend(cell_problems);
        rows.push(out);
    }
    rows
}

fn german(f: PupilField) -> &'static str {
    match f {
        PupilField::FirstName => "Vorname",
        PupilField::LastName => "Nachname",
        PupilField::SchoolClass => "Klasse",
        _ => "",
    }
}

/// YYYY-MM-DD, or the German DD.MM.YYYY (also D.M.YYYY).
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    let v = value.trim();
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().or_else(|| NaiveDate::parse_from_str(v, "%d.%m.%Y").ok()).filter(
        |d| {
            use chrono::Datelike as _;
            d.year() >= 1900
        },
    )
}

/// ja/nein, yes/no, true/false, 1/0, x (ticked).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "ja" | "j" | "yes" | "y" | "true" | "wahr" | "1" | "x" => Some(true),
        "nein" | "n" | "no" | "false" | "falsch" | "0" => Some(false),
        _ => None,
    }
}

/// A relationship in English or German → its column value.
pub fn relationship(value: &str) -> Option<&'static str> {
    match header_key(value).as_str() {
        "parent" | "elternteil" | "eltern" | "mutter" | "vater" => Some("parent"),
        "guardian"
        | "vormund"
        | "erziehungsberechtigt"
        | "erziehungsberechtigte"
        | "erziehungsberechtigter"
        | "sorgeberechtigt"
        | "sorgeberechtigte"
        | "sorgeberechtigter" => Some("guardian"),
        "relative" | "verwandt" | "verwandte" | "verwandter" | "oma" | "opa" | "grosseltern" | "grossmutter"
        | "grossvater" | "tante" | "onkel" => Some("relative"),
        "other" | "sonstige" | "sonstiges" | "andere" | "anderer" => Some("other"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_and_english_headers_name_the_same_columns() {
        assert_eq!(column_of("Vorname"), Some(Column::Pupil(PupilField::FirstName)));
        assert_eq!(column_of("first_name"), Some(Column::Pupil(PupilField::FirstName)));
        assert_eq!(column_of(" Geburtsdatum "), Some(Column::Pupil(PupilField::Birthday)));
        assert_eq!(column_of("Elternteil 1 E-Mail"), Some(Column::Guardian(1, GuardianField::Email)));
        assert_eq!(column_of("guardian2_can_pickup"), Some(Column::Guardian(2, GuardianField::CanPickup)));
        assert_eq!(column_of("Elternteil 2 darf abholen"), Some(Column::Guardian(2, GuardianField::CanPickup)));
        assert_eq!(column_of("guardian3_first_name"), None);
        assert_eq!(column_of("Lieblingsfarbe"), None);
        assert_eq!(english(Column::Guardian(1, GuardianField::FirstName)), "guardian1_first_name");
        assert_eq!(english(Column::Pupil(PupilField::SchoolClass)), "school_class");
    }

    #[test]
    fn dates_booleans_and_relationships() {
        assert_eq!(parse_date("2017-05-01"), NaiveDate::from_ymd_opt(2017, 5, 1));
        assert_eq!(parse_date("1.5.2017"), NaiveDate::from_ymd_opt(2017, 5, 1));
        assert_eq!(parse_date("31.02.2017"), None);
        assert_eq!(parse_date("morgen"), None);
        assert_eq!((parse_bool("Ja"), parse_bool("no"), parse_bool("vielleicht")), (Some(true), Some(false), None));
        assert_eq!(
            (relationship("Mutter"), relationship("Oma"), relationship("Nachbar")),
            (Some("parent"), Some("relative"), None)
        );
    }

    #[test]
    fn semicolon_csv_with_a_bom_is_read_and_cells_are_checked() {
        let csv = "\u{feff}Vorname;Nachname;Klasse;Geburtsdatum;Elternteil 1 Vorname;Elternteil 1 E-Mail;Elternteil 1 Nachname\n\
                   Mia;Muster;1a;01.05.2017;Petra;petra@example.org;Muster\n\
                   ;Beispiel;1b;2017-13-01;;kaputt;\n";
        let parsed = parse("schule.csv", csv.as_bytes());
        assert_eq!(parsed.format, Format::Csv);
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].guardians.len(), 1);
        assert_eq!(parsed.rows[0].guardians[0].email.as_deref(), Some("petra@example.org"));
        let got: Vec<(u32, &str, ProblemCode)> =
            parsed.problems.iter().map(|p| (p.row, p.column.as_str(), p.code)).collect();
        assert_eq!(
            got,
            [
                (3, "Geburtsdatum", ProblemCode::BadDate),
                (3, "Elternteil 1 E-Mail", ProblemCode::BadEmail),
                (3, "Vorname", ProblemCode::Required),
                (3, "Elternteil 1 Vorname", ProblemCode::Required),
                (3, "Elternteil 1 Nachname", ProblemCode::Required),
            ]
        );
    }

    #[test]
    fn unknown_and_missing_columns_are_problems_of_the_header_row() {
        let parsed = parse("x.csv", b"first_name,Lieblingsfarbe,#Kommentar\nMia,blau,egal\n");
        let got: Vec<(u32, &str, ProblemCode)> =
            parsed.problems.iter().map(|p| (p.row, p.column.as_str(), p.code)).collect();
        assert_eq!(
            got,
            [
                (1, "Lieblingsfarbe", ProblemCode::UnknownColumn),
                (1, "last_name", ProblemCode::MissingColumn),
                (1, "school_class", ProblemCode::MissingColumn),
            ]
        );
    }
}
