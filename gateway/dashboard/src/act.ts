// The acting board: pupil search with check-in / check-out / gone home / sick, and per
// room end / claim, plus the start-session dialog. Offers only what the caller's
// permissions (WhoAmI) allow (src/perms.ts); the outcome reaches this and every other
// board through WatchPresence, so nothing here edits the board itself.
//
// Keyboard: every control is a native button, select or input (Tab order = reading
// order); Enter searches, Escape clears the search, cancels an "end session?" question
// and closes the start dialog (native <dialog>, which also traps focus). After an action
// focus stays on the equivalent control when it is re-rendered. Errors are the service's
// own message (src/errors.ts) in an alert; successes are announced politely.

import { Code, ConnectError } from "@connectrpc/connect";
import { type Actions, type Choice, type FoundPupil } from "./actions";
import type { Board, Room } from "./board";
import { userMessage } from "./errors";
import { Presence } from "./gen/phoenix/users/v1/users_pb";
import { type Key, t } from "./i18n";
import { type Caps, NO_CAPS, mayClaim, mayEnd } from "./perms";
import { byId, el } from "./view";

type Vars = Record<string, string | number>;

function button(label: string, aria: string, focusKey: string, onClick: () => void, cls = "small"): HTMLButtonElement {
  const b = el("button", { type: "button", class: cls, "aria-label": aria, "data-focus": focusKey }, label);
  b.addEventListener("click", onClick);
  return b;
}

/** The focused control's `data-focus` key, to find its re-rendered twin. */
function focusedKey(): string | undefined {
  return (document.activeElement as HTMLElement | null)?.dataset?.focus;
}

function refocus(key: string | undefined, fallback?: HTMLElement): void {
  if (!key) return;
  const twin = document.querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`);
  if (twin && !(twin as HTMLButtonElement).disabled) twin.focus();
  else fallback?.focus();
}

export class BoardActions {
  caps: Caps = NO_CAPS;
  private results: FoundPupil[] | undefined;
  private query = "";
  /** Rooms (by id) whose "end session?" question is open. */
  private readonly confirming = new Set<string>();
  private busy = false;
  private error: { key: Key; vars: Vars } | undefined;
  private done: { key: Key; vars: Vars } | undefined;

  constructor(
    private readonly api: Actions,
    private readonly board: () => Board | undefined,
    /** Redraw every room (their controls changed), then focus the control `focus`. */
    private readonly redraw: (focus?: string) => void,
  ) {
    byId<HTMLFormElement>("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.search(byId<HTMLInputElement>("search-input").value.trim());
    });
    byId("search-input").addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        (e.target as HTMLInputElement).value = "";
        this.results = undefined;
        this.query = "";
        this.renderResults();
      }
    });
    byId("start-open").addEventListener("click", () => void this.openStart());
    byId("start-cancel").addEventListener("click", () => byId<HTMLDialogElement>("start-dialog").close());
    byId<HTMLFormElement>("start-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submitStart();
    });
  }

  /** Reads the caller's permissions (WhoAmI) and shows what they allow. */
  async load(): Promise<void> {
    try {
      this.caps = await this.api.caps();
    } catch {
      this.caps = NO_CAPS; // the board still works, read-only
    }
    byId("search").hidden = !this.caps.search;
    byId("start-open").hidden = !this.caps.start;
    this.redraw();
  }

  reset(): void {
    this.caps = NO_CAPS;
    this.results = undefined;
    this.query = "";
    this.confirming.clear();
    this.error = undefined;
    this.done = undefined;
    byId("search").hidden = true;
    byId("start-open").hidden = true;
    byId<HTMLInputElement>("search-input").value = "";
    const dialog = byId<HTMLDialogElement>("start-dialog");
    if (dialog.open) dialog.close();
    this.renderResults();
    this.renderMessages();
  }

  /** Labels in the current language. */
  relabel(): void {
    this.renderResults();
    this.renderMessages();
  }

  // ---- messages -------------------------------------------------------------------------

  private renderMessages(): void {
    byId("action-error").textContent = this.error ? t(this.error.key, this.error.vars) : "";
    byId("action-done").textContent = this.done ? t(this.done.key, this.done.vars) : "";
  }

  private failed(e: unknown): { key: Key; vars: Vars } {
    const err = ConnectError.from(e);
    const message = err.code === Code.Unauthenticated ? undefined : userMessage(err);
    return message ? { key: "action.failed", vars: { message } } : { key: "action.unreachable", vars: {} };
  }

  /** Runs one action: one at a time, the error or the success message shown after. */
  private async run(action: () => Promise<void>, done: { key: Key; vars: Vars }, after?: () => Promise<void>) {
    if (this.busy) return;
    this.busy = true;
    const key = focusedKey();
    document.body.setAttribute("aria-busy", "true");
    for (const b of document.querySelectorAll<HTMLButtonElement>("[data-focus]")) b.disabled = true;
    this.error = undefined;
    this.done = undefined;
    this.renderMessages();
    try {
      await action();
      this.done = done;
    } catch (e) {
      this.error = this.failed(e);
    } finally {
      this.busy = false;
      document.body.removeAttribute("aria-busy");
      for (const b of document.querySelectorAll<HTMLButtonElement>("[data-focus]")) b.disabled = false;
    }
    this.renderMessages();
    if (after) await after();
    refocus(key, byId("search-input"));
  }

  // ---- search ---------------------------------------------------------------------------

  private async search(query: string): Promise<void> {
    this.query = query;
    if (!query) {
      this.results = undefined;
      this.renderResults();
      return;
    }
    const submit = byId<HTMLButtonElement>("search-submit");
    submit.disabled = true;
    byId("search-message").textContent = t("search.busy");
    try {
      this.results = await this.api.search(query);
      this.error = undefined;
    } catch (e) {
      this.results = undefined;
      this.error = this.failed(e);
    } finally {
      submit.disabled = false;
    }
    this.renderResults();
    this.renderMessages();
  }

  /** The search again (after an action), keeping the focus on its control. */
  private async refresh(): Promise<void> {
    if (!this.query) return;
    try {
      this.results = await this.api.search(this.query);
    } catch {
      // Keep the old results; the action's own message says what happened.
    }
    this.renderResults();
  }

  private stateText(p: FoundPupil): string {
    if (p.sick && p.presence !== Presence.IN_ROOM) return t("pupil.sick");
    switch (p.presence) {
      case Presence.IN_ROOM:
        return p.roomName ? t("pupil.inRoom", { room: p.roomName }) : t("pupil.present");
      case Presence.IN_TRANSIT:
        return t("pupil.inTransit");
      case Presence.PRESENT:
        return t("pupil.present");
      case Presence.GONE_HOME:
        return t("pupil.goneHome");
      default:
        return t("pupil.absent");
    }
  }

  /** Whether the caller supervises the room the pupil is in (check-out rule). */
  private supervisesRoomOf(p: FoundPupil): boolean {
    const staff = this.caps.staffId;
    if (!staff || !p.roomName) return false;
    for (const room of this.board()?.rooms.values() ?? []) {
      if (room.name === p.roomName && room.supervisorIds.includes(staff)) return true;
    }
    return false;
  }

  private pupilControls(p: FoundPupil, full: boolean): HTMLElement[] {
    const controls: HTMLElement[] = [];
    if (!this.caps.visits) return controls;
    const name = p.name;
    if (full) {
      const rooms = [...(this.board()?.rooms.values() ?? [])].sort((a, b) => a.name.localeCompare(b.name));
      if (rooms.length) {
        const selectId = `checkin-room-${p.id}`;
        const select = el("select", {
          id: selectId,
          "aria-label": t("pupil.room", { name }),
          "data-focus": `room:${p.id}`,
        });
        for (const room of rooms) select.append(el("option", { value: room.sessionId }, room.name));
        const go = button(t("pupil.checkIn"), t("pupil.checkIn.label", { name }), `in:${p.id}`, () => {
          const room = rooms.find((r) => r.sessionId === select.value);
          if (!room) return;
          void this.run(
            () => this.api.checkIn(p.id, room.sessionId),
            { key: "done.checkIn", vars: { name, room: room.name } },
            () => this.refresh(),
          );
        });
        controls.push(el("span", { class: "checkin" }, select, go));
      } else {
        controls.push(el("span", { class: "muted" }, t("pupil.noRoom")));
      }
    }
    const inRoom = p.presence === Presence.IN_ROOM;
    if (inRoom && (full || this.supervisesRoomOf(p))) {
      controls.push(
        button(t("pupil.checkOut"), t("pupil.checkOut.label", { name }), `out:${p.id}`, () =>
          void this.run(() => this.api.checkOut(p.id), { key: "done.checkOut", vars: { name } }, () => this.refresh()),
        ),
      );
    }
    const arrived = inRoom || p.presence === Presence.IN_TRANSIT || p.presence === Presence.PRESENT;
    if (arrived && (full || this.supervisesRoomOf(p))) {
      controls.push(
        button(t("pupil.goHome"), t("pupil.goHome.label", { name }), `home:${p.id}`, () =>
          void this.run(() => this.api.goneHome(p.id), { key: "done.goneHome", vars: { name } }, () => this.refresh()),
        ),
      );
    }
    return controls;
  }

  private renderResults(): void {
    const key = focusedKey();
    const list = byId("search-results");
    const message = byId("search-message");
    list.replaceChildren();
    if (!this.results) {
      message.textContent = "";
      return;
    }
    message.textContent = this.results.length ? "" : t("search.none");
    for (const p of this.results) {
      const full = p.full;
      const headingId = `found-${p.id}`;
      const item = el(
        "li",
        { class: "result", "data-student": p.id, "aria-labelledby": headingId },
        el("p", { class: "result-name", id: headingId }, el("strong", {}, p.name), ` · ${p.schoolClass} · `, this.stateText(p)),
      );
      const controls = this.pupilControls(p, full);
      if (this.caps.markSick && full && !p.sick && p.presence !== Presence.IN_ROOM) {
        const name = p.name;
        controls.push(
          button(t("pupil.markSick"), t("pupil.markSick.label", { name }), `sick:${p.id}`, () =>
            void this.run(() => this.api.markSick(p.id, true), { key: "done.sick", vars: { name } }, () => this.refresh()),
          ),
        );
      }
      if (controls.length) item.append(el("div", { class: "row" }, ...controls));
      list.append(item);
    }
    refocus(key);
  }

  // ---- rooms ----------------------------------------------------------------------------

  /** The room card's controls (end, claim), or nothing when the caller may do neither. */
  roomControls(room: Room): HTMLElement | undefined {
    const end = mayEnd(this.caps, room.supervisorIds);
    const claim = mayClaim(this.caps, room.supervisorIds);
    if (!end && !claim) return undefined;
    const row = el("div", { class: "row room-actions" });
    if (this.confirming.has(room.id)) {
      const question = el("p", { class: "confirm", id: `end-q-${room.id}` }, t("room.end.confirm", { room: room.name }));
      const yes = button(t("room.end.yes"), t("room.end.yes"), `end-yes:${room.id}`, () => {
        this.confirming.delete(room.id);
        void this.run(() => this.api.endSession(room.sessionId), { key: "done.end", vars: { room: room.name } });
      });
      yes.setAttribute("aria-describedby", question.id);
      const no = button(t("action.cancel"), t("action.cancel"), `end-no:${room.id}`, () => this.cancelEnd(room.id), "small secondary");
      const box = el("div", { class: "confirm-box", role: "group", "aria-labelledby": question.id }, question, el("div", { class: "row" }, yes, no));
      box.addEventListener("keydown", (e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          this.cancelEnd(room.id);
        }
      });
      row.append(box);
      return row;
    }
    if (claim) {
      row.append(
        button(t("room.claim"), t("room.claim.label", { room: room.name }), `claim:${room.id}`, () =>
          void this.run(() => this.api.claimSession(room.sessionId), { key: "done.claim", vars: { room: room.name } }),
        ),
      );
    }
    if (end) {
      row.append(
        button(t("room.end"), t("room.end.label", { room: room.name }), `end:${room.id}`, () => {
          this.confirming.add(room.id);
          this.redraw(`end-no:${room.id}`);
        }, "small secondary"),
      );
    }
    return row;
  }

  private cancelEnd(roomId: string): void {
    this.confirming.delete(roomId);
    this.redraw(`end:${roomId}`);
  }

  // ---- start a session ------------------------------------------------------------------

  private async openStart(): Promise<void> {
    const dialog = byId<HTMLDialogElement>("start-dialog");
    const error = byId("start-error");
    error.textContent = "";
    byId("start-loading").hidden = false;
    dialog.showModal();
    try {
      const choices = await this.api.startChoices();
      const fill = (id: string, list: Choice[], none: boolean, selected: string[] = []) => {
        const select = byId<HTMLSelectElement>(id);
        select.replaceChildren();
        if (none) select.append(el("option", { value: "" }, t("start.none")));
        for (const c of list) {
          const option = el("option", { value: c.id }, c.label);
          option.selected = selected.includes(c.id);
          select.append(option);
        }
      };
      const running = new Set([...(this.board()?.rooms.values() ?? [])].map((r) => r.id));
      fill("start-room", choices.rooms.filter((r) => !running.has(r.id)), false);
      fill("start-activity", choices.activities, true);
      fill("start-group", choices.groups, true);
      fill("start-supervisors", choices.staff, false, this.caps.staffId ? [this.caps.staffId] : []);
      byId("start-loading").hidden = true;
      byId("start-room").focus();
    } catch (e) {
      byId("start-loading").hidden = true;
      const f = this.failed(e);
      error.textContent = t(f.key, f.vars);
    }
  }

  private async submitStart(): Promise<void> {
    const room = byId<HTMLSelectElement>("start-room");
    const activity = byId<HTMLSelectElement>("start-activity").value || undefined;
    const group = byId<HTMLSelectElement>("start-group").value || undefined;
    const supervisors = [...byId<HTMLSelectElement>("start-supervisors").selectedOptions].map((o) => o.value);
    const error = byId("start-error");
    if (!activity && !group) {
      error.textContent = t("start.needWhat");
      byId("start-activity").focus();
      return;
    }
    if (!supervisors.length) {
      error.textContent = t("start.needWho");
      byId("start-supervisors").focus();
      return;
    }
    const submit = byId<HTMLButtonElement>("start-submit");
    submit.disabled = true;
    error.textContent = "";
    const roomName = room.selectedOptions[0]?.textContent ?? "";
    try {
      await this.api.startSession({ roomId: room.value, activityId: activity, groupId: group, supervisorIds: supervisors });
      byId<HTMLDialogElement>("start-dialog").close();
      this.error = undefined;
      this.done = { key: "done.start", vars: { room: roomName } };
      this.renderMessages();
      byId("start-open").focus();
    } catch (e) {
      const f = this.failed(e);
      error.textContent = t(f.key, f.vars);
    } finally {
      submit.disabled = false;
    }
  }
}
