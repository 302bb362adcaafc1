//! The iot writes the gateway makes for readers: credentials look-up, `last_seen` and the
//! online/offline mark, and device-log entries for refused messages.
//!
//! These run in the gateway's process against the shared pool (the gateway may
//! read the reader's credentials; the writes are iot's own code on iot's own tables). They are
//! the seam for an internal iot RPC once service credentials exist.

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Result};
use serde_json::json;

use crate::model::{LogEvent, ONLINE_WINDOW};
use crate::repo;

pub use crate::repo::Credentials;

/// The reader's id and key version, or `None` for an unknown device id.
pub async fn credentials(pool: &DbPool, device_id: &str) -> Result<Option<Credentials>> {
    let mut conn = db::conn(pool).await?;
    repo::credentials(&mut conn, device_id).await
}

/// An authenticated message (or an `online` status) arrived: stamps `last_seen`, clears an
/// offline mark, and logs `online` when the reader was offline or unseen for the window.
pub async fn record_seen(pool: &DbPool, device: i64) -> Result<()> {
    let mut conn = db::conn(pool).await?;
    conn.transaction::<_, Error, _>(async move |conn| {
        let Some((last_seen, offline_since)) = repo::mark_seen(conn, device).await? else { return Ok(()) };
        let window = chrono::Duration::from_std(ONLINE_WINDOW).unwrap_or_default();
        let was_away = offline_since.is_some() || last_seen.is_none_or(|t| t <= Utc::now() - window);
        if was_away {
            repo::insert_log(conn, device, LogEvent::Online, json!({})).await?;
        }
        Ok(())
    })
    .await
}

/// An `offline` status or Last Will: marks the reader offline at once (logged once).
pub async fn record_offline(pool: &DbPool, device: i64) -> Result<()> {
    let mut conn = db::conn(pool).await?;
    conn.transaction::<_, Error, _>(async move |conn| {
        if repo::mark_offline(conn, device).await? {
            repo::insert_log(conn, device, LogEvent::Offline, json!({})).await?;
        }
        Ok(())
    })
    .await
}

/// Appends one device-log entry (`detail`: ids and counts only, never tags or names).
pub async fn record_event(pool: &DbPool, device: i64, event: LogEvent, detail: serde_json::Value) -> Result<()> {
    let mut conn = db::conn(pool).await?;
    repo::insert_log(&mut conn, device, event, detail).await
}
