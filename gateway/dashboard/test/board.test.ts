// How WatchPresence events change the board (src/board.ts), and the small pure helpers.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { applyEvent, boardFrom, sortedPupils, sortedRooms } from "../src/board";
import {
  GetPresenceBoardResponseSchema,
  PresenceEventKind,
  PresenceEventSchema,
} from "../src/gen/phoenix/active/v1/presence_pb";
import { initialLang } from "../src/i18n";
import { backoffMs } from "../src/live";

const counts = (inRoom: number, inTransit = 0) => ({
  inRoom: BigInt(inRoom),
  inTransit: BigInt(inTransit),
  absent: 10n,
  goneHome: 0n,
  sick: 1n,
  total: 20n,
});

/** Raum A (mine, Mia listed), Raum B (Ben listed + 1 hidden pupil), Aula (empty, capacity 2). */
function board() {
  return boardFrom(
    create(GetPresenceBoardResponseSchema, {
      cursor: "c0",
      date: "2026-03-03",
      counts: counts(3),
      rooms: [
        {
          roomId: 2n,
          roomName: "Raum B",
          sessionId: 20n,
          activityName: "Fußball",
          supervisors: [{ staffId: 1n, displayName: "Erika B." }],
          pupilCount: 2n,
          pupils: [{ studentId: 12n, displayName: "Ben K." }],
          pupilsRedacted: true,
        },
        { roomId: 3n, roomName: "Aula", sessionId: 30n, pupilCount: 0n, capacity: 2 },
        {
          roomId: 1n,
          roomName: "Raum A",
          sessionId: 10n,
          educationGroupName: "Füchse",
          pupilCount: 1n,
          pupils: [{ studentId: 11n, displayName: "Mia M.", since: timestampFromDate(new Date(0)) }],
          mine: true,
        },
      ],
    }),
  );
}

function event(kind: PresenceEventKind, init: MessageInitShape<typeof PresenceEventSchema> & { cursor: string }) {
  const base: MessageInitShape<typeof PresenceEventSchema> = { kind, counts: counts(3), occurredAt: timestampFromDate(new Date()) };
  return create(PresenceEventSchema, Object.assign(base, init));
}

const names = (b: ReturnType<typeof board>, room: string) =>
  sortedPupils(b.rooms.get(room)!, "de").map((p) => p.name);

test("the board lists my rooms first, then by name, and knows which rooms hide names", () => {
  const b = board();
  assert.deepEqual(
    sortedRooms(b, "de").map((r) => r.name),
    ["Raum A", "Aula", "Raum B"],
  );
  assert.equal(b.cursor, "c0");
  assert.equal(b.counts.inRoom, 3);
  assert.equal(b.rooms.get("2")!.redacted, true);
  assert.equal(b.rooms.get("1")!.redacted, false);
  assert.equal(b.rooms.get("3")!.capacity, 2);
  assert.deepEqual(b.rooms.get("2")!.supervisors, ["Erika B."]);
});

test("a check-in adds the pupil with the room's new count and the new school counts", () => {
  const b = board();
  const applied = applyEvent(
    b,
    event(PresenceEventKind.CHECKED_IN, {
      cursor: "c1",
      pupil: { studentId: 13n, displayName: "Ida L." },
      roomId: 3n,
      roomName: "Aula",
      roomPupilCount: 1n,
      counts: counts(4),
    }),
  );
  assert.equal(applied.reload, false);
  assert.deepEqual([...applied.changed], ["3"]);
  assert.equal(applied.countsChanged, true);
  assert.equal(applied.pupilId, "13");
  assert.deepEqual(applied.announcements, [{ kind: "checkedIn", name: "Ida L.", room: "Aula" }]);
  assert.deepEqual(names(b, "3"), ["Ida L."]);
  assert.equal(b.rooms.get("3")!.count, 1);
  assert.equal(b.counts.inRoom, 4);
  assert.equal(b.cursor, "c1");
});

test("a transfer moves a listed pupil and corrects both rooms' counts", () => {
  const b = board();
  applyEvent(
    b,
    event(PresenceEventKind.TRANSFERRED, {
      cursor: "c2",
      pupil: { studentId: 11n, displayName: "Mia M." },
      roomId: 2n,
      fromRoomId: 1n,
      roomPupilCount: 3n,
    }),
  );
  assert.deepEqual(names(b, "1"), []);
  assert.equal(b.rooms.get("1")!.count, 0);
  assert.deepEqual(names(b, "2"), ["Ben K.", "Mia M."]);
  assert.equal(b.rooms.get("2")!.count, 3);
});

test("a pupil the caller may not see changes only counts and marks the room as hiding names", () => {
  const b = board();
  const applied = applyEvent(
    b,
    event(PresenceEventKind.TRANSFERRED, { cursor: "c3", roomId: 3n, fromRoomId: 2n, roomPupilCount: 1n }),
  );
  assert.deepEqual(names(b, "2"), ["Ben K."]);
  assert.equal(b.rooms.get("2")!.count, 1);
  assert.equal(b.rooms.get("2")!.redacted, false, "everyone left in Raum B is listed");
  assert.equal(b.rooms.get("3")!.count, 1);
  assert.equal(b.rooms.get("3")!.redacted, true);
  assert.deepEqual(applied.announcements, [{ kind: "roomCount", room: "Aula", count: 1 }]);
});

test("check-out and gone home take the pupil off the board", () => {
  const b = board();
  applyEvent(
    b,
    event(PresenceEventKind.CHECKED_OUT, {
      cursor: "c4",
      pupil: { studentId: 12n, displayName: "Ben K." },
      roomId: 2n,
      roomPupilCount: 1n,
    }),
  );
  assert.deepEqual(names(b, "2"), []);
  assert.equal(b.rooms.get("2")!.count, 1);
  const applied = applyEvent(
    b,
    event(PresenceEventKind.GONE_HOME, { cursor: "c5", pupil: { studentId: 11n, displayName: "Mia M." } }),
  );
  assert.deepEqual(names(b, "1"), []);
  assert.equal(b.rooms.get("1")!.count, 0);
  assert.deepEqual(applied.announcements, [{ kind: "goneHome", name: "Mia M." }]);
});

test("session changes and unknown rooms ask for a reload; heartbeats only move the cursor", () => {
  for (const kind of [
    PresenceEventKind.SESSION_STARTED,
    PresenceEventKind.SESSION_ENDED,
    PresenceEventKind.SUPERVISORS_CHANGED,
  ]) {
    assert.equal(applyEvent(board(), event(kind, { cursor: "c6", roomId: 1n })).reload, true);
  }
  const unknownRoom = event(PresenceEventKind.CHECKED_IN, {
    cursor: "c7",
    pupil: { studentId: 14n, displayName: "Tom S." },
    roomId: 99n,
    roomPupilCount: 1n,
  });
  assert.equal(applyEvent(board(), unknownRoom).reload, true);
  const b = board();
  const beat = applyEvent(b, create(PresenceEventSchema, { kind: PresenceEventKind.HEARTBEAT, cursor: "c8" }));
  assert.equal(beat.reload, false);
  assert.equal(beat.changed.size, 0);
  assert.equal(beat.countsChanged, false);
  assert.equal(b.cursor, "c8");
});

test("reconnect backoff grows from 0.5 s to at most 30 s, never below half its ceiling", () => {
  assert.equal(backoffMs(1, () => 0), 250);
  assert.equal(backoffMs(1, () => 1), 500);
  assert.equal(backoffMs(4, () => 1), 4000);
  assert.equal(backoffMs(30, () => 1), 30000);
  assert.equal(backoffMs(30, () => 0), 15000);
});

test("German unless the browser prefers English or the user chose a language", () => {
  assert.equal(initialLang(null, ["de-DE"]), "de");
  assert.equal(initialLang(null, ["en-GB", "de"]), "en");
  assert.equal(initialLang(null, ["fr-FR"]), "de");
  assert.equal(initialLang(null, []), "de");
  assert.equal(initialLang("en", ["de-DE"]), "en");
  assert.equal(initialLang("xx", ["fr", "en-US"]), "en");
});

test("a board without school-wide counts is the family view (a guardian's)", () => {
  assert.equal(board().family, false, "staff get counts");
  const family = boardFrom(create(GetPresenceBoardResponseSchema, { cursor: "c0", date: "2026-03-03", rooms: [] }));
  assert.equal(family.family, true);
});
