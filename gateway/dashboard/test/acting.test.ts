// What the board offers for which permissions (src/perms.ts), how errors read (src/errors.ts)
// and what a room needs for its controls (src/board.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { shortName } from "../src/actions";
import { boardFrom } from "../src/board";
import { userMessage } from "../src/errors";
import { GetPresenceBoardResponseSchema } from "../src/gen/phoenix/active/v1/presence_pb";
import { capsFrom, grants, mayClaim, mayEnd, permissionMatches } from "../src/perms";

test("permission matching follows the server's rules", () => {
  assert.ok(permissionMatches("*:*", "sessions:manage"));
  assert.ok(permissionMatches("admin:*", "groups:create"));
  assert.ok(permissionMatches("sessions:*", "sessions:manage"));
  assert.ok(permissionMatches("visits:up*", "visits:update"));
  assert.ok(permissionMatches("groups:update", "groups:update"));
  assert.ok(!permissionMatches("groups:update", "groups:create"));
  assert.ok(!permissionMatches("groups:*", "sessions:manage"));
  assert.ok(!permissionMatches("groups", "groups:update"));
  assert.ok(!permissionMatches("a:b:c", "a:b"));
  assert.ok(!grants([], "users:read"));
});

test("a seeded teacher may end only the sessions they supervise, and claim unclaimed ones", () => {
  const teacher = capsFrom(["users:read", "users:update", "groups:read", "groups:update", "visits:update"], 7n);
  assert.equal(teacher.staffId, "7");
  assert.ok(teacher.search && teacher.visits && teacher.markSick && teacher.update);
  assert.ok(!teacher.manage, "no sessions:manage");
  assert.ok(!teacher.start, "no groups:create");
  assert.ok(mayEnd(teacher, ["7"]));
  assert.ok(mayEnd(teacher, ["3", "7"]));
  assert.ok(!mayEnd(teacher, ["3"]), "someone else's session");
  assert.ok(!mayEnd(teacher, []), "an unclaimed session");
  assert.ok(mayClaim(teacher, []));
  assert.ok(!mayClaim(teacher, ["3"]), "a supervised session");
});

test("an admin may do everything; an account without a staff record cannot claim", () => {
  const admin = capsFrom(["*:*"], undefined);
  assert.ok(admin.start && admin.manage && admin.visits && admin.search);
  assert.ok(mayEnd(admin, ["3"]));
  assert.ok(mayEnd(admin, []));
  assert.ok(!mayClaim(admin, []), "no staff record to supervise with");
  const reader = capsFrom(["groups:read", "presence:read"], 4n);
  assert.ok(!reader.search && !reader.visits && !reader.update);
  assert.ok(!mayEnd(reader, ["4"]) && !mayClaim(reader, []));
});

test("found pupils are shown like the board: first name and last initial", () => {
  assert.equal(shortName("Kind0", "Test0"), "Kind0 T.");
  assert.equal(shortName(" Émile ", "Ölmann"), "Émile Ö.");
  assert.equal(shortName("Ada", ""), "Ada");
});

test("errors show the service's own message, except network and internal failures", () => {
  const msg = (code: Code, text: string) => userMessage(new ConnectError(text, code));
  assert.equal(msg(Code.FailedPrecondition, "session 2 has ended; start a new session"), "session 2 has ended; start a new session");
  assert.equal(msg(Code.PermissionDenied, "missing permission sessions:manage"), "missing permission sessions:manage");
  assert.equal(msg(Code.Unavailable, "database unavailable"), undefined);
  assert.equal(msg(Code.Internal, "oops"), undefined);
  assert.equal(msg(Code.Unknown, ""), undefined);
  assert.equal(msg(Code.NotFound, "  "), undefined);
});

test("rooms carry their session and the supervisors' staff ids (who may end it)", () => {
  const b = boardFrom(
    create(GetPresenceBoardResponseSchema, {
      cursor: "c0",
      rooms: [{ roomId: 5n, roomName: "Raum A", sessionId: 42n, supervisors: [{ staffId: 7n, displayName: "Tina L." }] }],
    }),
  );
  const room = b.rooms.get("5");
  assert.equal(room?.sessionId, "42");
  assert.deepEqual(room?.supervisorIds, ["7"]);
  assert.deepEqual(room?.supervisors, ["Tina L."]);
});
