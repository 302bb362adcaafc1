//! The presence event log (`active.presence_events`), written in the transaction of every
//! presence change and read by `WatchPresence`.
//!
//! Writers call [`record`] inside their transaction: the row and the `NOTIFY` become visible
//! together at commit, or not at all. The notification only wakes watchers (on any replica);
//! they read the rows themselves, in `(tx_id, id)` order and only below the snapshot horizon
//! (see the migration), so a late commit is never skipped by a cursor.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::active::presence_events;

/// The `LISTEN`/`NOTIFY` channel that wakes presence watchers (payload: the event id).
pub const PRESENCE_CHANNEL: &str = "phoenix_presence";

/// What changed (`active.presence_events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    CheckedIn,
    CheckedOut,
    Transferred,
    GoneHome,
    Arrived,
    SessionStarted,
    SessionEnded,
    SupervisorsChanged,
}

impl ChangeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::CheckedIn => "checked_in",
            ChangeKind::CheckedOut => "checked_out",
            ChangeKind::Transferred => "transferred",
            ChangeKind::GoneHome => "gone_home",
            ChangeKind::Arrived => "arrived",
            ChangeKind::SessionStarted => "session_started",
            ChangeKind::SessionEnded => "session_ended",
            ChangeKind::SupervisorsChanged => "supervisors_changed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "checked_in" => ChangeKind::CheckedIn,
            "checked_out" => ChangeKind::CheckedOut,
            "transferred" => ChangeKind::Transferred,
            "gone_home" => ChangeKind::GoneHome,
            "arrived" => ChangeKind::Arrived,
            "session_started" => ChangeKind::SessionStarted,
            "session_ended" => ChangeKind::SessionEnded,
            "supervisors_changed" => ChangeKind::SupervisorsChanged,
            _ => return None,
        })
    }
}

/// One presence change, ids only. `room_id`/`session_id` are the room and session entered
/// (check-in, transfer) or left (check-out); `from_room_id` the room a transfer or a
/// going-home left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    pub kind: ChangeKind,
    pub student_id: Option<i64>,
    pub session_id: Option<i64>,
    pub room_id: Option<i64>,
    pub from_room_id: Option<i64>,
}

impl PresenceChange {
    /// A pupil's change.
    pub fn student(kind: ChangeKind, student_id: i64) -> Self {
        Self { kind, student_id: Some(student_id), session_id: None, room_id: None, from_room_id: None }
    }

    /// A session's change (start, end, supervisors).
    pub fn session(kind: ChangeKind, session_id: i64, room_id: i64) -> Self {
        Self { kind, student_id: None, session_id: Some(session_id), room_id: Some(room_id), from_room_id: None }
    }

    /// In (or out of) `room_id`'s session `session_id`.
    pub fn at(mut self, session_id: i64, room_id: i64) -> Self {
        self.session_id = Some(session_id);
        self.room_id = Some(room_id);
        self
    }

    /// Coming from `room_id`.
    pub fn from_room(mut self, room_id: Option<i64>) -> Self {
        self.from_room_id = room_id;
        self
    }
}

/// Appends `change` to the event log and notifies watchers, inside the caller's transaction.
/// Returns the event id.
pub async fn record(conn: &mut AsyncPgConnection, change: PresenceChange) -> QueryResult<i64> {
    let id: i64 = diesel::insert_into(presence_events::table)
        .values((
            presence_events::kind.eq(change.kind.as_str()),
            presence_events::student_id.eq(change.student_id),
            presence_events::session_id.eq(change.session_id),
            presence_events::room_id.eq(change.room_id),
            presence_events::from_room_id.eq(change.from_room_id),
        ))
        .returning(presence_events::id)
        .get_result(conn)
        .await?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(PRESENCE_CHANNEL)
        .bind::<Text, _>(id.to_string())
        .execute(conn)
        .await?;
    Ok(id)
}
