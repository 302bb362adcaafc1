//! Presence domain → proto, with redaction per caller.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use phoenix_common::time::to_timestamp;
use phoenix_proto::active::v1 as pb;

use super::alerts::{Alert, AlertKind};
use super::board::{Access, Board, BoardRoom, BoardStudent, View};
use super::cursor::Cursor;
use super::feed::Resolved;
use super::repo::Counts;
use crate::events::ChangeKind;

pub fn counts(c: &Counts) -> pb::PresenceCounts {
    pb::PresenceCounts {
        in_room: c.in_room,
        in_transit: c.in_transit,
        absent: c.absent,
        gone_home: c.gone_home,
        sick: c.sick,
        total: c.total,
    }
}

fn student(p: BoardStudent) -> pb::PresencePupil {
    pb::PresencePupil { student_id: p.student_id, display_name: p.display_name, since: Some(to_timestamp(p.since)) }
}

/// A tile with the pupils the caller may see; `pupils_redacted` when that is not all.
fn room(r: BoardRoom) -> pb::RoomPresence {
    let BoardRoom { tile, students, mine } = r;
    pb::RoomPresence {
        room_id: tile.room_id,
        room_name: tile.room_name,
        session_id: tile.session_id,
        activity_id: tile.activity_id,
        activity_name: tile.activity_name,
        education_group_id: tile.education_group_id,
        education_group_name: tile.education_group_name,
        supervisors: tile
            .supervisors
            .into_iter()
            .map(|(id, name)| pb::PresenceSupervisor { staff_id: id, display_name: name })
            .collect(),
        pupil_count: tile.student_count,
        capacity: tile.capacity,
        pupils_redacted: (students.len() as i64) < tile.student_count,
        pupils: students.into_iter().map(student).collect(),
        mine,
    }
}

/// The board's response; it takes the board (its names move into the message).
pub fn board(b: Board) -> pb::GetPresenceBoardResponse {
    pb::GetPresenceBoardResponse {
        rooms: b.rooms.into_iter().map(room).collect(),
        counts: b.counts.as_ref().map(counts),
        cursor: b.cursor.encode(),
        as_of: Some(to_timestamp(b.as_of)),
        date: b.date.format("%Y-%m-%d").to_string(),
        alerts: b.alerts.iter().map(alert).collect(),
    }
}

pub fn alert(a: &Alert) -> pb::Alert {
    let kind = match a.kind {
        AlertKind::NotArrived => pb::AlertKind::NotArrived,
        AlertKind::LongInTransit => pb::AlertKind::LongInTransit,
        AlertKind::PastPickup => pb::AlertKind::PastPickup,
    };
    pb::Alert {
        kind: kind as i32,
        student_id: a.student_id,
        display_name: a.display_name.clone(),
        since: Some(to_timestamp(a.since)),
        room_id: a.room_id,
        room_name: a.room_name.clone(),
    }
}

/// The caller's complete alert set at the watcher's current position.
pub fn alerts(cursor: &Cursor, alerts: &[Alert], now: DateTime<Utc>) -> pb::PresenceEvent {
    pb::PresenceEvent {
        cursor: cursor.encode(),
        kind: pb::PresenceEventKind::Alerts as i32,
        occurred_at: Some(to_timestamp(now)),
        alerts: alerts.iter().map(alert).collect(),
        ..Default::default()
    }
}

fn kind(k: ChangeKind) -> pb::PresenceEventKind {
    use pb::PresenceEventKind as K;
    match k {
        ChangeKind::CheckedIn => K::CheckedIn,
        ChangeKind::CheckedOut => K::CheckedOut,
        ChangeKind::Transferred => K::Transferred,
        ChangeKind::GoneHome => K::GoneHome,
        ChangeKind::Arrived => K::Arrived,
        ChangeKind::SessionStarted => K::SessionStarted,
        ChangeKind::SessionEnded => K::SessionEnded,
        ChangeKind::SupervisorsChanged => K::SupervisorsChanged,
    }
}

/// What one caller may see of an event: the school or the family view, the pupil or not, the
/// room tile as "mine" or not ([`event`]'s per-caller decisions). Callers who see an event the
/// same way get the same message, so a batch converts each event once per redaction
/// ([`Converted`]), not once per watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redaction {
    school: bool,
    pupil: bool,
    mine: bool,
}

impl Redaction {
    /// How many redactions there are.
    const ALL: usize = 8;

    /// How the caller of `access` sees `e`.
    pub fn of(e: &Resolved, access: &Access) -> Self {
        let school = access.view() == View::School;
        let pupil = e
            .student
            .as_ref()
            .is_some_and(|p| access.sees_student(p.student_id, p.group_id, e.session_id, [e.room_id, e.from_room_id]));
        let mine = school && e.tile.as_ref().is_some_and(|t| access.mine(t.session_id, t.education_group_id));
        Self { school, pupil, mine }
    }

    fn index(self) -> usize {
        usize::from(self.school) | usize::from(self.pupil) << 1 | usize::from(self.mine) << 2
    }
}

/// `e` as the caller of `access` may see it, carrying `cursor` (the stream position after it).
/// The family view gets no counts (neither school-wide nor of rooms: they would count other
/// pupils) and no room tiles (supervisors' names).
pub fn event(e: &Resolved, access: &Access, latest: Option<&Counts>, cursor: &Cursor) -> pb::PresenceEvent {
    redacted(e, Redaction::of(e, access), latest, cursor)
}

fn redacted(e: &Resolved, r: Redaction, latest: Option<&Counts>, cursor: &Cursor) -> pb::PresenceEvent {
    let school = r.school;
    let student = e.student.as_ref().filter(|_| r.pupil).map(|p| pb::PresencePupil {
        student_id: p.student_id,
        display_name: p.display_name.clone(),
        since: p.since.map(to_timestamp),
    });
    pb::PresenceEvent {
        cursor: cursor.encode(),
        kind: kind(e.kind) as i32,
        occurred_at: Some(to_timestamp(e.occurred_at)),
        pupil: student,
        room_id: e.room_id,
        room_name: e.room_name.clone(),
        session_id: e.session_id,
        from_room_id: e.from_room_id,
        counts: latest.filter(|_| school).map(counts),
        room_pupil_count: e.room_student_count.filter(|_| school),
        from_room_pupil_count: e.from_room_student_count.filter(|_| school),
        from_room_name: e.from_room_name.clone(),
        // Without pupils (documented): the stream's own pupil events keep a board current.
        room: e.tile.as_ref().filter(|_| school).map(|t| pb::RoomPresence {
            pupils_redacted: false,
            ..room(BoardRoom { tile: t.clone(), students: Vec::new(), mine: r.mine })
        }),
        alerts: Vec::new(),
    }
}

/// The events of one hub batch, each converted on first use once per [`Redaction`] with the
/// batch's counts and the event's own position as its cursor — the message of every watcher
/// whose cursor no longer holds a board snapshot — and then shared by those watchers.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// Per event and redaction (allocated by the first watcher; boxed, so a slot no watcher
    /// needs stays small).
    slots: OnceLock<Box<[OnceLock<Box<pb::PresenceEvent>>]>>,
}

impl Converted {
    /// Event `i` of `events` (the batch's) as `r` shows it, with the batch's `counts`.
    pub fn get(&self, events: &[Resolved], i: usize, r: Redaction, counts: Option<&Counts>) -> &pb::PresenceEvent {
        let slots = self.slots.get_or_init(|| (0..events.len() * Redaction::ALL).map(|_| OnceLock::new()).collect());
        slots[i * Redaction::ALL + r.index()]
            .get_or_init(|| Box::new(redacted(&events[i], r, counts, &Cursor::after(events[i].position))))
    }
}

/// A heartbeat at the watcher's current position (counts only in the school view).
pub fn heartbeat(cursor: &Cursor, latest: Option<&Counts>, now: DateTime<Utc>) -> pb::PresenceEvent {
    pb::PresenceEvent {
        cursor: cursor.encode(),
        kind: pb::PresenceEventKind::Heartbeat as i32,
        occurred_at: Some(to_timestamp(now)),
        counts: latest.map(counts),
        ..Default::default()
    }
}
