#!/usr/bin/env node
// The acting board against the real stack (driven by tests/it/platform/dashboard_browser.rs
// `dashboard_board_acts_across_browsers`, which seeds the school): one chromium, two
// contexts — A, the admin, in German; B, teacher Tina (seeded staff role: no
// sessions:manage, no groups:create), in English. Each step acts in one context and waits
// for the other's board to show it through WatchPresence (no reload), at most STEP_MS.
//
//  1. both sign in; A shows the German labels, B the English ones
//  2. B is not offered "end session" for Raum A (Erika's session), nor "start session";
//     B claims the unclaimed Raum C → A's board shows Tina supervising it, and B is now
//     offered "end session" there
//  3. A, keyboard only: Tab to the search, type, Enter, Tab to the room and "Einchecken",
//     Enter → Kind0 appears in Raum A on B's board
//  4. A, keyboard only: "Sitzung beenden" for Raum B, Escape cancels, Enter again, confirm
//     → Raum B disappears from B's board
//  5. A checks Kind0 in to the ended Raum B (a stale choice) → the service's message in an alert
//  6. A checks Kind0 out → gone from Raum A on B's board; then "Nach Hause" → B's gone-home count
//  7. A reports Kind2 sick (search result says so); A starts a session in Raum D with the
//     dialog → Raum D appears on B's board
//
// Environment: PHOENIX_URL, ADMIN_EMAIL, ADMIN_PASSWORD, TEACHER_EMAIL, TEACHER_PASSWORD,
// CHROMIUM_PATH (default /usr/bin/chromium).

import { chromium } from "playwright-core";
import { check, chromiumPath, env, equal, fail, targetPath } from "./lib.mjs";

const url = env("PHOENIX_URL");
const STEP_MS = 5_000;
const LOAD_MS = 30_000;

const browser = await chromium.launch({
  executablePath: chromiumPath(),
  headless: true,
  args: ["--disable-gpu", "--disable-dev-shm-usage"],
});
const overall = setTimeout(() => fail("no result within 120 s"), 120_000);
const logs = [];

async function open(locale) {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => logs.push(`${locale}: ${err}`));
  page.on("console", (msg) => msg.type() === "error" && logs.push(`${locale}: ${msg.text()}`));
  return page;
}

async function signIn(page, labels, email, password) {
  await page.goto(url);
  await page.getByLabel(labels.email, { exact: true }).fill(email);
  await page.getByLabel(labels.password, { exact: true }).fill(password);
  await page.getByRole("button", { name: labels.submit }).click();
  await page.waitForFunction(
    () => document.querySelector("#rooms article") && document.getElementById("status").dataset.state === "live",
    null,
    { timeout: LOAD_MS },
  );
  await page.locator("#search").waitFor({ state: "visible", timeout: LOAD_MS });
  await page.evaluate(() => {
    window.__noReload = true;
  });
}

const card = (page, room) => page.locator("#rooms article", { has: page.locator(".room-name", { hasText: room }) });
const boardText = (page) =>
  page.evaluate(() => [...document.querySelectorAll("#rooms article")].map((a) => a.innerText.replace(/\s+/g, " ")).join(" | "));

/** Waits until `selector`'s text is `text`, then reports it like `equal`. */
async function textIs(page, selector, text, what) {
  try {
    await page.locator(selector, { hasText: text }).waitFor({ timeout: STEP_MS });
  } catch {
    fail(`${what}: expected ${JSON.stringify(text)}, got ${JSON.stringify(await page.textContent(selector))}`);
  }
  equal((await page.textContent(selector)).trim(), text, what);
}

/** Waits for `what` on `page`, failing with what the board shows. */
async function see(page, what, wait) {
  try {
    await wait();
  } catch {
    fail(`${what} within ${STEP_MS} ms; the board shows: ${await boardText(page)}`);
  }
  check(true, what);
}

async function focusedLabel(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    return a?.getAttribute("aria-label") || a?.id || a?.textContent?.trim() || a?.tagName;
  });
}

async function tabUntil(page, label, max = 12) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if ((await focusedLabel(page)) === label) return;
  }
  fail(`Tab never reached "${label}" (stuck at "${await focusedLabel(page)}")`);
}

try {
  const a = await open("de-DE");
  const b = await open("en-US");
  await signIn(a, { email: "E-Mail", password: "Passwort", submit: "Anmelden" }, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  await signIn(b, { email: "Email", password: "Password", submit: "Sign in" }, env("TEACHER_EMAIL"), env("TEACHER_PASSWORD"));

  // ---- 1. labels in both languages ----
  check(await a.getByRole("heading", { name: "Kind suchen" }).isVisible(), "de: the search is headed 'Kind suchen'");
  check(await a.getByRole("searchbox", { name: "Name oder Nummer" }).isVisible(), "de: its field is labelled 'Name oder Nummer'");
  check(await a.getByRole("button", { name: "Sitzung starten" }).isVisible(), "de: an admin is offered 'Sitzung starten'");
  equal(await card(a, "Raum A").getByRole("button", { name: "Sitzung in Raum A beenden" }).textContent(), "Sitzung beenden", "de: the admin may end Erika's session ('Sitzung beenden')");
  check(await b.getByRole("heading", { name: "Find a pupil" }).isVisible(), "en: the search is headed 'Find a pupil'");

  // ---- 2. permission-aware: the teacher ----
  equal(await card(b, "Raum A").getByRole("button").count(), 0, "a teacher without sessions:manage is offered no 'End session' for someone else's session");
  check(await b.locator("#start-open").isHidden(), "nor 'Start session' (no groups:create)");
  equal(await card(a, "Raum C").getByRole("button", { name: /übernehmen/ }).count(), 0, "an admin without a staff record is not offered 'claim'");
  await card(b, "Raum C").getByRole("button", { name: "Claim the session in Raum C" }).click();
  await see(a, "B claimed Raum C: A's board shows Tina supervising it", () =>
    card(a, "Raum C").locator("dd", { hasText: "Tina" }).waitFor({ timeout: STEP_MS }),
  );
  await see(b, "and B is now offered 'End session' there", () =>
    card(b, "Raum C").getByRole("button", { name: "End the session in Raum C" }).waitFor({ timeout: STEP_MS }),
  );
  await textIs(b, "#action-done", "You now supervise Raum C.", "en: the claim is confirmed");

  // ---- 3. keyboard only: check Kind0 in to Raum A ----
  await a.locator("#board-heading").focus();
  await tabUntil(a, "search-input");
  await a.keyboard.type("Kind0");
  await a.keyboard.press("Enter");
  const kind0 = a.locator("#search-results li", { hasText: "Kind0 T." });
  await kind0.waitFor({ timeout: STEP_MS });
  check((await kind0.textContent()).includes("nicht da"), "de: the found pupil is 'nicht da' (not arrived)");
  await tabUntil(a, "Raum für Kind0 T.");
  equal(await a.evaluate(() => document.activeElement.selectedOptions[0].textContent), "Raum A", "the room choice starts at Raum A");
  await a.keyboard.press("Tab");
  equal(await focusedLabel(a), "Kind0 T. einchecken", "Tab moves on to 'Einchecken'");
  const ring = await a.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(ring !== "none", `the focused button shows a focus ring (outline ${ring})`);
  await a.keyboard.press("Enter");
  await see(b, "Kind0 appears in Raum A on B's board", () =>
    card(b, "Raum A").locator(".pupil", { hasText: "Kind0 T." }).waitFor({ timeout: STEP_MS }),
  );
  await textIs(a, "#action-done", "Kind0 T. ist in Raum A eingecheckt.", "de: the check-in is confirmed");
  await a.locator("#search-results li", { hasText: "in Raum A" }).waitFor({ timeout: STEP_MS });
  equal(await focusedLabel(a), "Kind0 T. einchecken", "focus stays on the re-rendered control");

  // ---- 4. keyboard only: end Raum B, Escape first ----
  await card(a, "Raum B").getByRole("button", { name: "Sitzung in Raum B beenden" }).focus();
  await a.keyboard.press("Enter");
  await a.getByText("Sitzung in Raum B wirklich beenden?").waitFor({ timeout: STEP_MS });
  await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Abbrechen", null, { timeout: STEP_MS }).catch(() => {});
  equal(await focusedLabel(a), "Abbrechen", "the question opens with focus on 'Abbrechen'");
  await a.keyboard.press("Escape");
  await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Sitzung in Raum B beenden", null, { timeout: STEP_MS });
  check(await card(a, "Raum B").getByText("wirklich beenden?").count() === 0, "Escape cancels, focus back on 'Sitzung beenden'");
  await a.keyboard.press("Enter");
  await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Abbrechen", null, { timeout: STEP_MS });
  await a.keyboard.press("Shift+Tab");
  equal(await focusedLabel(a), "Ja, beenden", "Shift+Tab reaches 'Ja, beenden'");
  await a.keyboard.press("Enter");
  await see(b, "Raum B's session ended: gone from B's board", () =>
    card(b, "Raum B").waitFor({ state: "detached", timeout: STEP_MS }),
  );

  // ---- 5. an error: the service's own message ----
  await kind0.getByRole("combobox", { name: "Raum für Kind0 T." }).selectOption({ label: "Raum B" });
  await kind0.getByRole("button", { name: "Kind0 T. einchecken" }).click();
  await a.locator("#action-error", { hasText: "Nicht möglich:" }).waitFor({ timeout: STEP_MS });
  const error = (await a.textContent("#action-error")).trim();
  check(/^Nicht möglich: .*ended/.test(error), `a refused check-in shows the status message in an alert ("${error}")`);
  equal(await a.getAttribute("#action-error", "role"), "alert", "errors are announced (role alert)");

  // ---- 6. check out, then gone home ----
  await kind0.getByRole("button", { name: "Kind0 T. auschecken" }).click();
  await see(b, "Kind0 checked out: gone from Raum A on B's board", () =>
    card(b, "Raum A").locator(".pupil", { hasText: "Kind0 T." }).waitFor({ state: "detached", timeout: STEP_MS }),
  );
  check((await a.textContent("#action-error")).trim() === "", "a successful action clears the error");
  await a.locator("#search-results li", { hasText: "unterwegs" }).waitFor({ timeout: STEP_MS });
  const goneHome = () => b.evaluate(() => document.querySelector('[data-count="goneHome"] .count-value')?.textContent);
  const before = Number(await goneHome());
  await kind0.getByRole("button", { name: "Kind0 T. nach Hause schicken" }).click();
  await see(b, "Kind0 gone home: B's gone-home count goes up", () =>
    b.waitForFunction((n) => Number(document.querySelector('[data-count="goneHome"] .count-value')?.textContent) === n + 1, before, { timeout: STEP_MS }),
  );

  // ---- 7. sick; start a session with the dialog ----
  await a.getByRole("searchbox", { name: "Name oder Nummer" }).fill("Kind2");
  await a.keyboard.press("Enter");
  const kind2 = a.locator("#search-results li", { hasText: "Kind2 T." });
  await kind2.getByRole("button", { name: "Kind2 T. krank melden" }).click();
  await see(a, "Kind2 reported sick (the search result says so)", () =>
    kind2.getByText("krank gemeldet").waitFor({ timeout: STEP_MS }),
  );
  await a.getByRole("searchbox", { name: "Name oder Nummer" }).press("Escape");
  equal(await a.locator("#search-results li").count(), 0, "Escape clears the search");

  await a.getByRole("button", { name: "Sitzung starten" }).click();
  const dialog = a.getByRole("dialog", { name: "Sitzung starten" });
  await dialog.getByLabel("Raum", { exact: true }).locator("option", { hasText: "Raum D" }).waitFor({ state: "attached", timeout: STEP_MS });
  check(!(await dialog.getByLabel("Raum", { exact: true }).textContent()).includes("Raum A"), "the dialog offers only rooms without a running session");
  await dialog.getByLabel("Raum", { exact: true }).selectOption({ label: "Raum D" });
  await dialog.getByLabel("Aktivität").selectOption({ label: "Freispiel" });
  await dialog.getByLabel("Betreuung (eine oder mehrere)").selectOption({ label: "Erika Betreuerin" });
  await dialog.getByRole("button", { name: "Starten" }).click();
  await see(b, "A started a session in Raum D: it appears on B's board", () =>
    card(b, "Raum D").waitFor({ timeout: STEP_MS }),
  );
  check(!(await dialog.isVisible()), "the dialog closes");

  for (const [name, page] of [["a", a], ["b", b]]) {
    check(await page.evaluate(() => window.__noReload === true), `${name}: no page reload`);
    equal(await page.getAttribute("#status", "data-state"), "live", `${name}: still live`);
  }
  const errors = logs.filter((l) => !/status of 4\d\d|Failed to load resource/.test(l));
  check(errors.length === 0, `no script errors (${JSON.stringify(errors)})`);
  await a.screenshot({ path: targetPath("dashboard-actions-de.png"), fullPage: true });
  await b.screenshot({ path: targetPath("dashboard-actions-en.png"), fullPage: true });
  console.log("PASS the board acts: claim, check-in, end, error, check-out, gone home, sick, start — seen across browsers");
} catch (e) {
  fail(e?.message ?? String(e));
} finally {
  clearTimeout(overall);
  await browser.close();
}
