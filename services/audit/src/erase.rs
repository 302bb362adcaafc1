//! Erasure of a student (GDPR Art. 17), in one transaction:
//!
//! 1. lock the student row (a concurrent scan or edit waits, then finds nothing);
//! 2. count what will go, per kind, for the record;
//! 3. write the `gdpr_request` row of `audit.data_deletions` (no FK: it outlives the student);
//! 4. delete the person, which cascades to the student and everything hanging off it
//!    (visits, attendance, receipts, presence events, consents, guardian links, feedback,
//!    enrollments, pickup data), then the guardians left without a child and without an
//!    account of their own. The pupil's RFID card stays school property, unassigned.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::{Error, Result};
use phoenix_db::schema::audit::data_deletions;
use phoenix_db::schema::users::{guardians, persons, students};

use crate::trail::DeletionRow;

/// Rows per kind that hang off one student, counted before the erasure.
const COUNTS_SQL: &str = r#"
SELECT jsonb_build_object(
    'visits', (SELECT count(*) FROM active.visits WHERE student_id = $1),
    'attendance', (SELECT count(*) FROM active.attendance WHERE student_id = $1),
    'scan_receipts', (SELECT count(*) FROM active.scan_receipts WHERE student_id = $1),
    'presence_events', (SELECT count(*) FROM active.presence_events WHERE student_id = $1),
    'scheduled_checkouts', (SELECT count(*) FROM active.scheduled_checkouts WHERE student_id = $1),
    'privacy_consents', (SELECT count(*) FROM users.privacy_consents WHERE student_id = $1),
    'guardian_links', (SELECT count(*) FROM users.student_guardians WHERE student_id = $1),
    'feedback_entries', (SELECT count(*) FROM feedback.entries WHERE student_id = $1),
    'feedback_comments', (SELECT count(*) FROM feedback.comments c JOIN feedback.entries e ON e.id = c.entry_id
                          WHERE e.student_id = $1),
    'enrollments', (SELECT count(*) FROM activities.enrollments WHERE student_id = $1),
    'pickup_schedules', (SELECT count(*) FROM schedule.student_pickup_schedules WHERE student_id = $1),
    'pickup_exceptions', (SELECT count(*) FROM schedule.student_pickup_exceptions WHERE student_id = $1),
    'pickup_notes', (SELECT count(*) FROM schedule.student_pickup_notes WHERE student_id = $1)
) AS counts
"#;

/// Guardians linked to this student only, without an account: their data exists for this
/// child alone and goes with it.
const ORPHANED_GUARDIANS_SQL: &str = r#"
SELECT g.id
FROM users.guardians g
JOIN users.student_guardians sg ON sg.guardian_id = g.id AND sg.student_id = $1
WHERE g.account_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM users.student_guardians o WHERE o.guardian_id = g.id AND o.student_id <> $1)
ORDER BY g.id
"#;

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    counts: serde_json::Value,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Erases `student`, recording `reason` and `by` (`account:<id>` or `system`).
pub async fn erase_student(
    conn: &mut AsyncPgConnection,
    student: i64,
    reason: String,
    by: String,
) -> Result<DeletionRow> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let person: i64 = students::table
            .find(student)
            .select(students::person_id)
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| Error::not_found("student", student))?;
        let Counts { mut counts } = diesel::sql_query(COUNTS_SQL).bind::<BigInt, _>(student).get_result(conn).await?;
        let orphans: Vec<i64> = diesel::sql_query(ORPHANED_GUARDIANS_SQL)
            .bind::<BigInt, _>(student)
            .load::<Id>(conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        counts["guardians"] = orphans.len().into();
        counts["person"] = 1.into();
        counts["student"] = 1.into();
        let total: i64 = counts.as_object().map(|o| o.values().filter_map(|v| v.as_i64()).sum()).unwrap_or(0);

        let record: DeletionRow = diesel::insert_into(data_deletions::table)
            .values((
                data_deletions::entity_type.eq("student"),
                data_deletions::entity_id.eq(student),
                data_deletions::deletion_type.eq("gdpr_request"),
                data_deletions::records_deleted.eq(i32::try_from(total).unwrap_or(i32::MAX)),
                data_deletions::reason.eq(Some(reason)),
                data_deletions::deleted_by.eq(by),
                data_deletions::metadata.eq(counts),
            ))
            .returning(DeletionRow::as_returning())
            .get_result(conn)
            .await?;
        diesel::delete(persons::table.find(person)).execute(conn).await?;
        diesel::delete(guardians::table.filter(guardians::id.eq_any(&orphans))).execute(conn).await?;
        Ok(record)
    })
    .await
}
