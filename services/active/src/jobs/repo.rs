//! Queries of the scheduled jobs ([`super`]): which sessions are due or abandoned, which
//! attendance rows are left open, and the system's check-out. Writes touch `active.*` only;
//! `iot.devices` is read for the readers' online state.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::active::{attendance, group_supervisors, groups, visits};

use crate::repo::SessionRow;

diesel::define_sql_function! {
    #[sql_name = "GREATEST"]
    fn greatest_ts(a: Timestamptz, b: Timestamptz) -> Timestamptz;
}

/// What ending some sessions closes: `(sessions, open visits, current supervisors)`.
pub type Ending = (i64, i64, i64);

/// Open visits and current supervisors of sessions `ids` (counted before they end).
pub async fn what_ending_closes(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Ending> {
    let open: i64 = visits::table
        .filter(visits::active_group_id.eq_any(ids))
        .filter(visits::exit_time.is_null())
        .count()
        .get_result(conn)
        .await?;
    let supervising: i64 = group_supervisors::table
        .filter(group_supervisors::active_group_id.eq_any(ids))
        .filter(group_supervisors::end_date.is_null())
        .count()
        .get_result(conn)
        .await?;
    Ok((ids.len() as i64, open, supervising))
}

/// Running sessions started before `cutoff` (due for the daily end), by id, at most
/// `limit`; locked `FOR UPDATE` (as `EndSession` locks) when `lock`.
pub async fn due_sessions(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
    lock: bool,
) -> QueryResult<Vec<SessionRow>> {
    let q = groups::table
        .filter(groups::end_time.is_null())
        .filter(groups::start_time.lt(cutoff))
        .order(groups::id)
        .limit(limit)
        .select(SessionRow::as_select());
    if lock { q.for_update().load(conn).await } else { q.load(conn).await }
}

/// How long a reader counts as online after it was last seen (behaviour.md "Devices"; the
/// iot domain's `ONLINE_WINDOW`).
pub const READER_ONLINE_MINUTES: i32 = 5;

/// Sessions abandoned at `$1`: running, idle (`last_activity`, which every scan and manual
/// check-in or check-out touches) for their own `timeout_minutes`, and no reader of theirs
/// online — their bound reader, else the active room readers of their room (a room without
/// one has none online). An offline mark (`offline_since`, status message or Last Will)
/// counts at once; otherwise a reader is online when seen within 5 minutes.
const ABANDONED: &str = "FROM active.groups g \
     WHERE g.end_time IS NULL AND g.start_time <= $1 \
       AND g.last_activity + make_interval(mins => g.timeout_minutes) <= $1 \
       AND NOT EXISTS ( \
         SELECT 1 FROM iot.devices d \
         WHERE d.status = 'active' AND d.offline_since IS NULL \
           AND d.last_seen > $1 - make_interval(mins => $2) \
           AND (d.id = g.device_id OR (g.device_id IS NULL AND d.kind = 'room' AND d.room_id = g.room_id)))";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Ids of sessions abandoned at `now` (see [`ABANDONED`]), by id, at most `limit`; locked
/// `FOR UPDATE` when `lock` (the conditions are re-checked on rows a scan changed meanwhile).
pub async fn abandoned_sessions(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lock: bool,
) -> QueryResult<Vec<i64>> {
    let sql = format!("SELECT g.id {ABANDONED} ORDER BY g.id LIMIT $3{}", if lock { " FOR UPDATE OF g" } else { "" });
    let rows: Vec<Id> = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<diesel::sql_types::Integer, _>(READER_ONLINE_MINUTES)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// An attendance row left open: `(id, student, business date, check-in)`.
pub type OpenDay = (i64, i64, NaiveDate, DateTime<Utc>);

/// Attendance rows still open for business dates before `today`, oldest date first, at
/// most `limit`.
pub async fn open_days_before(conn: &mut AsyncPgConnection, today: NaiveDate, limit: i64) -> QueryResult<Vec<OpenDay>> {
    attendance::table
        .filter(attendance::check_out_time.is_null())
        .filter(attendance::date.lt(today))
        .order((attendance::date, attendance::id))
        .limit(limit)
        .select((attendance::id, attendance::student_id, attendance::date, attendance::check_in_time))
        .load(conn)
        .await
}

/// How many attendance rows are open for dates before `today`, and on how many dates.
pub async fn count_open_days_before(conn: &mut AsyncPgConnection, today: NaiveDate) -> QueryResult<(i64, i64)> {
    let open = attendance::table.filter(attendance::check_out_time.is_null()).filter(attendance::date.lt(today));
    let rows: i64 = open.count().get_result(conn).await?;
    let dates: i64 = open.select(diesel::dsl::count(attendance::date).aggregate_distinct()).get_result(conn).await?;
    Ok((rows, dates))
}

/// The system's check-out of an open row at `at` (never before its check-in); no staff,
/// no device, no destination, `closed_by_system`. 0 when the row was closed meanwhile.
pub async fn close_by_system(conn: &mut AsyncPgConnection, id: i64, at: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(attendance::table.find(id).filter(attendance::check_out_time.is_null()))
        .set((
            attendance::check_out_time.eq(greatest_ts(attendance::check_in_time, at).nullable()),
            attendance::closed_by_system.eq(true),
        ))
        .execute(conn)
        .await
}
