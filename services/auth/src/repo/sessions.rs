//! Sessions: refresh tokens and their families, signing keys, service clients.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::auth::{service_clients, signing_keys, tokens};

/// A refresh-token row (the hash itself is the lookup key and not needed afterwards).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tokens, check_for_backend(diesel::pg::Pg))]
pub struct TokenRow {
    /// Id.
    pub id: i64,
    /// Owner.
    pub account_id: i64,
    /// Family: every token descended from one login.
    pub family_id: uuid::Uuid,
    /// 0 for the login's token, +1 per rotation.
    pub generation: i32,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set when rotated (used).
    pub used_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A public signing key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKeyRow {
    /// Key id.
    pub kid: String,
    /// `EdDSA`.
    pub algorithm: String,
    /// Raw public key.
    pub public_key: Vec<u8>,
    /// Valid from.
    pub not_before: DateTime<Utc>,
    /// Verifies until.
    pub retire_after: Option<DateTime<Utc>>,
}

/// A service client.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_clients, check_for_backend(diesel::pg::Pg))]
pub struct ServiceClientRow {
    /// Client id.
    pub client_id: String,
    /// argon2id hash of the secret.
    pub secret_hash: String,
    /// Permissions its tokens carry.
    pub permissions: Vec<String>,
    /// May exchange credentials.
    pub active: bool,
}

/// Why a family was revoked (`ck_auth_tokens_revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The owner logged out.
    Logout,
    /// A used refresh token came back.
    ReuseDetected,
    /// The password was changed.
    PasswordChanged,
    /// The account was deactivated.
    AccountDeactivated,
    /// The password was reset with a one-time token.
    PasswordReset,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::AccountDeactivated => "account_deactivated",
            RevokeReason::PasswordReset => "password_reset",
        }
    }
}

/// Inserts a refresh token.
pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    hash: &[u8; 32],
    family_id: uuid::Uuid,
    generation: i32,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(tokens::table)
        .values((
            tokens::account_id.eq(account_id),
            tokens::token_hash.eq(hash.to_vec()),
            tokens::family_id.eq(family_id),
            tokens::generation.eq(generation),
            tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The token with this hash, locked for the rest of the transaction (concurrent
/// rotations of one token serialise here; the loser sees it used).
pub async fn find_token_for_update(conn: &mut AsyncPgConnection, hash: &[u8; 32]) -> Result<Option<TokenRow>> {
    Ok(tokens::table
        .filter(tokens::token_hash.eq(hash.to_vec()))
        .select(TokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a token used (rotated).
pub async fn mark_token_used(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(tokens::table.find(id)).set(tokens::used_at.eq(Some(Utc::now()))).execute(conn).await?;
    Ok(())
}

/// Revokes every live token of a family; returns how many.
pub async fn revoke_family(conn: &mut AsyncPgConnection, family: uuid::Uuid, reason: RevokeReason) -> Result<usize> {
    Ok(diesel::update(tokens::table.filter(tokens::family_id.eq(family)).filter(tokens::revoked_at.is_null()))
        .set((tokens::revoked_at.eq(Some(Utc::now())), tokens::revoked_reason.eq(Some(reason.as_str()))))
        .execute(conn)
        .await?)
}

/// Revokes every live token of an account except those of family `keep`; returns how
/// many families were ended.
pub async fn revoke_account_families(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    keep: Option<uuid::Uuid>,
    reason: RevokeReason,
) -> Result<usize> {
    let mut query = diesel::update(tokens::table)
        .filter(tokens::account_id.eq(account_id))
        .filter(tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(tokens::family_id.ne(keep));
    }
    let families: Vec<uuid::Uuid> = query
        .set((tokens::revoked_at.eq(Some(Utc::now())), tokens::revoked_reason.eq(Some(reason.as_str()))))
        .returning(tokens::family_id)
        .get_results(conn)
        .await?;
    let mut families = families;
    families.sort();
    families.dedup();
    Ok(families.len())
}

/// Keys that still verify tokens, newest first.
pub async fn verifying_keys(conn: &mut AsyncPgConnection) -> Result<Vec<SigningKeyRow>> {
    Ok(signing_keys::table
        .filter(signing_keys::retire_after.is_null().or(signing_keys::retire_after.gt(Utc::now())))
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)
        .await?)
}

/// The service client with this id.
pub async fn find_service_client(conn: &mut AsyncPgConnection, client_id: &str) -> Result<Option<ServiceClientRow>> {
    Ok(service_clients::table
        .filter(service_clients::client_id.eq(client_id))
        .select(ServiceClientRow::as_select())
        .first(conn)
        .await
        .optional()?)
}
