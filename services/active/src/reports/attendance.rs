//! The monthly attendance report: one row per pupil (days present, earliest arrival and
//! latest leave of the month in the school's time, days the end-of-day close checked the
//! pupil out, sick days) and after each group's pupils one total row of the group.
//!
//! **Sick days.** Phoenix keeps no per-day sickness history: `users.students` holds only
//! `sick` and `sick_since` (cleared when the pupil is well again). So a sick day is a
//! weekday of the month, from `sick_since` up to today, without attendance, of a pupil who
//! is sick *now*; a sickness that has ended is not counted (docs/reports.md).
//!
//! **Who is in it.** The pupils whose current group is covered (deactivated pupils only when
//! they came that month); a pupil without a group is in an admin's whole-school report only.

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Date, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::error::FieldViolations;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use std::collections::BTreeMap;

use super::{Cell, Format, Month, Report, Table, format_of, local_time, not_your_group};
use crate::scope::Scope;

/// The columns, in order.
pub const HEADER: &[&str] = &[
    "row",
    "group_id",
    "group",
    "student_id",
    "first_name",
    "last_name",
    "school_class",
    "pupils",
    "days_present",
    "first_arrival",
    "last_leave",
    "closed_by_system_days",
    "sick_days",
];

/// A validated `AttendanceReport` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttendanceReport {
    pub month: Month,
    pub group: Option<i64>,
    pub format: Format,
}

/// `AttendanceReportRequest` → command; every bad field at once.
pub fn validate(req: &pb::AttendanceReportRequest) -> Result<AttendanceReport> {
    let mut v = FieldViolations::default();
    let month = Month::parse("month", &req.month, &mut v);
    let group = phoenix_common::validate::optional_id("education_group_id", req.education_group_id, &mut v);
    let format = format_of("format", req.format, &mut v);
    v.into_result()?;
    Ok(AttendanceReport { month: month.ok_or_else(|| Error::invalid("month", "missing"))?, group, format })
}

#[derive(Debug, Clone, QueryableByName)]
struct PupilRow {
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Text)]
    first_name: String,
    #[diesel(sql_type = Text)]
    last_name: String,
    #[diesel(sql_type = Text)]
    school_class: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    group_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    group_name: Option<String>,
    #[diesel(sql_type = Bool)]
    sick: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    sick_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, QueryableByName)]
struct DayRow {
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Date)]
    date: NaiveDate,
    #[diesel(sql_type = Timestamptz)]
    check_in_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    check_out_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    closed_by_system: bool,
}

/// The report for `caller` (`today` the school's business date, for "my groups" and the
/// sick days).
pub async fn build(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: AttendanceReport,
    tz: Tz,
    today: NaiveDate,
) -> Result<Report> {
    let scope = Scope::of(conn, caller, today, "see attendance reports").await?;
    let visible: Option<Vec<i64>> = match &scope {
        Scope::All => None,
        Scope::Staff { groups, .. } => {
            if let Some(g) = cmd.group
                && !groups.contains(&g)
            {
                return Err(not_your_group(g));
            }
            Some(groups.clone())
        }
    };
    if let Some(g) = cmd.group {
        super::require_exists(conn, "education group", "education.groups", g).await?;
    }
    let (from, to) = (cmd.month.first, cmd.month.next_first());
    let (pupils, days) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |c| {
            let pupils: Vec<PupilRow> = diesel::sql_query(
                "SELECT st.id AS student_id, p.first_name, p.last_name, st.school_class, st.group_id, \
                        g.name AS group_name, st.sick, st.sick_since \
                 FROM users.students st \
                 JOIN users.persons p ON p.id = st.person_id \
                 LEFT JOIN education.groups g ON g.id = st.group_id \
                 WHERE ($1::bigint IS NULL OR st.group_id = $1) \
                   AND ($2::bigint[] IS NULL OR st.group_id = ANY($2)) \
                   AND (st.deactivated_at IS NULL OR EXISTS ( \
                        SELECT 1 FROM active.attendance a \
                        WHERE a.student_id = st.id AND a.date >= $3 AND a.date < $4)) \
                 ORDER BY g.name NULLS LAST, st.group_id, p.last_name, p.first_name, st.id",
            )
            .bind::<Nullable<BigInt>, _>(cmd.group)
            .bind::<Nullable<Array<BigInt>>, _>(visible)
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .load(c)
            .await?;
            let ids: Vec<i64> = pupils.iter().map(|p| p.student_id).collect();
            let days: Vec<DayRow> = diesel::sql_query(
                "SELECT student_id, date, check_in_time, check_out_time, closed_by_system \
                 FROM active.attendance WHERE student_id = ANY($1) AND date >= $2 AND date < $3 \
                 ORDER BY student_id, date",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .load(c)
            .await?;
            Ok((pupils, days))
        })
        .await?;
    // Only rows the caller has full access to: the scope's groups (all for admins).
    let pupils: Vec<PupilRow> = pupils.into_iter().filter(|p| scope.full_access(p.group_id)).collect();
    let table = table(&pupils, &days, cmd.month, tz, today);
    let stem = match cmd.group {
        Some(g) => format!("attendance-{}-group-{g}", cmd.month.label()),
        None => format!("attendance-{}", cmd.month.label()),
    };
    Report::render(&stem, &table, cmd.format)
}

/// One pupil's figures (or a group's sums).
#[derive(Debug, Clone, Default)]
struct Figures {
    pupils: i64,
    days_present: i64,
    first_arrival: Option<String>,
    last_leave: Option<String>,
    closed_by_system: i64,
    sick_days: i64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.pupils += o.pupils;
        self.days_present += o.days_present;
        self.closed_by_system += o.closed_by_system;
        self.sick_days += o.sick_days;
        self.first_arrival = min_opt(self.first_arrival.take(), o.first_arrival.clone());
        self.last_leave = max_opt(self.last_leave.take(), o.last_leave.clone());
    }

    fn cells(&self) -> [Cell; 6] {
        [
            Cell::Int(self.pupils),
            Cell::Int(self.days_present),
            self.first_arrival.clone().into(),
            self.last_leave.clone().into(),
            Cell::Int(self.closed_by_system),
            Cell::Int(self.sick_days),
        ]
    }
}

fn min_opt(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn figures(p: &PupilRow, days: &[&DayRow], month: Month, tz: Tz, today: NaiveDate) -> Figures {
    let mut f = Figures { pupils: 1, ..Figures::default() };
    for d in days {
        f.days_present += 1;
        f.first_arrival = min_opt(f.first_arrival.take(), Some(local_time(d.check_in_time, tz)));
        f.last_leave = max_opt(f.last_leave.take(), d.check_out_time.map(|t| local_time(t, tz)));
        f.closed_by_system += i64::from(d.closed_by_system);
    }
    if p.sick
        && let Some(since) = p.sick_since
    {
        let start = phoenix_common::time::business_date_in(since, tz).max(month.first);
        let end = today.min(month.last());
        let mut day = start;
        while day <= end {
            let weekday = !matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            if weekday && !days.iter().any(|d| d.date == day) {
                f.sick_days += 1;
            }
            day = day.succ_opt().unwrap_or(end + chrono::Days::new(1));
        }
    }
    f
}

fn table(pupils: &[PupilRow], days: &[DayRow], month: Month, tz: Tz, today: NaiveDate) -> Table {
    let mut by_student: BTreeMap<i64, Vec<&DayRow>> = BTreeMap::new();
    for d in days {
        by_student.entry(d.student_id).or_default().push(d);
    }
    let mut rows = Vec::new();
    let mut i = 0;
    while i < pupils.len() {
        let group = pupils[i].group_id;
        let mut total = Figures::default();
        while i < pupils.len() && pupils[i].group_id == group {
            let p = &pupils[i];
            let f = figures(p, by_student.get(&p.student_id).map_or(&[][..], Vec::as_slice), month, tz, today);
            total.add(&f);
            let mut row = vec![
                Cell::from("pupil"),
                p.group_id.into(),
                p.group_name.clone().into(),
                Cell::Int(p.student_id),
                p.first_name.clone().into(),
                p.last_name.clone().into(),
                p.school_class.clone().into(),
            ];
            let mut cells = f.cells().to_vec();
            cells[0] = Cell::Empty; // `pupils` is a group figure
            row.extend(cells);
            rows.push(row);
            i += 1;
        }
        let name = pupils[i - 1].group_name.clone();
        let mut row =
            vec![Cell::from("group"), group.into(), name.into(), Cell::Empty, Cell::Empty, Cell::Empty, Cell::Empty];
        row.extend(total.cells());
        rows.push(row);
    }
    Table { sheet: "Attendance", header: HEADER, rows }
}
