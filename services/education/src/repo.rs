//! Diesel queries of the `education` schema (plus read-only joins into `users`,
//! `facilities` and `active`). No proto types here; writers run inside the caller's
//! transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::convert::like_contains;
use phoenix_common::{Error, Result};
use phoenix_db::schema::education::{group_substitution as gs, group_teacher as gt, groups};
use phoenix_db::schema::{active, facilities, users};

use crate::error;

/// An `education.groups` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = groups, check_for_backend(Pg))]
pub struct GroupRow {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Home room.
    pub room_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a group.
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = groups, treat_none_as_null = true)]
pub struct GroupFields {
    /// Trimmed unique name.
    pub name: String,
    /// Home room.
    pub room_id: Option<i64>,
}

impl GroupRow {
    /// The writable part of the row.
    pub fn fields(&self) -> GroupFields {
        GroupFields { name: self.name.clone(), room_id: self.room_id }
    }
}

/// A teacher of a group with their names.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTeacher {
    /// `users.teachers` id.
    pub teacher_id: i64,
    /// `users.staff` id.
    pub staff_id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
}

/// A group with what its responses show.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// The row.
    pub group: GroupRow,
    /// Home room name.
    pub room_name: Option<String>,
    /// Its teachers, by teacher id.
    pub teachers: Vec<GroupTeacher>,
    /// Active pupils.
    pub student_count: i64,
}

/// Filters of a group listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Part of the name, case-insensitive.
    pub name_contains: Option<String>,
    /// Home room.
    pub room_id: Option<i64>,
    /// Led by this teacher.
    pub teacher_id: Option<i64>,
}

fn filtered_groups(f: &GroupFilter) -> groups::BoxedQuery<'static, Pg> {
    let mut q = groups::table.into_boxed();
    if let Some(n) = &f.name_contains {
        q = q.filter(groups::name.ilike(like_contains(n)));
    }
    if let Some(r) = f.room_id {
        q = q.filter(groups::room_id.eq(r));
    }
    if let Some(t) = f.teacher_id {
        q = q.filter(groups::id.eq_any(gt::table.filter(gt::teacher_id.eq(t)).select(gt::group_id)));
    }
    q
}

/// Inserts a group.
pub async fn insert_group(conn: &mut AsyncPgConnection, f: &GroupFields) -> Result<GroupRow> {
    diesel::insert_into(groups::table)
        .values(f)
        .returning(GroupRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::group_write(e, &f.name))
}

/// One group row.
pub async fn find_group(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<GroupRow>> {
    Ok(groups::table.find(id).select(GroupRow::as_select()).first(conn).await.optional()?)
}

/// One group row, locked until the transaction ends.
pub async fn lock_group(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<GroupRow>> {
    Ok(groups::table.find(id).select(GroupRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of group `id`.
pub async fn write_group(conn: &mut AsyncPgConnection, id: i64, f: &GroupFields) -> Result<GroupRow> {
    diesel::update(groups::table.find(id))
        .set(f)
        .returning(GroupRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::group_write(e, &f.name))
}

/// Deletes group `id` (teacher links and substitutions cascade); whether it existed.
pub async fn delete_group(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(groups::table.find(id)).execute(conn).await? > 0)
}

/// One page of group rows by id.
pub async fn list_groups(
    conn: &mut AsyncPgConnection,
    filter: &GroupFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<GroupRow>> {
    Ok(filtered_groups(filter)
        .filter(groups::id.gt(after.unwrap_or(0)))
        .order(groups::id)
        .limit(limit)
        .select(GroupRow::as_select())
        .load(conn)
        .await?)
}

/// Number of groups matching `filter`.
pub async fn count_groups(conn: &mut AsyncPgConnection, filter: &GroupFilter) -> Result<i64> {
    Ok(filtered_groups(filter).count().get_result(conn).await?)
}

/// Adds room names, teachers and pupil counts to `rows` (three queries for any number).
pub async fn group_records(conn: &mut AsyncPgConnection, rows: Vec<GroupRow>) -> Result<Vec<GroupRecord>> {
    let ids: Vec<i64> = rows.iter().map(|g| g.id).collect();
    let room_ids: Vec<i64> = rows.iter().filter_map(|g| g.room_id).collect();
    let rooms: HashMap<i64, String> = if room_ids.is_empty() {
        HashMap::new()
    } else {
        facilities::rooms::table
            .filter(facilities::rooms::id.eq_any(&room_ids))
            .select((facilities::rooms::id, facilities::rooms::name))
            .load::<(i64, String)>(conn)
            .await?
            .into_iter()
            .collect()
    };
    let mut teachers = teachers_of(conn, &ids).await?;
    let counts: HashMap<i64, i64> = if ids.is_empty() {
        HashMap::new()
    } else {
        users::students::table
            .filter(users::students::group_id.eq_any(&ids))
            .filter(users::students::deactivated_at.is_null())
            .group_by(users::students::group_id)
            .select((users::students::group_id.assume_not_null(), diesel::dsl::count_star()))
            .load::<(i64, i64)>(conn)
            .await?
            .into_iter()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|g| GroupRecord {
            room_name: g.room_id.and_then(|r| rooms.get(&r).cloned()),
            teachers: teachers.remove(&g.id).unwrap_or_default(),
            student_count: counts.get(&g.id).copied().unwrap_or(0),
            group: g,
        })
        .collect())
}

/// One group with room name, teachers and pupil count.
pub async fn find_group_record(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<GroupRecord>> {
    match find_group(conn, id).await? {
        None => Ok(None),
        Some(row) => Ok(group_records(conn, vec![row]).await?.pop()),
    }
}

/// Teachers of each of `group_ids`, by teacher id.
pub async fn teachers_of(conn: &mut AsyncPgConnection, group_ids: &[i64]) -> Result<HashMap<i64, Vec<GroupTeacher>>> {
    use users::{persons, staff, teachers};
    let mut out: HashMap<i64, Vec<GroupTeacher>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, i64, i64, String, String)> = gt::table
        .inner_join(teachers::table.inner_join(staff::table.inner_join(persons::table)))
        .filter(gt::group_id.eq_any(group_ids))
        .order((gt::group_id, teachers::id))
        .select((gt::group_id, teachers::id, staff::id, persons::first_name, persons::last_name))
        .load(conn)
        .await?;
    for (group_id, teacher_id, staff_id, first_name, last_name) in rows {
        out.entry(group_id).or_default().push(GroupTeacher { teacher_id, staff_id, first_name, last_name });
    }
    Ok(out)
}

/// Teacher ids among `ids` that do not exist.
pub async fn missing_teachers(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<Vec<i64>> {
    let found: Vec<i64> =
        users::teachers::table.filter(users::teachers::id.eq_any(ids)).select(users::teachers::id).load(conn).await?;
    Ok(ids.iter().copied().filter(|i| !found.contains(i)).collect())
}

/// Whether room `id` exists.
pub async fn room_exists(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(facilities::rooms::table.find(id))).get_result(conn).await?)
}

/// Whether staff member `id` exists.
pub async fn staff_exists(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(users::staff::table.find(id))).get_result(conn).await?)
}

/// Replaces the teacher set of `group_id` with `teacher_ids`.
pub async fn set_teachers(conn: &mut AsyncPgConnection, group_id: i64, teacher_ids: &[i64]) -> Result<()> {
    diesel::delete(gt::table.filter(gt::group_id.eq(group_id)).filter(gt::teacher_id.ne_all(teacher_ids)))
        .execute(conn)
        .await
        .map_err(error::group_teachers_write)?;
    add_teachers(conn, group_id, teacher_ids).await
}

/// Links `teacher_ids` to `group_id` (existing links stay).
pub async fn add_teachers(conn: &mut AsyncPgConnection, group_id: i64, teacher_ids: &[i64]) -> Result<()> {
    let rows: Vec<_> = teacher_ids.iter().map(|t| (gt::group_id.eq(group_id), gt::teacher_id.eq(*t))).collect();
    diesel::insert_into(gt::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map_err(error::group_teachers_write)?;
    Ok(())
}

/// Inserts one link; the unique violation tells a duplicate.
pub async fn insert_group_teacher(conn: &mut AsyncPgConnection, group_id: i64, teacher_id: i64) -> Result<()> {
    diesel::insert_into(gt::table)
        .values((gt::group_id.eq(group_id), gt::teacher_id.eq(teacher_id)))
        .execute(conn)
        .await
        .map_err(|e| error::group_teacher_insert(e, group_id, teacher_id))?;
    Ok(())
}

/// Removes one link; whether it existed.
pub async fn delete_group_teacher(conn: &mut AsyncPgConnection, group_id: i64, teacher_id: i64) -> Result<bool> {
    Ok(diesel::delete(gt::table.filter(gt::group_id.eq(group_id)).filter(gt::teacher_id.eq(teacher_id)))
        .execute(conn)
        .await?
        > 0)
}

/// Whether staff member `staff_id` leads `group_id` (through their teacher record).
pub async fn leads(conn: &mut AsyncPgConnection, staff_id: i64, group_id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        gt::table
            .inner_join(users::teachers::table)
            .filter(gt::group_id.eq(group_id))
            .filter(users::teachers::staff_id.eq(staff_id)),
    ))
    .get_result(conn)
    .await?)
}

/// Whether active pupils belong to group `id`.
pub async fn has_active_students(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        users::students::table
            .filter(users::students::group_id.eq(id))
            .filter(users::students::deactivated_at.is_null()),
    ))
    .get_result(conn)
    .await?)
}

/// Whether room sessions of group `id` are on record (deleting it would cascade them away).
pub async fn has_sessions(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(active::groups::table.filter(active::groups::education_group_id.eq(id))))
        .get_result(conn)
        .await?)
}

/// Checks that the group's home room exists (`group.room_id` names it otherwise).
pub async fn check_room(conn: &mut AsyncPgConnection, room_id: Option<i64>) -> Result<()> {
    if let Some(r) = room_id
        && !room_exists(conn, r).await?
    {
        return Err(Error::invalid("group.room_id", format!("room {r} does not exist")));
    }
    Ok(())
}

/// Checks that every teacher of `ids` exists; `field` names the missing ones.
pub async fn check_teachers(conn: &mut AsyncPgConnection, field: &str, ids: &[i64]) -> Result<()> {
    let missing = missing_teachers(conn, ids).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = missing.iter().map(i64::to_string).collect();
        Err(Error::invalid(field, format!("no teacher with id {}", list.join(", "))))
    }
}

// ---- substitutions --------------------------------------------------------------------

/// Checks that staff member `id` exists; `field` names it otherwise.
pub async fn check_staff(conn: &mut AsyncPgConnection, field: &str, id: i64) -> Result<()> {
    if staff_exists(conn, id).await? {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("staff member {id} does not exist")))
    }
}

/// The overlap rules (issue #5): the same substitute for the same group in an overlapping
/// period is a duplicate (ALREADY_EXISTS); a substitute already covering another group then
/// cannot take this one as well (FAILED_PRECONDITION). Serialised per substitute; `except`
/// is the row being updated.
pub async fn check_overlaps(conn: &mut AsyncPgConnection, f: &SubstitutionFields, except: Option<i64>) -> Result<()> {
    lock_substitute(conn, f.substitute_staff_id).await?;
    if let Some(other) = overlapping_same(conn, f, except).await? {
        return Err(Error::AlreadyExists(format!(
            "staff member {} already covers group {} in an overlapping period (substitution {other})",
            f.substitute_staff_id, f.group_id
        )));
    }
    if let Some(group) = overlapping_other_group(conn, f, except).await? {
        return Err(Error::precondition(
            "SUBSTITUTE_BUSY",
            format!("staff member {} already covers group {group} in that period", f.substitute_staff_id),
        ));
    }
    Ok(())
}

/// An `education.group_substitution` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = gs, check_for_backend(Pg))]
pub struct SubstitutionRow {
    /// Primary key.
    pub id: i64,
    /// The group.
    pub group_id: i64,
    /// Replaced staff member.
    pub regular_staff_id: Option<i64>,
    /// Who covers.
    pub substitute_staff_id: i64,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: NaiveDate,
    /// Free text.
    pub reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// A leader's same-day hand-over.
    pub is_transfer: bool,
}

/// The writable columns of a substitution.
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = gs, treat_none_as_null = true)]
pub struct SubstitutionFields {
    /// The group.
    pub group_id: i64,
    /// Replaced staff member.
    pub regular_staff_id: Option<i64>,
    /// Who covers.
    pub substitute_staff_id: i64,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: NaiveDate,
    /// Free text.
    pub reason: Option<String>,
    /// A leader's same-day hand-over.
    pub is_transfer: bool,
}

impl SubstitutionRow {
    /// The writable part of the row.
    pub fn fields(&self) -> SubstitutionFields {
        SubstitutionFields {
            group_id: self.group_id,
            regular_staff_id: self.regular_staff_id,
            substitute_staff_id: self.substitute_staff_id,
            start_date: self.start_date,
            end_date: self.end_date,
            reason: self.reason.clone(),
            is_transfer: self.is_transfer,
        }
    }
}

/// Filters of a substitution listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct SubstitutionFilter {
    /// Of this group.
    pub group_id: Option<i64>,
    /// With this substitute.
    pub substitute_staff_id: Option<i64>,
    /// Covering this day.
    pub active_on: Option<NaiveDate>,
    /// Transfers (`true`) or planned substitutions (`false`) only.
    pub transfers: Option<bool>,
}

fn filtered_substitutions(f: &SubstitutionFilter) -> gs::BoxedQuery<'static, Pg> {
    let mut q = gs::table.into_boxed();
    if let Some(g) = f.group_id {
        q = q.filter(gs::group_id.eq(g));
    }
    if let Some(s) = f.substitute_staff_id {
        q = q.filter(gs::substitute_staff_id.eq(s));
    }
    if let Some(d) = f.active_on {
        q = q.filter(gs::start_date.le(d)).filter(gs::end_date.ge(d));
    }
    if let Some(t) = f.transfers {
        q = q.filter(gs::is_transfer.eq(t));
    }
    q
}

/// Serialises writers of one substitute's rows until the transaction ends, so two
/// concurrent plans cannot both pass the overlap checks.
pub async fn lock_substitute(conn: &mut AsyncPgConnection, staff_id: i64) -> Result<()> {
    // Namespace "SUBS" in the high half keeps the key apart from other advisory locks.
    let key = (0x5355_4253_i64 << 32) | (staff_id & 0xFFFF_FFFF);
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Another row (not `except`) of the same group and substitute overlapping the period.
pub async fn overlapping_same(
    conn: &mut AsyncPgConnection,
    f: &SubstitutionFields,
    except: Option<i64>,
) -> Result<Option<i64>> {
    Ok(gs::table
        .filter(gs::group_id.eq(f.group_id))
        .filter(gs::substitute_staff_id.eq(f.substitute_staff_id))
        .filter(gs::start_date.le(f.end_date))
        .filter(gs::end_date.ge(f.start_date))
        .filter(gs::id.ne(except.unwrap_or(0)))
        .select(gs::id)
        .first(conn)
        .await
        .optional()?)
}

/// A row of the same substitute for another group overlapping the period.
pub async fn overlapping_other_group(
    conn: &mut AsyncPgConnection,
    f: &SubstitutionFields,
    except: Option<i64>,
) -> Result<Option<i64>> {
    Ok(gs::table
        .filter(gs::group_id.ne(f.group_id))
        .filter(gs::substitute_staff_id.eq(f.substitute_staff_id))
        .filter(gs::start_date.le(f.end_date))
        .filter(gs::end_date.ge(f.start_date))
        .filter(gs::id.ne(except.unwrap_or(0)))
        .select(gs::group_id)
        .first(conn)
        .await
        .optional()?)
}

/// Inserts a substitution.
pub async fn insert_substitution(conn: &mut AsyncPgConnection, f: &SubstitutionFields) -> Result<SubstitutionRow> {
    diesel::insert_into(gs::table)
        .values(f)
        .returning(SubstitutionRow::as_returning())
        .get_result(conn)
        .await
        .map_err(error::substitution_write)
}

/// One substitution.
pub async fn find_substitution(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<SubstitutionRow>> {
    Ok(gs::table.find(id).select(SubstitutionRow::as_select()).first(conn).await.optional()?)
}

/// One substitution, locked until the transaction ends.
pub async fn lock_substitution(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<SubstitutionRow>> {
    Ok(gs::table.find(id).select(SubstitutionRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of substitution `id`.
pub async fn write_substitution(
    conn: &mut AsyncPgConnection,
    id: i64,
    f: &SubstitutionFields,
) -> Result<SubstitutionRow> {
    diesel::update(gs::table.find(id))
        .set(f)
        .returning(SubstitutionRow::as_returning())
        .get_result(conn)
        .await
        .map_err(error::substitution_write)
}

/// Deletes substitution `id`; whether it existed.
pub async fn delete_substitution(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(gs::table.find(id)).execute(conn).await? > 0)
}

/// One page of substitutions by id.
pub async fn list_substitutions(
    conn: &mut AsyncPgConnection,
    filter: &SubstitutionFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<SubstitutionRow>> {
    Ok(filtered_substitutions(filter)
        .filter(gs::id.gt(after.unwrap_or(0)))
        .order(gs::id)
        .limit(limit)
        .select(SubstitutionRow::as_select())
        .load(conn)
        .await?)
}

/// Number of substitutions matching `filter`.
pub async fn count_substitutions(conn: &mut AsyncPgConnection, filter: &SubstitutionFilter) -> Result<i64> {
    Ok(filtered_substitutions(filter).count().get_result(conn).await?)
}

/// Names of the groups of `rows`, by group id.
pub async fn group_names(conn: &mut AsyncPgConnection, rows: &[SubstitutionRow]) -> Result<HashMap<i64, String>> {
    let mut ids: Vec<i64> = rows.iter().map(|s| s.group_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(groups::table
        .filter(groups::id.eq_any(&ids))
        .select((groups::id, groups::name))
        .load::<(i64, String)>(conn)
        .await?
        .into_iter()
        .collect())
}
