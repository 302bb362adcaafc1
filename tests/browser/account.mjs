#!/usr/bin/env node
// The pages Phoenix's mail links to, in Debian's chromium against the real stack (driven by
// tests/it/platform/dashboard_browser.rs `dashboard_completes_the_links_of_the_mail`):
//
// 1. A parent opens the invitation link from the mail: the page names their email, takes the
//    token out of the address bar, refuses two different passwords and a weak one (the
//    server's rule), accepts a good one and signs the new account in: the board shows their
//    child in EXPECT_ROOM, not OTHER_PUPIL of the same room, and no school-wide counts.
// 2. The same link again, signed out: "already accepted".
// 3. "Forgot your password?" on the sign-in form: the reset is requested; the page prints
//    RESET REQUESTED and waits for the harness to write the link of the reset mail to stdin.
// 4. The reset link: a new password; the sign-in form says so; the old password is refused,
//    the new one opens the board. Nothing the page logs carries a token.
//
// Environment: PHOENIX_URL (the gateway, ending in /), INVITE_LINK, PHOENIX_EMAIL,
// FIRST_PASSWORD, NEW_PASSWORD, EXPECT_ROOM, EXPECT_PUPIL, OTHER_PUPIL, CHROMIUM_PATH
// (default /usr/bin/chromium).

import { createInterface } from "node:readline";
import { check, env, equal, fail, launch, targetPath } from "./lib.mjs";

const url = env("PHOENIX_URL");
const inviteLink = env("INVITE_LINK");
const email = env("PHOENIX_EMAIL");
const firstPassword = env("FIRST_PASSWORD");
const newPassword = env("NEW_PASSWORD");
const room = env("EXPECT_ROOM");
const pupil = env("EXPECT_PUPIL");
const other = env("OTHER_PUPIL");
const STEP = 30_000;

const { browser, page, logs } = await launch({ locale: "de-DE" });
const overall = setTimeout(() => fail("no result within 150 s"), 150_000);
const lines = createInterface({ input: process.stdin });
const nextLine = () =>
  new Promise((resolve) => {
    lines.once("line", resolve);
    lines.once("close", () => resolve(undefined));
  });

/** What the page shows, for failure messages. */
async function shown() {
  return page
    .evaluate(() => {
      const visible = [...document.querySelectorAll("main > section")].filter((s) => !s.hidden);
      return visible.map((s) => `#${s.id}: ${s.innerText.replace(/\s+/g, " ").slice(0, 400)}`).join(" | ");
    })
    .catch((e) => `(page not readable: ${e.message})`);
}

async function expectText(locator, text, what) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ timeout: STEP });
  } catch {
    fail(`${what}: expected "${text}"; the page shows ${await shown()}`);
  }
  console.log(`ok ${what}`);
}

async function expectBoard(what) {
  try {
    await page.getByRole("heading", { level: 1, name: "Räume" }).waitFor({ timeout: STEP });
  } catch {
    fail(`${what}: the board did not appear; the page shows ${await shown()}`);
  }
  console.log(`ok ${what}`);
}

async function signIn(password) {
  await page.getByLabel("E-Mail", { exact: true }).fill(email);
  await page.getByLabel("Passwort", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Anmelden" }).click();
}

async function setPassword(password, repeat, button) {
  await page.getByLabel("Neues Passwort", { exact: true }).fill(password);
  await page.getByLabel("Passwort wiederholen", { exact: true }).fill(repeat);
  await page.getByRole("button", { name: button }).click();
}

try {
  // 1. The invitation.
  const res = await page.goto(inviteLink);
  if (!res?.ok()) fail(`GET ${inviteLink} answered ${res?.status()}: does the gateway serve the mail's pages?`);
  await expectText(page.locator("#account-heading"), "Elternkonto anlegen", "the invitation page opens");
  await expectText(page.locator("#account-intro"), email, "it names the account's email");
  check(!page.url().includes("token"), `the token left the address bar (${new URL(page.url()).pathname})`);
  await setPassword(firstPassword, `${firstPassword}x`, "Konto anlegen");
  await expectText(page.locator("#account-error"), "stimmen nicht überein", "two different passwords are refused");
  await setPassword("kurz", "kurz", "Konto anlegen");
  await expectText(page.locator("#account-error"), "erfüllt die Regeln nicht", "a weak password is refused by the server");
  await setPassword(firstPassword, firstPassword, "Konto anlegen");
  await expectBoard("the accepted invitation signs the parent in");
  const rooms = page.locator("#rooms article");
  await expectText(rooms, pupil, `the parent sees their child ${pupil}`);
  equal(await rooms.count(), 1, "one room: the child's");
  await expectText(rooms.locator(".room-name"), room, `the child's room ${room}`);
  check(!(await page.locator("#rooms").innerText()).includes(other), `the parent does not see ${other}`);
  check(!(await page.locator("#counts").isVisible()), "no school-wide counts for a parent");

  // 2. The spent link.
  await page.getByRole("button", { name: "Abmelden" }).click();
  await page.goto(inviteLink);
  await expectText(page.locator("#account-intro"), "schon angenommen", "the link works once");

  // 3. Forgot password.
  await page.goto(url);
  await page.getByRole("button", { name: "Passwort vergessen?" }).click();
  await page.getByLabel("E-Mail-Adresse", { exact: true }).fill(email);
  await page.getByRole("button", { name: "Link senden" }).click();
  await expectText(page.locator("#forgot-done"), "mit einem Link unterwegs", "the reset is requested");
  console.log("RESET REQUESTED");
  const resetLink = await nextLine();
  if (!resetLink) fail("stdin closed before the harness sent the reset link");

  // 4. The reset link.
  await page.goto(resetLink);
  await expectText(page.locator("#account-heading"), "Passwort neu festlegen", "the reset page opens");
  await setPassword(newPassword, newPassword, "Passwort speichern");
  await expectText(page.locator("#login-done"), "Ihr Passwort ist geändert", "the sign-in form says the password changed");
  await signIn(firstPassword);
  await expectText(page.locator("#login-error"), "E-Mail oder Passwort ist falsch", "the old password is refused");
  await signIn(newPassword);
  await expectBoard("the new password opens the board");

  const tokens = [new URL(inviteLink).searchParams.get("token"), new URL(resetLink).searchParams.get("token")];
  const leaked = logs.filter((l) => tokens.some((t) => t && l.text.includes(t)));
  if (leaked.length) fail(`the page logged a token: ${JSON.stringify(leaked)}`);
  const errors = logs.filter((l) => l.type === "pageerror");
  if (errors.length) fail(`errors on the page: ${JSON.stringify(errors)}`);
  await page.screenshot({ path: targetPath("account.png"), fullPage: true });
  console.log("PASS account pages; screenshot target/account.png");
} catch (e) {
  fail(e?.message ?? String(e));
} finally {
  clearTimeout(overall);
  lines.close();
  await browser.close();
}
