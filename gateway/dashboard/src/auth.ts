// Login and tokens. Both tokens live in this module's memory only — never in localStorage
// or sessionStorage — so nothing a later visitor of the same browser profile (a shared
// staff-room PC) or an injected script could read survives the tab. The price is that a
// reload asks for the password again; the board itself holds no state worth keeping.
//
// The access token (15 minutes) is renewed with Refresh one minute before it expires, and
// before any call that finds it about to expire (timers are late after a laptop slept).
// Refresh rotates the refresh token; concurrent callers share one Refresh in flight.

import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuthService, type TokenPair } from "./gen/phoenix/auth/v1/auth_pb";

/** Renew this long before the access token expires. */
const RENEW_BEFORE_MS = 60_000;
/** A call made closer than this to expiry renews first. */
const STALE_MS = 20_000;

interface Tokens {
  access: string;
  accessExpires: number;
  refresh: string;
}

export class SessionEnded extends Error {
  constructor() {
    super("session ended");
  }
}

export class Auth {
  private tokens: Tokens | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly client;

  /** `onEnded` runs when the session can no longer be renewed (revoked, expired). */
  constructor(
    transport: Transport,
    private readonly onEnded: () => void,
  ) {
    this.client = createClient(AuthService, transport);
  }

  get signedIn(): boolean {
    return this.tokens !== undefined;
  }

  async login(email: string, password: string): Promise<void> {
    const res = await this.client.login({ email, password });
    this.accept(res.tokens);
  }

  /** Ends the session here and, best effort, on the server. */
  async logout(): Promise<void> {
    const refresh = this.tokens?.refresh;
    this.clear();
    if (refresh) {
      try {
        await this.client.logout({ refreshToken: refresh });
      } catch {
        // The tokens are gone from memory either way; the server revokes on expiry.
      }
    }
  }

  /** Renews the access token now (one Refresh at a time). */
  refresh(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.doRefresh().finally(() => {
        this.inFlight = undefined;
      });
    }
    return this.inFlight;
  }

  /** Adds `authorization: Bearer …` to every call, renewing a token about to expire first. */
  readonly interceptor: Interceptor = (next) => async (req) => {
    if (this.tokens && this.tokens.accessExpires - Date.now() < STALE_MS) {
      await this.refresh();
    }
    if (!this.tokens) throw new SessionEnded();
    req.header.set("authorization", `Bearer ${this.tokens.access}`);
    return next(req);
  };

  private async doRefresh(): Promise<void> {
    const current = this.tokens;
    if (!current) throw new SessionEnded();
    let attempt = 0;
    for (;;) {
      try {
        const res = await this.client.refresh({ refreshToken: current.refresh });
        if (this.tokens !== current) return; // logged out meanwhile
        this.accept(res.tokens);
        return;
      } catch (e) {
        const err = ConnectError.from(e);
        const retryable =
          err.code === Code.Unavailable || err.code === Code.Unknown || err.code === Code.DeadlineExceeded;
        // Still time left on the access token: retry a network failure a few times.
        if (retryable && attempt < 5 && current.accessExpires > Date.now()) {
          attempt++;
          await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
          continue;
        }
        this.clear();
        this.onEnded();
        throw new SessionEnded();
      }
    }
  }

  private accept(pair: TokenPair | undefined): void {
    if (!pair?.accessToken || !pair.refreshToken) throw new Error("login answered without tokens");
    const expires = pair.accessTokenExpireTime
      ? timestampDate(pair.accessTokenExpireTime).getTime()
      : Date.now() + 5 * 60_000;
    this.tokens = { access: pair.accessToken, accessExpires: expires, refresh: pair.refreshToken };
    clearTimeout(this.timer);
    const delay = Math.max(5_000, expires - Date.now() - RENEW_BEFORE_MS);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => {
        // onEnded already told the page.
      });
    }, delay);
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.tokens = undefined;
  }
}
