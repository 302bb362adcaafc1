//! Resource rules of the users domain over [`Caller`]: whose student, whose guardian. The
//! rules themselves live in `phoenix_common::access`; handlers call these, nothing else
//! decides access. What a caller may *see* of a record is [`crate::redact`]'s.

use diesel_async::AsyncPgConnection;
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};

use crate::repo::guardians;
use crate::repo::students::{self, StudentRow};

/// The student modify rule (docs/access.md): full access, i.e. admin, or the
/// student's group is one of the caller's groups. Students without a group: admins only.
pub async fn require_full_access(conn: &mut AsyncPgConnection, caller: &Caller, student: &StudentRow) -> Result<()> {
    match access::student_access_of(conn, caller, student.group_id).await? {
        StudentAccess::Full => Ok(()),
        StudentAccess::Limited => Err(Error::PermissionDenied(match student.group_id {
            None => format!("student {} has no group: only administrators can change them", student.id),
            Some(_) => format!("student {} is not in one of your groups (led or substituted today)", student.id),
        })),
    }
}

/// Locks student `student_id` and checks full access; `missing` is the error when there is
/// no such student.
pub async fn student_for_write(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    missing: impl FnOnce() -> Error,
) -> Result<StudentRow> {
    let student = students::lock_student(conn, student_id).await?.ok_or_else(missing)?;
    require_full_access(conn, caller, &student).await?;
    Ok(student)
}

/// Changing a person who is a student is changing the student.
pub async fn require_person_modifiable(conn: &mut AsyncPgConnection, caller: &Caller, person_id: i64) -> Result<()> {
    match students::student_of_person(conn, person_id).await? {
        Some(student) => require_full_access(conn, caller, &student).await,
        None => Ok(()),
    }
}

/// Access of `caller` to the student `person_id` is, `None` if the person is no student.
pub async fn person_access(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    person_id: i64,
) -> Result<Option<StudentAccess>> {
    match students::student_of_person(conn, person_id).await? {
        Some(s) => Ok(Some(access::student_access_of(conn, caller, s.group_id).await?)),
        None => Ok(None),
    }
}

/// The guardian rule (docs/access.md): admin, or one of the guardian's children is in one
/// of the caller's groups.
async fn guardian_access_of(conn: &mut AsyncPgConnection, caller: &Caller, guardian_id: i64) -> Result<StudentAccess> {
    if caller.is_admin {
        return Ok(StudentAccess::Full);
    }
    let children = guardians::children_groups(conn, &[guardian_id]).await?.remove(&guardian_id).unwrap_or_default();
    let mine = access::my_group_ids(conn, caller, business_today()).await?;
    Ok(access::guardian_access(caller, &children, &mine))
}

/// Changing a guardian needs full access to them.
pub async fn require_guardian_access(conn: &mut AsyncPgConnection, caller: &Caller, guardian_id: i64) -> Result<()> {
    match guardian_access_of(conn, caller, guardian_id).await? {
        StudentAccess::Full => Ok(()),
        StudentAccess::Limited => Err(Error::PermissionDenied(format!(
            "guardian {guardian_id} has no child in one of your groups; only administrators can change them"
        ))),
    }
}

/// Creating a guardian: administrators, and staff with groups of their own.
pub async fn require_guardian_creator(conn: &mut AsyncPgConnection, caller: &Caller) -> Result<()> {
    if !caller.is_admin && access::my_group_ids(conn, caller, business_today()).await?.is_empty() {
        return Err(Error::PermissionDenied(
            "only administrators and staff with groups of their own may create guardians".into(),
        ));
    }
    Ok(())
}

/// A guardian's scope (docs/access.md): `student_id` must be one of the children of the
/// calling account's guardian record. Any other id — another pupil's or none at all — is
/// the same `NotFound`, so a guardian cannot learn which ids exist.
pub async fn require_child(conn: &mut AsyncPgConnection, caller: &Caller, student_id: i64) -> Result<()> {
    if access::is_guardian_of(conn, caller, student_id).await? {
        Ok(())
    } else {
        Err(Error::not_found("student", student_id))
    }
}

/// Attaching a login to a person is an administrative act: an account linked to a person
/// takes that person's identity in every resource rule (a teacher's groups, a staff member's
/// sessions). `what` names the change for the error.
pub fn require_login_admin(caller: &Caller, what: &str) -> Result<()> {
    if caller.is_admin { Ok(()) } else { Err(Error::PermissionDenied(format!("only administrators can {what}"))) }
}

/// Reading the links, pickup data or guardians of student `student_id` needs full access to
/// them; a student that does not exist is `missing` (staff may know which students exist).
pub async fn require_student_readable(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    missing: impl FnOnce() -> Error,
) -> Result<StudentRow> {
    let student = students::find_student(conn, student_id).await?.ok_or_else(missing)?.student;
    require_full_access(conn, caller, &student).await?;
    Ok(student)
}
