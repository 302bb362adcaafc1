#!/usr/bin/env node
// The dashboard against the real stack, in Debian's chromium (driven by
// tests/it/dashboard_browser.rs): opens the gateway, signs in through the labelled form,
// waits for the live board and prints READY; then, when the harness writes a line to stdin
// after publishing a signed scan, waits at most EXPECT_WITHIN_MS for the pupil's display
// name in the room — without a page reload — saves target/dashboard.png and exits 0.
// Any failure exits 1 with a FAIL line saying what was expected and what the page showed.
//
// Environment:
//   PHOENIX_URL                 the gateway, e.g. http://127.0.0.1:8080/
//   PHOENIX_EMAIL, PHOENIX_PASSWORD
//   EXPECT_ROOM                 room name as on the board, e.g. "Raum A"
//   EXPECT_PUPIL                display name, e.g. "Kind0 T."
//   EXPECT_WITHIN_MS            default 2000
//   CHROMIUM_PATH               default /usr/bin/chromium

import { createInterface } from "node:readline";
import { env, fail, launch, targetPath } from "./lib.mjs";

const url = env("PHOENIX_URL");
const email = env("PHOENIX_EMAIL");
const password = env("PHOENIX_PASSWORD");
const room = env("EXPECT_ROOM");
const pupil = env("EXPECT_PUPIL");
const within = Number(process.env.EXPECT_WITHIN_MS ?? 2000);
const STEP_TIMEOUT = 30_000;

const { browser, page, logs } = await launch({ locale: "de-DE" });
const overall = setTimeout(() => fail("no result within 120 s"), 120_000);

/** What the board shows, for failure messages. */
async function boardText() {
  return page
    .evaluate(() => {
      const status = document.getElementById("status")?.dataset.state;
      const rooms = [...document.querySelectorAll("#rooms article")].map((a) => a.innerText.replace(/\s+/g, " "));
      const message = document.getElementById("board-message");
      const error = document.getElementById("login-error")?.textContent;
      return JSON.stringify({ status, error, message: message?.hidden ? "" : message?.textContent, rooms });
    })
    .catch((e) => `(page not readable: ${e.message})`);
}

try {
  try {
    const res = await page.goto(url);
    if (!res?.ok()) fail(`GET ${url} answered ${res?.status()}: does the gateway serve the dashboard?`);
  } catch (e) {
    fail(`GET ${url} failed (${e.message.split("\n")[0]}): does the gateway serve the dashboard?`);
  }
  await page.getByLabel("E-Mail", { exact: true }).fill(email);
  await page.getByLabel("Passwort", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Anmelden" }).click();
  try {
    await page.getByRole("heading", { level: 1, name: "Räume" }).waitFor({ timeout: STEP_TIMEOUT });
    // Live: the board has loaded (rooms or the empty-board message) and the stream is open.
    await page.waitForFunction(
      () => {
        const rooms = document.querySelector("#rooms article") !== null;
        const empty = !document.getElementById("board-message").hidden && document.getElementById("counts").childElementCount > 0;
        const loaded = rooms || empty;
        return loaded && document.getElementById("status").dataset.state === "live";
      },
      null,
      { timeout: STEP_TIMEOUT },
    );
  } catch {
    fail(`the board did not come up live after signing in: ${await boardText()}`);
  }
  await page.evaluate(() => {
    window.__noReload = true;
  });
  const roomCard = page.locator("#rooms article", { has: page.locator(".room-name", { hasText: room }) });
  if ((await roomCard.count()) !== 1) fail(`room "${room}" is not on the board: ${await boardText()}`);
  console.log("READY");

  // The harness publishes the scan, then writes a line.
  const lines = createInterface({ input: process.stdin });
  const published = await new Promise((resolve) => {
    lines.once("line", () => resolve(true));
    lines.once("close", () => resolve(false));
  });
  if (!published) fail("stdin closed before the harness reported the published scan");
  const started = Date.now();
  try {
    await roomCard.locator(".pupil", { hasText: pupil }).waitFor({ timeout: within });
  } catch {
    fail(`"${pupil}" did not appear in "${room}" within ${within} ms of the scan: ${await boardText()}`);
  }
  const elapsed = Date.now() - started;
  if (!(await page.evaluate(() => window.__noReload === true))) fail("the page reloaded");
  const state = await page.getAttribute("#status", "data-state");
  if (state !== "live") fail(`connection indicator says ${state}, not live`);
  const errors = logs.filter((l) => l.type === "error" || l.type === "pageerror");
  if (errors.length) fail(`errors on the page: ${JSON.stringify(errors)}`);
  await page.waitForTimeout(300);
  await page.screenshot({ path: targetPath("dashboard.png"), fullPage: true });
  console.log(`PASS pupil appeared in the room ${elapsed} ms after the scan; screenshot target/dashboard.png`);
  lines.close();
} catch (e) {
  fail(e?.message ?? String(e));
} finally {
  clearTimeout(overall);
  await browser.close();
}
