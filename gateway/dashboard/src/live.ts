// Keeps the board live: GetPresenceBoard, then WatchPresence from the board's cursor.
//
// - A network error or a closed stream resumes WatchPresence from the cursor of the last
//   event applied (nothing lost, nothing doubled), after an exponential backoff with jitter
//   (0.5 s doubling up to 30 s; reset once an event arrives). Coming back online retries at
//   once.
// - CURSOR_EXPIRED (the cursor is older than the retained event log), a cursor the server
//   rejects as invalid, and events the board cannot apply in place reload the board and
//   watch from its cursor.
// - UNAUTHENTICATED renews the access token once and resumes; PERMISSION_DENIED stops.

import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type Applied, type Board, applyEvent, boardFrom } from "./board";
import { reason } from "./errors";
import { PresenceService } from "./gen/phoenix/active/v1/presence_pb";

export type Status = "connecting" | "live" | "reconnecting" | "offline";

export interface LiveCallbacks {
  /** A new board (first load or reload). */
  board(board: Board, reloaded: boolean): void;
  /** An event was applied to the current board. */
  applied(board: Board, applied: Applied): void;
  status(status: Status): void;
  /** The caller may not watch (no `groups:read`). */
  denied(): void;
  /** The session cannot be renewed. */
  unauthenticated(): void;
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 1));
  // "Equal jitter": at least half the ceiling, so retries never hammer the server.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class Live {
  private readonly client;
  private readonly stop = new AbortController();
  private wake: (() => void) | undefined;
  private readonly onOnline = () => this.wake?.();

  constructor(
    transport: Transport,
    private readonly cb: LiveCallbacks,
    private readonly renew: () => Promise<void>,
  ) {
    this.client = createClient(PresenceService, transport);
  }

  start(): void {
    window.addEventListener("online", this.onOnline);
    void this.run();
  }

  close(): void {
    window.removeEventListener("online", this.onOnline);
    this.stop.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    const signal = this.stop.signal;
    let board: Board | undefined;
    let loaded = false;
    let attempt = 0;
    let refused = 0; // cursors refused since the last event
    let renewed = false;
    this.cb.status("connecting");
    while (!signal.aborted) {
      const stream = new AbortController();
      const abortStream = () => stream.abort();
      signal.addEventListener("abort", abortStream);
      try {
        if (!board) {
          const res = await this.client.getPresenceBoard({}, { signal });
          board = boardFrom(res);
          this.cb.board(board, loaded);
          loaded = true;
        }
        this.cb.status("live");
        let reload = false;
        for await (const res of this.client.watchPresence({ cursor: board.cursor }, { signal: stream.signal })) {
          attempt = 0;
          refused = 0;
          renewed = false;
          if (!res.event) continue;
          const applied = applyEvent(board, res.event);
          if (applied.reload) {
            reload = true;
            break;
          }
          this.cb.applied(board, applied);
        }
        if (reload) {
          board = undefined; // loaded again at the top, then watched from its cursor
          continue;
        }
        // The server (or a proxy) ended the stream: resume from the cursor after a pause.
        attempt++;
        this.cb.status("reconnecting");
        await this.sleep(backoffMs(attempt));
      } catch (e) {
        if (signal.aborted) return;
        const err = ConnectError.from(e);
        // An expired (or unreadable) cursor: start over from a fresh board — at once the
        // first time, with backoff should a fresh board's cursor be refused too.
        const expired = err.code === Code.FailedPrecondition && reason(err) === "CURSOR_EXPIRED";
        if (expired || (err.code === Code.InvalidArgument && board)) {
          board = undefined;
          if (refused++ > 0) await this.sleep(backoffMs(refused));
          continue;
        }
        if (err.code === Code.PermissionDenied) {
          this.cb.status("offline");
          this.cb.denied();
          return;
        }
        if (err.code === Code.Unauthenticated && !renewed) {
          renewed = true;
          try {
            await this.renew();
            continue;
          } catch {
            this.cb.status("offline");
            this.cb.unauthenticated();
            return;
          }
        }
        if (err.code === Code.Unauthenticated) {
          this.cb.status("offline");
          this.cb.unauthenticated();
          return;
        }
        attempt++;
        this.cb.status("reconnecting");
        await this.sleep(backoffMs(attempt));
      } finally {
        signal.removeEventListener("abort", abortStream);
        stream.abort();
      }
    }
  }

  /** Waits `ms`, or less when the browser comes back online or the watcher is closed. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
