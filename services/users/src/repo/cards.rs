//! `users.rfid_cards` and the card ↔ person link (`users.persons.tag_id`).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::users::{persons, rfid_cards};

/// A `users.rfid_cards` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = rfid_cards, check_for_backend(Pg))]
pub struct Card {
    /// Normalised tag.
    pub id: String,
    /// Inactive cards are rejected.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Creates an active card for `tag` unless it exists.
pub async fn ensure_card(conn: &mut AsyncPgConnection, tag: &str) -> Result<()> {
    diesel::insert_into(rfid_cards::table)
        .values(rfid_cards::id.eq(tag))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Card `tag`, locked until the transaction ends: concurrent assignments of one card queue
/// here instead of racing on the unique `persons.tag_id`.
pub async fn lock_card(conn: &mut AsyncPgConnection, tag: &str) -> Result<Option<Card>> {
    Ok(rfid_cards::table.find(tag).select(Card::as_select()).for_update().first(conn).await.optional()?)
}

/// Card `tag` and who holds it.
pub async fn find_card(conn: &mut AsyncPgConnection, tag: &str) -> Result<Option<(Card, Option<i64>)>> {
    let card = rfid_cards::table.find(tag).select(Card::as_select()).first(conn).await.optional()?;
    match card {
        None => Ok(None),
        Some(card) => {
            let holder = holder_of(conn, tag).await?;
            Ok(Some((card, holder)))
        }
    }
}

/// The person holding `tag`, if any.
pub async fn holder_of(conn: &mut AsyncPgConnection, tag: &str) -> Result<Option<i64>> {
    Ok(persons::table.filter(persons::tag_id.eq(tag)).select(persons::id).first(conn).await.optional()?)
}

/// Links (or with `None` unlinks) the card of person `person_id`.
pub async fn set_person_tag(conn: &mut AsyncPgConnection, person_id: i64, tag: Option<&str>) -> QueryResult<()> {
    diesel::update(persons::table.find(person_id)).set(persons::tag_id.eq(tag)).execute(conn).await?;
    Ok(())
}

/// Sets the `active` flag of card `tag`; `None` when there is no such card.
pub async fn set_card_active(conn: &mut AsyncPgConnection, tag: &str, active: bool) -> Result<Option<Card>> {
    Ok(diesel::update(rfid_cards::table.find(tag))
        .set(rfid_cards::active.eq(active))
        .returning(Card::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// One page of active cards nobody holds, by tag.
pub async fn list_unassigned(conn: &mut AsyncPgConnection, after: Option<&str>, limit: i64) -> Result<Vec<Card>> {
    Ok(rfid_cards::table
        .left_join(persons::table)
        .filter(rfid_cards::active)
        .filter(persons::id.nullable().is_null())
        .filter(rfid_cards::id.gt(after.unwrap_or("")))
        .order(rfid_cards::id)
        .limit(limit)
        .select(Card::as_select())
        .load(conn)
        .await?)
}

/// Number of active cards nobody holds.
pub async fn count_unassigned(conn: &mut AsyncPgConnection) -> Result<i64> {
    Ok(rfid_cards::table
        .left_join(persons::table)
        .filter(rfid_cards::active)
        .filter(persons::id.nullable().is_null())
        .count()
        .get_result(conn)
        .await?)
}
