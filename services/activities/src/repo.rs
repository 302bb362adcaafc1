//! Diesel queries on the `activities` schema.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::activities::{activities, categories, enrollments, supervisors};

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
) -> QueryResult<(Vec<CategoryRow>, i64)> {
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
pub async fn insert_category(
    conn: &mut AsyncPgConnection,
    name: &str,
    description: Option<&str>,
    color: Option<&str>,
) -> QueryResult<Option<CategoryRow>> {
    diesel::insert_into(categories::table)
        .values((categories::name.eq(name), categories::description.eq(description), categories::color.eq(color)))
        .on_conflict_do_nothing()
        .returning(CategoryRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Whether a row with `id` exists in `schema.table` (fixed identifiers only).
pub async fn exists(conn: &mut AsyncPgConnection, table: &'static str, id: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        e: bool,
    }
    let q = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1) AS e");
    Ok(diesel::sql_query(q).bind::<diesel::sql_types::BigInt, _>(id).get_result::<E>(conn).await?.e)
}

/// Ids of `ids` that exist in `schema.table` (fixed identifiers only).
pub async fn existing_ids(conn: &mut AsyncPgConnection, table: &'static str, ids: &[i64]) -> QueryResult<Vec<i64>> {
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

/// A new activity.
#[derive(Debug, Insertable)]
#[diesel(table_name = activities)]
pub struct NewActivity<'a> {
    /// Name.
    pub name: &'a str,
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

/// Inserts an activity and its supervisors (first = primary).
pub async fn insert_activity(
    conn: &mut AsyncPgConnection,
    new: NewActivity<'_>,
    supervisor_ids: &[i64],
) -> QueryResult<ActivityRow> {
    let row: ActivityRow = diesel::insert_into(activities::table)
        .values(new)
        .returning(ActivityRow::as_returning())
        .get_result(conn)
        .await?;
    let sups: Vec<_> = supervisor_ids
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (supervisors::activity_id.eq(row.id), supervisors::staff_id.eq(*s), supervisors::is_primary.eq(i == 0))
        })
        .collect();
    if !sups.is_empty() {
        diesel::insert_into(supervisors::table).values(sups).execute(conn).await?;
    }
    Ok(row)
}

/// One activity.
pub async fn find_activity(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ActivityRow>> {
    activities::table.find(id).select(ActivityRow::as_select()).first(conn).await.optional()
}

/// One activity, row-locked until the transaction ends: enrollments of one activity
/// serialise on this lock, so the capacity check and the insert cannot interleave.
pub async fn lock_activity(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ActivityRow>> {
    activities::table.find(id).select(ActivityRow::as_select()).for_update().first(conn).await.optional()
}

/// Supervisors (staff id, primary) of an activity.
pub async fn supervisors_of(conn: &mut AsyncPgConnection, activity_id: i64) -> QueryResult<Vec<(i64, bool)>> {
    supervisors::table
        .filter(supervisors::activity_id.eq(activity_id))
        .order((supervisors::is_primary.desc(), supervisors::staff_id))
        .select((supervisors::staff_id, supervisors::is_primary))
        .load(conn)
        .await
}

/// Enrolled student ids, ascending.
pub async fn enrolled(conn: &mut AsyncPgConnection, activity_id: i64) -> QueryResult<Vec<i64>> {
    enrollments::table
        .filter(enrollments::activity_id.eq(activity_id))
        .order(enrollments::student_id)
        .select(enrollments::student_id)
        .load(conn)
        .await
}

/// Enrolls; `false` when already enrolled.
pub async fn insert_enrollment(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    student_id: i64,
    day: NaiveDate,
) -> QueryResult<bool> {
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
pub async fn delete_enrollments(
    conn: &mut AsyncPgConnection,
    activity_id: i64,
    student_ids: &[i64],
) -> QueryResult<usize> {
    diesel::delete(
        enrollments::table
            .filter(enrollments::activity_id.eq(activity_id))
            .filter(enrollments::student_id.eq_any(student_ids)),
    )
    .execute(conn)
    .await
}
