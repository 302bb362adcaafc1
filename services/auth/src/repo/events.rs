//! The `audit.auth_events` rows written with auth's changes (in the caller's transaction).

use std::net::IpAddr;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::auth_events::AuthEventType;
use phoenix_db::schema::audit::auth_events;

/// One `audit.auth_events` row. Holds ids and hashes only, never an email or a token.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    /// The account, when known.
    pub account_id: Option<i64>,
    /// HMAC-SHA256 of the normalised email, for attempts on unknown emails.
    pub email_hash: Option<[u8; 32]>,
    /// The service client, for client-credentials exchanges.
    pub client_id: Option<String>,
    /// What happened.
    pub event_type: AuthEventType,
    /// Whether it succeeded.
    pub success: bool,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Client user agent (truncated).
    pub user_agent: Option<String>,
    /// Why it failed.
    pub error_message: Option<&'static str>,
    /// Extra facts (family id, counts).
    pub metadata: serde_json::Value,
}

/// Writes an auth event.
pub async fn insert_auth_event(conn: &mut AsyncPgConnection, e: AuthEvent) -> Result<()> {
    diesel::insert_into(auth_events::table)
        .values((
            auth_events::account_id.eq(e.account_id),
            auth_events::email_hash.eq(e.email_hash.map(|h| h.to_vec())),
            auth_events::client_id.eq(e.client_id),
            auth_events::event_type.eq(e.event_type.as_str()),
            auth_events::success.eq(e.success),
            auth_events::ip_address.eq(e.ip.map(ipnetwork::IpNetwork::from)),
            auth_events::user_agent.eq(e.user_agent),
            auth_events::error_message.eq(e.error_message),
            auth_events::metadata.eq(e.metadata),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
