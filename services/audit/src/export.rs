//! The subject-access export (GDPR Art. 15): everything stored about one student.
//!
//! One SQL statement builds the whole document, so it is one consistent snapshot; sections
//! are the rows as stored (`to_jsonb`), nothing filtered, nothing added.

use diesel::sql_types::{BigInt, Jsonb, Nullable};
use diesel::{QueryableByName, prelude::*};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::audit::data_exports;

/// The document, one key per section (arrays, or objects for `person`/`student`/`card`).
const EXPORT_SQL: &str = r#"
SELECT jsonb_build_object(
    'student', to_jsonb(s),
    'person', (SELECT to_jsonb(p) FROM users.persons p WHERE p.id = s.person_id),
    'card', (SELECT to_jsonb(c) FROM users.persons p JOIN users.rfid_cards c ON c.id = p.tag_id
             WHERE p.id = s.person_id),
    'guardians', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'relationship', to_jsonb(sg),
                        'guardian', to_jsonb(g),
                        'phone_numbers', (SELECT coalesce(jsonb_agg(to_jsonb(ph) ORDER BY ph.id), '[]')
                                          FROM users.guardian_phone_numbers ph WHERE ph.guardian_id = g.id))
                    ORDER BY sg.id), '[]')
                  FROM users.student_guardians sg JOIN users.guardians g ON g.id = sg.guardian_id
                  WHERE sg.student_id = s.id),
    'privacy_consents', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                         FROM users.privacy_consents x WHERE x.student_id = s.id),
    'visits', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
               FROM active.visits x WHERE x.student_id = s.id),
    'attendance', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                   FROM active.attendance x WHERE x.student_id = s.id),
    'scheduled_checkouts', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                            FROM active.scheduled_checkouts x WHERE x.student_id = s.id),
    'scan_receipts', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                      FROM active.scan_receipts x WHERE x.student_id = s.id),
    'feedback', (SELECT coalesce(jsonb_agg(to_jsonb(e) || jsonb_build_object('comments',
                        (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]')
                         FROM feedback.comments c WHERE c.entry_id = e.id)) ORDER BY e.id), '[]')
                 FROM feedback.entries e WHERE e.student_id = s.id),
    'enrollments', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                    FROM activities.enrollments x WHERE x.student_id = s.id),
    'pickup_schedules', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                         FROM schedule.student_pickup_schedules x WHERE x.student_id = s.id),
    'pickup_exceptions', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                          FROM schedule.student_pickup_exceptions x WHERE x.student_id = s.id),
    'pickup_notes', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id), '[]')
                     FROM schedule.student_pickup_notes x WHERE x.student_id = s.id)
) AS document
FROM users.students s
WHERE s.id = $1
"#;

#[derive(QueryableByName)]
struct Document {
    #[diesel(sql_type = Nullable<Jsonb>)]
    document: Option<serde_json::Value>,
}

/// The export of `student`, or `None` when there is no such student.
pub async fn document(conn: &mut AsyncPgConnection, student: i64) -> QueryResult<Option<serde_json::Value>> {
    let rows: Vec<Document> = diesel::sql_query(EXPORT_SQL).bind::<BigInt, _>(student).load(conn).await?;
    Ok(rows.into_iter().next().and_then(|r| r.document))
}

/// Records per section of `document` (arrays by length, objects as 1, null as 0).
pub fn section_counts(document: &serde_json::Value) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = document
        .as_object()
        .map(|sections| {
            sections
                .iter()
                .map(|(name, v)| {
                    let n = match v {
                        serde_json::Value::Array(a) => a.len(),
                        serde_json::Value::Null => 0,
                        _ => 1,
                    };
                    (name.clone(), n.into())
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::Value::Object(counts)
}

/// A row of `audit.data_exports`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = data_exports, check_for_backend(diesel::pg::Pg))]
pub struct ExportRow {
    pub id: i64,
    pub subject_id: i64,
    pub exported_by: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    pub sections: serde_json::Value,
}

/// Records that `by` exported `student`'s data.
pub async fn record(
    conn: &mut AsyncPgConnection,
    student: i64,
    by: &str,
    sections: serde_json::Value,
) -> QueryResult<ExportRow> {
    diesel::insert_into(data_exports::table)
        .values((
            data_exports::subject_type.eq("student"),
            data_exports::subject_id.eq(student),
            data_exports::exported_by.eq(by),
            data_exports::sections.eq(sections),
        ))
        .returning(ExportRow::as_returning())
        .get_result(conn)
        .await
}
