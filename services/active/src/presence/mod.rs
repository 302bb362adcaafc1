//! `phoenix.active.v1.PresenceService`: the presence board and its live stream
//! (behaviour.md "Dashboard and live view", "States of a pupil").
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`PresenceApi`], its [`METHODS`] and the tonic impl: the handlers; [`service::PresenceServer`] in front of the generated server |
//! | [`alerts`] | not arrived, long in transit, past pickup: one query, per-caller filtering, the process's feed |
//! | [`board`] | `GetPresenceBoard` in one REPEATABLE READ snapshot, and [`board::Access`] (who sees which pupil) |
//! | [`board_cache`] | the process's school-wide board, served while no transaction ended since its snapshot |
//! | [`cursor`] | stream positions and the opaque cursors (board snapshot vs event position) |
//! | [`feed`] | reading the event log in pages below the horizon, resolving a page once |
//! | [`hub`] | one per process: LISTEN + safety poll, broadcast to watchers, purge |
//! | [`tally`] | the hub's school-wide counts, kept per pupil and moved by each page's pupils |
//! | [`watch`] | one `WatchPresence` stream: backlog, live batches, redaction, heartbeats, the end of the caller's access |
//! | [`limits`] | stream slots per account and the bound on stream reads holding pool connections |
//! | [`repo`] | the set-based SQL (a few queries per board or page, never per room or pupil) |
//! | [`convert`] | domain → proto with redaction; the board's reply from encoded rooms and alerts, and its codec |
//!
//! Retention: `active.presence_events` is a resume buffer, not history. The hub deletes
//! events older than [`PresenceSettings::retention`] (48 h) every
//! [`PresenceSettings::purge_every`] (10 min), on one replica at a time (advisory lock), as a
//! prefix in stream order, and records the purged position in `active.presence_log_purge`;
//! a cursor at or before it is answered FailedPrecondition `CURSOR_EXPIRED` (reload the
//! board). Visits and attendance keep their own retention (behaviour.md "Retention").

pub mod alerts;
pub mod board;
pub mod board_cache;
pub mod convert;
pub mod cursor;
pub mod feed;
pub mod hub;
pub mod limits;
pub mod repo;
pub mod service;
pub mod tally;
pub mod watch;

use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::{Error, Result};

pub use cursor::Cursor;
pub use feed::CURSOR_EXPIRED;
pub use hub::Hub;
pub use service::{METHODS, PresenceApi, server};

/// Settings of the board and the stream.
#[derive(Debug, Clone)]
pub struct PresenceSettings {
    /// The school's time zone: the business date of the counts and of "my groups".
    pub timezone: chrono_tz::Tz,
    /// A heartbeat after this long without a message (keeps proxies from closing streams).
    pub heartbeat: Duration,
    /// The hub's safety poll (and LISTEN connection ping).
    pub poll: Duration,
    /// How long events are kept for resuming.
    pub retention: Duration,
    /// How often the hub purges older events.
    pub purge_every: Duration,
    /// How often counts, supervision and each watcher's groups are re-read regardless of
    /// events.
    pub access_refresh: Duration,
    /// Batches buffered for slow watchers before they lag (and re-read from the table).
    pub channel_capacity: usize,
    /// Open `WatchPresence` streams one account (or service client) may hold in this
    /// process; the next is `ResourceExhausted`.
    pub max_streams_per_account: usize,
    /// Stream reads (opening, catching up, resuming, refreshing access) holding a pool
    /// connection at once; the rest wait for a permit, not for the pool.
    pub stream_reads: usize,
    /// The school settings the alert thresholds are read from live (`None`: the registry
    /// defaults).
    pub live: Option<phoenix_common::settings::LiveSettings>,
    /// How often the alerts are re-computed when no event came (a threshold can pass
    /// without one).
    pub alert_every: Duration,
}

impl PresenceSettings {
    /// The defaults: heartbeat 15 s, poll 1 s, retention 48 h, purge every 10 min, refresh
    /// every 60 s, 1024 batches, 5 streams per account, 2 stream reads at once, alerts every
    /// 30 s with the registry's thresholds.
    pub fn new(timezone: chrono_tz::Tz) -> Self {
        Self {
            timezone,
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(48 * 3600),
            purge_every: Duration::from_secs(10 * 60),
            access_refresh: Duration::from_secs(60),
            channel_capacity: 1024,
            max_streams_per_account: 5,
            stream_reads: 2,
            live: None,
            alert_every: Duration::from_secs(30),
        }
    }
}

/// Deletes events older than `retention` if no other replica is purging (advisory lock), in
/// one transaction with the purged-position record. `None` when another replica holds the
/// lock.
pub async fn purge(conn: &mut AsyncPgConnection, retention: Duration) -> Result<Option<usize>> {
    let retention = chrono::Duration::from_std(retention).map_err(anyhow::Error::from)?;
    let cutoff = Utc::now() - retention;
    conn.transaction::<_, Error, _>(async move |conn| {
        if !repo::try_purge_lock(conn).await? {
            return Ok(None);
        }
        Ok(Some(repo::purge_before(conn, cutoff).await?))
    })
    .await
}
