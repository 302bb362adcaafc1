//! Who may change an activity: an admin (wildcard), its creator,
//! or one of its planned supervisors. `activities:manage` does not bypass it. Handlers call
//! these; nothing else decides access.

use diesel_async::AsyncPgConnection;
use phoenix_common::access::Caller;
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
}
