//! `users.staff` and `users.teachers`.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::convert::like_prefix;
use phoenix_db::schema::education;
use phoenix_db::schema::users::{persons, staff, teachers};

use super::persons::Person;

/// A `users.staff` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = staff, check_for_backend(Pg))]
pub struct StaffRow {
    /// Primary key.
    pub id: i64,
    /// The person.
    pub person_id: i64,
    /// Internal notes.
    pub staff_notes: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A `users.teachers` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = teachers, check_for_backend(Pg))]
pub struct TeacherRow {
    /// Primary key.
    pub id: i64,
    /// The staff record.
    pub staff_id: i64,
    /// Subject or focus.
    pub specialization: Option<String>,
    /// Position.
    pub role: Option<String>,
    /// Qualifications.
    pub qualifications: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a teacher record.
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = teachers, treat_none_as_null = true)]
pub struct TeacherFields {
    /// Subject or focus.
    pub specialization: Option<String>,
    /// Position.
    pub role: Option<String>,
    /// Qualifications.
    pub qualifications: Option<String>,
}

/// A staff member with their person and teacher record.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffRecord {
    /// The staff row.
    pub staff: StaffRow,
    /// Their person.
    pub person: Person,
    /// Their teacher record, if a teacher.
    pub teacher: Option<TeacherRow>,
}

/// Filters of a staff listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct StaffFilter {
    /// Start of the first name, case-insensitive.
    pub first_name: Option<String>,
    /// Start of the last name, case-insensitive.
    pub last_name: Option<String>,
    /// Only teachers.
    pub teachers_only: bool,
}

type Joined = (StaffRow, Person, Option<TeacherRow>);

fn record((staff, person, teacher): Joined) -> StaffRecord {
    StaffRecord { staff, person, teacher }
}

/// Inserts a staff row for `person_id`.
pub async fn insert_staff(conn: &mut AsyncPgConnection, person_id: i64, notes: Option<&str>) -> QueryResult<StaffRow> {
    diesel::insert_into(staff::table)
        .values((staff::person_id.eq(person_id), staff::staff_notes.eq(notes)))
        .returning(StaffRow::as_returning())
        .get_result(conn)
        .await
}

/// Inserts the teacher record of `staff_id`.
pub async fn insert_teacher(conn: &mut AsyncPgConnection, staff_id: i64, f: &TeacherFields) -> Result<TeacherRow> {
    Ok(diesel::insert_into(teachers::table)
        .values((
            teachers::staff_id.eq(staff_id),
            teachers::specialization.eq(&f.specialization),
            teachers::role.eq(&f.role),
            teachers::qualifications.eq(&f.qualifications),
        ))
        .returning(TeacherRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Writes the teacher record of `staff_id`.
pub async fn write_teacher(conn: &mut AsyncPgConnection, staff_id: i64, f: &TeacherFields) -> Result<TeacherRow> {
    Ok(diesel::update(teachers::table.filter(teachers::staff_id.eq(staff_id)))
        .set(f)
        .returning(TeacherRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes the teacher record of `staff_id` (its group links cascade).
pub async fn delete_teacher(conn: &mut AsyncPgConnection, staff_id: i64) -> Result<()> {
    diesel::delete(teachers::table.filter(teachers::staff_id.eq(staff_id))).execute(conn).await?;
    Ok(())
}

/// Writes the notes of staff `id`.
pub async fn write_staff_notes(conn: &mut AsyncPgConnection, id: i64, notes: Option<&str>) -> Result<()> {
    diesel::update(staff::table.find(id)).set(staff::staff_notes.eq(notes)).execute(conn).await?;
    Ok(())
}

/// Deletes staff `id` (the teacher record and group links cascade); whether it existed.
pub async fn delete_staff(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(staff::table.find(id)).execute(conn).await? > 0)
}

/// Staff `id` with person and teacher record.
pub async fn find_staff(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<StaffRecord>> {
    let row: Option<Joined> = staff::table
        .inner_join(persons::table)
        .left_join(teachers::table)
        .filter(staff::id.eq(id))
        .select((StaffRow::as_select(), Person::as_select(), Option::<TeacherRow>::as_select()))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}

/// Locks staff row `id` until the transaction ends; whether it exists.
pub async fn lock_staff(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(staff::table.find(id).select(staff::id).for_update().first::<i64>(conn).await.optional()?.is_some())
}

/// Number of education groups teacher `teacher_id` leads.
pub async fn groups_led(conn: &mut AsyncPgConnection, teacher_id: i64) -> Result<i64> {
    Ok(education::group_teacher::table
        .filter(education::group_teacher::teacher_id.eq(teacher_id))
        .count()
        .get_result(conn)
        .await?)
}

fn filtered(
    f: &StaffFilter,
) -> diesel::dsl::IntoBoxed<
    'static,
    diesel::dsl::LeftJoin<diesel::dsl::InnerJoin<staff::table, persons::table>, teachers::table>,
    Pg,
> {
    let mut q = staff::table.inner_join(persons::table).left_join(teachers::table).into_boxed();
    if let Some(n) = &f.first_name {
        q = q.filter(persons::first_name.ilike(like_prefix(n)));
    }
    if let Some(n) = &f.last_name {
        q = q.filter(persons::last_name.ilike(like_prefix(n)));
    }
    if f.teachers_only {
        q = q.filter(teachers::id.nullable().is_not_null());
    }
    q
}

/// One page of staff by id.
pub async fn list_staff(
    conn: &mut AsyncPgConnection,
    filter: &StaffFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<StaffRecord>> {
    let rows: Vec<Joined> = filtered(filter)
        .filter(staff::id.gt(after.unwrap_or(0)))
        .order(staff::id)
        .limit(limit)
        .select((StaffRow::as_select(), Person::as_select(), Option::<TeacherRow>::as_select()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(record).collect())
}

/// Number of staff matching `filter`.
pub async fn count_staff(conn: &mut AsyncPgConnection, filter: &StaffFilter) -> Result<i64> {
    Ok(filtered(filter).count().get_result(conn).await?)
}
