// The dashboard: sign in, then the live presence board. grpc-web to the page's own origin
// (the gateway), so no CORS and no configuration.
//
// Privacy: the page shows only what the service returns (display names are first name +
// last initial, already redacted per caller) and writes nothing about pupils to the
// console or to storage.

import "./style.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountPages, accountLink } from "./account";
import { BoardActions } from "./act";
import { Actions } from "./actions";
import { Auth } from "./auth";
import type { Board } from "./board";
import { retryAfterSeconds } from "./errors";
import { type Key, LANGS, type Lang, initialLang, setLang, t } from "./i18n";
import { Live } from "./live";
import { Announcer, RoomsView, byId, relabel, renderAsOf, renderCounts, say, setStatus } from "./view";

const LANG_KEY = "phoenix.dashboard.lang";

function storedLang(): string | null {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

const baseUrl = window.location.origin;
const auth = new Auth(createGrpcWebTransport({ baseUrl }), () => sessionEnded());
const authedTransport = createGrpcWebTransport({ baseUrl, interceptors: [auth.interceptor] });

const rooms = new RoomsView();
const actions = new BoardActions(new Actions(authedTransport), () => board, (focus) => {
  rooms.focusNext = focus;
  draw(true);
});
rooms.controls = (room) => actions.roomControls(room);
const announcer = new Announcer();
let live: Live | undefined;
let board: Board | undefined;
let status: Parameters<typeof setStatus>[0] = "offline";
let frame = 0;
let fullRender = false;
let highlight: string | undefined;

// ---- language -------------------------------------------------------------------------

function applyLang(next: Lang): void {
  setLang(next);
  document.documentElement.lang = next;
  document.title = t("doc.title");
  for (const node of document.querySelectorAll<HTMLElement>("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n as Key);
  }
  for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === next));
  }
  setStatus(status);
  if (board) draw(true);
  actions.relabel();
  relabel();
}

for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-lang]")) {
  button.addEventListener("click", () => {
    const next = button.dataset.lang as Lang;
    if (!LANGS.includes(next)) return;
    try {
      localStorage.setItem(LANG_KEY, next);
    } catch {
      // Private mode: the choice lasts for this page only.
    }
    applyLang(next);
  });
}

// ---- login ----------------------------------------------------------------------------

function showError(key: Key | undefined, vars: Record<string, string | number> = {}): void {
  say(byId("login-error"), key, vars);
}

function showLogin(message?: Key, focus = true, done?: Key): void {
  byId("board").hidden = true;
  byId("forgot").hidden = true;
  byId("account").hidden = true;
  byId("login").hidden = false;
  say(byId("login-done"), done);
  byId("logout").hidden = true;
  byId("status").hidden = true;
  showError(message);
  const password = byId<HTMLInputElement>("password");
  password.value = "";
  const email = byId<HTMLInputElement>("email");
  if (focus) (email.value ? password : email).focus();
}

function showBoard(): void {
  for (const id of ["login", "forgot", "account"]) byId(id).hidden = true;
  byId("board").hidden = false;
  byId("logout").hidden = false;
  byId("status").hidden = false;
  const message = byId("board-message");
  message.hidden = false;
  message.textContent = t("board.loading");
  byId("board-heading").focus();
}

const form = byId<HTMLFormElement>("login-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = byId<HTMLInputElement>("email");
  const password = byId<HTMLInputElement>("password");
  const submit = byId<HTMLButtonElement>("login-submit");
  if (!email.value.trim() || !password.value) {
    showError("login.invalid");
    for (const input of [email, password]) input.setAttribute("aria-invalid", String(!input.value.trim()));
    (email.value.trim() ? password : email).focus();
    return;
  }
  email.removeAttribute("aria-invalid");
  password.removeAttribute("aria-invalid");
  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  submit.textContent = t("login.busy");
  showError(undefined);
  say(byId("login-done"), undefined);
  try {
    await auth.login(email.value.trim(), password.value);
    password.value = "";
    startBoard();
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Unauthenticated) showError("login.failed");
    else if (err.code === Code.InvalidArgument) showError("login.invalid");
    else if (err.code === Code.ResourceExhausted) {
      const seconds = retryAfterSeconds(err);
      if (seconds) showError("login.throttled", { seconds });
      else showError("login.throttled.later");
    } else showError("login.unreachable");
    password.value = "";
    password.focus();
  } finally {
    submit.disabled = false;
    form.removeAttribute("aria-busy");
    submit.textContent = t("login.submit");
  }
});

byId("logout").addEventListener("click", () => {
  stopBoard();
  void auth.logout();
  showLogin(undefined, false);
});

function sessionEnded(): void {
  stopBoard();
  showLogin("login.expired");
}

// ---- board ----------------------------------------------------------------------------

function draw(all: boolean): void {
  fullRender ||= all;
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    if (!board) return;
    renderCounts(board.counts, board.family);
    renderAsOf(board);
    rooms.render(board, fullRender, highlight);
    fullRender = false;
    highlight = undefined;
  });
}

function startBoard(): void {
  showBoard();
  void actions.load();
  live = new Live(
    authedTransport,
    {
      board(next, reloaded) {
        board = next;
        draw(true);
        if (reloaded) announcer.say([t("announce.reloaded")]);
      },
      applied(current, applied) {
        board = current;
        if (applied.changed.size === 0 && !applied.countsChanged) return;
        highlight = applied.pupilId;
        draw(false);
        announcer.say(applied.announcements);
      },
      status(next) {
        status = next;
        setStatus(next);
      },
      denied() {
        const message = byId("board-message");
        message.hidden = false;
        message.textContent = t("board.denied");
      },
      unauthenticated() {
        sessionEnded();
      },
    },
    () => auth.refresh(),
  );
  live.start();
}

function stopBoard(): void {
  live?.close();
  live = undefined;
  board = undefined;
  status = "offline";
  rooms.clear();
  actions.reset();
  announcer.clear();
  byId("counts").replaceChildren();
  byId("as-of").textContent = "";
}

// ---- account pages (links from Phoenix's mail, forgot password) ------------------------

const account = new AccountPages(createGrpcWebTransport({ baseUrl }), {
  async signIn(email, password) {
    await auth.login(email, password);
    startBoard();
  },
  showLogin(done, email) {
    if (email !== undefined) byId<HTMLInputElement>("email").value = email;
    showLogin(undefined, true, done);
  },
});

applyLang(initialLang(storedLang(), navigator.languages?.length ? navigator.languages : [navigator.language]));
const link = accountLink(window.location.pathname, window.location.search);
if (link) {
  // The token is in memory now; out of the address bar and the history with it.
  history.replaceState(null, "", "/");
  void account.open(link);
} else {
  showLogin(undefined, false);
}
