//! The import's queries: one bulk read per table for the plan (a school's whole roster is
//! a few thousand rows), the lock that runs imports one at a time, and the audit row.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::audit::data_imports;
use phoenix_db::schema::education;
use phoenix_db::schema::users::{
    guardian_phone_numbers as ph, guardians, persons, rfid_cards, student_guardians as sg, students,
};

use super::{Counts, Format, Via};
use crate::repo::Person;
use crate::repo::guardians::{GuardianRow, LinkRow, PhoneRow};
use crate::repo::students::StudentRow;

/// Holds the import lock until the transaction ends: a second import waits, so two imports
/// never plan against the same state.
pub async fn lock_imports(conn: &mut AsyncPgConnection) -> Result<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('phoenix.users.import')::bigint)").execute(conn).await?;
    Ok(())
}

/// Every active (not deactivated) pupil with their person.
pub async fn active_students(conn: &mut AsyncPgConnection) -> Result<Vec<(StudentRow, Person)>> {
    Ok(students::table
        .inner_join(persons::table)
        .filter(students::deactivated_at.is_null())
        .order(students::id)
        .select((StudentRow::as_select(), Person::as_select()))
        .load(conn)
        .await?)
}

/// Every education group: (id, name).
pub async fn groups(conn: &mut AsyncPgConnection) -> Result<Vec<(i64, String)>> {
    Ok(education::groups::table.select((education::groups::id, education::groups::name)).load(conn).await?)
}

/// The cards among `tags`: (tag, active, holder's person id).
pub async fn cards(conn: &mut AsyncPgConnection, tags: &[String]) -> Result<Vec<(String, bool, Option<i64>)>> {
    Ok(rfid_cards::table
        .left_join(persons::table)
        .filter(rfid_cards::id.eq_any(tags))
        .select((rfid_cards::id, rfid_cards::active, persons::id.nullable()))
        .load(conn)
        .await?)
}

/// Every guardian.
pub async fn all_guardians(conn: &mut AsyncPgConnection) -> Result<Vec<GuardianRow>> {
    Ok(guardians::table.order(guardians::id).select(GuardianRow::as_select()).load(conn).await?)
}

/// Every guardian phone number.
pub async fn all_phones(conn: &mut AsyncPgConnection) -> Result<Vec<PhoneRow>> {
    Ok(ph::table.order(ph::id).select(PhoneRow::as_select()).load(conn).await?)
}

/// Every pupil–guardian link.
pub async fn all_links(conn: &mut AsyncPgConnection) -> Result<Vec<LinkRow>> {
    Ok(sg::table.order(sg::id).select(LinkRow::as_select()).load(conn).await?)
}

/// What the audit row records: no row contents, only counts, the name and hash of the file.
#[derive(Debug)]
pub struct ImportRecord<'a> {
    pub filename: &'a str,
    pub counts: Counts,
    pub format: Format,
    pub via: Via,
    pub imported_by: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub file_sha256: &'a [u8; 32],
}

/// Writes the `audit.data_imports` row of a committed import; its id.
pub async fn insert_audit(conn: &mut AsyncPgConnection, r: &ImportRecord<'_>) -> Result<i64> {
    let c = r.counts;
    let metadata = serde_json::json!({
        "format": r.format.name(),
        "via": match r.via { Via::Rpc => "rpc", Via::Cli => "cli" },
        "counts": {
            "rows": c.rows,
            "students_created": c.students_created,
            "students_updated": c.students_updated,
            "students_unchanged": c.students_unchanged,
            "guardians_created": c.guardians_created,
            "guardians_updated": c.guardians_updated,
            "links_created": c.links_created,
            "links_updated": c.links_updated,
            "phone_numbers_created": c.phone_numbers_created,
            "cards_created": c.cards_created,
            "cards_assigned": c.cards_assigned,
        },
    });
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(diesel::insert_into(data_imports::table)
        .values((
            data_imports::entity_type.eq("student"),
            data_imports::filename.eq(r.filename),
            data_imports::total_rows.eq(count(c.rows)),
            data_imports::created_count.eq(count(c.students_created)),
            data_imports::updated_count.eq(count(c.students_updated)),
            data_imports::skipped_count.eq(count(c.students_unchanged)),
            data_imports::error_count.eq(0),
            data_imports::warning_count.eq(0),
            data_imports::dry_run.eq(false),
            data_imports::imported_by.eq(r.imported_by),
            data_imports::started_at.eq(r.started_at),
            data_imports::completed_at.eq(Utc::now().max(r.started_at)),
            data_imports::metadata.eq(metadata),
            data_imports::file_sha256.eq(Some(r.file_sha256.to_vec())),
        ))
        .returning(data_imports::id)
        .get_result(conn)
        .await?)
}
