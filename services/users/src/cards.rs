//! Assigning an RFID card to a person: the one card move that creating a person or a
//! student and `AssignRfidCard` share.

use diesel_async::AsyncPgConnection;
use phoenix_common::access::Caller;
use phoenix_common::{Error, Result};

use crate::access::require_person_modifiable;
use crate::error;
use crate::repo::{self, Card};

/// What an assignment changed.
#[derive(Debug, Clone, PartialEq)]
pub struct TagMove {
    /// The card, now held by the person.
    pub card: Card,
    /// Who held it before.
    pub previous_person_id: Option<i64>,
    /// The card the person held before (now unassigned).
    pub previous_tag_id: Option<String>,
}

/// Assigns `tag` to `person` inside the caller's transaction: creates the card if new,
/// refuses an inactive card, takes it from its previous holder (who must be modifiable by
/// the caller), then links it. All or nothing with the surrounding transaction.
pub async fn assign_tag(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    person: &repo::Person,
    tag: &str,
) -> Result<TagMove> {
    repo::cards::ensure_card(conn, tag).await?;
    // The row lock serialises concurrent assignments of the same card.
    let card = repo::cards::lock_card(conn, tag).await?.ok_or_else(|| Error::not_found("rfid card", tag))?;
    if !card.active {
        return Err(Error::precondition("CARD_INACTIVE", format!("card {tag} is deactivated and cannot be assigned")));
    }
    let holder = repo::cards::holder_of(conn, tag).await?;
    let previous_tag_id = person.tag_id.clone().filter(|t| t != tag);
    if holder == Some(person.id) {
        return Ok(TagMove { card, previous_person_id: None, previous_tag_id: None });
    }
    if let Some(h) = holder {
        require_person_modifiable(conn, caller, h).await?;
        repo::cards::set_person_tag(conn, h, None).await.map_err(error::card_write)?;
    }
    repo::cards::set_person_tag(conn, person.id, Some(tag)).await.map_err(error::card_write)?;
    Ok(TagMove { card, previous_person_id: holder, previous_tag_id })
}
