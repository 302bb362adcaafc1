// The board's state and how each WatchPresence event changes it. No DOM and no network
// here, so it is unit-tested in node (test/board.test.ts).
//
// Events carry the pupil (when the caller has full access), the room entered or left, the
// room's new pupil count and the school-wide counts: enough to update the board in place.
// Session starts, ends and supervisor changes carry no activity or supervisor names, so for
// them (and for a room the board does not know) the board is reloaded instead.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  PresenceEventKind,
  type GetPresenceBoardResponse,
  type PresenceCounts,
  type PresenceEvent,
  type PresencePupil,
  type RoomPresence,
} from "./gen/phoenix/active/v1/presence_pb";

export interface Counts {
  inRoom: number;
  inTransit: number;
  absent: number;
  goneHome: number;
  sick: number;
  total: number;
}

export interface Pupil {
  id: string;
  /** First name + last initial, exactly as the service sent it. */
  name: string;
  since: Date | undefined;
}

export interface Room {
  id: string;
  name: string;
  /** The running session's id (for ending or claiming it). */
  sessionId: string;
  activity: string;
  group: string;
  supervisors: string[];
  /** Staff ids of the supervisors, same order (who may end the session). */
  supervisorIds: string[];
  count: number;
  capacity: number | undefined;
  pupils: Map<string, Pupil>;
  /** Some pupils of the room are not listed (the caller lacks full access to them). */
  redacted: boolean;
  mine: boolean;
  /** Bumped on every change, so the view re-renders only changed rooms. */
  version: number;
}

export interface Board {
  rooms: Map<string, Room>;
  counts: Counts;
  /** The family view (a guardian's): their own children only, no school-wide counts. */
  family: boolean;
  /** Business date of the counts, YYYY-MM-DD. */
  date: string;
  asOf: Date | undefined;
  /** Stream position: the board's, then that of the last event applied. */
  cursor: string;
}

/** Something worth announcing to screen-reader users (politely). */
export type Announcement =
  | { kind: "checkedIn" | "transferred"; name: string; room: string }
  | { kind: "checkedOut"; name: string; room: string }
  | { kind: "goneHome" | "arrived"; name: string }
  | { kind: "roomCount"; room: string; count: number };

export interface Applied {
  /** The event cannot be applied in place: reload the board (and watch from its cursor). */
  reload: boolean;
  /** Ids of rooms whose content changed. */
  changed: Set<string>;
  /** The school-wide counts changed. */
  countsChanged: boolean;
  announcements: Announcement[];
  /** The pupil the event was about, if listed (to highlight them). */
  pupilId: string | undefined;
}

const num = (v: bigint | number | undefined): number => (v === undefined ? 0 : Number(v));
const date = (ts: Timestamp | undefined): Date | undefined => (ts ? timestampDate(ts) : undefined);

export function countsFrom(c: PresenceCounts | undefined): Counts {
  return {
    inRoom: num(c?.inRoom),
    inTransit: num(c?.inTransit),
    absent: num(c?.absent),
    goneHome: num(c?.goneHome),
    sick: num(c?.sick),
    total: num(c?.total),
  };
}

function pupilFrom(p: PresencePupil): Pupil {
  return { id: String(p.studentId), name: p.displayName, since: date(p.since) };
}

function roomFrom(r: RoomPresence): Room {
  const pupils = new Map<string, Pupil>();
  for (const p of r.pupils) pupils.set(String(p.studentId), pupilFrom(p));
  const count = num(r.pupilCount);
  return {
    id: String(r.roomId),
    name: r.roomName,
    sessionId: String(r.sessionId),
    activity: r.activityName,
    group: r.educationGroupName,
    supervisors: r.supervisors.map((s) => s.displayName),
    supervisorIds: r.supervisors.map((s) => String(s.staffId)),
    count,
    capacity: r.capacity,
    pupils,
    redacted: r.pupilsRedacted || pupils.size < count,
    mine: r.mine,
    version: 0,
  };
}

export function boardFrom(res: GetPresenceBoardResponse): Board {
  const rooms = new Map<string, Room>();
  for (const r of res.rooms) {
    const room = roomFrom(r);
    rooms.set(room.id, room);
  }
  const family = res.counts === undefined;
  return { rooms, counts: countsFrom(res.counts), family, date: res.date, asOf: date(res.asOf), cursor: res.cursor };
}

/** Rooms in display order: the caller's own first, then by name. */
export function sortedRooms(board: Board, locale: string): Room[] {
  const collator = new Intl.Collator(locale, { numeric: true, sensitivity: "base" });
  return [...board.rooms.values()].sort((a, b) => {
    if (a.mine !== b.mine) return a.mine ? -1 : 1;
    return collator.compare(a.name, b.name) || a.id.localeCompare(b.id);
  });
}

/** Pupils of a room by name. */
export function sortedPupils(room: Room, locale: string): Pupil[] {
  const collator = new Intl.Collator(locale, { sensitivity: "base" });
  return [...room.pupils.values()].sort((a, b) => collator.compare(a.name, b.name) || a.id.localeCompare(b.id));
}

function touch(room: Room, applied: Applied): void {
  room.version++;
  applied.changed.add(room.id);
}

/** Removes the pupil from whichever room lists them; returns that room. */
function removePupilEverywhere(board: Board, pupilId: string, applied: Applied): Room | undefined {
  for (const room of board.rooms.values()) {
    if (room.pupils.delete(pupilId)) {
      touch(room, applied);
      return room;
    }
  }
  return undefined;
}

/** Sets the room's pupil count; pupils counted but not listed make the room "redacted". */
function setCount(room: Room, count: number, applied: Applied): void {
  const next = Math.max(0, count);
  const redacted = room.pupils.size < next;
  if (room.count !== next || room.redacted !== redacted) {
    room.count = next;
    room.redacted = redacted;
    touch(room, applied);
  }
}

/** Applies one event to the board (in place). */
export function applyEvent(board: Board, ev: PresenceEvent): Applied {
  const applied: Applied = {
    reload: false,
    changed: new Set(),
    countsChanged: false,
    announcements: [],
    pupilId: undefined,
  };
  if (ev.cursor) board.cursor = ev.cursor;
  if (ev.counts) {
    const next = countsFrom(ev.counts);
    const prev = board.counts;
    if (
      next.inRoom !== prev.inRoom ||
      next.inTransit !== prev.inTransit ||
      next.absent !== prev.absent ||
      next.goneHome !== prev.goneHome ||
      next.sick !== prev.sick ||
      next.total !== prev.total
    ) {
      board.counts = next;
      applied.countsChanged = true;
    }
  }
  if (ev.occurredAt) board.asOf = timestampDate(ev.occurredAt);

  const pupil = ev.pupil ? pupilFrom(ev.pupil) : undefined;
  if (pupil && !pupil.since && ev.occurredAt) pupil.since = timestampDate(ev.occurredAt);
  applied.pupilId = pupil?.id;
  const roomId = ev.roomId === undefined ? undefined : String(ev.roomId);
  const room = roomId === undefined ? undefined : board.rooms.get(roomId);
  const roomCount = ev.roomPupilCount === undefined ? undefined : Number(ev.roomPupilCount);

  switch (ev.kind) {
    case PresenceEventKind.CHECKED_IN:
    case PresenceEventKind.TRANSFERRED: {
      if (roomId !== undefined && !room) {
        applied.reload = true; // a room the board does not show yet
        return applied;
      }
      // Where the pupil was: where the board lists them, else the transfer's origin.
      let from: Room | undefined;
      if (pupil) from = removePupilEverywhere(board, pupil.id, applied);
      if (!from && ev.kind === PresenceEventKind.TRANSFERRED && ev.fromRoomId !== undefined) {
        from = board.rooms.get(String(ev.fromRoomId));
      }
      if (from && from !== room) setCount(from, from.count - 1, applied);
      if (room) {
        if (pupil) {
          room.pupils.set(pupil.id, pupil);
          touch(room, applied);
        }
        setCount(room, roomCount ?? (from === room ? room.count : room.count + 1), applied);
        applied.announcements.push(
          pupil
            ? {
                kind: ev.kind === PresenceEventKind.CHECKED_IN ? "checkedIn" : "transferred",
                name: pupil.name,
                room: room.name,
              }
            : { kind: "roomCount", room: room.name, count: room.count },
        );
      }
      return applied;
    }
    case PresenceEventKind.CHECKED_OUT:
    case PresenceEventKind.GONE_HOME: {
      const left = pupil ? removePupilEverywhere(board, pupil.id, applied) : undefined;
      if (left && room && left !== room) setCount(left, left.count - 1, applied);
      const target = room ?? left;
      if (target) setCount(target, room && roomCount !== undefined ? roomCount : target.count - 1, applied);
      if (ev.kind === PresenceEventKind.GONE_HOME) {
        if (pupil) applied.announcements.push({ kind: "goneHome", name: pupil.name });
      } else if (pupil && target) {
        applied.announcements.push({ kind: "checkedOut", name: pupil.name, room: target.name });
      } else if (target) {
        applied.announcements.push({ kind: "roomCount", room: target.name, count: target.count });
      }
      return applied;
    }
    case PresenceEventKind.ARRIVED:
      if (pupil) applied.announcements.push({ kind: "arrived", name: pupil.name });
      return applied;
    case PresenceEventKind.SESSION_STARTED:
    case PresenceEventKind.SESSION_ENDED:
    case PresenceEventKind.SUPERVISORS_CHANGED:
      applied.reload = true;
      return applied;
    case PresenceEventKind.HEARTBEAT:
    default:
      return applied;
  }
}
