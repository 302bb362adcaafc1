//! What a guardian sees of their children: the children themselves (through the calling
//! account's guardian record) and, read-only from the `active` schema, a child's day.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::users::{guardians, persons, student_guardians, students};
use phoenix_db::schema::{active, activities, education, facilities};

/// One child as the guardian's list shows it.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ChildRow {
    /// The student.
    pub student_id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Class.
    pub school_class: String,
    /// The education group's name, if any.
    pub group_name: Option<String>,
    /// How the account's guardian record is linked (`student_guardians.relationship_type`).
    pub relationship_type: String,
}

/// Students `ids` as children of the guardian record(s) of `account_id`, by last name, first
/// name, id; one row per student (the first link when an account has several records).
pub async fn children(conn: &mut AsyncPgConnection, account_id: i64, ids: &[i64]) -> Result<Vec<ChildRow>> {
    let mut rows: Vec<ChildRow> = student_guardians::table
        .inner_join(guardians::table)
        .inner_join(students::table.inner_join(persons::table).left_join(education::groups::table))
        .filter(guardians::account_id.eq(account_id))
        .filter(student_guardians::student_id.eq_any(ids))
        .order((persons::last_name, persons::first_name, students::id, student_guardians::id))
        .select((
            students::id,
            persons::first_name,
            persons::last_name,
            students::school_class,
            education::groups::name.nullable(),
            student_guardians::relationship_type,
        ))
        .load(conn)
        .await?;
    rows.dedup_by_key(|r| r.student_id);
    Ok(rows)
}

/// A child's sickness flag and since when.
pub async fn sickness(conn: &mut AsyncPgConnection, student_id: i64) -> Result<(bool, Option<DateTime<Utc>>)> {
    Ok(students::table.find(student_id).select((students::sick, students::sick_since)).first(conn).await?)
}

/// A child's attendance on `date`: (check-in, check-out), if they came.
pub async fn attendance_on(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    date: NaiveDate,
) -> Result<Option<(DateTime<Utc>, Option<DateTime<Utc>>)>> {
    use active::attendance as at;
    Ok(at::table
        .filter(at::student_id.eq(student_id))
        .filter(at::date.eq(date))
        .select((at::check_in_time, at::check_out_time))
        .first(conn)
        .await
        .optional()?)
}

/// One visit with its room and the session's activity.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct VisitRow {
    /// The room.
    pub room_name: String,
    /// The session's activity, if any.
    pub activity_name: Option<String>,
    /// Entry.
    pub entry_time: DateTime<Utc>,
    /// Exit; `None` while in the room.
    pub exit_time: Option<DateTime<Utc>>,
}

/// A child's visits that are open or began at or after `from`, oldest first (the caller
/// keeps those of the school day it means).
pub async fn visits_since(conn: &mut AsyncPgConnection, student_id: i64, from: DateTime<Utc>) -> Result<Vec<VisitRow>> {
    use active::{groups as ag, visits as av};
    Ok(av::table
        .inner_join(ag::table.inner_join(facilities::rooms::table).left_join(activities::activities::table))
        .filter(av::student_id.eq(student_id))
        .filter(av::exit_time.is_null().or(av::entry_time.ge(from)))
        .order((av::entry_time, av::id))
        .select((facilities::rooms::name, activities::activities::name.nullable(), av::entry_time, av::exit_time))
        .load(conn)
        .await?)
}
