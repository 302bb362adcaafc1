//! `users.privacy_consents` and the pickup tables of schema `schedule` (the users service
//! owns pupils' pickup data).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::schedule::{
    student_pickup_exceptions as ex, student_pickup_notes as notes, student_pickup_schedules as ps,
};
use phoenix_db::schema::users::privacy_consents as pc;

/// A `users.privacy_consents` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = pc, check_for_backend(Pg))]
pub struct ConsentRow {
    /// Primary key.
    pub id: i64,
    /// The student.
    pub student_id: i64,
    /// Policy version.
    pub policy_version: String,
    /// Accepted.
    pub accepted: bool,
    /// First accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// accepted_at + duration_days.
    pub expires_at: Option<DateTime<Utc>>,
    /// Validity.
    pub duration_days: Option<i32>,
    /// Renewal required (at write time).
    pub renewal_required: bool,
    /// Visit retention, 1–31 days.
    pub data_retention_days: i32,
    /// Further details.
    pub details: Option<serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a consent.
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = pc, treat_none_as_null = true)]
pub struct ConsentFields {
    /// The student.
    pub student_id: i64,
    /// Policy version.
    pub policy_version: String,
    /// Accepted.
    pub accepted: bool,
    /// First accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// accepted_at + duration_days.
    pub expires_at: Option<DateTime<Utc>>,
    /// Validity.
    pub duration_days: Option<i32>,
    /// Renewal required.
    pub renewal_required: bool,
    /// Visit retention, 1–31 days.
    pub data_retention_days: i32,
    /// Further details.
    pub details: Option<serde_json::Value>,
}

/// The student's newest accepted consent.
pub async fn newest_accepted_consent(conn: &mut AsyncPgConnection, student_id: i64) -> Result<Option<ConsentRow>> {
    Ok(pc::table
        .filter(pc::student_id.eq(student_id))
        .filter(pc::accepted)
        .order((pc::created_at.desc(), pc::id.desc()))
        .select(ConsentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The student's newest consent of `version`, locked until the transaction ends.
pub async fn lock_consent_of_version(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    version: &str,
) -> Result<Option<ConsentRow>> {
    Ok(pc::table
        .filter(pc::student_id.eq(student_id))
        .filter(pc::policy_version.eq(version))
        .order((pc::created_at.desc(), pc::id.desc()))
        .select(ConsentRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Inserts a consent.
pub async fn insert_consent(conn: &mut AsyncPgConnection, f: &ConsentFields) -> Result<ConsentRow> {
    Ok(diesel::insert_into(pc::table).values(f).returning(ConsentRow::as_returning()).get_result(conn).await?)
}

/// Writes consent `id`.
pub async fn write_consent(conn: &mut AsyncPgConnection, id: i64, f: &ConsentFields) -> Result<ConsentRow> {
    Ok(diesel::update(pc::table.find(id)).set(f).returning(ConsentRow::as_returning()).get_result(conn).await?)
}

/// A weekly pickup time.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = ps, check_for_backend(Pg))]
pub struct ScheduleRow {
    /// 1–5.
    pub weekday: i16,
    /// Time of day.
    pub pickup_time: NaiveTime,
    /// Notes.
    pub notes: Option<String>,
}

/// The student's weekly pickup times by weekday.
pub async fn schedules_of(conn: &mut AsyncPgConnection, student_id: i64) -> Result<Vec<ScheduleRow>> {
    Ok(ps::table
        .filter(ps::student_id.eq(student_id))
        .order(ps::weekday)
        .select(ScheduleRow::as_select())
        .load(conn)
        .await?)
}

/// Replaces the student's weekly pickup times.
pub async fn replace_schedules(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    entries: &[ScheduleRow],
    created_by: Option<i64>,
) -> Result<()> {
    diesel::delete(ps::table.filter(ps::student_id.eq(student_id))).execute(conn).await?;
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                ps::student_id.eq(student_id),
                ps::weekday.eq(e.weekday),
                ps::pickup_time.eq(e.pickup_time),
                ps::notes.eq(e.notes.clone()),
                ps::created_by.eq(created_by),
            )
        })
        .collect();
    diesel::insert_into(ps::table).values(rows).execute(conn).await?;
    Ok(())
}

/// A pickup exception.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = ex, check_for_backend(Pg))]
pub struct ExceptionRow {
    /// Primary key.
    pub id: i64,
    /// The student.
    pub student_id: i64,
    /// The day.
    pub exception_date: NaiveDate,
    /// Pickup time that day; `None` = absent.
    pub pickup_time: Option<NaiveTime>,
    /// Reason.
    pub reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of an exception.
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = ex, treat_none_as_null = true)]
pub struct ExceptionFields {
    /// The day.
    pub exception_date: NaiveDate,
    /// Pickup time that day.
    pub pickup_time: Option<NaiveTime>,
    /// Reason.
    pub reason: Option<String>,
}

/// Inserts an exception.
pub async fn insert_exception(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    f: &ExceptionFields,
    created_by: Option<i64>,
) -> QueryResult<ExceptionRow> {
    diesel::insert_into(ex::table)
        .values((
            ex::student_id.eq(student_id),
            ex::exception_date.eq(f.exception_date),
            ex::pickup_time.eq(f.pickup_time),
            ex::reason.eq(&f.reason),
            ex::created_by.eq(created_by),
        ))
        .returning(ExceptionRow::as_returning())
        .get_result(conn)
        .await
}

/// One exception, locked until the transaction ends.
pub async fn lock_exception(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<ExceptionRow>> {
    Ok(ex::table.find(id).select(ExceptionRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes exception `id`.
pub async fn write_exception(conn: &mut AsyncPgConnection, id: i64, f: &ExceptionFields) -> QueryResult<ExceptionRow> {
    diesel::update(ex::table.find(id)).set(f).returning(ExceptionRow::as_returning()).get_result(conn).await
}

/// Deletes exception `id`.
pub async fn delete_exception(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(ex::table.find(id)).execute(conn).await?;
    Ok(())
}

/// The student's exceptions by date.
pub async fn exceptions_of(conn: &mut AsyncPgConnection, student_id: i64) -> Result<Vec<ExceptionRow>> {
    Ok(ex::table
        .filter(ex::student_id.eq(student_id))
        .order((ex::exception_date, ex::id))
        .select(ExceptionRow::as_select())
        .load(conn)
        .await?)
}

/// The student's pickup exceptions on or after `from`, by date.
pub async fn exceptions_from(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    from: NaiveDate,
) -> Result<Vec<ExceptionRow>> {
    Ok(ex::table
        .filter(ex::student_id.eq(student_id))
        .filter(ex::exception_date.ge(from))
        .order((ex::exception_date, ex::id))
        .select(ExceptionRow::as_select())
        .load(conn)
        .await?)
}

/// A pickup note.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = notes, check_for_backend(Pg))]
pub struct NoteRow {
    /// Primary key.
    pub id: i64,
    /// The student.
    pub student_id: i64,
    /// The day.
    pub note_date: NaiveDate,
    /// Text.
    pub content: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a note.
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = notes)]
pub struct NoteFields {
    /// The day.
    pub note_date: NaiveDate,
    /// Text.
    pub content: String,
}

/// Inserts a note.
pub async fn insert_note(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    f: &NoteFields,
    created_by: Option<i64>,
) -> Result<NoteRow> {
    Ok(diesel::insert_into(notes::table)
        .values((
            notes::student_id.eq(student_id),
            notes::note_date.eq(f.note_date),
            notes::content.eq(&f.content),
            notes::created_by.eq(created_by),
        ))
        .returning(NoteRow::as_returning())
        .get_result(conn)
        .await?)
}

/// One note, locked until the transaction ends.
pub async fn lock_note(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<NoteRow>> {
    Ok(notes::table.find(id).select(NoteRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes note `id`.
pub async fn write_note(conn: &mut AsyncPgConnection, id: i64, f: &NoteFields) -> Result<NoteRow> {
    Ok(diesel::update(notes::table.find(id)).set(f).returning(NoteRow::as_returning()).get_result(conn).await?)
}

/// Deletes note `id`.
pub async fn delete_note(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(notes::table.find(id)).execute(conn).await?;
    Ok(())
}

/// The student's notes by date.
pub async fn notes_of(conn: &mut AsyncPgConnection, student_id: i64) -> Result<Vec<NoteRow>> {
    Ok(notes::table
        .filter(notes::student_id.eq(student_id))
        .order((notes::note_date, notes::id))
        .select(NoteRow::as_select())
        .load(conn)
        .await?)
}
