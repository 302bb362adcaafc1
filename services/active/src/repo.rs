//! Diesel queries of the active slice. Writes touch `active.*` only; `iot.devices`,
//! `users.*`, `facilities.rooms` and `activities.activities` are read (and the pupil's
//! `users.students` row is row-locked, never written). No proto types here.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date, Double, Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::active::{attendance, group_supervisors, groups, scan_receipts, visits};
use phoenix_db::schema::{activities, education, facilities, iot, users};

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

/// The reader as a scan needs it.
#[derive(Debug, Clone, Queryable)]
pub struct ScanDevice {
    pub id: i64,
    pub status: String,
    pub kind: String,
    pub room_id: Option<i64>,
}

pub async fn scan_device(conn: &mut AsyncPgConnection, device_id: &str) -> QueryResult<Option<ScanDevice>> {
    iot::devices::table
        .filter(iot::devices::device_id.eq(device_id))
        .select((iot::devices::id, iot::devices::status, iot::devices::kind, iot::devices::room_id))
        .first(conn)
        .await
        .optional()
}

/// Claims `(device, scan_id)`: inserts a placeholder receipt (completed by
/// [`finish_receipt`] in the same transaction) and returns its id, or `None` when the scan
/// was processed before. A concurrent claim of the same scan waits on the unique index until
/// the first transaction ends, then sees its row: exactly one of them applies the scan.
pub async fn claim_receipt(conn: &mut AsyncPgConnection, device: i64, scan_id: &str) -> QueryResult<Option<i64>> {
    diesel::insert_into(scan_receipts::table)
        .values((
            scan_receipts::device_id.eq(device),
            scan_receipts::scan_id.eq(scan_id),
            scan_receipts::outcome.eq("rejected"),
            scan_receipts::code.eq("internal"),
            scan_receipts::result.eq(serde_json::json!({})),
        ))
        .on_conflict((scan_receipts::device_id, scan_receipts::scan_id))
        .do_nothing()
        .returning(scan_receipts::id)
        .get_result(conn)
        .await
        .optional()
}

/// The stored Result of an already processed scan.
pub async fn stored_result(
    conn: &mut AsyncPgConnection,
    device: i64,
    scan_id: &str,
) -> QueryResult<Option<serde_json::Value>> {
    scan_receipts::table
        .filter(scan_receipts::device_id.eq(device))
        .filter(scan_receipts::scan_id.eq(scan_id))
        .select(scan_receipts::result)
        .first(conn)
        .await
        .optional()
}

/// What a processed scan records.
#[derive(Debug, Clone)]
pub struct ReceiptOutcome<'a> {
    pub student_id: Option<i64>,
    pub scanned_at: DateTime<Utc>,
    pub outcome: &'a str,
    pub code: &'a str,
    pub result: serde_json::Value,
}

pub async fn finish_receipt(conn: &mut AsyncPgConnection, id: i64, r: ReceiptOutcome<'_>) -> QueryResult<()> {
    diesel::update(scan_receipts::table.find(id))
        .set((
            scan_receipts::student_id.eq(r.student_id),
            scan_receipts::scanned_at.eq(Some(r.scanned_at)),
            scan_receipts::outcome.eq(r.outcome),
            scan_receipts::code.eq(r.code),
            scan_receipts::result.eq(r.result),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The holder of a card: `(card active, student id, first name, last name)`; the last three
/// are `None` when nobody or no pupil holds it.
pub type CardHolder = (bool, Option<i64>, Option<String>, Option<String>);

pub async fn card_holder(conn: &mut AsyncPgConnection, tag: &str) -> QueryResult<Option<CardHolder>> {
    users::rfid_cards::table
        .left_join(users::persons::table.on(users::persons::tag_id.eq(users::rfid_cards::id.nullable())))
        .left_join(users::students::table.on(users::students::person_id.nullable().eq(users::persons::id.nullable())))
        .filter(users::rfid_cards::id.eq(tag))
        .select((
            users::rfid_cards::active,
            users::students::id.nullable(),
            users::persons::first_name.nullable(),
            users::persons::last_name.nullable(),
        ))
        .first(conn)
        .await
        .optional()
}

/// Serialises every scan of one pupil (two readers at once): a row lock on the pupil,
/// `FOR NO KEY UPDATE` so that foreign-key checks of unrelated inserts are not blocked.
pub async fn lock_student(conn: &mut AsyncPgConnection, student: i64) -> QueryResult<()> {
    users::students::table
        .find(student)
        .select(users::students::id)
        .for_no_key_update()
        .first::<i64>(conn)
        .await
        .map(drop)
}

/// What orders a scan against the pupil's other presence changes (docs/faults.md "Ordering
/// and clock skew").
#[derive(Debug, Clone, Copy)]
pub struct ScanOrder {
    /// The reader's device row.
    pub device: i64,
    /// The reader's own clock, compared with the reader's own earlier scans.
    pub scanned_at: DateTime<Utc>,
    /// `scanned_at` corrected for the reader's learnt clock error, compared with the scans of
    /// other readers and with manual changes.
    pub ordered_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Newer {
    #[diesel(sql_type = Bool)]
    newer: bool,
}

/// Whether a later presence change than `order` already changed this pupil's state: an
/// applied scan of the same reader with a later `scanned_at`, an applied scan of another
/// reader ordered later (`result.ordered_at`, written when it differs from `scanned_at`), or
/// a manual change after `order.ordered_at` — a pupil event (visits.rs, attendance.rs) that
/// is not a scan's own: a scan's event and receipt share their transaction's `now()`.
/// A receipt ordered (or scanned) after `t` was received after `t − MAX_CLOCK_AHEAD` (its
/// order time is at most its receive time, or an accepted `scanned_at`, at most that far
/// ahead of it), which bounds the receipts read.
pub async fn newer_state_change(conn: &mut AsyncPgConnection, student: i64, order: ScanOrder) -> QueryResult<bool> {
    let row: Newer = diesel::sql_query(
        "SELECT EXISTS ( \
             SELECT 1 FROM active.scan_receipts r \
             WHERE r.student_id = $1 AND r.outcome <> 'rejected' \
               AND r.received_at > least($3, $4) - make_interval(secs => $5) \
               AND CASE WHEN r.device_id = $2 THEN r.scanned_at > $3 \
                        ELSE coalesce((r.result ->> 'ordered_at')::timestamptz, r.scanned_at) > $4 END \
         ) OR EXISTS ( \
             SELECT 1 FROM active.presence_events p \
             WHERE p.student_id = $1 AND p.occurred_at > $4 \
               AND p.kind IN ('checked_in', 'checked_out', 'transferred', 'gone_home', 'arrived') \
               AND NOT EXISTS (SELECT 1 FROM active.scan_receipts s \
                               WHERE s.student_id = p.student_id AND s.received_at = p.occurred_at \
                                 AND s.outcome <> 'rejected') \
         ) AS newer",
    )
    .bind::<BigInt, _>(student)
    .bind::<BigInt, _>(order.device)
    .bind::<Timestamptz, _>(order.scanned_at)
    .bind::<Timestamptz, _>(order.ordered_at)
    .bind::<Double, _>(crate::scan::MAX_CLOCK_AHEAD.as_secs_f64())
    .get_result(conn)
    .await?;
    Ok(row.newer)
}

#[derive(QueryableByName)]
struct ClockLag {
    #[diesel(sql_type = Nullable<BigInt>)]
    min_lag_ms: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_received: Option<DateTime<Utc>>,
}

/// A reader's clock as its receipts received since `since` show it (scans rejected as stale
/// left out): the smallest `received_at − scanned_at` in milliseconds and the first
/// `received_at`; `None` without such receipts.
pub async fn clock_lag(
    conn: &mut AsyncPgConnection,
    device: i64,
    since: DateTime<Utc>,
) -> QueryResult<Option<(i64, DateTime<Utc>)>> {
    let row: ClockLag = diesel::sql_query(
        "SELECT (extract(epoch FROM min(received_at - scanned_at)) * 1000)::bigint AS min_lag_ms, \
                min(received_at) AS first_received \
         FROM active.scan_receipts \
         WHERE device_id = $1 AND received_at >= $2 AND scanned_at IS NOT NULL AND code <> 'stale_scan'",
    )
    .bind::<BigInt, _>(device)
    .bind::<Timestamptz, _>(since)
    .get_result(conn)
    .await?;
    Ok(row.min_lag_ms.zip(row.first_received))
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

/// Opens the day's attendance (arrival), or re-opens a checked-out one (a re-check-in the
/// same day clears the check-out columns, data-model.md `active.attendance`).
pub async fn open_attendance(
    conn: &mut AsyncPgConnection,
    student: i64,
    date: NaiveDate,
    at: DateTime<Utc>,
    device: i64,
) -> QueryResult<()> {
    match attendance_of(conn, student, date).await? {
        None => diesel::insert_into(attendance::table)
            .values((
                attendance::student_id.eq(student),
                attendance::date.eq(date),
                attendance::check_in_time.eq(at),
                attendance::check_in_device_id.eq(Some(device)),
            ))
            .on_conflict((attendance::student_id, attendance::date))
            .do_nothing()
            .execute(conn)
            .await
            .map(drop),
        Some(row) if row.check_out_time.is_some() => diesel::update(attendance::table.find(row.id))
            .set((
                attendance::check_out_time.eq(None::<DateTime<Utc>>),
                attendance::checked_out_by.eq(None::<i64>),
                attendance::check_out_device_id.eq(None::<i64>),
                attendance::check_out_destination.eq(None::<String>),
                attendance::closed_by_system.eq(false),
            ))
            .execute(conn)
            .await
            .map(drop),
        Some(_) => Ok(()),
    }
}

/// Closes the day's attendance: the pupil went home.
pub async fn close_attendance(
    conn: &mut AsyncPgConnection,
    id: i64,
    at: DateTime<Utc>,
    device: i64,
) -> QueryResult<()> {
    diesel::update(attendance::table.find(id))
        .set((
            attendance::check_out_time.eq(greatest_ts(attendance::check_in_time, at).nullable()),
            attendance::check_out_device_id.eq(Some(device)),
            attendance::check_out_destination.eq(Some("zuhause")),
            attendance::closed_by_system.eq(false),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The pupil's pickup time on `date`: that day's exception when there is one (a NULL time
/// there means no pickup that day), else the weekly schedule for the weekday (Mon–Fri).
pub async fn pickup_time_on(
    conn: &mut AsyncPgConnection,
    student: i64,
    date: NaiveDate,
) -> QueryResult<Option<chrono::NaiveTime>> {
    use chrono::Datelike as _;
    use phoenix_db::schema::schedule::{student_pickup_exceptions as ex, student_pickup_schedules as weekly};
    let exception: Option<Option<chrono::NaiveTime>> = ex::table
        .filter(ex::student_id.eq(student))
        .filter(ex::exception_date.eq(date))
        .select(ex::pickup_time)
        .first(conn)
        .await
        .optional()?;
    if let Some(time) = exception {
        return Ok(time);
    }
    let weekday = date.weekday().number_from_monday() as i16;
    weekly::table
        .filter(weekly::student_id.eq(student))
        .filter(weekly::weekday.eq(weekday))
        .select(weekly::pickup_time)
        .first(conn)
        .await
        .optional()
}
