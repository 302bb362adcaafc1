//! A plan → rows written, inside the caller's transaction (a failing write rolls back the
//! whole import with it). Constraint violations that a concurrent change can still cause are
//! named through `crate::error`, as for the single-record RPCs.

use diesel_async::AsyncPgConnection;
use phoenix_common::Result;

use super::plan::{GuardianRef, Plan, StudentRef};
use crate::error;
use crate::repo::{cards, guardians, persons, students};

/// Writes `plan`.
pub async fn apply(conn: &mut AsyncPgConnection, plan: &Plan) -> Result<()> {
    let mut new_students = Vec::with_capacity(plan.new_students.len());
    for s in &plan.new_students {
        let person = persons::insert_person(conn, &s.person).await.map_err(|e| error::person_write(e, "student"))?;
        let row = students::insert_student(conn, person.id, &s.student).await.map_err(error::student_write)?;
        new_students.push((row.id, person.id));
    }
    let student = |r: &StudentRef| match *r {
        StudentRef::Existing { student_id, person_id } => (student_id, person_id),
        StudentRef::New(i) => new_students[i],
    };
    for u in &plan.student_updates {
        if let Some(p) = &u.person {
            persons::write_person(conn, u.person_id, p).await.map_err(|e| error::person_write(e, "student"))?;
        }
        if let Some(s) = &u.student {
            students::write_student(conn, u.student_id, s).await.map_err(error::student_write)?;
        }
    }
    for tag in &plan.new_cards {
        cards::ensure_card(conn, tag).await?;
    }
    for (s, tag) in &plan.card_assignments {
        let (_, person_id) = student(s);
        cards::set_person_tag(conn, person_id, Some(tag)).await.map_err(error::card_write)?;
    }

    let mut new_guardians = Vec::with_capacity(plan.new_guardians.len());
    for g in &plan.new_guardians {
        new_guardians.push(guardians::insert_guardian(conn, g).await.map_err(error::guardian_write)?.id);
    }
    let guardian = |r: &GuardianRef| match *r {
        GuardianRef::Existing(id) => id,
        GuardianRef::New(i) => new_guardians[i],
    };
    for (id, g) in &plan.guardian_updates {
        guardians::write_guardian(conn, *id, g).await.map_err(error::guardian_write)?;
    }
    for (g, phone) in &plan.new_phones {
        guardians::insert_phone(conn, guardian(g), phone).await.map_err(error::phone_write)?;
    }
    for (s, g, link) in &plan.new_links {
        let (student_id, _) = student(s);
        let guardian_id = guardian(g);
        guardians::insert_link(conn, student_id, guardian_id, link)
            .await
            .map_err(|e| error::link_write(e, student_id, guardian_id))?;
    }
    for (id, link) in &plan.link_updates {
        guardians::write_link(conn, *id, link).await.map_err(|e| error::link_write(e, 0, 0))?;
    }
    Ok(())
}
