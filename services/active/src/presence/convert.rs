//! Presence domain → proto, with redaction per caller.

use std::sync::OnceLock;

use anyhow::Context as _;
use bytes::{BufMut, Bytes};
use chrono::{DateTime, Utc};
use phoenix_common::time::to_timestamp;
use phoenix_proto::active::v1 as pb;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstCodec;

use super::alerts::{Alert, AlertKind};
use super::board::{Access, Board, BoardRoom, BoardStudent, RoomTile, View};
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

/// A tile with `students`, the pupils of it the caller may see; `pupils_redacted` when that
/// is not all.
fn room<'a>(
    tile: &RoomTile,
    students: impl ExactSizeIterator<Item = &'a BoardStudent>,
    mine: bool,
) -> pb::RoomPresence {
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
        pupils_redacted: (students.len() as i64) < tile.student_count,
        pupils: students.map(student).collect(),
        mine,
    }
}

/// `room`, encoded: one element of the board's `rooms`.
pub fn encoded_room<'a>(
    tile: &RoomTile,
    students: impl ExactSizeIterator<Item = &'a BoardStudent>,
    mine: bool,
) -> Bytes {
    Bytes::from(prost::Message::encode_to_vec(&room(tile, students, mine)))
}

/// The family view's room (its tile counts only the caller's children).
pub fn family_room(r: &BoardRoom) -> Bytes {
    encoded_room(&r.tile, r.students.iter(), r.mine)
}

/// [`alert`], encoded: one element of the board's `alerts`.
pub fn encoded_alert(a: &Alert) -> Bytes {
    Bytes::from(prost::Message::encode_to_vec(&alert(a)))
}

/// The board's response.
pub fn board(b: Board) -> BoardReply {
    BoardReply {
        rooms: b.rooms,
        rest: pb::GetPresenceBoardResponse {
            rooms: Vec::new(),
            counts: b.counts.as_ref().map(counts),
            cursor: b.cursor.encode(),
            as_of: Some(to_timestamp(b.as_of)),
            date: b.date.format("%Y-%m-%d").to_string(),
            alerts: Vec::new(),
        },
        alerts: b.alerts,
    }
}

/// `GetPresenceBoardResponse` with its rooms and alerts already encoded: the school board's
/// are encoded once per cache entry and shared by every caller who sees them alike
/// (`board_cache`), so a call copies bytes instead of building and encoding thousands of
/// pupils. Written by [`BoardCodec`]; on the wire it is the message itself, byte for byte (a
/// repeated message field is a run of length-delimited records; prost writes the fields in
/// tag order, rooms 1 first and alerts 6 last, and so does this).
#[derive(Debug, Clone, Default)]
pub struct BoardReply {
    /// Each an encoded `RoomPresence`, in the board's order (field 1).
    rooms: Vec<Bytes>,
    /// Fields 2–5 (its `rooms` and `alerts` empty).
    rest: pb::GetPresenceBoardResponse,
    /// Each an encoded `Alert` (field 6).
    alerts: Vec<Bytes>,
}

impl BoardReply {
    /// The keys of fields 1 (`rooms`) and 6 (`alerts`), length-delimited (wire type 2).
    const ROOMS_KEY: u8 = 1 << 3 | 2;
    const ALERTS_KEY: u8 = 6 << 3 | 2;

    fn records_len(records: &[Bytes]) -> usize {
        records.iter().map(|r| 1 + prost::length_delimiter_len(r.len()) + r.len()).sum()
    }

    fn put_records(key: u8, records: &[Bytes], buf: &mut impl BufMut) -> Result<(), prost::EncodeError> {
        for record in records {
            buf.put_u8(key);
            prost::encode_length_delimiter(record.len(), buf)?;
            buf.put_slice(record);
        }
        Ok(())
    }

    /// The message's length on the wire.
    pub fn encoded_len(&self) -> usize {
        Self::records_len(&self.rooms) + prost::Message::encoded_len(&self.rest) + Self::records_len(&self.alerts)
    }

    /// Writes the message (`buf` must have room for [`Self::encoded_len`]).
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), prost::EncodeError> {
        Self::put_records(Self::ROOMS_KEY, &self.rooms, buf)?;
        prost::Message::encode(&self.rest, buf)?;
        Self::put_records(Self::ALERTS_KEY, &self.alerts, buf)
    }

    /// The message decoded (for a caller of the generated server, and tests).
    pub fn decode(&self) -> phoenix_common::Result<pb::GetPresenceBoardResponse> {
        let mut bytes = Vec::with_capacity(self.encoded_len());
        self.encode(&mut bytes).context("encoding the board")?;
        Ok(prost::Message::decode(bytes.as_slice()).context("decoding the board")?)
    }
}

/// The codec of `GetPresenceBoard` in [`super::service::PresenceServer`]: requests decoded by
/// prost, responses written from a [`BoardReply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BoardCodec;

/// [`BoardCodec`]'s encoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoardEncoder;

impl Encoder for BoardEncoder {
    type Item = BoardReply;
    type Error = tonic::Status;

    fn encode(&mut self, item: BoardReply, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf).map_err(|e| tonic::Status::internal(format!("encoding the board: {e}")))
    }
}

impl Codec for BoardCodec {
    type Encode = BoardReply;
    type Decode = pb::GetPresenceBoardRequest;
    type Encoder = BoardEncoder;
    type Decoder = <ProstCodec<(), pb::GetPresenceBoardRequest> as Codec>::Decoder;

    fn encoder(&mut self) -> BoardEncoder {
        BoardEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<(), pb::GetPresenceBoardRequest>::default().decoder()
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
        room: e
            .tile
            .as_ref()
            .filter(|_| school)
            .map(|t| pb::RoomPresence { pupils_redacted: false, ..room(t, std::iter::empty(), r.mine) }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn a_board_reply_is_the_message_byte_for_byte() {
        let pupil = |id: i64| pb::PresencePupil {
            student_id: id,
            display_name: format!("Kind{id} K."),
            since: Some(prost_types::Timestamp { seconds: 1_800_000_000 + id, nanos: 0 }),
        };
        // A room longer than 127 bytes (a two-byte length), a small one, an empty one.
        let rooms = vec![
            pb::RoomPresence {
                room_id: 1,
                room_name: "Raum 1".into(),
                pupils: (1..40).map(pupil).collect(),
                ..Default::default()
            },
            pb::RoomPresence { room_id: 2, pupils_redacted: true, pupil_count: 3, mine: true, ..Default::default() },
            pb::RoomPresence::default(),
        ];
        let message = pb::GetPresenceBoardResponse {
            rooms,
            counts: Some(pb::PresenceCounts { in_room: 40, total: 100, ..Default::default() }),
            cursor: "c1".into(),
            as_of: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 5 }),
            date: "2026-12-04".into(),
            alerts: vec![
                pb::Alert { student_id: 7, display_name: "Kind7 K.".into(), ..Default::default() },
                pb::Alert { student_id: 8, room_id: Some(2), ..Default::default() },
            ],
        };
        let reply = BoardReply {
            rooms: message.rooms.iter().map(|r| Bytes::from(r.encode_to_vec())).collect(),
            rest: pb::GetPresenceBoardResponse { rooms: Vec::new(), alerts: Vec::new(), ..message.clone() },
            alerts: message.alerts.iter().map(|a| Bytes::from(a.encode_to_vec())).collect(),
        };
        let mut wire = Vec::new();
        reply.encode(&mut wire).expect("a Vec has room");
        assert_eq!(wire.len(), reply.encoded_len());
        assert_eq!(wire, message.encode_to_vec(), "prost writes the fields in tag order too");
        assert_eq!(reply.decode().expect("decodes"), message);
    }
}
