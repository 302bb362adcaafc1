//! `users.persons` (and the `auth.accounts` existence check for linking).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::convert::like_prefix;
use phoenix_common::{Error, Result};
use phoenix_db::schema::auth;
use phoenix_db::schema::users::{persons, students};

/// A `users.persons` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = persons, check_for_backend(Pg))]
pub struct Person {
    /// Primary key.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Birthday.
    pub birthday: Option<NaiveDate>,
    /// Normalised RFID tag.
    pub tag_id: Option<String>,
    /// Linked account.
    pub account_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The columns written by create/update (the tag is written only by card assignment).
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = persons, treat_none_as_null = true)]
pub struct PersonFields {
    /// Trimmed first name.
    pub first_name: String,
    /// Trimmed last name.
    pub last_name: String,
    /// Birthday.
    pub birthday: Option<NaiveDate>,
    /// Linked account.
    pub account_id: Option<i64>,
}

impl Person {
    /// The writable part of the row.
    pub fn fields(&self) -> PersonFields {
        PersonFields {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            birthday: self.birthday,
            account_id: self.account_id,
        }
    }
}

/// Filters of a person listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    /// Start of the first name, case-insensitive.
    pub first_name: Option<String>,
    /// Start of the last name, case-insensitive.
    pub last_name: Option<String>,
    /// Exact normalised tag.
    pub tag_id: Option<String>,
    /// Exact account.
    pub account_id: Option<i64>,
}

fn filtered(f: &PersonFilter) -> persons::BoxedQuery<'static, Pg> {
    let mut q = persons::table.into_boxed();
    if let Some(n) = &f.first_name {
        q = q.filter(persons::first_name.ilike(like_prefix(n)));
    }
    if let Some(n) = &f.last_name {
        q = q.filter(persons::last_name.ilike(like_prefix(n)));
    }
    if let Some(t) = &f.tag_id {
        q = q.filter(persons::tag_id.eq(t.clone()));
    }
    if let Some(a) = f.account_id {
        q = q.filter(persons::account_id.eq(a));
    }
    q
}

/// Inserts a person.
pub async fn insert_person(conn: &mut AsyncPgConnection, fields: &PersonFields) -> QueryResult<Person> {
    diesel::insert_into(persons::table).values(fields).returning(Person::as_returning()).get_result(conn).await
}

/// One person.
pub async fn find_person(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Person>> {
    Ok(persons::table.find(id).select(Person::as_select()).first(conn).await.optional()?)
}

/// One person, locked until the transaction ends.
pub async fn lock_person(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Person>> {
    Ok(persons::table.find(id).select(Person::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of person `id`.
pub async fn write_person(conn: &mut AsyncPgConnection, id: i64, fields: &PersonFields) -> QueryResult<Person> {
    diesel::update(persons::table.find(id)).set(fields).returning(Person::as_returning()).get_result(conn).await
}

/// Deletes person `id` (cascading to their staff record); returns whether it existed.
pub async fn delete_person(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(persons::table.find(id)).execute(conn).await? > 0)
}

/// One page of persons by id.
pub async fn list_persons(
    conn: &mut AsyncPgConnection,
    filter: &PersonFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Person>> {
    Ok(filtered(filter)
        .filter(persons::id.gt(after.unwrap_or(0)))
        .order(persons::id)
        .limit(limit)
        .select(Person::as_select())
        .load(conn)
        .await?)
}

/// Number of persons matching `filter`.
pub async fn count_persons(conn: &mut AsyncPgConnection, filter: &PersonFilter) -> Result<i64> {
    Ok(filtered(filter).count().get_result(conn).await?)
}

/// For the persons among `person_ids` that are students: their group (for redaction).
pub async fn student_groups_of_persons(
    conn: &mut AsyncPgConnection,
    person_ids: &[i64],
) -> Result<HashMap<i64, Option<i64>>> {
    if person_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Option<i64>)> = students::table
        .filter(students::person_id.eq_any(person_ids))
        .select((students::person_id, students::group_id))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Whether login account `id` exists.
pub async fn account_exists(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(auth::accounts::table.find(id).select(auth::accounts::id)))
        .get_result(conn)
        .await?)
}

/// Checks the account a person is linked to, reported on `field`: it must exist.
pub async fn check_account(conn: &mut AsyncPgConnection, field: &str, account_id: Option<i64>) -> Result<()> {
    if let Some(a) = account_id
        && !account_exists(conn, a).await?
    {
        return Err(Error::invalid(field, format!("account {a} does not exist")));
    }
    Ok(())
}
