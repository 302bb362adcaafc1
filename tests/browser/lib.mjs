// Shared by the browser checks: Debian's chromium driven by playwright-core (which never
// downloads a browser), and small assertion helpers that fail with a clear message.

import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The chromium binary: CHROMIUM_PATH, else Debian's. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    fail(`chromium not found (tried ${candidates.join(", ")}): install it with: sudo apt-get install -y chromium`);
  }
  return found;
}

/** A headless chromium with a German (or `locale`) context of a laptop-sized window. */
export async function launch({ locale = "de-DE" } = {}) {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // No GPU in CI machines; /dev/shm can be small in containers.
    args: ["--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const logs = [];
  page.on("console", (msg) => logs.push({ type: msg.type(), text: msg.text() }));
  page.on("pageerror", (err) => logs.push({ type: "pageerror", text: String(err) }));
  return { browser, context, page, logs };
}

/** `target/<name>` under the repository root (created). */
export function targetPath(name) {
  const dir = join(repoRoot, "target");
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

export function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok ${message}`);
}

export function equal(actual, expected, message) {
  if (actual !== expected) fail(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  console.log(`ok ${message}`);
}

/** The required environment variable `name`. */
export function env(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
}
