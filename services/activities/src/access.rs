//! Who may change an activity: an admin (wildcard), its creator,
//! or one of its planned supervisors. `activities:manage` does not bypass it. Who sees
//! enrollments (pupils' personal data): staff only; all of an activity's pupils for its
//! owners, the pupils of their own groups for other staff. Handlers call these; nothing else
//! decides access.

use diesel_async::AsyncPgConnection;
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::{Error, Result};

use crate::repo::{self, ActivityRow};

/// Only staff (or an admin) create activities: the creator becomes an owner.
pub fn require_staff(caller: &Caller) -> Result<()> {
    if caller.is_admin || caller.staff_id.is_some() {
        Ok(())
    } else {
        Err(Error::PermissionDenied("only staff members can create activities".into()))
    }
}

/// The ownership rule over the activity and its planned supervisors' staff ids.
pub fn may_modify(caller: &Caller, activity: &ActivityRow, supervisors: &[i64]) -> Result<()> {
    if caller.is_admin {
        return Ok(());
    }
    if let Some(staff) = caller.staff_id
        && (activity.created_by == Some(staff) || supervisors.contains(&staff))
    {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "you can only modify activities that you created or supervise (activity {})",
        activity.id
    )))
}

/// Locks the activity (serialising every write to it and its sub-resources) and checks the
/// caller may change it: `NotFound`, then `PermissionDenied`.
pub async fn lock_for_change(conn: &mut AsyncPgConnection, caller: &Caller, id: i64) -> Result<ActivityRow> {
    let a = repo::lock_activity(conn, id).await?.ok_or_else(|| Error::not_found("activity", id))?;
    let supervisors = match (caller.is_admin, caller.staff_id) {
        (false, Some(_)) => repo::supervisors_of(conn, id).await?.into_iter().map(|(s, _)| s).collect(),
        _ => Vec::new(),
    };
    may_modify(caller, &a, &supervisors)?;
    Ok(a)
}

/// Whether `caller` owns `activity` (admin, creator or planned supervisor, of `supervisors`).
fn owns(caller: &Caller, activity: &ActivityRow, supervisors: &[i64]) -> bool {
    may_modify(caller, activity, supervisors).is_ok()
}

/// Enrollments are read by staff (and admins) only: guests and guardians hold
/// `activities:read` or nothing, but no staff record.
pub fn require_staff_reader(caller: &Caller) -> Result<()> {
    if caller.is_admin || caller.staff_id.is_some() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "enrollments are pupils' data: only staff members and admins see them; this account has no staff record"
                .into(),
        ))
    }
}

/// Which enrolled pupils of an activity a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolledScope {
    /// Every one (admins, the activity's owners).
    All,
    /// Those in these education groups (the caller's groups today).
    Groups(Vec<i64>),
}

/// The pure rule of [`enrolled_scope`].
fn enrolled_scope_of(
    caller: &Caller,
    activity: &ActivityRow,
    supervisors: &[i64],
    my_groups: Vec<i64>,
) -> Result<EnrolledScope> {
    require_staff_reader(caller)?;
    Ok(if owns(caller, activity, supervisors) { EnrolledScope::All } else { EnrolledScope::Groups(my_groups) })
}

/// What `ListActivityEnrollments` shows `caller` of `activity`.
pub async fn enrolled_scope(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    activity: &ActivityRow,
) -> Result<EnrolledScope> {
    require_staff_reader(caller)?;
    if caller.is_admin {
        return Ok(EnrolledScope::All);
    }
    let supervisors: Vec<i64> = repo::supervisors_of(conn, activity.id).await?.into_iter().map(|(s, _)| s).collect();
    let mine = access::my_group_ids(conn, caller, phoenix_common::time::business_today()).await?;
    enrolled_scope_of(caller, activity, &supervisors, mine)
}

/// Which of a pupil's activities a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityScope {
    /// All of them (admins, staff with the pupil in their groups).
    All,
    /// Those the staff member owns (created or plans to supervise).
    OwnedBy(i64),
}

/// The pure rule of [`activity_scope`].
fn activity_scope_of(caller: &Caller, student_group: Option<i64>, my_groups: &[i64]) -> Result<ActivityScope> {
    require_staff_reader(caller)?;
    match (access::student_access(caller, student_group, my_groups), caller.staff_id) {
        (StudentAccess::Full, _) => Ok(ActivityScope::All),
        (StudentAccess::Limited, Some(staff)) => Ok(ActivityScope::OwnedBy(staff)),
        (StudentAccess::Limited, None) => Err(Error::PermissionDenied("no staff record".into())),
    }
}

/// What `ListStudentEnrollments` shows `caller` of a pupil of `student_group`.
pub async fn activity_scope(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_group: Option<i64>,
) -> Result<ActivityScope> {
    require_staff_reader(caller)?;
    let mine = access::my_group_ids(conn, caller, phoenix_common::time::business_today()).await?;
    activity_scope_of(caller, student_group, &mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(created_by: Option<i64>) -> ActivityRow {
        ActivityRow {
            id: 1,
            name: "Chess".into(),
            max_participants: 10,
            is_open: true,
            category_id: 1,
            planned_room_id: None,
            created_by,
        }
    }

    #[test]
    fn admins_creators_and_supervisors_may_modify() {
        assert!(may_modify(&Caller::ADMIN, &activity(None), &[]).is_ok());
        assert!(may_modify(&Caller::staff(7), &activity(Some(7)), &[]).is_ok());
        assert!(may_modify(&Caller::staff(7), &activity(Some(3)), &[5, 7]).is_ok());
        assert!(may_modify(&Caller::staff(7), &activity(Some(3)), &[5]).is_err());
        let nobody = Caller { account_id: Some(1), staff_id: None, is_admin: false };
        assert!(may_modify(&nobody, &activity(None), &[]).is_err());
        assert!(require_staff(&nobody).is_err());
        assert!(require_staff(&Caller::staff(7)).is_ok());
    }

    #[test]
    fn enrollments_are_for_staff_owners_see_all_others_their_groups() {
        let a = activity(Some(3));
        let nobody = Caller { account_id: Some(1), staff_id: None, is_admin: false };
        assert!(enrolled_scope_of(&nobody, &a, &[], vec![]).is_err(), "a guest or guardian");
        assert_eq!(enrolled_scope_of(&Caller::ADMIN, &a, &[], vec![]).ok(), Some(EnrolledScope::All));
        assert_eq!(enrolled_scope_of(&Caller::staff(3), &a, &[], vec![]).ok(), Some(EnrolledScope::All));
        assert_eq!(enrolled_scope_of(&Caller::staff(5), &a, &[5], vec![]).ok(), Some(EnrolledScope::All));
        assert_eq!(enrolled_scope_of(&Caller::staff(7), &a, &[5], vec![9]).ok(), Some(EnrolledScope::Groups(vec![9])));
    }

    #[test]
    fn a_pupils_activities_are_all_for_their_group_else_the_owned_ones() {
        let nobody = Caller { account_id: Some(1), staff_id: None, is_admin: false };
        assert!(activity_scope_of(&nobody, Some(1), &[]).is_err());
        assert_eq!(activity_scope_of(&Caller::ADMIN, None, &[]).ok(), Some(ActivityScope::All));
        assert_eq!(activity_scope_of(&Caller::staff(7), Some(1), &[1]).ok(), Some(ActivityScope::All));
        assert_eq!(activity_scope_of(&Caller::staff(7), Some(2), &[1]).ok(), Some(ActivityScope::OwnedBy(7)));
        assert_eq!(activity_scope_of(&Caller::staff(7), None, &[1]).ok(), Some(ActivityScope::OwnedBy(7)));
    }
}
