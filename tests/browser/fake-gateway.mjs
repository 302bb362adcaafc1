// A canned stand-in for the gateway, for the page check only (page-check.mjs): serves
// gateway/dashboard/dist/ like the gateway does, and answers the five grpc-web calls the
// page makes (Login, Refresh, Logout, WhoAmI, the board) with scripted replies, hand-encoded protobuf (field numbers of auth.proto and
// presence.proto). The real thing is checked by dashboard.mjs against the running stack.
//
// Script: Login (password "wrong" → UNAUTHENTICATED; else an access token about to expire,
// so the page must Refresh first) → GetPresenceBoard (cursor c0) → WatchPresence #1 sends
// one check-in (cursor c1) and fails UNAVAILABLE → #2 (must resume from c1) fails
// FAILED_PRECONDITION CURSOR_EXPIRED → the page reloads the board (cursor c9) → #3 stays
// open with heartbeats.

import { readFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";

// ---- protobuf wire format, just enough -------------------------------------------------

function varint(value) {
  let n = BigInt(value);
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}
const key = (field, wire) => varint((field << 3) | wire);
const int = (field, v) => (v === undefined ? [] : [...key(field, 0), ...varint(v)]);
const bool = (field, v) => (v ? [...key(field, 0), 1] : []);
const bytes = (field, b) => [...key(field, 2), ...varint(b.length), ...b];
const str = (field, s) => (s === undefined ? [] : bytes(field, [...Buffer.from(s, "utf8")]));
const msg = (field, m) => (m === undefined ? [] : bytes(field, m));
const many = (field, list) => list.flatMap((m) => msg(field, m));

const timestamp = (date) => int(1, Math.floor(date.getTime() / 1000));
const tokenPair = (access, refresh, expiresInMs) => [
  ...str(1, access),
  ...msg(2, timestamp(new Date(Date.now() + expiresInMs))),
  ...str(3, refresh),
  ...msg(4, timestamp(new Date(Date.now() + 86_400_000))),
  ...str(5, "Bearer"),
];
const counts = (c) => [...int(1, c[0]), ...int(2, c[1]), ...int(3, c[2]), ...int(4, c[3]), ...int(5, c[4]), ...int(6, c[5])];
const pupil = (id, name, since) => [...int(1, id), ...str(2, name), ...msg(3, timestamp(since))];
const room = (r) => [
  ...int(1, r.id),
  ...str(2, r.name),
  ...int(3, r.session),
  ...str(5, r.activity),
  ...str(7, r.group),
  ...many(8, (r.supervisors ?? []).map((name, i) => [...int(1, i + 1), ...str(2, name)])),
  ...int(9, r.count),
  ...int(10, r.capacity),
  ...many(11, (r.pupils ?? []).map(([id, name]) => pupil(id, name, new Date(Date.now() - id * 60_000)))),
  ...bool(12, r.redacted),
  ...bool(13, r.mine),
];

/** The board before (first) and after (reload) the scripted changes. */
function board(reloaded) {
  const rooms = [
    {
      id: 1,
      name: "Raum 101",
      session: 11,
      activity: "Hausaufgaben",
      group: "Füchse",
      supervisors: ["Erika M."],
      count: reloaded ? 3 : 2,
      capacity: 20,
      pupils: [[1, "Mia M."], [2, "Ben K."], ...(reloaded ? [[3, "Lena K."]] : [])],
      mine: true,
    },
    {
      id: 2,
      name: "Raum 102",
      session: 12,
      activity: "Basteln",
      group: "Eulen",
      supervisors: ["Jonas W.", "Aylin D."],
      count: reloaded ? 2 : 1,
      capacity: 2,
      pupils: reloaded ? [[4, "Noah P."]] : [],
      redacted: true,
      mine: true,
    },
    { id: 3, name: "Turnhalle", session: 13, activity: "Fußball", supervisors: [], count: 4, redacted: true },
  ];
  return [
    ...many(1, rooms.map(room)),
    ...msg(2, counts(reloaded ? [9, 3, 180, 6, 2, 200] : [7, 4, 181, 6, 2, 200])),
    ...str(3, reloaded ? "c9" : "c0"),
    ...msg(4, timestamp(new Date())),
    ...str(5, new Date().toISOString().slice(0, 10)),
  ];
}

const checkInEvent = () => [
  ...str(1, "c1"),
  ...int(2, 1), // CHECKED_IN
  ...msg(3, timestamp(new Date())),
  ...msg(4, pupil(3, "Lena K.", new Date())),
  ...int(5, 1),
  ...str(6, "Raum 101"),
  ...int(7, 11),
  ...msg(9, counts([8, 3, 181, 6, 2, 200])),
  ...int(10, 3),
];
const heartbeat = () => [...str(1, "c9"), ...int(2, 9)];

// ---- grpc-web framing ------------------------------------------------------------------

function frame(flag, payload) {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = flag;
  b.writeUInt32BE(payload.length, 1);
  Buffer.from(payload).copy(b, 5);
  return b;
}
function trailer(status, message = "", details) {
  let text = `grpc-status:${status}\r\ngrpc-message:${encodeURIComponent(message)}\r\n`;
  if (details) text += `grpc-status-details-bin:${Buffer.from(details).toString("base64").replace(/=+$/, "")}\r\n`;
  return frame(0x80, Buffer.from(text));
}
/** google.rpc.Status with one google.rpc.ErrorInfo. */
function errorInfo(code, message, reason) {
  const info = [...str(1, reason), ...str(2, "phoenix")];
  const any = [...str(1, "type.googleapis.com/google.rpc.ErrorInfo"), ...bytes(2, info)];
  return [...int(1, code), ...str(2, message), ...msg(3, any)];
}
/** The string field 1 of the request message (cursor, refresh token). */
function firstString(body) {
  const m = body.subarray(5);
  if (m.length < 2 || m[0] !== 0x0a) return "";
  let len = 0;
  let shift = 0;
  let i = 1;
  for (; i < m.length; i++) {
    len |= (m[i] & 0x7f) << shift;
    shift += 7;
    if (!(m[i] & 0x80)) break;
  }
  return m.subarray(i + 1, i + 1 + len).toString("utf8");
}

// ---- the server ------------------------------------------------------------------------

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css" };

/** Starts the fake on 127.0.0.1 (ephemeral port); `calls` records what the page asked. */
export async function startFakeGateway(distDir) {
  const calls = [];
  let watches = 0;
  const open = new Set();
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET") {
      const name = url.pathname === "/" ? "index.html" : normalize(url.pathname).replace(/^\/+/, "");
      const file = join(distDir, name);
      if (name.includes("..") || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const method = url.pathname.split("/").pop();
      const call = { method, authorization: req.headers.authorization ?? null, arg: firstString(body) };
      if (method === "Login") call.arg = ""; // never keep the password
      calls.push(call);
      res.writeHead(200, { "content-type": "application/grpc-web+proto" });
      const reply = (message) => res.end(Buffer.concat([frame(0, message), trailer(0)]));
      switch (method) {
        case "Login": {
          const password = body.includes(Buffer.from("wrong")) ? "wrong" : "ok";
          if (password === "wrong") res.end(trailer(16, "invalid email or password"));
          // 15 s left: below the page's 20 s margin, so it must Refresh before calling.
          else reply(msg(1, tokenPair("access-1", "refresh-1", 15_000)));
          return;
        }
        case "Refresh":
          reply(msg(1, tokenPair("access-2", "refresh-2", 900_000)));
          return;
        case "Logout":
          reply([]);
          return;
        case "WhoAmI":
          // A read-only caller (WhoAmIResponse.permissions = 4): the board offers no actions.
          reply([...str(4, "groups:read"), ...str(4, "presence:read")]);
          return;
        case "GetPresenceBoard":
          reply(board(watches >= 2));
          return;
        case "WatchPresence": {
          watches++;
          if (watches === 1) {
            res.write(frame(0, msg(1, checkInEvent())));
            setTimeout(() => res.end(trailer(14, "connection reset")), 300);
          } else if (watches === 2) {
            res.end(trailer(9, "cursor expired", errorInfo(9, "cursor expired", "CURSOR_EXPIRED")));
          } else {
            open.add(res);
            const beat = setInterval(() => res.write(frame(0, msg(1, heartbeat()))), 1000);
            res.on("close", () => {
              clearInterval(beat);
              open.delete(res);
            });
          }
          return;
        }
        default:
          res.end(trailer(12, `unexpected ${method}`));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    calls,
    close: () =>
      new Promise((resolve) => {
        for (const res of open) res.destroy();
        server.close(resolve);
      }),
  };
}
