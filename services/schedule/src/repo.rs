//! Diesel queries on the `schedule` schema (and reads of planned room bookings).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::activities::{activities, schedules as activity_schedules};
use phoenix_db::schema::schedule::{dateframes, recurrence_patterns, timeframes};

/// A `schedule.recurrence_patterns` row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = recurrence_patterns)]
pub struct PatternRow {
    /// Id.
    pub id: i64,
    /// `daily` / `weekly` / `monthly` / `yearly`.
    pub frequency: String,
    /// Interval ≥ 1.
    pub interval_count: i32,
    /// `MON`..`SUN`.
    pub weekdays: Option<Vec<String>>,
    /// 1..=31.
    pub month_days: Option<Vec<i32>>,
    /// Berlin date as UTC midnight.
    pub end_date: Option<DateTime<Utc>>,
    /// Occurrences.
    pub count: Option<i32>,
}

/// A new pattern.
#[derive(Debug, Insertable)]
#[diesel(table_name = recurrence_patterns)]
pub struct NewPattern {
    /// See [`PatternRow`].
    pub frequency: String,
    /// See [`PatternRow`].
    pub interval_count: i32,
    /// See [`PatternRow`].
    pub weekdays: Option<Vec<String>>,
    /// See [`PatternRow`].
    pub month_days: Option<Vec<i32>>,
    /// See [`PatternRow`].
    pub end_date: Option<DateTime<Utc>>,
    /// See [`PatternRow`].
    pub count: Option<i32>,
}

/// A `schedule.timeframes` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = timeframes)]
pub struct TimeframeRow {
    /// Id.
    #[diesel(skip_insertion)]
    pub id: i64,
    /// Start.
    pub start_time: DateTime<Utc>,
    /// End.
    pub end_time: Option<DateTime<Utc>>,
    /// Offered for scheduling.
    pub is_active: bool,
    /// Text.
    pub description: Option<String>,
}

/// A `schedule.dateframes` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dateframes)]
pub struct DateframeRow {
    /// Id.
    #[diesel(skip_insertion)]
    pub id: i64,
    /// First day as UTC midnight.
    pub start_date: DateTime<Utc>,
    /// Last day as UTC midnight.
    pub end_date: DateTime<Utc>,
    /// Name.
    pub name: Option<String>,
    /// Text.
    pub description: Option<String>,
}

/// A business date stored in a timestamptz column: the date at UTC midnight (the
/// original's `TodayUTC` convention).
pub fn date_to_ts(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Inserts a pattern.
pub async fn insert_pattern(conn: &mut AsyncPgConnection, new: NewPattern) -> QueryResult<PatternRow> {
    diesel::insert_into(recurrence_patterns::table)
        .values(new)
        .returning(PatternRow::as_returning())
        .get_result(conn)
        .await
}

/// One pattern.
pub async fn find_pattern(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<PatternRow>> {
    recurrence_patterns::table.find(id).select(PatternRow::as_select()).first(conn).await.optional()
}

/// A page of patterns after id `after`.
pub async fn list_patterns(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<PatternRow>> {
    recurrence_patterns::table
        .filter(recurrence_patterns::id.gt(after.unwrap_or(0)))
        .order(recurrence_patterns::id)
        .limit(limit)
        .select(PatternRow::as_select())
        .load(conn)
        .await
}

/// Number of patterns.
pub async fn count_patterns(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    recurrence_patterns::table.count().get_result(conn).await
}

/// Deletes a pattern; whether it existed.
pub async fn delete_pattern(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(recurrence_patterns::table.find(id)).execute(conn).await? > 0)
}

/// Inserts a timeframe.
pub async fn insert_timeframe(conn: &mut AsyncPgConnection, new: TimeframeRow) -> QueryResult<TimeframeRow> {
    diesel::insert_into(timeframes::table).values(new).returning(TimeframeRow::as_returning()).get_result(conn).await
}

/// A page of timeframes after id `after`, and the total matching.
pub async fn list_timeframes(
    conn: &mut AsyncPgConnection,
    active_only: bool,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<TimeframeRow>, i64)> {
    let mut page = timeframes::table.filter(timeframes::id.gt(after.unwrap_or(0))).into_boxed();
    let mut count = timeframes::table.into_boxed();
    if active_only {
        page = page.filter(timeframes::is_active.eq(true));
        count = count.filter(timeframes::is_active.eq(true));
    }
    let rows = page.order(timeframes::id).limit(limit).select(TimeframeRow::as_select()).load(conn).await?;
    let total = count.count().get_result(conn).await?;
    Ok((rows, total))
}

/// Inserts a dateframe.
pub async fn insert_dateframe(conn: &mut AsyncPgConnection, new: DateframeRow) -> QueryResult<DateframeRow> {
    diesel::insert_into(dateframes::table).values(new).returning(DateframeRow::as_returning()).get_result(conn).await
}

/// The latest-starting dateframe containing `day`.
pub async fn dateframe_containing(conn: &mut AsyncPgConnection, day: NaiveDate) -> QueryResult<Option<DateframeRow>> {
    let t = date_to_ts(day);
    dateframes::table
        .filter(dateframes::start_date.le(t).and(dateframes::end_date.ge(t)))
        .order((dateframes::start_date.desc(), dateframes::id.desc()))
        .select(DateframeRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Planned weekly slots in `room_id` on `weekday`: (activity id, name, timeframe start, end).
pub async fn room_bookings(
    conn: &mut AsyncPgConnection,
    room_id: i64,
    weekday: i16,
) -> QueryResult<Vec<(i64, String, DateTime<Utc>, Option<DateTime<Utc>>)>> {
    activity_schedules::table
        .inner_join(activities::table)
        .inner_join(timeframes::table)
        .filter(activities::planned_room_id.eq(room_id))
        .filter(activity_schedules::weekday.eq(weekday))
        .select((activities::id, activities::name, timeframes::start_time, timeframes::end_time))
        .order(timeframes::start_time)
        .load(conn)
        .await
}

/// Whether room `id` exists.
pub async fn room_exists(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    use phoenix_db::schema::facilities::rooms;
    diesel::select(diesel::dsl::exists(rooms::table.find(id))).get_result(conn).await
}
