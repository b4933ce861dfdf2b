// Two tabs of Debian's headless Chromium chat through examples/ws_chat.lua.
//
//   node spec/browser/chat.mjs URL SCREENSHOT.png
//
// Opens URL (the chat page) in two tabs, sets their nicks, sends a message
// from tab A that tab B must show, then one from B that A must show, and
// saves a PNG screenshot of tab A. Prints one JSON line on stdout:
//   {"ok":true,"a_to_b":true,"b_to_a":true,...}
// and exits 0; on any failure it prints {"ok":false,"step":..,"error":..},
// repeats the error on stderr and exits 1 (2 for a usage error).
//
// CHROMIUM (default /usr/bin/chromium) names the browser; nothing is
// downloaded. Waits are on DOM conditions with timeouts, never fixed sleeps.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  process.stderr.write("usage: node chat.mjs URL SCREENSHOT.png\n");
  process.exit(2);
}
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT = 15000;      // ms, for each wait on the page
const TOTAL_TIMEOUT = 90000;     // ms, for the whole run

// The flags known to work on this kind of machine: without the background
// networking ones Chromium keeps trying hosts a closed network refuses.
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const result = { ok: false, url, screenshot: shot, step: "start" };
const t0 = Date.now();
let context = null;
let profile = null;
let finished = false;

function finish(code, error) {
  if (finished) return;    // one JSON line, even after the watchdog
  finished = true;
  if (error) {
    result.ok = false;
    result.error = String(error && error.message ? error.message : error)
      .replace(/\u001b\[[0-9;]*m/g, "")
      .split("\n").slice(0, 6).join(" | ");
    process.stderr.write(`chat.mjs: failed at step "${result.step}": ` +
                         `${result.error}\n`);
  }
  result.ms = Date.now() - t0;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exitCode = code;
}

async function cleanup() {
  if (context) {
    const c = context;
    context = null;
    await c.close().catch(() => {});
  }
  if (profile) {
    rmSync(profile, { recursive: true, force: true });
    profile = null;
  }
}

// The texts of the page's message list.
const messages = (page) =>
  page.$$eval("#messages li", (lis) => lis.map((li) => li.textContent));

// Wait until the page's message list holds exactly `text`.
async function waitForMessage(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li")]
      .some((li) => li.textContent === t),
    text, { timeout: STEP_TIMEOUT });
}

async function say(page, nick, text) {
  await page.fill("#nick", nick);
  await page.fill("#msg", text);
  await page.click("#send");
}

async function main() {
  result.step = "launch";
  profile = mkdtempSync(join(tmpdir(), "luaserv-chromium-"));
  // A persistent context on a fresh, empty profile: --user-data-dir.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ARGS,
    viewport: { width: 800, height: 600 },
    timeout: 30000,
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const errors = [];
  const tab = async (name) => {
    const page = context.pages().length > 0 && name === "A"
      ? context.pages()[0] : await context.newPage();
    page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${name}: ${m.text()}`);
    });
    return page;
  };
  const a = await tab("A");
  const b = await tab("B");

  result.step = "open";
  for (const page of [a, b]) {
    const resp = await page.goto(url, { waitUntil: "load" });
    if (!resp || resp.status() !== 200) {
      throw new Error(`GET ${url}: status ${resp ? resp.status() : "none"}`);
    }
    await page.waitForSelector('#status[data-state="open"]');
    await page.waitForSelector("#send:not([disabled])");
    // the welcome line: the server has registered this tab in the room
    await page.waitForSelector("#messages li");
  }
  result.user_agent = await a.evaluate(() => navigator.userAgent);

  const stamp = Date.now().toString(36);
  const fromA = `hello from A ${stamp}`;
  const fromB = `hi A, B here ${stamp}`;

  result.step = "a_to_b";
  await say(a, "alice", fromA);
  await waitForMessage(b, `alice: ${fromA}`);
  await waitForMessage(a, `alice: ${fromA}`);   // the sender's own echo
  result.a_to_b = true;

  result.step = "b_to_a";
  await say(b, "bob", fromB);
  await waitForMessage(a, `bob: ${fromB}`);
  await waitForMessage(b, `bob: ${fromB}`);
  result.b_to_a = true;

  result.a_messages = await messages(a);
  result.b_messages = await messages(b);

  result.step = "screenshot";
  await a.bringToFront();
  await a.screenshot({ path: shot, fullPage: true });
  result.screenshot_bytes = statSync(shot).size;

  result.page_errors = errors;
  if (errors.length > 0) {
    result.step = "page errors";
    throw new Error(`errors on the page: ${errors.join("; ")}`);
  }
  result.step = "done";
  result.ok = true;
}

const watchdog = setTimeout(() => {
  finish(1, new Error(`gave up after ${TOTAL_TIMEOUT / 1000} s`));
  cleanup().finally(() => process.exit(1));
}, TOTAL_TIMEOUT);

try {
  await main();
  await cleanup();
  finish(0);
} catch (e) {
  await cleanup();
  finish(1, e);
} finally {
  clearTimeout(watchdog);
}
