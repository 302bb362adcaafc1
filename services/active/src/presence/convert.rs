//! Presence domain → proto, with redaction per caller.

use chrono::{DateTime, Utc};
use phoenix_common::time::to_timestamp;
use phoenix_proto::active::v1 as pb;

use super::alerts::{Alert, AlertKind};
use super::board::{Access, Board, BoardStudent, RoomTile, View};
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

fn student(p: &BoardStudent) -> pb::PresencePupil {
    pb::PresencePupil {
        student_id: p.student_id,
        display_name: p.display_name.clone(),
        since: Some(to_timestamp(p.since)),
    }
}

/// A tile with the pupils the caller may see; `pupils_redacted` when that is not all.
fn room(tile: &RoomTile, students: &[BoardStudent], mine: bool) -> pb::RoomPresence {
    pb::RoomPresence {
        room_id: tile.room_id,
        room_name: tile.room_name.clone(),
        session_id: tile.session_id,
        activity_id: tile.activity_id,
        activity_name: tile.activity_name.clone(),
        education_group_id: tile.education_group_id,
        education_group_name: tile.education_group_name.clone(),
        supervisors: tile
            .supervisors
            .iter()
            .map(|(id, name)| pb::PresenceSupervisor { staff_id: *id, display_name: name.clone() })
            .collect(),
        pupil_count: tile.student_count,
        capacity: tile.capacity,
        pupils: students.iter().map(student).collect(),
        pupils_redacted: (students.len() as i64) < tile.student_count,
        mine,
    }
}

pub fn board(b: Board) -> pb::GetPresenceBoardResponse {
    pb::GetPresenceBoardResponse {
        rooms: b.rooms.iter().map(|r| room(&r.tile, &r.students, r.mine)).collect(),
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

/// `e` as the caller of `access` may see it, carrying `cursor` (the stream position after it).
/// The family view gets no counts (neither school-wide nor of rooms: they would count other
/// pupils) and no room tiles (supervisors' names).
pub fn event(e: &Resolved, access: &Access, latest: Option<&Counts>, cursor: &Cursor) -> pb::PresenceEvent {
    let school = access.view() == View::School;
    let student = e
        .student
        .as_ref()
        .filter(|p| access.sees_student(p.student_id, p.group_id, e.session_id, [e.room_id, e.from_room_id]))
        .map(|p| pb::PresencePupil {
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
            ..room(t, &[], access.mine(t.session_id, t.education_group_id))
        }),
        alerts: Vec::new(),
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
