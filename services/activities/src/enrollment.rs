//! Enrollments under the activity's row lock : capacity and
//! `is_open` are checked while `access::lock_for_change` holds the activity, so two
//! enrollments cannot both take the last place. Each function runs inside the caller's
//! transaction.

use std::collections::BTreeSet;

use diesel_async::AsyncPgConnection;
use phoenix_common::{Error, FieldViolations, Result};

use crate::repo::{self, ActivityRow};
use crate::service::reason;
use crate::validate::EnrollmentSet;

fn full(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_FULL, format!("activity {} is full ({} places)", a.id, a.max_participants))
}

fn closed(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_CLOSED, format!("activity {} is not open for enrollment", a.id))
}

fn places(a: &ActivityRow) -> usize {
    usize::try_from(a.max_participants).unwrap_or(0)
}

/// Enrolls one student; the number enrolled after it.
pub async fn enroll(conn: &mut AsyncPgConnection, a: &ActivityRow, student_id: i64) -> Result<usize> {
    if !repo::exists(conn, "users.students", student_id).await? {
        return Err(Error::invalid("student_id", format!("student {student_id} does not exist")));
    }
    let enrolled = repo::enrolled(conn, a.id).await?;
    if enrolled.contains(&student_id) {
        return Err(Error::AlreadyExists(format!("student {student_id} is already enrolled in activity {}", a.id)));
    }
    if !a.is_open {
        return Err(closed(a));
    }
    if enrolled.len() >= places(a) {
        return Err(full(a));
    }
    repo::insert_enrollment(conn, a.id, student_id, phoenix_common::time::business_today()).await?;
    Ok(enrolled.len() + 1)
}

/// Unenrolls one student (`NotFound` when not enrolled); the number enrolled after it.
pub async fn unenroll(conn: &mut AsyncPgConnection, activity_id: i64, student_id: i64) -> Result<usize> {
    if repo::delete_enrollments(conn, activity_id, &[student_id]).await? == 0 {
        return Err(Error::not_found("enrollment of student", student_id));
    }
    Ok(repo::enrolled(conn, activity_id).await?.len())
}

/// Replaces the enrolled set; the student ids enrolled after it, ascending. A closed
/// activity may still shrink: only adding students needs `is_open`.
pub async fn replace(conn: &mut AsyncPgConnection, a: &ActivityRow, set: &EnrollmentSet) -> Result<Vec<i64>> {
    let wanted_ids: Vec<i64> = set.wanted.iter().copied().collect();
    let found = repo::existing_ids(conn, "users.students", &wanted_ids).await?;
    let mut v = FieldViolations::default();
    for (i, s) in set.requested.iter().enumerate() {
        if !found.contains(s) {
            v.add(format!("student_ids[{i}]"), format!("student {s} does not exist"));
        }
    }
    v.into_result()?;
    let current: BTreeSet<i64> = repo::enrolled(conn, a.id).await?.into_iter().collect();
    let added: Vec<i64> = set.wanted.difference(&current).copied().collect();
    if !added.is_empty() && !a.is_open {
        return Err(closed(a));
    }
    if set.wanted.len() > places(a) {
        return Err(full(a));
    }
    let removed: Vec<i64> = current.difference(&set.wanted).copied().collect();
    repo::delete_enrollments(conn, a.id, &removed).await?;
    let day = phoenix_common::time::business_today();
    for s in added {
        repo::insert_enrollment(conn, a.id, s, day).await?;
    }
    repo::enrolled(conn, a.id).await
}

/// `ENROLLMENTS_EXCEED_CAPACITY` when more students are enrolled than `max` places allow.
pub async fn check_capacity(conn: &mut AsyncPgConnection, activity_id: i64, max: i32) -> Result<()> {
    let enrolled = repo::enrolled(conn, activity_id).await?.len();
    if enrolled > usize::try_from(max).unwrap_or(0) {
        return Err(Error::precondition(
            reason::ENROLLMENTS_EXCEED_CAPACITY,
            format!(
                "activity {activity_id} has {enrolled} enrollments; unenroll students before lowering \
                 max_participants to {max}"
            ),
        ));
    }
    Ok(())
}
