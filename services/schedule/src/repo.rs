//! Diesel queries on the `schedule` schema (and reads of planned room bookings).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::activities::{activities, schedules as activity_schedules};
use phoenix_db::schema::education::groups as education_groups;
use phoenix_db::schema::schedule::{class_schedules, dateframes, recurrence_patterns, timeframes};

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
pub async fn insert_pattern(conn: &mut AsyncPgConnection, new: NewPattern) -> Result<PatternRow> {
    Ok(diesel::insert_into(recurrence_patterns::table)
        .values(new)
        .returning(PatternRow::as_returning())
        .get_result(conn)
        .await?)
}

/// One pattern.
pub async fn find_pattern(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<PatternRow>> {
    Ok(recurrence_patterns::table.find(id).select(PatternRow::as_select()).first(conn).await.optional()?)
}

/// A page of patterns after id `after`.
pub async fn list_patterns(conn: &mut AsyncPgConnection, after: Option<i64>, limit: i64) -> Result<Vec<PatternRow>> {
    Ok(recurrence_patterns::table
        .filter(recurrence_patterns::id.gt(after.unwrap_or(0)))
        .order(recurrence_patterns::id)
        .limit(limit)
        .select(PatternRow::as_select())
        .load(conn)
        .await?)
}

/// Number of patterns.
pub async fn count_patterns(conn: &mut AsyncPgConnection) -> Result<i64> {
    Ok(recurrence_patterns::table.count().get_result(conn).await?)
}

/// Deletes a pattern; whether it existed.
pub async fn delete_pattern(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(recurrence_patterns::table.find(id)).execute(conn).await? > 0)
}

/// Inserts a timeframe.
pub async fn insert_timeframe(conn: &mut AsyncPgConnection, new: TimeframeRow) -> Result<TimeframeRow> {
    Ok(diesel::insert_into(timeframes::table)
        .values(new)
        .returning(TimeframeRow::as_returning())
        .get_result(conn)
        .await?)
}

/// A page of timeframes after id `after`, and the total matching.
pub async fn list_timeframes(
    conn: &mut AsyncPgConnection,
    active_only: bool,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<TimeframeRow>, i64)> {
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
pub async fn insert_dateframe(conn: &mut AsyncPgConnection, new: DateframeRow) -> Result<DateframeRow> {
    Ok(diesel::insert_into(dateframes::table)
        .values(new)
        .returning(DateframeRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The latest-starting dateframe containing `day`.
pub async fn dateframe_containing(conn: &mut AsyncPgConnection, day: NaiveDate) -> Result<Option<DateframeRow>> {
    let t = date_to_ts(day);
    Ok(dateframes::table
        .filter(dateframes::start_date.le(t).and(dateframes::end_date.ge(t)))
        .order((dateframes::start_date.desc(), dateframes::id.desc()))
        .select(DateframeRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// An activity's weekly schedule in its planned room: (schedule id, activity id, name,
/// timeframe start, end).
pub type ActivityBookingRow = (i64, i64, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// Weekly schedules of activities planned in `room_id` on `weekday` (those with a timeframe).
pub async fn activity_bookings(
    conn: &mut AsyncPgConnection,
    room_id: i64,
    weekday: i16,
) -> Result<Vec<ActivityBookingRow>> {
    Ok(activity_schedules::table
        .inner_join(activities::table)
        .inner_join(timeframes::table)
        .filter(activities::planned_room_id.eq(room_id))
        .filter(activity_schedules::weekday.eq(weekday))
        .select((
            activity_schedules::id,
            activities::id,
            activities::name,
            timeframes::start_time,
            timeframes::end_time,
        ))
        .order((timeframes::start_time, activity_schedules::id))
        .load(conn)
        .await?)
}

/// A `schedule.class_schedules` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = class_schedules)]
pub struct ClassScheduleRow {
    /// Id.
    pub id: i64,
    /// Education group.
    pub group_id: Option<i64>,
    /// Activity.
    pub activity_id: Option<i64>,
    /// Room (None after the room was deleted).
    pub room_id: Option<i64>,
    /// ISO weekday.
    pub weekday: i16,
    /// Timeframe the window was copied from.
    pub timeframe_id: Option<i64>,
    /// Local start.
    pub start_time: NaiveTime,
    /// Local end.
    pub end_time: NaiveTime,
    /// Text.
    pub description: Option<String>,
}

/// The writable columns of a class schedule.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = class_schedules, treat_none_as_null = true)]
pub struct ClassScheduleValues {
    /// Education group.
    pub group_id: Option<i64>,
    /// Activity.
    pub activity_id: Option<i64>,
    /// Room.
    pub room_id: Option<i64>,
    /// ISO weekday.
    pub weekday: i16,
    /// Timeframe.
    pub timeframe_id: Option<i64>,
    /// Local start.
    pub start_time: NaiveTime,
    /// Local end.
    pub end_time: NaiveTime,
    /// Text.
    pub description: Option<String>,
}

impl From<ClassScheduleRow> for ClassScheduleValues {
    fn from(r: ClassScheduleRow) -> Self {
        Self {
            group_id: r.group_id,
            activity_id: r.activity_id,
            room_id: r.room_id,
            weekday: r.weekday,
            timeframe_id: r.timeframe_id,
            start_time: r.start_time,
            end_time: r.end_time,
            description: r.description,
        }
    }
}

/// Inserts a class schedule.
pub async fn insert_class_schedule(
    conn: &mut AsyncPgConnection,
    values: &ClassScheduleValues,
) -> Result<ClassScheduleRow> {
    Ok(diesel::insert_into(class_schedules::table)
        .values(values)
        .returning(ClassScheduleRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Overwrites a class schedule's columns.
pub async fn update_class_schedule(
    conn: &mut AsyncPgConnection,
    id: i64,
    values: &ClassScheduleValues,
) -> Result<ClassScheduleRow> {
    Ok(diesel::update(class_schedules::table.find(id))
        .set(values)
        .returning(ClassScheduleRow::as_returning())
        .get_result(conn)
        .await?)
}

/// One class schedule; `lock` takes a row lock until the transaction ends.
pub async fn find_class_schedule(
    conn: &mut AsyncPgConnection,
    id: i64,
    lock: bool,
) -> Result<Option<ClassScheduleRow>> {
    let q = class_schedules::table.find(id).select(ClassScheduleRow::as_select());
    Ok(if lock { q.for_update().first(conn).await.optional()? } else { q.first(conn).await.optional()? })
}

/// Deletes a class schedule; whether it existed.
pub async fn delete_class_schedule(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(class_schedules::table.find(id)).execute(conn).await? > 0)
}

/// Filters of a listing of class schedules.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClassScheduleFilter {
    /// Education group.
    pub group_id: Option<i64>,
    /// Activity.
    pub activity_id: Option<i64>,
    /// Room.
    pub room_id: Option<i64>,
    /// ISO weekday.
    pub weekday: Option<i16>,
}

fn class_filtered(f: ClassScheduleFilter) -> class_schedules::BoxedQuery<'static, Pg> {
    let mut q = class_schedules::table.into_boxed();
    if let Some(g) = f.group_id {
        q = q.filter(class_schedules::group_id.eq(g));
    }
    if let Some(a) = f.activity_id {
        q = q.filter(class_schedules::activity_id.eq(a));
    }
    if let Some(r) = f.room_id {
        q = q.filter(class_schedules::room_id.eq(r));
    }
    if let Some(w) = f.weekday {
        q = q.filter(class_schedules::weekday.eq(w));
    }
    q
}

/// A page of class schedules after id `after`, and the number of all matches.
pub async fn list_class_schedules(
    conn: &mut AsyncPgConnection,
    f: ClassScheduleFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<ClassScheduleRow>, i64)> {
    let rows = class_filtered(f)
        .filter(class_schedules::id.gt(after.unwrap_or(0)))
        .order(class_schedules::id)
        .limit(limit)
        .select(ClassScheduleRow::as_select())
        .load(conn)
        .await?;
    let total = class_filtered(f).count().get_result(conn).await?;
    Ok((rows, total))
}

/// A class schedule in a room: the row with its group's and activity's names.
pub type ClassBookingRow = (ClassScheduleRow, Option<String>, Option<String>);

/// Class schedules in `room_id` on `weekday`, by start.
pub async fn class_bookings(conn: &mut AsyncPgConnection, room_id: i64, weekday: i16) -> Result<Vec<ClassBookingRow>> {
    Ok(class_schedules::table
        .left_join(education_groups::table)
        .left_join(activities::table)
        .filter(class_schedules::room_id.eq(room_id))
        .filter(class_schedules::weekday.eq(weekday))
        .order((class_schedules::start_time, class_schedules::id))
        .select((ClassScheduleRow::as_select(), education_groups::name.nullable(), activities::name.nullable()))
        .load(conn)
        .await?)
}

/// Another class schedule (not `except`) of the group on the weekday starting at `start`.
pub async fn group_slot_taken(
    conn: &mut AsyncPgConnection,
    group_id: i64,
    weekday: i16,
    start: NaiveTime,
    except: i64,
) -> Result<Option<i64>> {
    Ok(class_schedules::table
        .filter(class_schedules::group_id.eq(group_id))
        .filter(class_schedules::weekday.eq(weekday))
        .filter(class_schedules::start_time.eq(start))
        .filter(class_schedules::id.ne(except))
        .select(class_schedules::id)
        .first(conn)
        .await
        .optional()?)
}

/// One timeframe.
pub async fn find_timeframe(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<TimeframeRow>> {
    Ok(timeframes::table.find(id).select(TimeframeRow::as_select()).first(conn).await.optional()?)
}

/// Whether a row with `id` exists in `table` (fixed identifiers only).
pub async fn exists(conn: &mut AsyncPgConnection, table: &'static str, id: i64) -> Result<bool> {
    #[derive(QueryableByName)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        e: bool,
    }
    let q = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1) AS e");
    Ok(diesel::sql_query(q).bind::<diesel::sql_types::BigInt, _>(id).get_result::<E>(conn).await?.e)
}

/// Serialises the writers of one room's class schedules until the transaction ends, so two
/// concurrent writes cannot both pass the conflict check.
pub async fn lock_room(conn: &mut AsyncPgConnection, room_id: i64) -> Result<()> {
    // Namespace "ROOM" in the high half keeps the key apart from other advisory locks.
    let key = (0x524F_4F4D_i64 << 32) | (room_id & 0xFFFF_FFFF);
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether room `id` exists.
pub async fn room_exists(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    use phoenix_db::schema::facilities::rooms;
    Ok(diesel::select(diesel::dsl::exists(rooms::table.find(id))).get_result(conn).await?)
}
