//! The outbox queue: the next due messages with their recipients (read at delivery time,
//! as the table's migration says), and the row updates after each attempt.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;

/// A due message and what its delivery needs.
#[derive(Debug, Clone, QueryableByName)]
pub struct DueMessage {
    /// `auth.outbox.id`.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// `password_reset`, `invitation` or `guardian_invitation`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Attempts so far.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// The one-time token (`payload->>'token'`); `None` once cleared.
    #[diesel(sql_type = Nullable<Text>)]
    pub token: Option<String>,
    /// `payload->>'expires_at'`.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The recipient's address now: the account's, the invitation's or the guardian's.
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    /// The recipient's language preference, where one is stored (guardians).
    #[diesel(sql_type = Nullable<Text>)]
    pub language: Option<String>,
    /// The token no longer opens anything: replaced, used, expired, or the account is inactive.
    #[diesel(sql_type = Bool)]
    pub stale: bool,
}

/// Due messages, oldest first: unsent, below the attempt bound, and past their backoff,
/// which is `delays[attempts]` seconds after `created_at` (`delays` are cumulative). With
/// `lock`, the rows are locked `FOR UPDATE SKIP LOCKED`: a row another sender holds is
/// skipped, so no message is sent twice at once.
pub async fn due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    delays: &[f64],
    limit: i64,
    lock: bool,
) -> Result<Vec<DueMessage>> {
    let lock = if lock { "FOR UPDATE OF o SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT o.id, o.kind, o.attempts, o.payload->>'token' AS token, \
                (o.payload->>'expires_at')::timestamptz AS expires_at, \
                COALESCE(a.email, i.email, g.email) AS email, \
                COALESCE(g.language_preference, ag.language_preference) AS language, \
                COALESCE(CASE o.kind \
                  WHEN 'password_reset' THEN NOT a.active OR r.used_at IS NOT NULL OR r.expires_at <= $1 \
                    OR r.token_hash IS DISTINCT FROM sha256(convert_to(o.payload->>'token', 'UTF8')) \
                  WHEN 'invitation' THEN i.used_at IS NOT NULL OR i.expires_at <= $1 \
                    OR i.token_hash IS DISTINCT FROM sha256(convert_to(o.payload->>'token', 'UTF8')) \
                  WHEN 'guardian_invitation' THEN gi.accepted_at IS NOT NULL OR gi.expires_at <= $1 \
                    OR gi.token_hash IS DISTINCT FROM sha256(convert_to(o.payload->>'token', 'UTF8')) \
                END, true) AS stale \
         FROM auth.outbox o \
         LEFT JOIN auth.accounts a ON a.id = o.account_id \
         LEFT JOIN users.guardians ag ON ag.account_id = o.account_id \
         LEFT JOIN auth.password_reset_tokens r ON r.id = (o.payload->>'reset_token_id')::bigint \
         LEFT JOIN auth.invitations i ON i.id = o.invitation_id \
         LEFT JOIN auth.guardian_invitations gi ON gi.id = o.guardian_invitation_id \
         LEFT JOIN users.guardians g ON g.id = gi.guardian_id \
         WHERE o.sent_at IS NULL AND o.attempts < cardinality($2) \
           AND o.created_at + make_interval(secs => ($2)[o.attempts + 1]) <= $1 \
         ORDER BY o.created_at, o.id \
         LIMIT $3 {lock}"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<Array<Double>, _>(delays)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?)
}

/// Unsent messages below the attempt bound (due or waiting for their backoff).
pub async fn pending(conn: &mut AsyncPgConnection, max_attempts: i32) -> Result<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM auth.outbox WHERE sent_at IS NULL AND attempts < $1")
        .bind::<Integer, _>(max_attempts)
        .get_result(conn)
        .await?;
    Ok(row.n)
}

/// Message `id` was delivered: `sent_at`, one more attempt, no error, and the token gone
/// from `payload` (the rest, ids and expiry, stays for the audit trail).
pub async fn mark_sent(conn: &mut AsyncPgConnection, id: i64, now: DateTime<Utc>) -> Result<()> {
    diesel::sql_query(
        "UPDATE auth.outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL, \
         payload = payload - 'token' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An attempt at message `id` failed with `error`. At `attempts` (the new count) reaching
/// `give_up_at` the token is cleared too: the row stays, with its error, and is never tried again.
pub async fn mark_failed(
    conn: &mut AsyncPgConnection,
    id: i64,
    attempts: i32,
    give_up_at: i32,
    error: &str,
) -> Result<()> {
    diesel::sql_query(
        "UPDATE auth.outbox SET attempts = $2, last_error = $3, \
         payload = CASE WHEN $2 >= $4 THEN payload - 'token' ELSE payload END WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Integer, _>(attempts)
    .bind::<Text, _>(error)
    .bind::<Integer, _>(give_up_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Message `id` will never be sent (its token no longer works): the token is cleared, the
/// reason kept in `last_error`, and `attempts` set to the bound so no sender picks it again.
pub async fn mark_obsolete(conn: &mut AsyncPgConnection, id: i64, max_attempts: i32, reason: &str) -> Result<()> {
    diesel::sql_query(
        "UPDATE auth.outbox SET attempts = GREATEST(attempts, $2), last_error = $3, \
         payload = payload - 'token' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Integer, _>(max_attempts)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}
