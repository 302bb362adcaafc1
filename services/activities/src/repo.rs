//! Diesel queries on the `activities` schema; the enrollment lists in [`enrollment_lists`].

pub mod enrollment_lists;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::{FieldViolations, Result};
use phoenix_db::schema::activities::{activities, categories, enrollments, schedules, supervisors};
use phoenix_db::schema::schedule::timeframes;

use crate::validate::{NewActivity, NewCategory, References, Slot};

/// A category row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = categories)]
pub struct CategoryRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Text.
    pub description: Option<String>,
    /// Hex color.
    pub color: Option<String>,
}

/// An activity row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = activities)]
pub struct ActivityRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Places.
    pub max_participants: i32,
    /// Open for enrollment.
    pub is_open: bool,
    /// Category.
    pub category_id: i64,
    /// Planned room.
    pub planned_room_id: Option<i64>,
    /// Creator (staff id).
    pub created_by: Option<i64>,
}

/// A page of categories after id `after`, and the total.
pub async fn list_categories(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<CategoryRow>, i64)> {
    let rows = categories::table
        .filter(categories::id.gt(after.unwrap_or(0)))
        .order(categories::id)
        .limit(limit)
        .select(CategoryRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, categories::table.count().get_result(conn).await?))
}

/// Inserts a category; `None` when the name is taken.
pub async fn insert_category(conn: &mut AsyncPgConnection, new: &NewCategory) -> Result<Option<CategoryRow>> {
    Ok(diesel::insert_into(categories::table)
        .values((
            categories::name.eq(&new.name),
            categories::description.eq(&new.description),
            categories::color.eq(&new.color),
        ))
        .on_conflict_do_nothing()
        .returning(CategoryRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Whether a row with `id` exists in `schema.table` (fixed identifiers only).
pub async fn exists(conn: &mut AsyncPgConnection, table: &'static str, id: i64) -> Result<bool> {
    #[derive(QueryableByName)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        e: bool,
    }
    let q = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1) AS e");
    Ok(diesel::sql_query(q).bind::<diesel::sql_types::BigInt, _>(id).get_result::<E>(conn).await?.e)
}

/// Ids of `ids` that exist in `schema.table` (fixed identifiers only).
pub async fn existing_ids(conn: &mut AsyncPgConnection, table: &'static str, ids: &[i64]) -> Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct I {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let q = format!("SELECT id FROM {table} WHERE id = ANY($1)");
    let rows: Vec<I> =
        diesel::sql_query(q).bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Checks that every row `refs` names exists: `InvalidArgument` naming each missing one.
pub async fn check_refs(conn: &mut AsyncPgConnection, refs: &References) -> Result<()> {
    let mut v = FieldViolations::default();
    if let Some((field, id)) = &refs.category
        && !exists(conn, "activities.categories", *id).await?
    {
        v.add(field, format!("category {id} does not exist"));
    }
    if let Some((field, id)) = &refs.room
        && !exists(conn, "facilities.rooms", *id).await?
    {
        v.add(field, format!("room {id} does not exist"));
    }
    for (list, table, what) in
        [(&refs.staff, "users.staff", "staff"), (&refs.timeframes, "schedule.timeframes", "timeframe")]
    {
        let ids: Vec<i64> = list.iter().map(|(_, id)| *id).collect();
        let found = existing_ids(conn, table, &ids).await?;
        for (field, id) in list {
            if !found.contains(id) {
                v.add(field, format!("{what} {id} does not exist"));
            }
        }
    }
    v.into_result()
}

#[derive(Insertable)]
#[diesel(table_name = activities)]
struct ActivityValues<'a> {
    name: &'a str,
    max_participants: i32,
    is_open: bool,
    category_id: i64,
    planned_room_id: Option<i64>,
    created_by: Option<i64>,
}

/// Inserts an activity created by `created_by` with its supervisors (first = primary) and
/// weekly schedules.
pub async fn insert_activity(
    conn: &mut AsyncPgConnection,
    new: &NewActivity,
    created_by: Option<i64>,
) -> Result<ActivityRow> {
    let values = ActivityValues {
        name: &new.name,
        max_participants: new.max_participants,
        is_open: new.is_open,
        category_id: new.category_id,
        planned_room_id: new.planned_room_id,
        created_by,
    };
    let row: ActivityRow = diesel::insert_into(activities::table)
        .values(values)
        .returning(ActivityRow::as_returning())
        .get_result(conn)
        .await?;
    let sups: Vec<_> = new.supervisor_staff_ids.iter().enumerate().map(|(i, s)| (*s, i == 0)).collect();
    replace_supervisors(conn, row.id, &sups).await?;
    replace_schedules(conn, row.id, &new.schedules).await?;
    Ok(row)
}

/// One activity.
pub async fn find_activity(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<ActivityRow>> {
    Ok(activities::table.find(id).select(ActivityRow::as_select()).first(conn).await.optional()?)
}

/// One activity, row-locked until the transaction ends: enrollments of one activity
/// serialise on this lock, so the capacity check and the insert cannot interleave.
pub async fn lock_activity(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<ActivityRow>> {
    Ok(activities::table.find(id).select(ActivityRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Supervisors (staff id, primary) of an activity.
pub async fn supervisors_of(conn: &mut AsyncPgConnection, activity_id: i64) -> Result<Vec<(i64, bool)>> {
    Ok(supervisors::table
        .filter(supervisors::activity_id.eq(activity_id))
        .order((supervisors::is_primary.desc(), supervisors::staff_id))
        .select((supervisors::staff_id, supervisors::is_primary))
        .load(conn)
        .await?)
}

/// Enrolled student ids, ascending.
pub async fn enrolled(conn: &mut AsyncPgConnection, activity_id: i64) -> Result<Vec<i64>> {
    Ok(enrollments::table
        .filter(enrollments::activity_id.eq(activity_id))
        .order(enrollments::student_id)
        .select(enrollments::student_id)
        .load(conn)
        .await?)
}

/// Enrolls; `false` when already enrolled.
pub async fn insert_enrollment(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    student_id: i64,
    day: NaiveDate,
) -> Result<bool> {
    Ok(diesel::insert_into(enrollments::table)
        .values((
            enrollments::activity_id.eq(activity_id),
            enrollments::student_id.eq(student_id),
            enrollments::enrollment_date.eq(day),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?
        > 0)
}

/// Removes enrollments of `student_ids`; returns how many.
pub async fn delete_enrollments(conn: &mut AsyncPgConnection, activity_id: i64, student_ids: &[i64]) -> Result<usize> {
    Ok(diesel::delete(
        enrollments::table
            .filter(enrollments::activity_id.eq(activity_id))
            .filter(enrollments::student_id.eq_any(student_ids)),
    )
    .execute(conn)
    .await?)
}

/// A weekly schedule row with its timeframe's instants (when it has one); selected over
/// `schedules LEFT JOIN timeframes`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = schedules)]
pub struct ScheduleRow {
    /// Id.
    pub id: i64,
    /// Activity.
    pub activity_id: i64,
    /// ISO weekday.
    pub weekday: i16,
    /// Timeframe.
    pub timeframe_id: Option<i64>,
    /// Timeframe start.
    #[diesel(select_expression = timeframes::start_time.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<timeframes::start_time>)]
    pub start: Option<DateTime<Utc>>,
    /// Timeframe end.
    #[diesel(select_expression = timeframes::end_time.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<timeframes::end_time>)]
    pub end: Option<DateTime<Utc>>,
}

/// Weekly schedules of `activity_ids`, by activity, weekday, start, id.
pub async fn schedules_of(conn: &mut AsyncPgConnection, activity_ids: &[i64]) -> Result<Vec<ScheduleRow>> {
    Ok(schedules::table
        .left_join(timeframes::table)
        .filter(schedules::activity_id.eq_any(activity_ids))
        .order((schedules::activity_id, schedules::weekday, timeframes::start_time.asc().nulls_first(), schedules::id))
        .select(ScheduleRow::as_select())
        .load(conn)
        .await?)
}

/// One weekly schedule of `activity_id`.
pub async fn find_schedule(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    schedule_id: i64,
) -> Result<Option<ScheduleRow>> {
    Ok(schedules::table
        .left_join(timeframes::table)
        .filter(schedules::id.eq(schedule_id))
        .filter(schedules::activity_id.eq(activity_id))
        .select(ScheduleRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Inserts a weekly schedule; `None` when the activity already has that weekday and
/// timeframe.
pub async fn insert_schedule(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    weekday: i16,
    timeframe_id: Option<i64>,
) -> Result<Option<i64>> {
    Ok(diesel::insert_into(schedules::table)
        .values((
            schedules::activity_id.eq(activity_id),
            schedules::weekday.eq(weekday),
            schedules::timeframe_id.eq(timeframe_id),
        ))
        .on_conflict_do_nothing()
        .returning(schedules::id)
        .get_result(conn)
        .await
        .optional()?)
}

/// Whether another schedule of the activity (not `except`) has this weekday and timeframe.
pub async fn schedule_taken(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    weekday: i16,
    timeframe_id: i64,
    except: i64,
) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        schedules::table
            .filter(schedules::activity_id.eq(activity_id))
            .filter(schedules::weekday.eq(weekday))
            .filter(schedules::timeframe_id.eq(timeframe_id))
            .filter(schedules::id.ne(except)),
    ))
    .get_result(conn)
    .await?)
}

/// Sets a schedule's weekday and timeframe.
pub async fn update_schedule(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    weekday: i16,
    timeframe_id: Option<i64>,
) -> Result<()> {
    diesel::update(schedules::table.find(schedule_id))
        .set((schedules::weekday.eq(weekday), schedules::timeframe_id.eq(timeframe_id)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes one schedule of `activity_id`; whether it existed.
pub async fn delete_schedule(conn: &mut AsyncPgConnection, activity_id: i64, schedule_id: i64) -> Result<bool> {
    Ok(diesel::delete(
        schedules::table.filter(schedules::id.eq(schedule_id)).filter(schedules::activity_id.eq(activity_id)),
    )
    .execute(conn)
    .await?
        > 0)
}

/// Replaces every schedule of an activity.
pub async fn replace_schedules(conn: &mut AsyncPgConnection, activity_id: i64, new: &[Slot]) -> Result<()> {
    diesel::delete(schedules::table.filter(schedules::activity_id.eq(activity_id))).execute(conn).await?;
    let rows: Vec<_> = new
        .iter()
        .map(|(w, t)| {
            (schedules::activity_id.eq(activity_id), schedules::weekday.eq(*w), schedules::timeframe_id.eq(*t))
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(schedules::table).values(rows).execute(conn).await?;
    }
    Ok(())
}

/// Replaces every planned supervisor of an activity (staff id, primary).
pub async fn replace_supervisors(conn: &mut AsyncPgConnection, activity_id: i64, new: &[(i64, bool)]) -> Result<()> {
    diesel::delete(supervisors::table.filter(supervisors::activity_id.eq(activity_id))).execute(conn).await?;
    let rows: Vec<_> = new
        .iter()
        .map(|(s, p)| {
            (supervisors::activity_id.eq(activity_id), supervisors::staff_id.eq(*s), supervisors::is_primary.eq(*p))
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(supervisors::table).values(rows).execute(conn).await?;
    }
    Ok(())
}

/// Adds a planned supervisor; when `primary`, the previous primary is demoted first (one
/// primary per activity is also a partial unique index).
pub async fn add_supervisor(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    staff_id: i64,
    primary: bool,
) -> Result<()> {
    if primary {
        demote_primary(conn, activity_id).await?;
    }
    diesel::insert_into(supervisors::table)
        .values((
            supervisors::activity_id.eq(activity_id),
            supervisors::staff_id.eq(staff_id),
            supervisors::is_primary.eq(primary),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

async fn demote_primary(conn: &mut AsyncPgConnection, activity_id: i64) -> Result<()> {
    diesel::update(supervisors::table.filter(supervisors::activity_id.eq(activity_id)).filter(supervisors::is_primary))
        .set(supervisors::is_primary.eq(false))
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes `staff_id` the activity's primary supervisor.
pub async fn make_primary(conn: &mut AsyncPgConnection, activity_id: i64, staff_id: i64) -> Result<()> {
    demote_primary(conn, activity_id).await?;
    diesel::update(
        supervisors::table.filter(supervisors::activity_id.eq(activity_id)).filter(supervisors::staff_id.eq(staff_id)),
    )
    .set(supervisors::is_primary.eq(true))
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a planned supervisor.
pub async fn remove_supervisor(conn: &mut AsyncPgConnection, activity_id: i64, staff_id: i64) -> Result<()> {
    diesel::delete(
        supervisors::table.filter(supervisors::activity_id.eq(activity_id)).filter(supervisors::staff_id.eq(staff_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Supervisors (staff id, primary) of several activities, keyed by activity, primary first.
pub async fn supervisors_by_activity(
    conn: &mut AsyncPgConnection,
    activity_ids: &[i64],
) -> Result<HashMap<i64, Vec<(i64, bool)>>> {
    let rows: Vec<(i64, i64, bool)> = supervisors::table
        .filter(supervisors::activity_id.eq_any(activity_ids))
        .order((supervisors::activity_id, supervisors::is_primary.desc(), supervisors::staff_id))
        .select((supervisors::activity_id, supervisors::staff_id, supervisors::is_primary))
        .load(conn)
        .await?;
    let mut out: HashMap<i64, Vec<(i64, bool)>> = HashMap::new();
    for (a, s, p) in rows {
        out.entry(a).or_default().push((s, p));
    }
    Ok(out)
}

/// Enrollment counts of several activities.
pub async fn enrollment_counts(conn: &mut AsyncPgConnection, activity_ids: &[i64]) -> Result<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = enrollments::table
        .filter(enrollments::activity_id.eq_any(activity_ids))
        .group_by(enrollments::activity_id)
        .select((enrollments::activity_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The sub-resources of a page of activities, loaded at once.
#[derive(Debug, Default)]
pub struct ActivityDetails {
    /// Planned supervisors by activity, primary first.
    pub supervisors: HashMap<i64, Vec<(i64, bool)>>,
    /// Enrollment counts by activity.
    pub counts: HashMap<i64, i64>,
    /// Weekly schedules of all of them.
    pub schedules: Vec<ScheduleRow>,
}

/// Supervisors, enrollment counts and schedules of `activity_ids` (three queries).
pub async fn activity_details(conn: &mut AsyncPgConnection, activity_ids: &[i64]) -> Result<ActivityDetails> {
    Ok(ActivityDetails {
        supervisors: supervisors_by_activity(conn, activity_ids).await?,
        counts: enrollment_counts(conn, activity_ids).await?,
        schedules: schedules_of(conn, activity_ids).await?,
    })
}

/// Changed columns of an activity (`None`: unchanged).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = activities)]
pub struct ActivityChanges {
    /// Name.
    pub name: Option<String>,
    /// Places.
    pub max_participants: Option<i32>,
    /// Open for enrollment.
    pub is_open: Option<bool>,
    /// Category.
    pub category_id: Option<i64>,
    /// Planned room (`Some(None)` clears it).
    pub planned_room_id: Option<Option<i64>>,
}

impl ActivityChanges {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.max_participants.is_none()
            && self.is_open.is_none()
            && self.category_id.is_none()
            && self.planned_room_id.is_none()
    }
}

/// Applies `changes` to activity `id` (nothing to do when empty).
pub async fn update_activity(conn: &mut AsyncPgConnection, id: i64, changes: &ActivityChanges) -> Result<()> {
    if !changes.is_empty() {
        diesel::update(activities::table.find(id)).set(changes).execute(conn).await?;
    }
    Ok(())
}

/// Whether a room session of the activity is running: (session id, room id).
pub async fn running_session(conn: &mut AsyncPgConnection, activity_id: i64) -> Result<Option<(i64, i64)>> {
    use phoenix_db::schema::active::groups;
    // Read-only cross-schema look-up (ARCHITECTURE.md: services may read other schemas).
    Ok(groups::table
        .filter(groups::activity_id.eq(activity_id))
        .filter(groups::end_time.is_null())
        .select((groups::id, groups::room_id))
        .first(conn)
        .await
        .optional()?)
}

/// Deletes the activity's enrollments, planned supervisors and weekly schedules, then the
/// activity itself.
pub async fn delete_activity(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(enrollments::table.filter(enrollments::activity_id.eq(id))).execute(conn).await?;
    diesel::delete(supervisors::table.filter(supervisors::activity_id.eq(id))).execute(conn).await?;
    diesel::delete(schedules::table.filter(schedules::activity_id.eq(id))).execute(conn).await?;
    diesel::delete(activities::table.find(id)).execute(conn).await?;
    Ok(())
}

/// Filters of a listing of activities.
#[derive(Debug, Default, Clone)]
pub struct ActivityFilter {
    /// Category.
    pub category_id: Option<i64>,
    /// Open or closed.
    pub is_open: Option<bool>,
    /// Planned room.
    pub planned_room_id: Option<i64>,
    /// Planned supervisor.
    pub supervisor_staff_id: Option<i64>,
    /// `ILIKE` pattern on the name.
    pub name_like: Option<String>,
    /// Only activities this student can still join (open, a free place, not enrolled).
    pub available_to_student: Option<i64>,
}

fn filtered(f: &ActivityFilter) -> activities::BoxedQuery<'static, Pg> {
    let mut q = activities::table.into_boxed();
    if let Some(c) = f.category_id {
        q = q.filter(activities::category_id.eq(c));
    }
    if let Some(o) = f.is_open {
        q = q.filter(activities::is_open.eq(o));
    }
    if let Some(r) = f.planned_room_id {
        q = q.filter(activities::planned_room_id.eq(r));
    }
    if let Some(s) = f.supervisor_staff_id {
        q = q.filter(
            activities::id
                .eq_any(supervisors::table.filter(supervisors::staff_id.eq(s)).select(supervisors::activity_id)),
        );
    }
    if let Some(p) = &f.name_like {
        q = q.filter(activities::name.ilike(p.clone()));
    }
    if let Some(student) = f.available_to_student {
        q = q
            .filter(activities::is_open.eq(true))
            .filter(diesel::dsl::not(activities::id.eq_any(
                enrollments::table.filter(enrollments::student_id.eq(student)).select(enrollments::activity_id),
            )))
            .filter(sql::<Bool>(
                "(SELECT count(*) FROM activities.enrollments e WHERE e.activity_id = activities.activities.id) \
                 < activities.activities.max_participants",
            ));
    }
    q
}

/// A page of activities after id `after` matching `f`, and the number of all matches.
pub async fn list_activities(
    conn: &mut AsyncPgConnection,
    f: &ActivityFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<ActivityRow>, i64)> {
    let rows = filtered(f)
        .filter(activities::id.gt(after.unwrap_or(0)))
        .order(activities::id)
        .limit(limit)
        .select(ActivityRow::as_select())
        .load(conn)
        .await?;
    let total = filtered(f).count().get_result(conn).await?;
    Ok((rows, total))
}
