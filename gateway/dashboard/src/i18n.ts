// German and English labels. German is the default (a German school); English when the
// browser prefers it, or when chosen with the switcher (the choice is remembered in
// localStorage: a language preference, no personal data).

export type Lang = "de" | "en";
export const LANGS: readonly Lang[] = ["de", "en"];

const de = {
  "doc.title": "Phoenix – Anwesenheit",
  "app.title": "Anwesenheit",
  "skip": "Zum Inhalt springen",
  "lang.group": "Sprache",
  "login.heading": "Anmelden",
  "login.intro": "Melden Sie sich mit Ihrem Phoenix-Konto an, um die Anwesenheitstafel zu sehen.",
  "login.email": "E-Mail",
  "login.password": "Passwort",
  "login.submit": "Anmelden",
  "login.busy": "Anmeldung läuft …",
  "login.failed": "E-Mail oder Passwort ist falsch.",
  "login.invalid": "Bitte E-Mail und Passwort eingeben.",
  "login.throttled": "Zu viele Versuche. Bitte in {seconds} Sekunden erneut versuchen.",
  "login.throttled.later": "Zu viele Versuche. Bitte später erneut versuchen.",
  "login.unreachable": "Der Server ist nicht erreichbar. Bitte später erneut versuchen.",
  "login.expired": "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.",
  "logout": "Abmelden",
  "board.heading": "Räume",
  "board.asOf": "Stand {time}, {date}",
  "board.empty": "Zurzeit läuft in keinem Raum eine Betreuung.",
  "board.loading": "Anwesenheit wird geladen …",
  "board.denied": "Ihr Konto darf die Anwesenheitstafel nicht sehen (Berechtigung groups:read fehlt).",
  "counts.heading": "Übersicht heute",
  "counts.inRoom": "Im Raum",
  "counts.inTransit": "Unterwegs",
  "counts.absent": "Abwesend",
  "counts.goneHome": "Nach Hause gegangen",
  "counts.sick": "Krank",
  "counts.total": "Kinder gesamt",
  "status.label": "Verbindung",
  "status.connecting": "Verbinde …",
  "status.live": "Live",
  "status.reconnecting": "Verbindung unterbrochen – neuer Versuch …",
  "status.offline": "Getrennt",
  "room.activity": "Angebot",
  "room.group": "Gruppe",
  "room.supervisors": "Betreuung",
  "room.nobody": "niemand eingetragen",
  "room.mine": "Meine Gruppe",
  "room.pupils.one": "1 Kind",
  "room.pupils.other": "{count} Kinder",
  "room.capacity": "{count} von {capacity} Plätzen belegt",
  "room.unlimited": "ohne Platzbegrenzung",
  "room.full": "voll",
  "room.list": "Kinder in {room}",
  "room.empty": "Niemand im Raum.",
  "room.redacted": "Namen ausgeblendet: Sie sehen nur die Kinder Ihrer Gruppen.",
  "room.since": "seit {time}",
  "announce.checkedIn": "{name} ist in {room}.",
  "announce.checkedOut": "{name} hat {room} verlassen.",
  "announce.transferred": "{name} ist jetzt in {room}.",
  "announce.goneHome": "{name} ist nach Hause gegangen.",
  "announce.arrived": "{name} ist angekommen.",
  "announce.roomCount": "{room}: {pupils}.",
  "announce.reloaded": "Anwesenheitstafel aktualisiert.",
  "announce.many": "{count} Änderungen.",
  "search.heading": "Kind suchen",
  "search.label": "Name oder Nummer",
  "search.submit": "Suchen",
  "search.busy": "Suche läuft …",
  "search.none": "Kein Kind gefunden.",
  "search.results": "Suchergebnisse",
  "search.hint": "Enter sucht, Escape leert die Suche.",
  "pupil.inRoom": "in {room}",
  "pupil.inTransit": "unterwegs",
  "pupil.present": "anwesend",
  "pupil.absent": "nicht da",
  "pupil.goneHome": "nach Hause gegangen",
  "pupil.sick": "krank gemeldet",
  "pupil.room": "Raum für {name}",
  "pupil.checkIn": "Einchecken",
  "pupil.checkIn.label": "{name} einchecken",
  "pupil.checkOut": "Auschecken",
  "pupil.checkOut.label": "{name} auschecken",
  "pupil.goHome": "Nach Hause",
  "pupil.goHome.label": "{name} nach Hause schicken",
  "pupil.markSick": "Krank melden",
  "pupil.markSick.label": "{name} krank melden",
  "pupil.noRoom": "Kein Raum mit laufender Sitzung",
  "room.end": "Sitzung beenden",
  "room.end.label": "Sitzung in {room} beenden",
  "room.end.confirm": "Sitzung in {room} wirklich beenden? Alle Kinder dort sind dann unterwegs.",
  "room.end.yes": "Ja, beenden",
  "room.claim": "Übernehmen",
  "room.claim.label": "Sitzung in {room} übernehmen",
  "action.cancel": "Abbrechen",
  "action.busy": "Bitte warten …",
  "action.failed": "Nicht möglich: {message}",
  "action.unreachable": "Der Server ist nicht erreichbar. Bitte erneut versuchen.",
  "done.checkIn": "{name} ist in {room} eingecheckt.",
  "done.checkOut": "{name} ist ausgecheckt.",
  "done.goneHome": "{name} ist nach Hause gegangen.",
  "done.sick": "{name} ist krank gemeldet.",
  "done.end": "Die Sitzung in {room} ist beendet.",
  "done.claim": "Sie betreuen jetzt {room}.",
  "done.start": "Die Sitzung in {room} läuft.",
  "start.open": "Sitzung starten",
  "start.heading": "Sitzung starten",
  "start.room": "Raum",
  "start.activity": "Aktivität",
  "start.group": "Gruppe",
  "start.none": "– keine –",
  "start.supervisors": "Betreuung (eine oder mehrere)",
  "start.submit": "Starten",
  "start.loading": "Räume, Aktivitäten und Gruppen werden geladen …",
  "start.needWhat": "Bitte eine Aktivität oder eine Gruppe wählen.",
  "start.needWho": "Bitte mindestens eine Betreuungsperson wählen.",
} as const;

export type Key = keyof typeof de;

const en: Record<Key, string> = {
  "doc.title": "Phoenix – Presence",
  "app.title": "Presence",
  "skip": "Skip to content",
  "lang.group": "Language",
  "login.heading": "Sign in",
  "login.intro": "Sign in with your Phoenix account to see the presence board.",
  "login.email": "Email",
  "login.password": "Password",
  "login.submit": "Sign in",
  "login.busy": "Signing in …",
  "login.failed": "Email or password is incorrect.",
  "login.invalid": "Please enter email and password.",
  "login.throttled": "Too many attempts. Please try again in {seconds} seconds.",
  "login.throttled.later": "Too many attempts. Please try again later.",
  "login.unreachable": "The server cannot be reached. Please try again later.",
  "login.expired": "Your session has ended. Please sign in again.",
  "logout": "Sign out",
  "board.heading": "Rooms",
  "board.asOf": "As of {time}, {date}",
  "board.empty": "No room has a running session right now.",
  "board.loading": "Loading presence …",
  "board.denied": "Your account may not see the presence board (permission groups:read is missing).",
  "counts.heading": "Today at a glance",
  "counts.inRoom": "In a room",
  "counts.inTransit": "In transit",
  "counts.absent": "Absent",
  "counts.goneHome": "Gone home",
  "counts.sick": "Sick",
  "counts.total": "Pupils in total",
  "status.label": "Connection",
  "status.connecting": "Connecting …",
  "status.live": "Live",
  "status.reconnecting": "Connection lost – reconnecting …",
  "status.offline": "Disconnected",
  "room.activity": "Activity",
  "room.group": "Group",
  "room.supervisors": "Supervision",
  "room.nobody": "nobody assigned",
  "room.mine": "My group",
  "room.pupils.one": "1 pupil",
  "room.pupils.other": "{count} pupils",
  "room.capacity": "{count} of {capacity} places taken",
  "room.unlimited": "no capacity limit",
  "room.full": "full",
  "room.list": "Pupils in {room}",
  "room.empty": "Nobody in the room.",
  "room.redacted": "Names hidden: you only see the pupils of your groups.",
  "room.since": "since {time}",
  "announce.checkedIn": "{name} is in {room}.",
  "announce.checkedOut": "{name} left {room}.",
  "announce.transferred": "{name} is now in {room}.",
  "announce.goneHome": "{name} has gone home.",
  "announce.arrived": "{name} has arrived.",
  "announce.roomCount": "{room}: {pupils}.",
  "announce.reloaded": "Presence board updated.",
  "announce.many": "{count} changes.",
  "search.heading": "Find a pupil",
  "search.label": "Name or number",
  "search.submit": "Search",
  "search.busy": "Searching …",
  "search.none": "No pupil found.",
  "search.results": "Search results",
  "search.hint": "Enter searches, Escape clears the search.",
  "pupil.inRoom": "in {room}",
  "pupil.inTransit": "in transit",
  "pupil.present": "present",
  "pupil.absent": "not here",
  "pupil.goneHome": "gone home",
  "pupil.sick": "reported sick",
  "pupil.room": "Room for {name}",
  "pupil.checkIn": "Check in",
  "pupil.checkIn.label": "Check in {name}",
  "pupil.checkOut": "Check out",
  "pupil.checkOut.label": "Check out {name}",
  "pupil.goHome": "Gone home",
  "pupil.goHome.label": "Send {name} home",
  "pupil.markSick": "Report sick",
  "pupil.markSick.label": "Report {name} sick",
  "pupil.noRoom": "No room with a running session",
  "room.end": "End session",
  "room.end.label": "End the session in {room}",
  "room.end.confirm": "Really end the session in {room}? Every pupil there will be in transit.",
  "room.end.yes": "Yes, end it",
  "room.claim": "Claim",
  "room.claim.label": "Claim the session in {room}",
  "action.cancel": "Cancel",
  "action.busy": "Please wait …",
  "action.failed": "Not possible: {message}",
  "action.unreachable": "The server cannot be reached. Please try again.",
  "done.checkIn": "{name} is checked in to {room}.",
  "done.checkOut": "{name} is checked out.",
  "done.goneHome": "{name} has gone home.",
  "done.sick": "{name} is reported sick.",
  "done.end": "The session in {room} has ended.",
  "done.claim": "You now supervise {room}.",
  "done.start": "The session in {room} is running.",
  "start.open": "Start session",
  "start.heading": "Start a session",
  "start.room": "Room",
  "start.activity": "Activity",
  "start.group": "Group",
  "start.none": "– none –",
  "start.supervisors": "Supervision (one or more)",
  "start.submit": "Start",
  "start.loading": "Loading rooms, activities and groups …",
  "start.needWhat": "Please choose an activity or a group.",
  "start.needWho": "Please choose at least one supervisor.",
};

const tables: Record<Lang, Record<Key, string>> = { de, en };

let current: Lang = "de";

/** The language to start with: a remembered choice, else the browser's, else German. */
export function initialLang(stored: string | null, browser: readonly string[]): Lang {
  if (stored === "de" || stored === "en") return stored;
  for (const tag of browser) {
    const primary = tag.toLowerCase().split("-")[0];
    if (primary === "de") return "de";
    if (primary === "en") return "en";
  }
  return "de";
}

export function lang(): Lang {
  return current;
}

export function setLang(next: Lang): void {
  current = next;
}

/** The label `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: Key, vars: Record<string, string | number> = {}): string {
  return tables[current][key].replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? `{${name}}`));
}

/** "1 Kind" / "3 Kinder". */
export function pupils(count: number): string {
  return count === 1 ? t("room.pupils.one") : t("room.pupils.other", { count: formatNumber(count) });
}

export function formatNumber(n: number): string {
  return new Intl.NumberFormat(current).format(n);
}

export function formatTime(d: Date): string {
  return new Intl.DateTimeFormat(current, { hour: "2-digit", minute: "2-digit" }).format(d);
}

/** A business date `YYYY-MM-DD` in words, e.g. "Dienstag, 3. März 2026". */
export function formatDate(isoDate: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate);
  if (!m) return isoDate;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return new Intl.DateTimeFormat(current, { dateStyle: "full", timeZone: "UTC" }).format(d);
}
