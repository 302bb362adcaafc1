// What the board offers for which permissions (src/perms.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { shortName } from "../src/actions";
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
