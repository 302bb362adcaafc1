//! The monthly room-utilisation report: per room and business day with at least one session
//! or visit — sessions started, visits begun, distinct pupils, peak occupancy (most visits
//! open at one instant; a visit still open counts until now) and the room's capacity with
//! the peak as a percentage of it. Counts only: no pupil is named, so every staff member
//! may see every room (like `GetRoomUtilization`).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::error::FieldViolations;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};

use super::{Cell, Format, Month, Report, Table, format_of};
use crate::scope;

/// The columns, in order.
pub const HEADER: &[&str] = &[
    "room_id",
    "room",
    "date",
    "sessions",
    "visits",
    "distinct_pupils",
    "peak_occupancy",
    "capacity",
    "peak_percent_of_capacity",
];

/// A validated `RoomReport` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomReport {
    pub month: Month,
    pub room: Option<i64>,
    pub format: Format,
}

/// `RoomReportRequest` → command; every bad field at once.
pub fn validate(req: &pb::RoomReportRequest) -> Result<RoomReport> {
    let mut v = FieldViolations::default();
    let month = Month::parse("month", &req.month, &mut v);
    let room = phoenix_common::validate::optional_id("room_id", req.room_id, &mut v);
    let format = format_of("format", req.format, &mut v);
    v.into_result()?;
    Ok(RoomReport { month: month.ok_or_else(|| Error::invalid("month", "missing"))?, room, format })
}

#[derive(Debug, Clone, QueryableByName)]
struct RoomRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Int4>)]
    capacity: Option<i32>,
}

#[derive(Debug, Clone, QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = BigInt)]
    room_id: i64,
    #[diesel(sql_type = Timestamptz)]
    start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, QueryableByName)]
struct VisitRow {
    #[diesel(sql_type = BigInt)]
    room_id: i64,
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Timestamptz)]
    entry_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    exit_time: Option<DateTime<Utc>>,
}

/// The report for `caller` (staff or admin), as of `now`.
pub async fn build(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    cmd: RoomReport,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Report> {
    scope::require_staff(caller, "see room reports")?;
    if let Some(r) = cmd.room {
        super::require_exists(conn, "room", "facilities.rooms", r).await?;
    }
    let (from, to) = cmd.month.range(tz);
    let (rooms, sessions, visits) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |c| {
            let rooms: Vec<RoomRow> = diesel::sql_query(
                "SELECT id, name, capacity FROM facilities.rooms WHERE ($1::bigint IS NULL OR id = $1) ORDER BY name, id",
            )
            .bind::<Nullable<BigInt>, _>(cmd.room)
            .load(c)
            .await?;
            let sessions: Vec<SessionRow> = diesel::sql_query(
                "SELECT room_id, start_time FROM active.groups \
                 WHERE start_time >= $1 AND start_time < $2 AND ($3::bigint IS NULL OR room_id = $3)",
            )
            .bind::<Timestamptz, _>(from)
            .bind::<Timestamptz, _>(to)
            .bind::<Nullable<BigInt>, _>(cmd.room)
            .load(c)
            .await?;
            let visits: Vec<VisitRow> = diesel::sql_query(
                "SELECT g.room_id, v.student_id, v.entry_time, v.exit_time FROM active.visits v \
                 JOIN active.groups g ON g.id = v.active_group_id \
                 WHERE v.entry_time >= $1 AND v.entry_time < $2 AND ($3::bigint IS NULL OR g.room_id = $3)",
            )
            .bind::<Timestamptz, _>(from)
            .bind::<Timestamptz, _>(to)
            .bind::<Nullable<BigInt>, _>(cmd.room)
            .load(c)
            .await?;
            Ok((rooms, sessions, visits))
        })
        .await?;
    let table = table(&rooms, &sessions, &visits, tz, now);
    let stem = match cmd.room {
        Some(r) => format!("rooms-{}-room-{r}", cmd.month.label()),
        None => format!("rooms-{}", cmd.month.label()),
    };
    Report::render(&stem, &table, cmd.format)
}

#[derive(Default)]
struct Day<'a> {
    sessions: i64,
    visits: Vec<&'a VisitRow>,
}

/// Most intervals open at one instant; an interval ending when another begins does not
/// overlap it.
fn peak(visits: &[&VisitRow], now: DateTime<Utc>) -> i64 {
    let mut edges: Vec<(DateTime<Utc>, i64)> = Vec::with_capacity(visits.len() * 2);
    for v in visits {
        edges.push((v.entry_time, 1));
        edges.push((v.exit_time.unwrap_or(now.max(v.entry_time)), -1));
    }
    edges.sort(); // at equal times the exit (-1) sorts first
    let (mut open, mut best) = (0, 0);
    for (_, d) in edges {
        open += d;
        best = best.max(open);
    }
    best
}

fn table(rooms: &[RoomRow], sessions: &[SessionRow], visits: &[VisitRow], tz: Tz, now: DateTime<Utc>) -> Table {
    let mut days: BTreeMap<(i64, NaiveDate), Day<'_>> = BTreeMap::new();
    for s in sessions {
        days.entry((s.room_id, business_date_in(s.start_time, tz))).or_default().sessions += 1;
    }
    for v in visits {
        days.entry((v.room_id, business_date_in(v.entry_time, tz))).or_default().visits.push(v);
    }
    let mut rows = Vec::new();
    for room in rooms {
        for ((_, date), day) in days.range((room.id, NaiveDate::MIN)..=(room.id, NaiveDate::MAX)) {
            let pupils: BTreeSet<i64> = day.visits.iter().map(|v| v.student_id).collect();
            let peak = peak(&day.visits, now);
            let capacity = room.capacity.map(i64::from);
            let percent = capacity.filter(|c| *c > 0).map(|c| (peak * 100 + c / 2) / c);
            rows.push(vec![
                Cell::Int(room.id),
                room.name.clone().into(),
                Cell::Text(date.format("%Y-%m-%d").to_string()),
                Cell::Int(day.sessions),
                Cell::Int(i64::try_from(day.visits.len()).unwrap_or(i64::MAX)),
                Cell::Int(i64::try_from(pupils.len()).unwrap_or(i64::MAX)),
                Cell::Int(peak),
                capacity.into(),
                percent.into(),
            ]);
        }
    }
    Table { sheet: "Rooms", header: HEADER, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn v(student_id: i64, from: u32, to: Option<u32>) -> VisitRow {
        let t = |h| Utc.with_ymd_and_hms(2026, 11, 2, h, 0, 0).unwrap();
        VisitRow { room_id: 1, student_id, entry_time: t(from), exit_time: to.map(t) }
    }

    #[test]
    fn peak_counts_overlaps_not_touching_visits() {
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 18, 0, 0).unwrap();
        let (a, b, c, d) = (v(1, 8, Some(10)), v(2, 9, Some(11)), v(3, 10, Some(12)), v(4, 11, None));
        assert_eq!(peak(&[&a, &b, &c], now), 2, "c enters as a leaves");
        assert_eq!(peak(&[&a, &b, &c, &d], now), 2);
        assert_eq!(peak(&[], now), 0);
    }
}
