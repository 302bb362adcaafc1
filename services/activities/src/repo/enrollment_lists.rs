//! Reads of enrollment lists: the pupils of an activity (with their names, for the display
//! name) and the activities of a pupil, each narrowed to what the caller may see
//! ([`crate::access::EnrolledScope`], [`crate::access::ActivityScope`]).

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::{Error, Result};
use phoenix_db::schema::activities::{activities, enrollments, supervisors};
use phoenix_db::schema::users::{persons, students};

/// An enrolled pupil as the list shows them.
#[derive(Debug, Clone, Queryable)]
pub struct EnrolledRow {
    pub student_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub enrollment_date: NaiveDate,
}

/// The education group of a student (`NotFound` when there is no such student).
pub async fn student_group(conn: &mut AsyncPgConnection, student: i64) -> Result<Option<i64>> {
    students::table
        .find(student)
        .select(students::group_id)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("student", student))
}

/// One page of the pupils enrolled in `activity` (only those of `groups` when given), by
/// student id after `after`, and how many there are in all.
pub async fn enrolled_page(
    conn: &mut AsyncPgConnection,
    activity: i64,
    groups: Option<&[i64]>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<EnrolledRow>, i64)> {
    let filtered = || {
        let mut q = enrollments::table
            .inner_join(students::table.inner_join(persons::table))
            .filter(enrollments::activity_id.eq(activity))
            .into_boxed();
        if let Some(g) = groups {
            q = q.filter(students::group_id.assume_not_null().eq_any(g.to_vec()));
        }
        q
    };
    let mut page = filtered();
    if let Some(after) = after {
        page = page.filter(enrollments::student_id.gt(after));
    }
    let rows = page
        .order(enrollments::student_id)
        .limit(limit)
        .select((enrollments::student_id, persons::first_name, persons::last_name, enrollments::enrollment_date))
        .load(conn)
        .await?;
    let total = filtered().count().get_result(conn).await?;
    Ok((rows, total))
}

/// The activities `student` is enrolled in, by activity id: `(id, name, enrollment date)`;
/// with `owned_by`, only those the staff member created or is a planned supervisor of.
pub async fn of_student(
    conn: &mut AsyncPgConnection,
    student: i64,
    owned_by: Option<i64>,
) -> Result<Vec<(i64, String, NaiveDate)>> {
    let mut q =
        enrollments::table.inner_join(activities::table).filter(enrollments::student_id.eq(student)).into_boxed();
    if let Some(staff) = owned_by {
        let supervised = supervisors::table.filter(supervisors::staff_id.eq(staff)).select(supervisors::activity_id);
        q = q.filter(activities::created_by.eq(staff).or(activities::id.eq_any(supervised)));
    }
    Ok(q.order(activities::id)
        .select((activities::id, activities::name, enrollments::enrollment_date))
        .load(conn)
        .await?)
}
