//! Who may see and change which pupils' presence data, on top of each RPC's permission
//! (reference §3.5, with its [Q]s fixed):
//!
//! - Admins: everything.
//! - Everyone else needs a staff record (service clients and guardian accounts do not see
//!   visits or attendance here).
//! - Full access to a pupil: the pupil's education group is one of the caller's groups today
//!   (`phoenix_common::access`). Attendance, history and the exact whereabouts need it; so
//!   does a manual check-in (the original's rule: "teacher of the student's group").
//! - Supervision: the sessions a staff member currently supervises, plus the sessions
//!   combined with one of them in a running combined group. A supervisor sees and ends the
//!   visits of those sessions (the original claimed this rule for check-out but only checked
//!   "is staff").
//!
//! Denials name the rule, never a pupil's name.

use chrono::NaiveDate;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::{Error, Result};

/// `PermissionDenied` unless the caller is an admin or has a staff record.
pub fn require_staff(caller: &Caller, doing: &str) -> Result<()> {
    if caller.is_admin || caller.staff_id.is_some() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "only staff members and admins can {doing}; this account has no staff record"
        )))
    }
}

/// The caller's staff id, or `PermissionDenied` (admins without a staff record included:
/// the action is done *as* a staff member).
pub fn staff_id(caller: &Caller, doing: &str) -> Result<i64> {
    caller.staff_id.ok_or_else(|| {
        Error::PermissionDenied(format!("only staff members can {doing}; this account has no staff record"))
    })
}

/// Whose supervision `LeaveSession` ends: the staff member named (someone else's needs
/// `groups:assign`, `may_assign`), or the caller's own.
pub fn leave_target(caller: &Caller, named: Option<i64>, may_assign: bool) -> Result<i64> {
    match named {
        Some(staff) if Some(staff) != caller.staff_id => {
            if !may_assign {
                return Err(Error::PermissionDenied(
                    "missing permission groups:assign: ending another staff member's supervision needs it".into(),
                ));
            }
            Ok(staff)
        }
        _ => staff_id(caller, "leave sessions"),
    }
}

/// The permission that lets a caller end (or force-replace) sessions they do not supervise.
pub const SESSIONS_MANAGE: &str = "sessions:manage";

/// Who may end a running session: its current supervisors, or callers holding
/// [`SESSIONS_MANAGE`] (admins through `*:*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionControl {
    /// The caller's staff id, when they have a staff record.
    pub staff_id: Option<i64>,
    /// Holds [`SESSIONS_MANAGE`].
    pub may_manage: bool,
}

impl SessionControl {
    /// The process itself (demo seeding, jobs): manages every session.
    pub const SYSTEM: SessionControl = SessionControl { staff_id: None, may_manage: true };

    /// `PermissionDenied` naming `sessions:manage` unless the caller may manage sessions or
    /// `supervises` (a current supervisor row of the session).
    pub fn require(&self, session: i64, supervises: bool, doing: &str) -> Result<()> {
        if self.may_manage || supervises {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "missing permission {SESSIONS_MANAGE}: only a current supervisor of session {session} can {doing} it"
            )))
        }
    }
}

/// What a caller may see of pupils: all, or the pupils of some groups and the visits of
/// some sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An admin.
    All,
    /// A staff member.
    Staff {
        /// "My groups" today.
        groups: Vec<i64>,
        /// Running sessions supervised (directly or through a running combination).
        sessions: Vec<i64>,
    },
}

impl Scope {
    /// The scope of `caller` on business day `today`; `PermissionDenied` for callers that
    /// are neither admin nor staff.
    pub async fn of(conn: &mut AsyncPgConnection, caller: &Caller, today: NaiveDate, doing: &str) -> Result<Self> {
        require_staff(caller, doing)?;
        if caller.is_admin {
            return Ok(Scope::All);
        }
        let groups = access::my_group_ids(conn, caller, today).await?;
        let sessions = match caller.staff_id {
            Some(staff) => supervised_sessions(conn, staff).await?,
            None => Vec::new(),
        };
        Ok(Scope::Staff { groups, sessions })
    }

    /// Full access to a pupil of education group `group`.
    pub fn full_access(&self, group: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::Staff { groups, .. } => group.is_some_and(|g| groups.contains(&g)),
        }
    }

    /// Whether the caller supervises session `session` (admins: every session).
    pub fn supervises(&self, session: i64) -> bool {
        match self {
            Scope::All => true,
            Scope::Staff { sessions, .. } => sessions.contains(&session),
        }
    }

    /// May see (and end) a visit of a pupil of `group` in `session`.
    pub fn sees_visit(&self, group: Option<i64>, session: i64) -> bool {
        self.full_access(group) || self.supervises(session)
    }

    /// The access level in `phoenix_common` terms.
    pub fn student_access(&self, group: Option<i64>) -> StudentAccess {
        if self.full_access(group) { StudentAccess::Full } else { StudentAccess::Limited }
    }
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Running sessions staff member `staff` supervises now, directly or because a running
/// combined group joins them with one they supervise.
pub async fn supervised_sessions(conn: &mut AsyncPgConnection, staff: i64) -> Result<Vec<i64>> {
    let rows: Vec<Id> = diesel::sql_query(
        "WITH mine AS ( \
             SELECT s.active_group_id AS id FROM active.group_supervisors s \
             JOIN active.groups g ON g.id = s.active_group_id \
             WHERE s.staff_id = $1 AND s.end_date IS NULL AND g.end_time IS NULL) \
         SELECT id FROM mine \
         UNION \
         SELECT m2.active_group_id FROM active.group_mappings m1 \
         JOIN active.combined_groups c ON c.id = m1.combined_group_id AND c.end_time IS NULL \
         JOIN active.group_mappings m2 ON m2.combined_group_id = c.id \
         JOIN active.groups g2 ON g2.id = m2.active_group_id AND g2.end_time IS NULL \
         WHERE m1.active_group_id IN (SELECT id FROM mine) \
         ORDER BY 1",
    )
    .bind::<BigInt, _>(staff)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_see_their_groups_and_supervised_sessions_only() {
        let scope = Scope::Staff { groups: vec![3], sessions: vec![10] };
        assert!(scope.full_access(Some(3)));
        assert!(!scope.full_access(Some(4)));
        assert!(!scope.full_access(None), "a pupil without a group is an admin matter");
        assert!(scope.sees_visit(Some(4), 10), "supervisor of the session");
        assert!(scope.sees_visit(Some(3), 11), "the pupil's group");
        assert!(!scope.sees_visit(Some(4), 11));
        assert!(Scope::All.sees_visit(None, 1));
    }

    #[test]
    fn sessions_are_ended_by_their_supervisors_or_with_sessions_manage() {
        let staff = SessionControl { staff_id: Some(1), may_manage: false };
        assert!(staff.require(9, true, "end").is_ok());
        let Err(Error::PermissionDenied(m)) = staff.require(9, false, "end") else { panic!("allowed") };
        assert!(m.contains(SESSIONS_MANAGE), "{m}");
        assert!(SessionControl { staff_id: None, may_manage: true }.require(9, false, "end").is_ok());
    }

    #[test]
    fn callers_without_staff_record_are_refused_naming_the_rule() {
        let nobody = Caller { account_id: Some(1), staff_id: None, is_admin: false };
        let Err(Error::PermissionDenied(m)) = require_staff(&nobody, "see visits") else { panic!("allowed") };
        assert!(m.contains("staff"), "{m}");
        assert!(require_staff(&Caller::ADMIN, "x").is_ok());
        assert!(staff_id(&Caller::ADMIN, "claim sessions").is_err(), "an admin without staff record");
        assert_eq!(staff_id(&Caller::staff(7), "x").ok(), Some(7));
    }
}
