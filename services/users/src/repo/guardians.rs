//! `users.guardians`, `users.guardian_phone_numbers`, `users.student_guardians`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::convert::like_contains;
use phoenix_db::schema::users::{guardian_phone_numbers as ph, guardians, student_guardians as sg, students};

/// A `users.guardians` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = guardians, check_for_backend(Pg))]
pub struct GuardianRow {
    /// Primary key.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Lower-case e-mail.
    pub email: Option<String>,
    /// Street.
    pub address_street: Option<String>,
    /// City.
    pub address_city: Option<String>,
    /// Postal code.
    pub address_postal_code: Option<String>,
    /// Portal account.
    pub account_id: Option<i64>,
    /// email, phone, mobile, sms.
    pub preferred_contact_method: String,
    /// Language code.
    pub language_preference: String,
    /// Occupation.
    pub occupation: Option<String>,
    /// Employer.
    pub employer: Option<String>,
    /// Staff notes.
    pub notes: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a guardian (the account is linked by invitation, not here).
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = guardians, treat_none_as_null = true)]
pub struct GuardianFields {
    /// Trimmed first name.
    pub first_name: String,
    /// Trimmed last name.
    pub last_name: String,
    /// Lower-case e-mail.
    pub email: Option<String>,
    /// Street.
    pub address_street: Option<String>,
    /// City.
    pub address_city: Option<String>,
    /// Postal code.
    pub address_postal_code: Option<String>,
    /// email, phone, mobile, sms.
    pub preferred_contact_method: String,
    /// Language code.
    pub language_preference: String,
    /// Occupation.
    pub occupation: Option<String>,
    /// Employer.
    pub employer: Option<String>,
    /// Staff notes.
    pub notes: Option<String>,
}

impl GuardianRow {
    /// The writable part of the row.
    pub fn fields(&self) -> GuardianFields {
        GuardianFields {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.email.clone(),
            address_street: self.address_street.clone(),
            address_city: self.address_city.clone(),
            address_postal_code: self.address_postal_code.clone(),
            preferred_contact_method: self.preferred_contact_method.clone(),
            language_preference: self.language_preference.clone(),
            occupation: self.occupation.clone(),
            employer: self.employer.clone(),
            notes: self.notes.clone(),
        }
    }
}

/// A `users.guardian_phone_numbers` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = ph, check_for_backend(Pg))]
pub struct PhoneRow {
    /// Primary key.
    pub id: i64,
    /// The guardian.
    pub guardian_id: i64,
    /// The number.
    pub phone_number: String,
    /// mobile, home, work, other.
    pub phone_type: String,
    /// Label.
    pub label: Option<String>,
    /// Primary number.
    pub is_primary: bool,
    /// Order, 1 first.
    pub priority: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a phone number.
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = ph, treat_none_as_null = true)]
pub struct PhoneFields {
    /// The number.
    pub phone_number: String,
    /// mobile, home, work, other.
    pub phone_type: String,
    /// Label.
    pub label: Option<String>,
    /// Primary number.
    pub is_primary: bool,
    /// Order, 1 first.
    pub priority: i32,
}

impl PhoneRow {
    /// The writable part of the row.
    pub fn fields(&self) -> PhoneFields {
        PhoneFields {
            phone_number: self.phone_number.clone(),
            phone_type: self.phone_type.clone(),
            label: self.label.clone(),
            is_primary: self.is_primary,
            priority: self.priority,
        }
    }
}

/// A `users.student_guardians` row with the guardian's names.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = sg, check_for_backend(Pg))]
pub struct LinkRow {
    /// Primary key.
    pub id: i64,
    /// The student.
    pub student_id: i64,
    /// The guardian.
    pub guardian_id: i64,
    /// parent, guardian, relative, other.
    pub relationship_type: String,
    /// Primary guardian.
    pub is_primary: bool,
    /// Emergency contact.
    pub is_emergency_contact: bool,
    /// May pick up.
    pub can_pickup: bool,
    /// Pickup notes.
    pub pickup_notes: Option<String>,
    /// Order of emergency calls.
    pub emergency_priority: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a link.
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = sg, treat_none_as_null = true)]
pub struct LinkFields {
    /// parent, guardian, relative, other.
    pub relationship_type: String,
    /// Primary guardian.
    pub is_primary: bool,
    /// Emergency contact.
    pub is_emergency_contact: bool,
    /// May pick up.
    pub can_pickup: bool,
    /// Pickup notes.
    pub pickup_notes: Option<String>,
    /// Order of emergency calls.
    pub emergency_priority: i32,
}

impl LinkRow {
    /// The writable part of the row.
    pub fn fields(&self) -> LinkFields {
        LinkFields {
            relationship_type: self.relationship_type.clone(),
            is_primary: self.is_primary,
            is_emergency_contact: self.is_emergency_contact,
            can_pickup: self.can_pickup,
            pickup_notes: self.pickup_notes.clone(),
            emergency_priority: self.emergency_priority,
        }
    }
}

/// A link with the guardian's names.
pub type Link = (LinkRow, String, String);

/// Filters of a guardian listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct GuardianFilter {
    /// Part of the first, last or full name.
    pub name_contains: Option<String>,
    /// Guardians of this student.
    pub student_id: Option<i64>,
}

fn filtered(f: &GuardianFilter) -> guardians::BoxedQuery<'static, Pg> {
    let mut q = guardians::table.into_boxed();
    if let Some(n) = &f.name_contains {
        let p = like_contains(n);
        q = q.filter(
            guardians::first_name
                .ilike(p.clone())
                .or(guardians::last_name.ilike(p.clone()))
                .or(guardians::first_name.concat(" ").concat(guardians::last_name).ilike(p)),
        );
    }
    if let Some(s) = f.student_id {
        q = q.filter(guardians::id.eq_any(sg::table.filter(sg::student_id.eq(s)).select(sg::guardian_id)));
    }
    q
}

/// Inserts a guardian.
pub async fn insert_guardian(conn: &mut AsyncPgConnection, f: &GuardianFields) -> QueryResult<GuardianRow> {
    diesel::insert_into(guardians::table).values(f).returning(GuardianRow::as_returning()).get_result(conn).await
}

/// One guardian.
pub async fn find_guardian(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<GuardianRow>> {
    Ok(guardians::table.find(id).select(GuardianRow::as_select()).first(conn).await.optional()?)
}

/// One guardian, locked until the transaction ends.
pub async fn lock_guardian(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<GuardianRow>> {
    Ok(guardians::table.find(id).select(GuardianRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of guardian `id`.
pub async fn write_guardian(conn: &mut AsyncPgConnection, id: i64, f: &GuardianFields) -> QueryResult<GuardianRow> {
    diesel::update(guardians::table.find(id)).set(f).returning(GuardianRow::as_returning()).get_result(conn).await
}

/// Deletes guardian `id` (numbers and links cascade); whether it existed.
pub async fn delete_guardian(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(guardians::table.find(id)).execute(conn).await? > 0)
}

/// One page of guardians by id.
pub async fn list_guardians(
    conn: &mut AsyncPgConnection,
    f: &GuardianFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<GuardianRow>> {
    Ok(filtered(f)
        .filter(guardians::id.gt(after.unwrap_or(0)))
        .order(guardians::id)
        .limit(limit)
        .select(GuardianRow::as_select())
        .load(conn)
        .await?)
}

/// Number of guardians matching `f`.
pub async fn count_guardians(conn: &mut AsyncPgConnection, f: &GuardianFilter) -> Result<i64> {
    Ok(filtered(f).count().get_result(conn).await?)
}

/// The groups of the (active) children of each of `guardian_ids`.
pub async fn children_groups(
    conn: &mut AsyncPgConnection,
    guardian_ids: &[i64],
) -> Result<HashMap<i64, Vec<Option<i64>>>> {
    let mut out: HashMap<i64, Vec<Option<i64>>> = HashMap::new();
    if guardian_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, Option<i64>)> = sg::table
        .inner_join(students::table)
        .filter(sg::guardian_id.eq_any(guardian_ids))
        .filter(students::deactivated_at.is_null())
        .select((sg::guardian_id, students::group_id))
        .load(conn)
        .await?;
    for (g, group) in rows {
        out.entry(g).or_default().push(group);
    }
    Ok(out)
}

/// Phone numbers of each of `guardian_ids`, primary first, then by priority.
pub async fn phones_of(conn: &mut AsyncPgConnection, guardian_ids: &[i64]) -> Result<HashMap<i64, Vec<PhoneRow>>> {
    let mut out: HashMap<i64, Vec<PhoneRow>> = HashMap::new();
    if guardian_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<PhoneRow> = ph::table
        .filter(ph::guardian_id.eq_any(guardian_ids))
        .order((ph::guardian_id, ph::is_primary.desc(), ph::priority, ph::id))
        .select(PhoneRow::as_select())
        .load(conn)
        .await?;
    for r in rows {
        out.entry(r.guardian_id).or_default().push(r);
    }
    Ok(out)
}

/// Inserts a phone number of `guardian_id`.
pub async fn insert_phone(conn: &mut AsyncPgConnection, guardian_id: i64, f: &PhoneFields) -> QueryResult<PhoneRow> {
    diesel::insert_into(ph::table)
        .values((ph::guardian_id.eq(guardian_id), f))
        .returning(PhoneRow::as_returning())
        .get_result(conn)
        .await
}

/// One phone number, locked until the transaction ends.
pub async fn lock_phone(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<PhoneRow>> {
    Ok(ph::table.find(id).select(PhoneRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of phone number `id`.
pub async fn write_phone(conn: &mut AsyncPgConnection, id: i64, f: &PhoneFields) -> QueryResult<()> {
    diesel::update(ph::table.find(id)).set(f).execute(conn).await?;
    Ok(())
}

/// Deletes phone number `id`.
pub async fn delete_phone(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(ph::table.find(id)).execute(conn).await?;
    Ok(())
}

/// Demotes the primary number of `guardian_id` (before another becomes primary).
pub async fn clear_primary_phone(conn: &mut AsyncPgConnection, guardian_id: i64) -> Result<()> {
    diesel::update(ph::table.filter(ph::guardian_id.eq(guardian_id)).filter(ph::is_primary))
        .set(ph::is_primary.eq(false))
        .execute(conn)
        .await?;
    Ok(())
}

fn links() -> diesel::dsl::InnerJoin<sg::table, guardians::table> {
    sg::table.inner_join(guardians::table)
}

/// Inserts a link.
pub async fn insert_link(
    conn: &mut AsyncPgConnection,
    student_id: i64,
    guardian_id: i64,
    f: &LinkFields,
) -> QueryResult<i64> {
    diesel::insert_into(sg::table)
        .values((
            sg::student_id.eq(student_id),
            sg::guardian_id.eq(guardian_id),
            sg::relationship_type.eq(&f.relationship_type),
            sg::is_primary.eq(f.is_primary),
            sg::is_emergency_contact.eq(f.is_emergency_contact),
            sg::can_pickup.eq(f.can_pickup),
            sg::pickup_notes.eq(&f.pickup_notes),
            sg::emergency_priority.eq(f.emergency_priority),
        ))
        .returning(sg::id)
        .get_result(conn)
        .await
}

/// One link with the guardian's names.
pub async fn find_link(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Link>> {
    Ok(links()
        .filter(sg::id.eq(id))
        .select((LinkRow::as_select(), guardians::first_name, guardians::last_name))
        .first(conn)
        .await
        .optional()?)
}

/// One link row, locked until the transaction ends.
pub async fn lock_link(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<LinkRow>> {
    Ok(sg::table.find(id).select(LinkRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of link `id`.
pub async fn write_link(conn: &mut AsyncPgConnection, id: i64, f: &LinkFields) -> QueryResult<()> {
    diesel::update(sg::table.find(id)).set(f).execute(conn).await?;
    Ok(())
}

/// Deletes link `id`.
pub async fn delete_link(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(sg::table.find(id)).execute(conn).await?;
    Ok(())
}

/// Demotes the primary guardian of `student_id` (before another becomes primary).
pub async fn clear_primary_link(conn: &mut AsyncPgConnection, student_id: i64) -> Result<()> {
    diesel::update(sg::table.filter(sg::student_id.eq(student_id)).filter(sg::is_primary))
        .set(sg::is_primary.eq(false))
        .execute(conn)
        .await?;
    Ok(())
}

/// Links of a student or of a guardian: primary first, then by emergency priority.
pub async fn list_links(
    conn: &mut AsyncPgConnection,
    student_id: Option<i64>,
    guardian_id: Option<i64>,
) -> Result<Vec<Link>> {
    let mut q = links().into_boxed();
    if let Some(s) = student_id {
        q = q.filter(sg::student_id.eq(s));
    }
    if let Some(g) = guardian_id {
        q = q.filter(sg::guardian_id.eq(g));
    }
    Ok(q.order((sg::is_primary.desc(), sg::emergency_priority, sg::id))
        .select((LinkRow::as_select(), guardians::first_name, guardians::last_name))
        .load(conn)
        .await?)
}
