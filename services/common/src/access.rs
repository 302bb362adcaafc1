//! Resource rules over the caller (docs/access.md): "my groups" and student full access.
//!
//! The permission of each RPC is checked before the handler (by the shared auth layer);
//! what is left for handlers is *which* rows and fields a caller may see or change. That
//! is decided here from a small [`Caller`] value, by pure functions that are unit-tested,
//! plus one query for the caller's groups.
//!
//!
//! The [`Caller`] itself comes from the verified token ([`crate::caller::Caller::of`]).

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::{education, users};

use crate::error::Result;

pub use crate::caller::Caller;

/// How much of a student's record a caller may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentAccess {
    /// Everything, and the student may be modified (admin, or the student's group is one of
    /// the caller's groups).
    Full,
    /// Names, class and group only: no birthday, health, notes, guardian contacts or tag.
    Limited,
}

/// Why a group is one of the caller's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyGroupVia {
    /// The caller's teacher record is linked to the group (`education.group_teacher`).
    Leader,
    /// A substitution or same-day transfer to the caller is active today.
    Substitute {
        /// The `education.group_substitution` row.
        substitution_id: i64,
    },
}

/// One entry of the caller's "my groups".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MyGroup {
    /// `education.groups` id.
    pub group_id: i64,
    /// Why it is the caller's.
    pub via: MyGroupVia,
}

/// The student full-access rule (docs/access.md), pure: admin, or the student's group is one
/// of `my_group_ids`. A student without a group is fully visible to admins only.
pub fn student_access(caller: &Caller, student_group_id: Option<i64>, my_group_ids: &[i64]) -> StudentAccess {
    if caller.is_admin {
        return StudentAccess::Full;
    }
    match student_group_id {
        Some(g) if my_group_ids.contains(&g) => StudentAccess::Full,
        _ => StudentAccess::Limited,
    }
}

/// Access to a guardian's contact data follows access to their children (the guardian
/// rule, docs/access.md): admin, or one of `children_groups` is among `my_group_ids`. A guardian
/// without (active) children is an admin matter.
pub fn guardian_access(caller: &Caller, children_groups: &[Option<i64>], my_group_ids: &[i64]) -> StudentAccess {
    if caller.is_admin
        || children_groups.iter().any(|g| student_access(caller, *g, my_group_ids) == StudentAccess::Full)
    {
        StudentAccess::Full
    } else {
        StudentAccess::Limited
    }
}

/// "My groups" of staff member `staff_id` on school day `today`: groups their teacher record
/// leads plus groups they substitute (or were handed over) today. A group can appear twice
/// (led and substituted); callers that need a set dedupe by `group_id`.
pub async fn my_groups(conn: &mut AsyncPgConnection, staff_id: i64, today: NaiveDate) -> Result<Vec<MyGroup>> {
    use education::{group_substitution as gs, group_teacher as gt};
    let led: Vec<i64> = gt::table
        .inner_join(users::teachers::table)
        .filter(users::teachers::staff_id.eq(staff_id))
        .select(gt::group_id)
        .order(gt::group_id)
        .load(conn)
        .await?;
    let substituted: Vec<(i64, i64)> = gs::table
        .filter(gs::substitute_staff_id.eq(staff_id))
        .filter(gs::start_date.le(today))
        .filter(gs::end_date.ge(today))
        .select((gs::group_id, gs::id))
        .order(gs::id)
        .load(conn)
        .await?;
    Ok(led
        .into_iter()
        .map(|group_id| MyGroup { group_id, via: MyGroupVia::Leader })
        .chain(
            substituted.into_iter().map(|(group_id, substitution_id)| MyGroup {
                group_id,
                via: MyGroupVia::Substitute { substitution_id },
            }),
        )
        .collect())
}

/// Group ids of the caller's groups today (none for a caller without a staff record).
pub async fn my_group_ids(conn: &mut AsyncPgConnection, caller: &Caller, today: NaiveDate) -> Result<Vec<i64>> {
    let Some(staff_id) = caller.staff_id else { return Ok(Vec::new()) };
    let mut ids: Vec<i64> = my_groups(conn, staff_id, today).await?.into_iter().map(|g| g.group_id).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Access of `caller` to a student in group `student_group_id` today; admins need no query.
pub async fn student_access_of(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_group_id: Option<i64>,
) -> Result<StudentAccess> {
    if caller.is_admin {
        return Ok(StudentAccess::Full);
    }
    let ids = my_group_ids(conn, caller, crate::time::business_today()).await?;
    Ok(student_access(caller, student_group_id, &ids))
}

/// The students linked to the guardian record of `account_id` (`users.guardians.account_id`
/// → `users.student_guardians`), active ones only, sorted. Empty for an account without a
/// guardian record: such an account is nobody's parent. This is the whole scope of a
/// guardian caller (docs/access.md): every other student is `NotFound` to them.
pub async fn guardian_children(conn: &mut AsyncPgConnection, account_id: i64) -> Result<Vec<i64>> {
    use users::{guardians as g, student_guardians as sg, students as st};
    let mut ids: Vec<i64> = sg::table
        .inner_join(g::table)
        .inner_join(st::table)
        .filter(g::account_id.eq(account_id))
        .filter(st::deactivated_at.is_null())
        .select(sg::student_id)
        .load(conn)
        .await?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Whether `caller` is a guardian of `student_id` (see [`guardian_children`]).
pub async fn is_guardian_of(conn: &mut AsyncPgConnection, caller: &Caller, student_id: i64) -> Result<bool> {
    let Some(account_id) = caller.account_id else { return Ok(false) };
    Ok(guardian_children(conn, account_id).await?.contains(&student_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardian_access_follows_any_child() {
        let teacher = Caller::staff(1);
        assert_eq!(guardian_access(&teacher, &[Some(5), Some(3)], &[3]), StudentAccess::Full);
        assert_eq!(guardian_access(&teacher, &[Some(5), None], &[3]), StudentAccess::Limited);
        assert_eq!(guardian_access(&teacher, &[], &[3]), StudentAccess::Limited);
        assert_eq!(guardian_access(&Caller::ADMIN, &[], &[]), StudentAccess::Full);
    }

    #[test]
    fn full_access_for_admin_or_own_group_only() {
        let teacher = Caller::staff(1);
        assert_eq!(student_access(&Caller::ADMIN, None, &[]), StudentAccess::Full);
        assert_eq!(student_access(&Caller::ADMIN, Some(9), &[]), StudentAccess::Full);
        assert_eq!(student_access(&teacher, Some(3), &[3, 4]), StudentAccess::Full);
        assert_eq!(student_access(&teacher, Some(5), &[3, 4]), StudentAccess::Limited);
        // A pupil without a group is no staff member's pupil.
        assert_eq!(student_access(&teacher, None, &[3, 4]), StudentAccess::Limited);
        let nobody = Caller { account_id: None, staff_id: None, is_admin: false };
        assert_eq!(student_access(&nobody, Some(3), &[]), StudentAccess::Limited);
    }
}
