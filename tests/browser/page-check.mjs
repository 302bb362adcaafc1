#!/usr/bin/env node
// The dashboard page in Debian's chromium, without the Phoenix stack: the committed
// gateway/dashboard/dist/ served by a canned grpc-web stand-in (fake-gateway.mjs).
//
// Checks: lang attribute and landmarks; the login form is labelled (fields found by their
// label text) and operable by keyboard in order, with a visible focus ring; the language
// switcher (by keyboard) relabels everything; validation and a wrong password are
// announced in an alert; after login the token is renewed before it expires, the board
// shows counts with text labels, rooms (mine first, "names hidden" note) and "Live"; a
// pushed event updates it without reload; after a network error the stream resumes from
// the last cursor, and CURSOR_EXPIRED reloads the board; nothing is kept in web storage and
// nothing is logged; sign-out. Screenshots: target/dashboard-login.png, target/dashboard-board.png.
//
//   node tests/browser/page-check.mjs        (after: cd tests/browser && npm ci)

import { join } from "node:path";
import { startFakeGateway } from "./fake-gateway.mjs";
import { check, equal, fail, launch, repoRoot, targetPath } from "./lib.mjs";

const TIMEOUT = 10_000;
const gateway = await startFakeGateway(join(repoRoot, "gateway/dashboard/dist"));
const { browser, page, logs } = await launch({ locale: "de-DE" });
const deadline = setTimeout(() => fail("page check did not finish within 60 s"), 60_000);

try {
  await page.goto(gateway.url);
  await page.waitForFunction(() => document.title.length > 0);

  // ---- document and landmarks ----
  equal(await page.getAttribute("html", "lang"), "de", "German by default for a German browser (html lang)");
  equal(await page.title(), "Phoenix – Anwesenheit", "German title");
  check((await page.getByRole("banner").count()) === 1, "one banner landmark (header)");
  check((await page.getByRole("main").count()) === 1, "one main landmark");
  equal(await page.getAttribute("#announcer", "aria-live"), "polite", "a polite live region");

  // ---- labelled form ----
  const email = page.getByLabel("E-Mail", { exact: true });
  const password = page.getByLabel("Passwort", { exact: true });
  equal(await email.getAttribute("id"), "email", "the email field is labelled 'E-Mail'");
  equal(await password.getAttribute("type"), "password", "the password field is labelled 'Passwort'");
  equal(await email.getAttribute("autocomplete"), "username", "email autocompletes as username");
  check(await page.getByRole("button", { name: "Anmelden" }).isVisible(), "a submit button named 'Anmelden'");
  check(await page.getByRole("heading", { level: 1, name: "Anmelden" }).isVisible(), "a level-1 heading");

  // ---- keyboard order and visible focus ----
  const order = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    order.push(
      await page.evaluate(() => {
        const a = document.activeElement;
        return a?.id || a?.getAttribute("data-lang") || a?.className || a?.tagName || "";
      }),
    );
    if (order.at(-1) === "login-submit") break;
  }
  equal(order.join(" > "), "skip > de > en > email > password > login-submit", "Tab reaches every control in order");
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Shift+Tab");
  const ring = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { id: document.activeElement.id, style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  check(ring.id === "email" && ring.style !== "none" && ring.width >= 2, `visible focus ring on the email field (${ring.style} ${ring.width}px)`);

  // ---- language switch by keyboard ----
  await page.focus('button[data-lang="en"]');
  await page.keyboard.press("Space");
  equal(await page.getAttribute("html", "lang"), "en", "English after the switch (html lang)");
  equal(await page.getAttribute('button[data-lang="en"]', "aria-pressed"), "true", "the switch shows its state (aria-pressed)");
  equal(await page.getByLabel("Email", { exact: true }).getAttribute("id"), "email", "the email field is relabelled 'Email'");
  equal(await page.getByLabel("Password", { exact: true }).getAttribute("id"), "password", "the password field is relabelled 'Password'");
  check(await page.getByRole("button", { name: "Sign in" }).isVisible(), "the button reads 'Sign in'");
  equal(await page.title(), "Phoenix – Presence", "English title");
  await page.mouse.move(0, 0);
  await page.screenshot({ path: targetPath("dashboard-login.png"), fullPage: true });
  console.log("ok screenshot target/dashboard-login.png");

  // ---- validation and a wrong password, announced ----
  await page.focus("#login-submit");
  await page.keyboard.press("Enter");
  equal(await page.textContent('[role="alert"]'), "Please enter email and password.", "empty form: alert");
  equal(await page.evaluate(() => document.activeElement.id), "email", "focus moves to the missing field");
  equal(await page.getAttribute("#email", "aria-invalid"), "true", "the missing field is marked invalid");
  await page.keyboard.type("lehrerin@schule.example");
  await page.keyboard.press("Tab");
  await page.keyboard.type("wrong");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector('[role="alert"]').textContent.includes("incorrect"), null, { timeout: TIMEOUT });
  equal(await page.textContent('[role="alert"]'), "Email or password is incorrect.", "wrong password: alert");
  equal(await page.inputValue("#password"), "", "the password field is cleared");

  // Back to German, then sign in.
  await page.focus('button[data-lang="de"]');
  await page.keyboard.press("Enter");
  equal(await page.textContent('[role="alert"]'), "E-Mail oder Passwort ist falsch.", "the alert follows the language");
  await password.fill("Richtig-1!");
  await password.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Räume" }).waitFor({ timeout: TIMEOUT });
  equal(await page.evaluate(() => document.activeElement.id), "board-heading", "focus moves to the board heading");
  await page.evaluate(() => {
    window.__noReload = true;
  });

  // ---- the board ----
  await page.locator('#status[data-state="live"]').waitFor({ timeout: TIMEOUT });
  // Read with the state in one evaluation: the scripted stream drops 300 ms after opening,
  // so on a loaded machine a separate read could already see "reconnecting".
  const live = await page.evaluate(() => {
    const s = document.getElementById("status");
    return { state: s.dataset.state, text: s.textContent.replace(/\s+/g, " ").trim() };
  });
  if (live.state === "live") equal(live.text, "Verbindung: Live", "status says Live in words");
  else equal(live.text, "Verbindung: Verbindung unterbrochen – neuer Versuch …", "status says reconnecting in words");
  // WhoAmI (the caller's permissions) runs beside the board: left out of the order.
  const methods = () => gateway.calls.map((c) => c.method).filter((m) => m !== "WhoAmI");
  equal(methods().slice(0, 4).join(","), "Login,Login,Refresh,GetPresenceBoard", "a token about to expire is renewed before the first call");
  equal(gateway.calls.find((c) => c.method === "WhoAmI")?.authorization, "Bearer access-2", "the page asks WhoAmI what the caller may do");
  const boardCall = gateway.calls.find((c) => c.method === "GetPresenceBoard");
  equal(boardCall.authorization, "Bearer access-2", "calls carry the renewed access token");
  equal(gateway.calls.find((c) => c.method === "Refresh").arg, "refresh-1", "Refresh presents the refresh token");
  const roomNames = await page.locator("#rooms .room-name").allTextContents();
  equal(roomNames.join(", "), "Raum 101, Raum 102, Turnhalle", "my rooms first, then the others");
  const countLabels = await page.locator("#counts li").allInnerTexts();
  check(countLabels.some((t) => /^\d+\s+Im Raum$/.test(t.trim())), `counts carry text labels (${countLabels.map((t) => t.replace(/\s+/g, " ")).join(" | ")})`);
  const gym = page.locator('li[data-room="3"]');
  check((await gym.textContent()).includes("Namen ausgeblendet"), "a room without access shows the names-hidden note");
  check((await gym.textContent()).includes("4 Kinder"), "and still its pupil count");
  // A read-only caller (groups:read, presence:read) is offered no action.
  check(await page.locator("#search").isHidden(), "no pupil search without users:read");
  check(await page.locator("#start-open").isHidden(), "no 'start session' without groups:create");
  equal(await page.locator("#rooms button").count(), 0, "no room actions without groups:update");

  // ---- live: a pushed check-in, a network error, CURSOR_EXPIRED ----
  await page.locator('li[data-room="1"] .pupil', { hasText: "Lena K." }).waitFor({ timeout: TIMEOUT });
  check(true, "a pushed check-in appears in its room");
  await page.waitForFunction(() => document.getElementById("announcer").textContent.includes("Lena K. ist in Raum 101."), null, { timeout: TIMEOUT });
  check(true, "and is announced politely");
  await page.locator('li[data-room="2"] .pupil', { hasText: "Noah P." }).waitFor({ timeout: TIMEOUT });
  const cursors = gateway.calls.filter((c) => c.method === "WatchPresence").map((c) => c.arg);
  equal(cursors.slice(0, 3).join(","), "c0,c1,c9", "resumed from the last cursor, reloaded on CURSOR_EXPIRED");
  equal(methods().filter((m) => m === "GetPresenceBoard").length, 2, "the board was reloaded once");
  check(await page.evaluate(() => window.__noReload === true), "all without reloading the page");
  await page.locator('#status[data-state="live"]').waitFor({ timeout: TIMEOUT });
  check((await page.locator('li[data-room="2"]').textContent()).includes("voll"), "a full room says so in words");

  // ---- privacy ----
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  check(!/access|refresh|Bearer/.test(stored), `no token in web storage (${stored})`);
  const logged = logs.filter((l) => l.type !== "debug");
  check(logged.length === 0, `nothing on the console (${JSON.stringify(logged)})`);

  await page.waitForTimeout(1600); // let the highlight fade in the screenshot's favour
  await page.screenshot({ path: targetPath("dashboard-board.png"), fullPage: true });
  console.log("ok screenshot target/dashboard-board.png");

  // ---- sign out ----
  await page.getByRole("button", { name: "Abmelden" }).click();
  await page.getByRole("heading", { level: 1, name: "Anmelden" }).waitFor({ timeout: TIMEOUT });
  for (let i = 0; i < 50 && !gateway.calls.some((c) => c.method === "Logout"); i++) await page.waitForTimeout(100);
  const logout = gateway.calls.find((c) => c.method === "Logout");
  equal(logout?.arg, "refresh-2", "sign-out revokes the session with the current refresh token");
  console.log("PASS page check");
} catch (e) {
  fail(e?.message ?? String(e));
} finally {
  clearTimeout(deadline);
  await browser.close();
  await gateway.close();
}
