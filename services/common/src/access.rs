//! Resource rules over the caller (reference §3.5): "my groups" and student full access.
//!
//! The permission of each RPC is checked before the handler (by the shared auth layer);
//! what is left for handlers is *which* rows and fields a caller may see or change. That
//! is decided here from a small [`Caller`] value, by pure functions that are unit-tested,
//! plus one query for the caller's groups.
//!
//! # The seam
//!
//! [`caller_from_request`] is the ONE place handlers learn who is calling. Until the shared
//! auth layer (JWT verification + auth context in the request extensions) is merged, it
//! reads two test-only metadata headers and otherwise treats the caller as an admin. After
//! the merge, replace its body with a read of the auth context (admin = holds `admin:*` or
//! `*:*`; `staff_id` = the account's linked staff record) and delete the headers.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::{education, users};

use crate::error::{Error, Result};

/// Test-only header (until the auth layer lands): the caller's `users.staff` id.
pub const TEST_STAFF_ID_HEADER: &str = "x-phoenix-test-staff-id";
/// Test-only header (until the auth layer lands): `true` or `false`; whether the caller is an
/// admin. Defaults to `true` when neither header is sent, `false` when only a staff id is.
pub const TEST_ADMIN_HEADER: &str = "x-phoenix-test-admin";

/// Who is calling, as far as resource rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The caller's staff record, if the account is linked to one.
    pub staff_id: Option<i64>,
    /// Holds `admin:*` or `*:*` (reference §3.3: "admin" means the wildcard, not a role name).
    pub is_admin: bool,
}

impl Caller {
    /// An administrator without a staff record (what every request is until auth lands).
    pub const ADMIN: Caller = Caller { staff_id: None, is_admin: true };

    /// A non-admin staff member.
    pub const fn staff(staff_id: i64) -> Self {
        Caller { staff_id: Some(staff_id), is_admin: false }
    }
}

/// THE SEAM: who is calling this request. See the module docs; replace the body with the
/// shared auth context once it exists.
pub fn caller_from_request<T>(request: &tonic::Request<T>) -> Result<Caller> {
    let meta = request.metadata();
    let header = |name: &str| -> Result<Option<String>> {
        meta.get(name)
            .map(|v| v.to_str().map(|s| s.trim().to_owned()))
            .transpose()
            .map_err(|_| Error::Unauthenticated(format!("{name} must be ASCII")))
    };
    let staff_id = match header(TEST_STAFF_ID_HEADER)? {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => return Err(Error::Unauthenticated(format!("{TEST_STAFF_ID_HEADER} must be a positive integer"))),
        },
    };
    let is_admin = match header(TEST_ADMIN_HEADER)?.as_deref() {
        None => staff_id.is_none(),
        Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(Error::Unauthenticated(format!("{TEST_ADMIN_HEADER} must be `true` or `false`"))),
    };
    Ok(Caller { staff_id, is_admin })
}

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

/// The student full-access rule (reference §3.5), pure: admin, or the student's group is one
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

/// Access to a guardian's contact data follows access to their children (reference §1.2
/// "guardian rule"): admin, or one of `children_groups` is among `my_group_ids`. A guardian
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        for (k, v) in headers {
            r.metadata_mut().insert(*k, v.parse().unwrap());
        }
        r
    }

    #[test]
    fn no_headers_is_the_admin_until_auth_lands() {
        assert_eq!(caller_from_request(&request(&[])).unwrap(), Caller::ADMIN);
    }

    #[test]
    fn a_staff_header_alone_is_non_admin_staff() {
        assert_eq!(caller_from_request(&request(&[(TEST_STAFF_ID_HEADER, "7")])).unwrap(), Caller::staff(7));
        let both = request(&[(TEST_STAFF_ID_HEADER, "7"), (TEST_ADMIN_HEADER, "true")]);
        assert_eq!(caller_from_request(&both).unwrap(), Caller { staff_id: Some(7), is_admin: true });
        let not_admin = request(&[(TEST_ADMIN_HEADER, "false")]);
        assert_eq!(caller_from_request(&not_admin).unwrap(), Caller { staff_id: None, is_admin: false });
    }

    #[test]
    fn malformed_headers_are_unauthenticated() {
        for h in [(TEST_STAFF_ID_HEADER, "x"), (TEST_STAFF_ID_HEADER, "0"), (TEST_ADMIN_HEADER, "yes")] {
            assert!(matches!(caller_from_request(&request(&[h])), Err(Error::Unauthenticated(_))), "{h:?}");
        }
    }

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
        let nobody = Caller { staff_id: None, is_admin: false };
        assert_eq!(student_access(&nobody, Some(3), &[]), StudentAccess::Limited);
    }
}
