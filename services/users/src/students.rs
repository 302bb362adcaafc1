//! Students beyond one query: creating one with their person and card (also the demo
//! school's code path), (de)activation, and the redacted view a caller gets.

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use crate::access::require_full_access;
use crate::repo::students::{self as rows, Presence};
use crate::repo::{StudentRecord, persons};
use crate::validate::NewStudent;
use crate::{cards, convert, error, redact};

/// Creates a student with their person (and tag) in one transaction.
pub async fn create_student(conn: &mut AsyncPgConnection, caller: Caller, new: NewStudent) -> Result<StudentRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        rows::check_group(c, new.student.group_id).await?;
        let person =
            persons::insert_person(c, &new.person.fields).await.map_err(|e| error::person_write(e, "student"))?;
        let row = rows::insert_student(c, person.id, &new.student).await.map_err(error::student_write)?;
        if let Some(tag) = &new.person.tag {
            cards::assign_tag(c, &caller, &person, tag).await?;
        }
        rows::find_student(c, row.id).await?.ok_or_else(|| Error::not_found("student", row.id))
    })
    .await
}

/// Deactivates (`active` false) or reactivates student `id` in one transaction; a student
/// who left gives their card back to the pool.
pub(crate) async fn set_active(
    conn: &mut AsyncPgConnection,
    caller: Caller,
    id: i64,
    active: bool,
) -> Result<StudentRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        let stored = rows::lock_student(c, id).await?.ok_or_else(|| Error::not_found("student", id))?;
        require_full_access(c, &caller, &stored).await?;
        match (active, stored.deactivated_at.is_some()) {
            (false, true) => {
                return Err(Error::precondition("STUDENT_INACTIVE", format!("student {id} is already deactivated")));
            }
            (true, false) => {
                return Err(Error::precondition("STUDENT_ACTIVE", format!("student {id} is active")));
            }
            (false, false) => {
                rows::set_deactivated(c, id, Some(Utc::now())).await?;
                // A student who left holds no card: it goes back to the pool.
                crate::repo::cards::set_person_tag(c, stored.person_id, None).await?;
            }
            (true, true) => rows::set_deactivated(c, id, None).await?,
        }
        rows::find_student(c, id).await?.ok_or_else(|| Error::not_found("student", id))
    })
    .await
}

/// A student as `caller` may see it: full record, then redacted to the caller's access.
pub(crate) async fn view(conn: &mut AsyncPgConnection, caller: &Caller, record: StudentRecord) -> Result<pb::Student> {
    let access = access::student_access_of(conn, caller, record.student.group_id).await?;
    let mut views = views(conn, vec![(record, access)]).await?;
    views.pop().ok_or_else(|| Error::not_found("student", "view"))
}

/// Converts and redacts `records`; guardian contacts are loaded only for full-access rows.
pub(crate) async fn views(
    conn: &mut AsyncPgConnection,
    records: Vec<(StudentRecord, StudentAccess)>,
) -> Result<Vec<pb::Student>> {
    let full_ids: Vec<i64> =
        records.iter().filter(|(_, a)| *a == StudentAccess::Full).map(|(r, _)| r.student.id).collect();
    let mut contacts = rows::guardian_contacts(conn, &full_ids).await?;
    let mut group_ids: Vec<i64> = records.iter().filter_map(|(r, _)| r.student.group_id).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let supervisors = rows::group_supervisors(conn, &group_ids).await?;
    let ids: Vec<i64> = records.iter().map(|(r, _)| r.student.id).collect();
    let mut presences = rows::presences(conn, &ids, business_today()).await?;
    Ok(records
        .into_iter()
        .map(|(r, a)| {
            let c = contacts.remove(&r.student.id).unwrap_or_default();
            let s = r.student.group_id.and_then(|g| supervisors.get(&g).cloned()).unwrap_or_default();
            let p = presences.remove(&r.student.id).unwrap_or(Presence::Absent);
            redact::student(convert::student(r, c, s, p), a)
        })
        .collect())
}
