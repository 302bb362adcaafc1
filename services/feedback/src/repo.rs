//! Diesel queries on the `feedback` schema (and existence checks on the rows it references).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::{FieldViolations, Result};
use phoenix_db::schema::feedback::{comments, entries};

/// A stored feedback entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = entries)]
pub struct EntryRow {
    /// Id.
    pub id: i64,
    /// Student (`users.students.id`).
    pub student_id: i64,
    /// `positive`, `neutral` or `negative` (CHECK in the table).
    pub value: String,
    /// Berlin calendar day.
    pub day: NaiveDate,
    /// Berlin wall-clock time.
    pub time: NaiveTime,
    /// About the mensa.
    pub is_mensa_feedback: bool,
    /// Collecting reader (`iot.devices.id`).
    pub device_id: Option<i64>,
    /// Stored at.
    pub created_at: DateTime<Utc>,
}

/// A feedback entry to insert (already validated).
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = entries)]
pub struct NewEntry {
    /// Student.
    pub student_id: i64,
    /// `positive`, `neutral` or `negative`.
    pub value: &'static str,
    /// Berlin calendar day.
    pub day: NaiveDate,
    /// Berlin wall-clock time.
    pub time: NaiveTime,
    /// About the mensa.
    pub is_mensa_feedback: bool,
    /// Collecting reader.
    pub device_id: Option<i64>,
}

/// A stored comment.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = comments)]
pub struct CommentRow {
    /// Id.
    pub id: i64,
    /// Entry commented on.
    pub entry_id: i64,
    /// Author (`auth.accounts.id`); `None` for a service client or a deleted account.
    pub author_account_id: Option<i64>,
    /// Text.
    pub body: String,
    /// Written at.
    pub created_at: DateTime<Utc>,
}

/// Which entries a list returns; `None` fields match everything. Days are inclusive. Its
/// `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Only this student.
    pub student_id: Option<i64>,
    /// Days on or after.
    pub from: Option<NaiveDate>,
    /// Days on or before.
    pub to: Option<NaiveDate>,
    /// Only mensa / only other feedback.
    pub is_mensa_feedback: Option<bool>,
}

impl EntryFilter {
    fn query(&self) -> entries::BoxedQuery<'static, Pg> {
        let mut q = entries::table.into_boxed();
        if let Some(s) = self.student_id {
            q = q.filter(entries::student_id.eq(s));
        }
        if let Some(from) = self.from {
            q = q.filter(entries::day.ge(from));
        }
        if let Some(to) = self.to {
            q = q.filter(entries::day.le(to));
        }
        if let Some(m) = self.is_mensa_feedback {
            q = q.filter(entries::is_mensa_feedback.eq(m));
        }
        q
    }
}

/// Ids among `ids` that exist in `table` (a fixed, schema-qualified identifier), each
/// found row held `FOR KEY SHARE` until the transaction ends, so it cannot be deleted
/// between this check and the insert that references it.
async fn lock_existing(conn: &mut AsyncPgConnection, table: &'static str, ids: &[i64]) -> Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct I {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let q = format!("SELECT id FROM {table} WHERE id = ANY($1) ORDER BY id FOR KEY SHARE");
    let rows: Vec<I> =
        diesel::sql_query(q).bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Checks that every referenced student and device exists, locking them against deletion
/// until the transaction ends. A missing reference is a request field: `InvalidArgument`
/// naming `field(i, "student_id")` for each bad item.
pub async fn check_entry_refs(
    conn: &mut AsyncPgConnection,
    new: &[NewEntry],
    field: impl Fn(usize, &str) -> String,
) -> Result<()> {
    let students: Vec<i64> = new.iter().map(|e| e.student_id).collect::<BTreeSet<_>>().into_iter().collect();
    let devices: Vec<i64> = new.iter().filter_map(|e| e.device_id).collect::<BTreeSet<_>>().into_iter().collect();
    let found_students = lock_existing(conn, "users.students", &students).await?;
    let found_devices = lock_existing(conn, "iot.devices", &devices).await?;
    let mut v = FieldViolations::default();
    for (i, e) in new.iter().enumerate() {
        if !found_students.contains(&e.student_id) {
            v.add(field(i, "student_id"), format!("student {} does not exist", e.student_id));
        }
        if let Some(d) = e.device_id
            && !found_devices.contains(&d)
        {
            v.add(field(i, "device_id"), format!("device {d} does not exist"));
        }
    }
    v.into_result()
}

/// Inserts `new` in one statement; the rows come back in the order given.
pub async fn insert_entries(conn: &mut AsyncPgConnection, new: &[NewEntry]) -> Result<Vec<EntryRow>> {
    let mut rows: Vec<EntryRow> =
        diesel::insert_into(entries::table).values(new).returning(EntryRow::as_returning()).get_results(conn).await?;
    // Identity values are drawn in VALUES order; RETURNING order is not promised, ids are.
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// One entry.
pub async fn find_entry(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<EntryRow>> {
    Ok(entries::table.find(id).select(EntryRow::as_select()).first(conn).await.optional()?)
}

/// Whether entry `id` exists, holding it `FOR KEY SHARE` until the transaction ends.
pub async fn lock_entry(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(entries::table.find(id).select(entries::id).for_key_share().first::<i64>(conn).await.optional()?.is_some())
}

/// A page of entries matching `filter` with ids after `after`, ascending.
pub async fn list_entries(
    conn: &mut AsyncPgConnection,
    filter: &EntryFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EntryRow>> {
    Ok(filter
        .query()
        .filter(entries::id.gt(after.unwrap_or(0)))
        .order(entries::id)
        .limit(limit)
        .select(EntryRow::as_select())
        .load(conn)
        .await?)
}

/// How many entries match `filter`.
pub async fn count_entries(conn: &mut AsyncPgConnection, filter: &EntryFilter) -> Result<i64> {
    Ok(filter.query().count().get_result(conn).await?)
}

/// Deletes entry `id` (its comments cascade); `false` when there was none.
pub async fn delete_entry(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(entries::table.find(id)).execute(conn).await? > 0)
}

/// Inserts a comment.
pub async fn insert_comment(
    conn: &mut AsyncPgConnection,
    entry_id: i64,
    author_account_id: Option<i64>,
    body: &str,
) -> Result<CommentRow> {
    Ok(diesel::insert_into(comments::table)
        .values((
            comments::entry_id.eq(entry_id),
            comments::author_account_id.eq(author_account_id),
            comments::body.eq(body),
        ))
        .returning(CommentRow::as_returning())
        .get_result(conn)
        .await?)
}

/// A page of the comments of `entry_id` with ids after `after`, ascending, and their total.
pub async fn list_comments(
    conn: &mut AsyncPgConnection,
    entry_id: i64,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<CommentRow>, i64)> {
    let rows = comments::table
        .filter(comments::entry_id.eq(entry_id))
        .filter(comments::id.gt(after.unwrap_or(0)))
        .order(comments::id)
        .limit(limit)
        .select(CommentRow::as_select())
        .load(conn)
        .await?;
    let total = comments::table.filter(comments::entry_id.eq(entry_id)).count().get_result(conn).await?;
    Ok((rows, total))
}
