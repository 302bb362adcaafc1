//! Staff members beyond one query: creating one with their person and teacher record (also
//! the demo school's code path), and a masked update that adds, changes or removes the
//! teacher record.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::validate::Update;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use crate::error;
use crate::repo::staff as rows;
use crate::repo::{StaffRecord, TeacherFields, persons};
use crate::validate::{self, NewStaff, StaffPerson, StaffState};

/// Creates a staff member (with a new person and teacher record as asked) in one transaction.
pub async fn create_staff(conn: &mut AsyncPgConnection, new: NewStaff) -> Result<StaffRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        let person_id = match &new.person {
            StaffPerson::Existing(id) => {
                persons::find_person(c, *id)
                    .await?
                    .ok_or_else(|| Error::invalid("staff.person_id", format!("person {id} does not exist")))?
                    .id
            }
            StaffPerson::New(fields) => {
                persons::insert_person(c, fields).await.map_err(|e| error::person_write(e, "staff"))?.id
            }
        };
        let row = rows::insert_staff(c, person_id, new.notes.as_deref())
            .await
            .map_err(|e| error::staff_insert(e, person_id))?;
        if let Some(t) = &new.teacher {
            rows::insert_teacher(c, row.id, t).await?;
        }
        rows::find_staff(c, row.id).await?.ok_or_else(|| Error::not_found("staff member", row.id))
    })
    .await
}

/// Applies a masked staff update in one transaction. Removing the teacher record of a
/// teacher who still leads groups is refused: it would silently drop the group links.
pub(crate) async fn update_staff(conn: &mut AsyncPgConnection, update: Update<pb::Staff>) -> Result<StaffRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        let id = update.id;
        if !rows::lock_staff(c, id).await? {
            return Err(Error::not_found("staff member", id));
        }
        let stored = rows::find_staff(c, id).await?.ok_or_else(|| Error::not_found("staff member", id))?;
        let before = StaffState {
            notes: stored.staff.staff_notes.clone(),
            teacher: stored.teacher.as_ref().map(|t| TeacherFields {
                specialization: t.specialization.clone(),
                role: t.role.clone(),
                qualifications: t.qualifications.clone(),
            }),
        };
        let after = validate::apply_staff(&update, before.clone());
        if after.notes != before.notes {
            rows::write_staff_notes(c, id, after.notes.as_deref()).await?;
        }
        match (&stored.teacher, &after.teacher) {
            (Some(t), None) => {
                if rows::groups_led(c, t.id).await? > 0 {
                    return Err(Error::precondition(
                        "TEACHER_LEADS_GROUPS",
                        format!("staff member {id} leads groups; remove them as group teacher first"),
                    ));
                }
                rows::delete_teacher(c, id).await?;
            }
            (None, Some(f)) => {
                rows::insert_teacher(c, id, f).await?;
            }
            (Some(_), Some(f)) if Some(f) != before.teacher.as_ref() => {
                rows::write_teacher(c, id, f).await?;
            }
            _ => {}
        }
        rows::find_staff(c, id).await?.ok_or_else(|| Error::not_found("staff member", id))
    })
    .await
}
