//! Staff invitations (with the `users.*` records an acceptance creates), guardian
//! invitations (with the `users.guardians` link an acceptance sets), password-reset tokens
//! and their rate limit, and the outbox that carries one-time tokens to the mail sender.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::auth::{guardian_invitations, invitations, outbox, password_reset_tokens};
use phoenix_db::schema::users;

/// An invitation with its role's name.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invitations, check_for_backend(diesel::pg::Pg))]
pub struct InvitationRow {
    /// Id.
    pub id: i64,
    /// Invited email.
    pub email: String,
    /// Role granted on acceptance.
    pub role_id: i64,
    /// Suggested first name.
    pub first_name: Option<String>,
    /// Suggested last name.
    pub last_name: Option<String>,
    /// Position (becomes `users.teachers.role`).
    pub position: Option<String>,
    /// Expiry of the current token.
    pub expires_at: DateTime<Utc>,
    /// Set once accepted or revoked.
    pub used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Fields of a new invitation.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    /// Normalised email.
    pub email: &'a str,
    /// Role id.
    pub role_id: i64,
    /// The inviting account.
    pub created_by: Option<i64>,
    /// Suggested first name.
    pub first_name: Option<&'a str>,
    /// Suggested last name.
    pub last_name: Option<&'a str>,
    /// Position.
    pub position: Option<&'a str>,
    /// SHA-256 of the token.
    pub token_hash: &'a [u8; 32],
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Marks the pending invitations of an email used (a new one replaces them; the partial
/// unique index allows one pending invitation per email).
pub async fn supersede_invitations(conn: &mut AsyncPgConnection, email: &str) -> Result<usize> {
    Ok(diesel::update(invitations::table.filter(invitations::email.eq(email)).filter(invitations::used_at.is_null()))
        .set(invitations::used_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?)
}

/// Inserts an invitation.
pub async fn insert_invitation(conn: &mut AsyncPgConnection, new: NewInvitation<'_>) -> Result<InvitationRow> {
    Ok(diesel::insert_into(invitations::table)
        .values((
            invitations::email.eq(new.email),
            invitations::role_id.eq(new.role_id),
            invitations::created_by.eq(new.created_by),
            invitations::first_name.eq(new.first_name),
            invitations::last_name.eq(new.last_name),
            invitations::position.eq(new.position),
            invitations::token_hash.eq(new.token_hash.to_vec()),
            invitations::expires_at.eq(new.expires_at),
        ))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The invitation with this id, locked for the transaction.
pub async fn find_invitation_for_update(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<InvitationRow>> {
    Ok(invitations::table.find(id).select(InvitationRow::as_select()).for_update().first(conn).await.optional()?)
}

/// The invitation whose token has this hash, locked for the transaction (outside one, a
/// plain read).
pub async fn find_invitation_by_token(conn: &mut AsyncPgConnection, hash: &[u8; 32]) -> Result<Option<InvitationRow>> {
    Ok(invitations::table
        .filter(invitations::token_hash.eq(hash.to_vec()))
        .select(InvitationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Gives an invitation a new token and expiry.
pub async fn renew_invitation(
    conn: &mut AsyncPgConnection,
    id: i64,
    hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<InvitationRow> {
    Ok(diesel::update(invitations::table.find(id))
        .set((invitations::token_hash.eq(hash.to_vec()), invitations::expires_at.eq(expires_at)))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Marks an invitation used (accepted or revoked).
pub async fn use_invitation(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(invitations::table.find(id)).set(invitations::used_at.eq(Some(Utc::now()))).execute(conn).await?;
    Ok(())
}

/// One page of pending invitations (not used, not expired) by id, and their total.
pub async fn list_pending_invitations(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<InvitationRow>, i64)> {
    let now = Utc::now();
    let pending = || invitations::table.filter(invitations::used_at.is_null()).filter(invitations::expires_at.gt(now));
    let total: i64 = pending().count().get_result(conn).await?;
    let rows = pending()
        .filter(invitations::id.gt(after.unwrap_or(0)))
        .order(invitations::id)
        .limit(limit)
        .select(InvitationRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Ids of the records an accepted invitation creates.
#[derive(Debug, Clone, Copy)]
pub struct StaffIds {
    /// `users.persons.id`.
    pub person_id: i64,
    /// `users.staff.id`.
    pub staff_id: i64,
}

/// Creates the person linked to `account_id`, its staff record and, with a position, its
/// teacher record (`teachers.role` = position). Only for a staff invitation
/// (`invitation_service::is_staff_role`). Cross-schema write: acceptance must create account
/// and person atomically (issue #3), so it happens in the caller's transaction.
pub async fn insert_staff_person(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    first_name: &str,
    last_name: &str,
    position: Option<&str>,
) -> Result<StaffIds> {
    let person_id: i64 = diesel::insert_into(users::persons::table)
        .values((
            users::persons::first_name.eq(first_name),
            users::persons::last_name.eq(last_name),
            users::persons::account_id.eq(Some(account_id)),
        ))
        .returning(users::persons::id)
        .get_result(conn)
        .await?;
    let staff_id: i64 = diesel::insert_into(users::staff::table)
        .values(users::staff::person_id.eq(person_id))
        .returning(users::staff::id)
        .get_result(conn)
        .await?;
    if let Some(position) = position {
        diesel::insert_into(users::teachers::table)
            .values((users::teachers::staff_id.eq(staff_id), users::teachers::role.eq(Some(position))))
            .execute(conn)
            .await?;
    }
    Ok(StaffIds { person_id, staff_id })
}

/// A guardian invitation.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = guardian_invitations, check_for_backend(diesel::pg::Pg))]
pub struct GuardianInvitationRow {
    /// Id.
    pub id: i64,
    /// The invited `users.guardians` row.
    pub guardian_id: i64,
    /// Expiry of the token.
    pub expires_at: DateTime<Utc>,
    /// Set once accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// What a guardian invitation needs of the guardian record (a cross-schema read).
#[derive(Debug, Clone, Queryable)]
pub struct InvitedGuardian {
    /// `users.guardians.id`.
    pub id: i64,
    /// First name (shown at look-up).
    pub first_name: String,
    /// Email (normalised by its CHECK constraint); the account signs in with it.
    pub email: Option<String>,
    /// The account already linked, if any.
    pub account_id: Option<i64>,
}

/// The guardian with this id, locked for the transaction (an acceptance and a concurrent
/// link through `users.v1` serialise here; outside a transaction, a plain read).
pub async fn find_guardian_for_update(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<InvitedGuardian>> {
    Ok(users::guardians::table
        .find(id)
        .select((
            users::guardians::id,
            users::guardians::first_name,
            users::guardians::email,
            users::guardians::account_id,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Deletes the guardian's pending invitation, if any (a new one replaces it; the partial
/// unique index allows one pending invitation per guardian). Its unsent outbox message goes
/// with it (`ON DELETE CASCADE`), so the old token is never delivered.
pub async fn delete_pending_guardian_invitations(conn: &mut AsyncPgConnection, guardian_id: i64) -> Result<usize> {
    Ok(diesel::delete(
        guardian_invitations::table
            .filter(guardian_invitations::guardian_id.eq(guardian_id))
            .filter(guardian_invitations::accepted_at.is_null()),
    )
    .execute(conn)
    .await?)
}

/// Inserts a guardian invitation.
pub async fn insert_guardian_invitation(
    conn: &mut AsyncPgConnection,
    guardian_id: i64,
    created_by: Option<i64>,
    hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<GuardianInvitationRow> {
    Ok(diesel::insert_into(guardian_invitations::table)
        .values((
            guardian_invitations::guardian_id.eq(guardian_id),
            guardian_invitations::created_by.eq(created_by),
            guardian_invitations::token_hash.eq(hash.to_vec()),
            guardian_invitations::expires_at.eq(expires_at),
        ))
        .returning(GuardianInvitationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The guardian invitation whose token has this hash, locked for the transaction (two
/// acceptances of one token serialise here; the second sees it accepted).
pub async fn find_guardian_invitation_by_token(
    conn: &mut AsyncPgConnection,
    hash: &[u8; 32],
) -> Result<Option<GuardianInvitationRow>> {
    Ok(guardian_invitations::table
        .filter(guardian_invitations::token_hash.eq(hash.to_vec()))
        .select(GuardianInvitationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a guardian invitation accepted.
pub async fn accept_guardian_invitation(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(guardian_invitations::table.find(id))
        .set(guardian_invitations::accepted_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Links the guardian record to its new account; `false` if it meanwhile got one.
///
/// Cross-schema write (the fourth deliberate exception, ARCHITECTURE.md): accepting a
/// guardian invitation must create the account and link it to the guardian atomically, or
/// a failure between two service calls would leave a guardian account that sees no child
/// (or a link to an account that does not exist), so it happens in the caller's transaction.
pub async fn link_guardian_account(conn: &mut AsyncPgConnection, guardian_id: i64, account_id: i64) -> Result<bool> {
    let updated =
        diesel::update(users::guardians::table.find(guardian_id).filter(users::guardians::account_id.is_null()))
            .set(users::guardians::account_id.eq(Some(account_id)))
            .execute(conn)
            .await?;
    Ok(updated == 1)
}

/// Counts a password-reset request of the email with HMAC `email_hash` in its fixed window
/// (started by the first request, restarted once `window` has passed). Returns the number
/// of requests in the current window and when the window started.
pub async fn count_reset_request(
    conn: &mut AsyncPgConnection,
    email_hash: &[u8; 32],
    window: chrono::Duration,
) -> Result<(i32, DateTime<Utc>)> {
    #[derive(QueryableByName)]
    struct Counted {
        #[diesel(sql_type = diesel::sql_types::Int4)]
        attempts: i32,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        window_start: DateTime<Utc>,
    }
    let window_start = Utc::now() - window;
    let row: Counted = diesel::sql_query(
        "INSERT INTO auth.password_reset_rate_limits AS rl (email_hash, attempts, window_start) \
         VALUES ($1, 1, now()) \
         ON CONFLICT (email_hash) DO UPDATE SET \
           attempts = CASE WHEN rl.window_start <= $2 THEN 1 ELSE rl.attempts + 1 END, \
           window_start = CASE WHEN rl.window_start <= $2 THEN now() ELSE rl.window_start END \
         RETURNING attempts, window_start",
    )
    .bind::<diesel::sql_types::Bytea, _>(email_hash.to_vec())
    .bind::<diesel::sql_types::Timestamptz, _>(window_start)
    .get_result(conn)
    .await?;
    Ok((row.attempts, row.window_start))
}

/// Marks every live reset token of an account used (a new request supersedes them; the
/// partial unique index allows one live token per account).
pub async fn supersede_reset_tokens(conn: &mut AsyncPgConnection, account_id: i64) -> Result<usize> {
    Ok(diesel::update(
        password_reset_tokens::table
            .filter(password_reset_tokens::account_id.eq(account_id))
            .filter(password_reset_tokens::used_at.is_null()),
    )
    .set(password_reset_tokens::used_at.eq(Some(Utc::now())))
    .execute(conn)
    .await?)
}

/// Stores a reset token by its SHA-256; returns its id.
pub async fn insert_reset_token(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<i64> {
    Ok(diesel::insert_into(password_reset_tokens::table)
        .values((
            password_reset_tokens::account_id.eq(account_id),
            password_reset_tokens::token_hash.eq(hash.to_vec()),
            password_reset_tokens::expires_at.eq(expires_at),
        ))
        .returning(password_reset_tokens::id)
        .get_result(conn)
        .await?)
}

/// A reset-token row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = password_reset_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ResetTokenRow {
    /// Id.
    pub id: i64,
    /// The account whose password it resets.
    pub account_id: i64,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once used or superseded.
    pub used_at: Option<DateTime<Utc>>,
}

/// The reset token with this hash, locked for the rest of the transaction (two confirms
/// of one token serialise here; the second sees it used).
pub async fn find_reset_token_for_update(
    conn: &mut AsyncPgConnection,
    hash: &[u8; 32],
) -> Result<Option<ResetTokenRow>> {
    Ok(password_reset_tokens::table
        .filter(password_reset_tokens::token_hash.eq(hash.to_vec()))
        .select(ResetTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a reset token used.
pub async fn mark_reset_token_used(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(password_reset_tokens::table.find(id))
        .set(password_reset_tokens::used_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Who an outbox message goes to (by id; the address is looked up at delivery).
#[derive(Debug, Clone, Copy)]
pub enum Recipient {
    /// An account (password reset).
    Account(i64),
    /// The email of an invitation.
    Invitation(i64),
    /// The guardian of a guardian invitation (the address is `users.guardians.email`).
    GuardianInvitation(i64),
}

/// Queues a message for the mail sender; returns its id. `payload` carries the one-time
/// token and is cleared by the sender after delivery.
pub async fn enqueue_message(
    conn: &mut AsyncPgConnection,
    kind: &'static str,
    recipient: Recipient,
    payload: serde_json::Value,
) -> Result<i64> {
    let (account_id, invitation_id, guardian_invitation_id) = match recipient {
        Recipient::Account(id) => (Some(id), None, None),
        Recipient::Invitation(id) => (None, Some(id), None),
        Recipient::GuardianInvitation(id) => (None, None, Some(id)),
    };
    Ok(diesel::insert_into(outbox::table)
        .values((
            outbox::kind.eq(kind),
            outbox::account_id.eq(account_id),
            outbox::invitation_id.eq(invitation_id),
            outbox::guardian_invitation_id.eq(guardian_invitation_id),
            outbox::payload.eq(payload),
        ))
        .returning(outbox::id)
        .get_result(conn)
        .await?)
}
