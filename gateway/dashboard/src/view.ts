// Rendering: the counts bar, the rooms grid and the polite announcements. Text only via
// textContent (never innerHTML), so names from the service can never become markup.

import type { Announcement, Board, Counts, Room } from "./board";
import { sortedPupils, sortedRooms } from "./board";
import { type Key, formatDate, formatNumber, formatTime, lang, pupils, t } from "./i18n";

/** An element with attributes (`class` sets className) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} missing`);
  return node as T;
}

/**
 * Sets `node`'s text to label `key` (with its placeholders) and remembers both, so that
 * [`relabel`] shows it in the new language after a switch; no key empties the node.
 */
export function say(node: HTMLElement, key?: Key, vars: Record<string, string | number> = {}): void {
  if (key) {
    node.dataset.key = key;
    node.dataset.vars = JSON.stringify(vars);
    node.textContent = t(key, vars);
  } else {
    delete node.dataset.key;
    delete node.dataset.vars;
    node.textContent = "";
  }
}

/** Re-translates every text set by [`say`]. */
export function relabel(): void {
  for (const node of document.querySelectorAll<HTMLElement>("[data-key]")) {
    node.textContent = t(node.dataset.key as Key, JSON.parse(node.dataset.vars ?? "{}"));
  }
}

const COUNT_KEYS: [keyof Counts, Key][] = [
  ["inRoom", "counts.inRoom"],
  ["inTransit", "counts.inTransit"],
  ["absent", "counts.absent"],
  ["goneHome", "counts.goneHome"],
  ["sick", "counts.sick"],
  ["total", "counts.total"],
];

/** The counts bar; hidden in the family view, which has no school-wide counts. */
export function renderCounts(counts: Counts, family = false): void {
  const list = byId("counts");
  if (list.parentElement) list.parentElement.hidden = family;
  list.replaceChildren(
    ...COUNT_KEYS.map(([field, key]) =>
      el(
        "li",
        { class: `count count-${field}`, "data-count": field },
        el("span", { class: "count-value" }, formatNumber(counts[field])),
        " ",
        el("span", { class: "count-label" }, t(key)),
      ),
    ),
  );
}

export function renderAsOf(board: Board): void {
  byId("as-of").textContent = board.asOf
    ? t("board.asOf", { time: formatTime(board.asOf), date: formatDate(board.date) })
    : formatDate(board.date);
}

/** A room card's action controls (src/act.ts), or nothing. */
export type RoomControls = (room: Room) => HTMLElement | undefined;

function roomElement(room: Room, highlight: string | undefined, controls: RoomControls | undefined): HTMLElement {
  const headingId = `room-${room.id}-name`;
  const heading = el("h2", { id: headingId, class: "room-name" }, room.name);
  const head = el("div", { class: "room-head" }, heading);
  if (room.mine) head.append(el("span", { class: "badge" }, t("room.mine")));

  const details = el("dl", { class: "room-details" });
  const detail = (key: Key, value: string, empty = false) => {
    details.append(el("dt", {}, t(key)), el("dd", empty ? { class: "muted" } : {}, value));
  };
  if (room.activity) detail("room.activity", room.activity);
  if (room.group) detail("room.group", room.group);
  detail(
    "room.supervisors",
    room.supervisors.length ? room.supervisors.join(", ") : t("room.nobody"),
    room.supervisors.length === 0,
  );

  const occupancy = el("div", { class: "occupancy" });
  const full = room.capacity !== undefined && room.count >= room.capacity;
  const label = el(
    "p",
    { class: "occupancy-text", id: `room-${room.id}-count` },
    el("strong", {}, pupils(room.count)),
    " · ",
    room.capacity !== undefined
      ? t("room.capacity", { count: formatNumber(room.count), capacity: formatNumber(room.capacity) })
      : t("room.unlimited"),
  );
  if (full) label.append(" · ", el("strong", { class: "full" }, t("room.full")));
  occupancy.append(label);
  if (room.capacity !== undefined && room.capacity > 0) {
    const meter = el("meter", {
      min: "0",
      max: String(room.capacity),
      value: String(Math.min(room.count, room.capacity)),
      high: String(Math.max(0, room.capacity - 1)),
      optimum: "0",
      "aria-labelledby": `room-${room.id}-count`,
    });
    occupancy.append(meter);
  }

  const list = el("ul", { class: "pupils", "aria-label": t("room.list", { room: room.name }) });
  for (const p of sortedPupils(room, lang())) {
    const item = el("li", { class: p.id === highlight ? "pupil fresh" : "pupil", "data-pupil": p.id }, p.name);
    if (p.since) item.append(" ", el("span", { class: "since" }, t("room.since", { time: formatTime(p.since) })));
    list.append(item);
  }
  const body: Node[] = [];
  if (list.childElementCount > 0) body.push(list);
  if (room.redacted) body.push(el("p", { class: "note" }, t("room.redacted")));
  else if (room.count === 0) body.push(el("p", { class: "muted" }, t("room.empty")));

  const actions = controls?.(room);
  if (actions) body.push(actions);
  const article = el("article", { class: "room", "aria-labelledby": headingId }, head, details, occupancy, ...body);
  return el("li", { class: room.mine ? "room-item mine" : "room-item", "data-room": room.id }, article);
}

/** Re-renders changed rooms (by version) and puts all in order; `all` redraws everything. */
export class RoomsView {
  private readonly nodes = new Map<string, { version: number; node: HTMLElement }>();
  controls: RoomControls | undefined;
  /** After the next render, focus the control with this `data-focus` key. */
  focusNext: string | undefined;

  render(board: Board, all: boolean, highlight?: string): void {
    const list = byId("rooms");
    // A control inside a card that is re-rendered keeps the focus (on its new twin).
    const focused = document.activeElement as HTMLElement | null;
    const focusKey = focused && list.contains(focused) ? focused.dataset.focus : undefined;
    const message = byId("board-message");
    const seen = new Set<string>();
    const ordered: HTMLElement[] = [];
    for (const room of sortedRooms(board, lang())) {
      seen.add(room.id);
      let entry = this.nodes.get(room.id);
      if (all || !entry || entry.version !== room.version) {
        entry = { version: room.version, node: roomElement(room, highlight, this.controls) };
        this.nodes.set(room.id, entry);
      }
      ordered.push(entry.node);
    }
    for (const id of [...this.nodes.keys()]) if (!seen.has(id)) this.nodes.delete(id);
    // Keep unchanged nodes where they are; only move or insert what differs.
    ordered.forEach((node, i) => {
      if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null);
    });
    while (list.children.length > ordered.length) list.lastElementChild?.remove();
    message.hidden = board.rooms.size > 0;
    if (board.rooms.size === 0) message.textContent = t(board.family ? "board.family.empty" : "board.empty");
    const next = this.focusNext ?? (focusKey && !list.contains(document.activeElement) ? focusKey : undefined);
    this.focusNext = undefined;
    if (next) list.querySelector<HTMLElement>(`[data-focus="${CSS.escape(next)}"]`)?.focus();
  }

  clear(): void {
    this.nodes.clear();
    byId("rooms").replaceChildren();
  }
}

export function setStatus(state: "connecting" | "live" | "reconnecting" | "offline"): void {
  const status = byId("status");
  status.dataset.state = state;
  byId("status-text").textContent = t(`status.${state}`);
}

/**
 * Polite announcements, batched: changes within 1.5 s are read as one message (a long
 * list becomes "12 changes"), so a busy morning does not flood a screen reader.
 */
export class Announcer {
  private pending: string[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  say(items: (Announcement | string)[]): void {
    for (const a of items) this.pending.push(typeof a === "string" ? a : text(a));
    if (this.pending.length && !this.timer) this.timer = setTimeout(() => this.flush(), 1500);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
    byId("announcer").replaceChildren();
  }

  private flush(): void {
    this.timer = undefined;
    const lines = this.pending.length > 5 ? [t("announce.many", { count: this.pending.length })] : this.pending;
    this.pending = [];
    const region = byId("announcer");
    region.replaceChildren(...lines.map((line) => el("p", {}, line)));
  }
}

function text(a: Announcement): string {
  switch (a.kind) {
    case "checkedIn":
      return t("announce.checkedIn", { name: a.name, room: a.room });
    case "transferred":
      return t("announce.transferred", { name: a.name, room: a.room });
    case "checkedOut":
      return t("announce.checkedOut", { name: a.name, room: a.room });
    case "goneHome":
      return t("announce.goneHome", { name: a.name });
    case "arrived":
      return t("announce.arrived", { name: a.name });
    case "roomCount":
      return t("announce.roomCount", { room: a.room, pupils: pupils(a.count) });
  }
}
