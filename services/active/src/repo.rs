//! Diesel queries of the active slice. Writes touch `active.*` only; `iot.devices`,
//! `users.*`, `facilities.rooms` and `activities.activities` are read (and the pupil's
//! `users.students` row is row-locked, never written). A scan is one call of the database
//! function `active.process_scan` ([`process_scan`]). No proto types here.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, Date, Interval, Nullable, Text, Time, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::active::{attendance, group_supervisors, groups, visits};
use phoenix_db::schema::{activities, education, facilities, users};

diesel::define_sql_function! {
    #[sql_name = "GREATEST"]
    fn greatest_ts(a: Timestamptz, b: Timestamptz) -> Timestamptz;
}

diesel::define_sql_function! {
    #[sql_name = "GREATEST"]
    fn greatest_date(a: Date, b: Date) -> Date;
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A row of `active.groups` (a room session).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = groups, check_for_backend(Pg))]
pub struct SessionRow {
    pub id: i64,
    pub room_id: i64,
    pub activity_id: Option<i64>,
    pub education_group_id: Option<i64>,
    pub device_id: Option<i64>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_activity: DateTime<Utc>,
    pub timeout_minutes: i32,
}

/// A session to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = groups)]
pub struct NewSession {
    pub room_id: i64,
    pub activity_id: Option<i64>,
    pub education_group_id: Option<i64>,
    pub start_time: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub timeout_minutes: i32,
}

/// A row of `active.group_supervisors`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = group_supervisors, check_for_backend(Pg))]
pub struct SupervisorRow {
    pub active_group_id: i64,
    pub staff_id: i64,
    pub role: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

/// Filters of `ListSessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub running: Option<bool>,
    pub room_id: Option<i64>,
    pub activity_id: Option<i64>,
    pub education_group_id: Option<i64>,
    /// Running sessions without a current supervisor or assistant.
    pub unclaimed: bool,
    /// Sessions this staff member currently supervises.
    pub supervisor_staff_id: Option<i64>,
}

pub async fn room_exists(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(facilities::rooms::table.find(id))).get_result(conn).await
}

pub async fn activity_exists(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(activities::activities::table.find(id))).get_result(conn).await
}

pub async fn education_group_exists(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(education::groups::table.find(id))).get_result(conn).await
}

/// Which of `ids` are staff.
pub async fn existing_staff(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    users::staff::table.filter(users::staff::id.eq_any(ids)).select(users::staff::id).load(conn).await
}

/// The room's running session, locked `FOR UPDATE` (start/force-start end it).
pub async fn lock_running_session(conn: &mut AsyncPgConnection, room_id: i64) -> QueryResult<Option<SessionRow>> {
    groups::table
        .filter(groups::room_id.eq(room_id))
        .filter(groups::end_time.is_null())
        .select(SessionRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// A session by id, locked `FOR UPDATE`.
pub async fn lock_session(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<SessionRow>> {
    groups::table.find(id).select(SessionRow::as_select()).for_update().first(conn).await.optional()
}

/// Whether `staff` is a current supervisor of session `session` (a row without end date).
pub async fn is_current_supervisor(conn: &mut AsyncPgConnection, session: i64, staff: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        group_supervisors::table
            .filter(group_supervisors::active_group_id.eq(session))
            .filter(group_supervisors::staff_id.eq(staff))
            .filter(group_supervisors::end_date.is_null()),
    ))
    .get_result(conn)
    .await
}

pub async fn insert_session(conn: &mut AsyncPgConnection, new: NewSession) -> QueryResult<SessionRow> {
    diesel::insert_into(groups::table).values(new).returning(SessionRow::as_returning()).get_result(conn).await
}

pub async fn insert_supervisors(
    conn: &mut AsyncPgConnection,
    session: i64,
    staff: &[i64],
    today: NaiveDate,
) -> QueryResult<usize> {
    let rows: Vec<_> = staff
        .iter()
        .map(|s| {
            (
                group_supervisors::active_group_id.eq(session),
                group_supervisors::staff_id.eq(*s),
                group_supervisors::role.eq("supervisor"),
                group_supervisors::start_date.eq(today),
            )
        })
        .collect();
    diesel::insert_into(group_supervisors::table).values(rows).execute(conn).await
}

/// Ends a session now: end time, its open visits closed, its supervisors' terms ended.
/// Returns the ended row and how many visits were closed.
pub async fn end_session(
    conn: &mut AsyncPgConnection,
    id: i64,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> QueryResult<(SessionRow, usize)> {
    let row = diesel::update(groups::table.find(id))
        .set(groups::end_time.eq(greatest_ts(groups::start_time, now).nullable()))
        .returning(SessionRow::as_returning())
        .get_result(conn)
        .await?;
    let closed =
        diesel::update(visits::table.filter(visits::active_group_id.eq(id)).filter(visits::exit_time.is_null()))
            .set(visits::exit_time.eq(greatest_ts(visits::entry_time, now).nullable()))
            .execute(conn)
            .await?;
    diesel::update(
        group_supervisors::table
            .filter(group_supervisors::active_group_id.eq(id))
            .filter(group_supervisors::end_date.is_null()),
    )
    .set(group_supervisors::end_date.eq(greatest_date(group_supervisors::start_date, today).nullable()))
    .execute(conn)
    .await?;
    Ok((row, closed))
}

fn filtered_sessions(filter: &SessionFilter) -> groups::BoxedQuery<'static, Pg> {
    let mut q = groups::table.into_boxed();
    match filter.running {
        Some(true) => q = q.filter(groups::end_time.is_null()),
        Some(false) => q = q.filter(groups::end_time.is_not_null()),
        None => {}
    }
    if let Some(r) = filter.room_id {
        q = q.filter(groups::room_id.eq(r));
    }
    if let Some(a) = filter.activity_id {
        q = q.filter(groups::activity_id.eq(a));
    }
    if let Some(g) = filter.education_group_id {
        q = q.filter(groups::education_group_id.eq(g));
    }
    let supervised = group_supervisors::table.filter(group_supervisors::end_date.is_null());
    if filter.unclaimed {
        q = q
            .filter(groups::end_time.is_null())
            .filter(groups::id.ne_all(supervised.select(group_supervisors::active_group_id)));
    }
    if let Some(staff) = filter.supervisor_staff_id {
        q = q.filter(groups::id.eq_any(
            supervised.filter(group_supervisors::staff_id.eq(staff)).select(group_supervisors::active_group_id),
        ));
    }
    q
}

/// Session ids of one page, newest first, before `before` (keyset on id).
pub async fn list_session_ids(
    conn: &mut AsyncPgConnection,
    filter: &SessionFilter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    let mut q = filtered_sessions(filter);
    if let Some(b) = before {
        q = q.filter(groups::id.lt(b));
    }
    q.order(groups::id.desc()).limit(limit).select(groups::id).load(conn).await
}

pub async fn count_sessions(conn: &mut AsyncPgConnection, filter: &SessionFilter) -> QueryResult<i64> {
    filtered_sessions(filter).count().get_result(conn).await
}

/// Sessions with their room names, in the order of `ids`.
pub async fn sessions_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<(SessionRow, String)>> {
    let mut rows: Vec<(SessionRow, String)> = groups::table
        .inner_join(facilities::rooms::table)
        .filter(groups::id.eq_any(ids))
        .select((SessionRow::as_select(), facilities::rooms::name))
        .load(conn)
        .await?;
    rows.sort_by_key(|(r, _)| ids.iter().position(|i| *i == r.id));
    Ok(rows)
}

pub async fn supervisors_of(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<SupervisorRow>> {
    group_supervisors::table
        .filter(group_supervisors::active_group_id.eq_any(ids))
        .order((group_supervisors::active_group_id, group_supervisors::id))
        .select(SupervisorRow::as_select())
        .load(conn)
        .await
}

/// `(session id, open visits)` for the sessions among `ids` that have open visits.
pub async fn open_visit_counts(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<(i64, i64)>> {
    visits::table
        .filter(visits::active_group_id.eq_any(ids))
        .filter(visits::exit_time.is_null())
        .group_by(visits::active_group_id)
        .select((visits::active_group_id, diesel::dsl::count_star()))
        .load(conn)
        .await
}

// ---------------------------------------------------------------------------------------------
// Scans

diesel::define_sql_function! {
    // The function's signature: one argument per input of the scan.
    #[allow(clippy::too_many_arguments)]
    /// One scan, every step of it (migration `2026-12-12-000001_active_process_scan`).
    #[sql_name = "active.process_scan"]
    fn process_scan_call(
        device: Text,
        scan_id: Text,
        tag: Nullable<Text>,
        scanned_at: Timestamptz,
        now: Timestamptz,
        max_age: Interval,
        max_ahead: Interval,
        time_zone: Text,
        daily_checkout: Time,
    ) -> Nullable<Jsonb>;
}

/// One scan as `active.process_scan` takes it.
#[derive(Debug, Clone)]
pub struct ScanCall<'a> {
    pub device_id: &'a str,
    pub scan_id: &'a str,
    /// The normalised tag; `None` when the scanned one is no valid tag (`unknown_tag`).
    pub tag: Option<String>,
    pub scanned_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub max_age: chrono::TimeDelta,
    pub max_ahead: chrono::TimeDelta,
    /// IANA name of the school's time zone.
    pub timezone: &'a str,
    pub daily_checkout_time: NaiveTime,
}

/// Processes one scan inside the caller's transaction and returns its Result as the JSON
/// `ScanResult` reads; `None` when the receipt of a claimed scan is missing. One round trip:
/// the statement is prepared once per connection.
pub async fn process_scan(conn: &mut AsyncPgConnection, call: ScanCall<'_>) -> QueryResult<Option<serde_json::Value>> {
    diesel::select(process_scan_call(
        call.device_id,
        call.scan_id,
        call.tag,
        call.scanned_at,
        call.now,
        call.max_age,
        call.max_ahead,
        call.timezone,
        call.daily_checkout_time,
    ))
    .get_result(conn)
    .await
}

diesel::define_sql_function! {
    #[allow(clippy::too_many_arguments)]
    /// Several scans in one transaction, in order (migration `2026-12-13-000002_active_process_scans`).
    #[sql_name = "active.process_scans"]
    fn process_scans_call(
        devices: Array<Text>,
        scan_ids: Array<Text>,
        tags: Array<Nullable<Text>>,
        scanned_at: Array<Timestamptz>,
        now: Timestamptz,
        max_age: Interval,
        max_ahead: Interval,
        time_zone: Text,
        daily_checkout: Time,
    ) -> Array<Nullable<Jsonb>>;
}

/// Scans as `active.process_scans` takes them: one element per scan, the settings and `now`
/// shared.
#[derive(Debug, Clone)]
pub struct ScansCall<'a> {
    pub device_ids: Vec<&'a str>,
    pub scan_ids: Vec<&'a str>,
    pub tags: Vec<Option<String>>,
    pub scanned_at: Vec<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub max_age: chrono::TimeDelta,
    pub max_ahead: chrono::TimeDelta,
    pub timezone: &'a str,
    pub daily_checkout_time: NaiveTime,
}

/// Processes the scans inside the caller's transaction, in order, and returns their Results
/// in that order (as [`process_scan`]'s). One round trip for the batch.
pub async fn process_scans(
    conn: &mut AsyncPgConnection,
    call: ScansCall<'_>,
) -> QueryResult<Vec<Option<serde_json::Value>>> {
    diesel::select(process_scans_call(
        call.device_ids,
        call.scan_ids,
        call.tags,
        call.scanned_at,
        call.now,
        call.max_age,
        call.max_ahead,
        call.timezone,
        call.daily_checkout_time,
    ))
    .get_result(conn)
    .await
}

/// `(name, capacity)` of a room.
pub async fn room(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<(String, Option<i32>)>> {
    facilities::rooms::table
        .find(id)
        .select((facilities::rooms::name, facilities::rooms::capacity))
        .first(conn)
        .await
        .optional()
}

/// The room's running session, locked `FOR NO KEY UPDATE`: check-ins to one room serialise
/// (so the capacity count holds) and `EndSession` cannot end it under a scan.
pub async fn lock_running_session_for_scan(
    conn: &mut AsyncPgConnection,
    room_id: i64,
) -> QueryResult<Option<SessionRow>> {
    groups::table
        .filter(groups::room_id.eq(room_id))
        .filter(groups::end_time.is_null())
        .select(SessionRow::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

pub async fn touch_session(conn: &mut AsyncPgConnection, id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(groups::table.find(id)).set(groups::last_activity.eq(now)).execute(conn).await.map(drop)
}

pub async fn max_participants(conn: &mut AsyncPgConnection, activity: i64) -> QueryResult<Option<i32>> {
    activities::activities::table
        .find(activity)
        .select(activities::activities::max_participants)
        .first(conn)
        .await
        .optional()
}

/// A pupil's open visit.
#[derive(Debug, Clone, Queryable)]
pub struct OpenVisit {
    pub id: i64,
    pub session_id: i64,
    pub entry_time: DateTime<Utc>,
    pub room_id: i64,
}

pub async fn open_visit(conn: &mut AsyncPgConnection, student: i64) -> QueryResult<Option<OpenVisit>> {
    visits::table
        .inner_join(groups::table)
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null())
        .select((visits::id, visits::active_group_id, visits::entry_time, groups::room_id))
        .first(conn)
        .await
        .optional()
}

pub async fn count_open_visits(conn: &mut AsyncPgConnection, session: i64) -> QueryResult<i64> {
    visits::table
        .filter(visits::active_group_id.eq(session))
        .filter(visits::exit_time.is_null())
        .count()
        .get_result(conn)
        .await
}

pub async fn insert_visit(
    conn: &mut AsyncPgConnection,
    student: i64,
    session: i64,
    entry: DateTime<Utc>,
) -> QueryResult<i64> {
    diesel::insert_into(visits::table)
        .values((visits::student_id.eq(student), visits::active_group_id.eq(session), visits::entry_time.eq(entry)))
        .returning(visits::id)
        .get_result(conn)
        .await
}

pub async fn close_visit(conn: &mut AsyncPgConnection, id: i64, exit: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(visits::table.find(id))
        .set(visits::exit_time.eq(greatest_ts(visits::entry_time, exit).nullable()))
        .execute(conn)
        .await
        .map(drop)
}

/// A pupil's attendance row of one business date.
#[derive(Debug, Clone, Queryable)]
pub struct AttendanceRow {
    pub id: i64,
    pub check_out_time: Option<DateTime<Utc>>,
}

pub async fn attendance_of(
    conn: &mut AsyncPgConnection,
    student: i64,
    date: NaiveDate,
) -> QueryResult<Option<AttendanceRow>> {
    attendance::table
        .filter(attendance::student_id.eq(student))
        .filter(attendance::date.eq(date))
        .select((attendance::id, attendance::check_out_time))
        .first(conn)
        .await
        .optional()
}
