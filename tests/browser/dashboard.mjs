// Drives the pipeguard dashboard in headless Chromium (Debian's, never a downloaded one).
//
// Env: BASE (the server's URL), OPERATOR_TOKEN, VIEWER_TOKEN, INGEST_TOKEN, SHOT_DIR (where
// screenshots go), CHROMIUM (default /usr/bin/chromium). The server must hold one session
// awaiting approval. Exits non-zero on the first failed check; prints METRICS {json} at the end.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("BASE");
const OPERATOR = env("OPERATOR_TOKEN");
const VIEWER = env("VIEWER_TOKEN");
const INGEST = env("INGEST_TOKEN");
const SHOTS = env("SHOT_DIR");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const WAIT = 20_000;

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

const metrics = {};
const problems = [];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

/** A page that records console errors, CSP violations and any request leaving BASE. */
async function openPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) problems.push(`external request: ${r.url()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

async function login(page, token) {
  await page.goto(`${BASE}/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#whoami").filter({ hasText: "(" }).waitFor();
}

/** Every form control of the view has a label. */
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("#view input, #view select, #view textarea")]
      .filter((el) => !el.labels?.length && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.name || el.tagName));
  check(unlabelled.length === 0, `every control of the ${where} has a label${unlabelled.length ? `: ${unlabelled}` : ""}`);
}

/** The first session can be opened with the keyboard alone. */
async function openWithKeyboard(page) {
  await page.goto(`${BASE}/#/sessions`);
  const first = page.locator("#sessions tbody a").first();
  await first.waitFor();
  const target = await first.getAttribute("href");
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((h) => document.activeElement?.getAttribute("href") === h, target)) break;
  }
  await page.keyboard.press("Enter");
  await page.waitForFunction((h) => location.hash === h, target);
  await page.locator("h1 .badge").waitFor();
  check(await page.evaluate(() => document.activeElement?.tagName === "H1"),
    "a session opens with Tab and Enter, and focus moves to its heading");
}

async function shot(page, name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

/** Bytes of the page and its assets, and of the API answers, as the browser decoded them. */
async function weigh(page) {
  return page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const res = performance.getEntriesByType("resource");
    const sum = (xs, k) => xs.reduce((n, x) => n + (x[k] || 0), 0);
    const assets = res.filter((r) => new URL(r.name).pathname.startsWith("/assets/"));
    const apiCalls = res.filter((r) => new URL(r.name).pathname.startsWith("/api/"));
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    const listed = performance.getEntriesByName("pipeguard:sessions-rendered")[0];
    return {
      page_and_assets_bytes: nav.decodedBodySize + sum(assets, "decodedBodySize"),
      page_and_assets_transferred_bytes: nav.transferSize + sum(assets, "transferSize"),
      asset_requests: assets.length + 1,
      api_bytes: sum(apiCalls, "decodedBodySize"),
      first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null,
      sessions_list_rendered_ms: listed ? Math.round(listed.startTime) : null,
    };
  });
}

async function postFailure() {
  const resp = await fetch(`${BASE}/pipeline/webhook`, {
    method: "POST",
    headers: { Authorization: `Bearer ${INGEST}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      source: "nightly",
      job_name: "integration-tests",
      build_number: String(Date.now()),
      stage: "test",
      error_message: "npm ERR! network request to https://registry.npmjs.org/left-pad failed, reason: read ECONNRESET",
      target_hosts: ["ci-runner-7"],
      log: "> npm ci\nnpm ERR! code ECONNRESET\nnpm ERR! network request to https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz failed, reason: read ECONNRESET\nnpm ERR! network This is a problem related to network connectivity.\n",
    }),
  });
  check(resp.status === 202, `the generic webhook accepted a failure (${resp.status})`);
  return (await resp.json()).session_id;
}

/** A first visit with an empty cache, the token already in the tab: bytes and render times. */
async function measureColdLoad(browser) {
  const page = await openPage(browser);
  await page.addInitScript((t) => sessionStorage.setItem("pipeguard.token", t), OPERATOR);
  await page.goto(`${BASE}/`);
  await page.locator("#sessions tbody tr[data-id]").first().waitFor();
  Object.assign(metrics, await weigh(page));
  await page.context().close();
}

async function operatorSeesLiveRowAndEvidence(page) {
  await login(page, OPERATOR);
  await page.locator("#sessions tbody tr[data-id]").first().waitFor();
  check(await page.locator('#sessions tr[data-status="awaiting_approval"]').count() === 1,
    "the list shows the session awaiting approval");

  await page.evaluate(() => (window.__notReloaded = true));
  const id = await postFailure();
  const row = page.locator(`#sessions tr[data-id="${id}"]`);
  await row.waitFor();
  check(await page.evaluate(() => window.__notReloaded === true), "the new session's row appeared without a reload");
  await shot(page, "sessions");
  await checkLabels(page, "sessions list");

  await row.getByRole("link").click();
  const evidence = page.locator("#evidence li");
  await evidence.first().waitFor();
  const text = await page.locator("#evidence").innerText();
  check(text.includes("ECONNRESET"), "the session page shows the evidence lines");
  await shot(page, "session-evidence");
}

async function viewerCannotApprove(browser) {
  const page = await openPage(browser);
  await login(page, VIEWER);
  await page.goto(`${BASE}/#/approvals`);
  await page.locator("#approvals section.approval").first().waitFor();
  check(await page.locator("#approvals button").count() === 0, "a viewer sees the waiting plan and no approve or reject button");
  await page.locator("#approvals section.approval h2 a").first().click();
  await page.locator("#h-approval").waitFor();
  check(await page.getByRole("button", { name: "Approve" }).count() === 0, "a viewer's session page has no approve button");
  await shot(page, "viewer-session");
  await page.goto(`${BASE}/#/flaky`);
  await page.locator("td code", { hasText: "api::lists_users" }).first().waitFor();
  check(await page.locator("#view button").count() === 0, "a viewer's flaky tests page has no quarantine button");
  await page.context().close();
}

async function operatorApproves(page) {
  await page.goto(`${BASE}/#/approvals`);
  const card = page.locator("#approvals section.approval").first();
  await card.waitFor();
  await shot(page, "approvals");
  await card.locator("h2 a").click();
  const badge = page.locator("h1 .badge");
  await badge.filter({ hasText: "awaiting approval" }).waitFor();
  await shot(page, "session");
  await checkLabels(page, "session page");
  await page.getByLabel("Comment (optional)").fill("network blip during deploy; safe to re-run");
  await page.getByRole("button", { name: "Approve" }).click();
  await badge.filter({ hasNotText: "awaiting approval" }).waitFor();
  check(true, `the status changed after approval (now ${await badge.innerText()})`);
  check((await page.locator("#view .notice").innerText()).startsWith("Approved: the session is now"),
    "the page says the approval went through");
  await badge.filter({ hasText: "healed" }).waitFor();
  check(true, "the approved re-run healed the session, seen live");
  await page.locator("#approval-count").waitFor({ state: "hidden" });
  check(true, "the navigation's count of waiting plans dropped to none");
  await shot(page, "session-healed");
}

async function operatorQuarantines(page) {
  await page.goto(`${BASE}/#/flaky`);
  const release = page.getByRole("button", { name: /^Release api::lists_users in / });
  const quarantine = page.getByRole("button", { name: /^Quarantine api::lists_users in / });
  await release.first().waitFor();
  await shot(page, "flaky");
  await release.first().click();
  await quarantine.waitFor();
  check(await release.count() === 0, "releasing the flaky test from quarantine shows a Quarantine button");
  await quarantine.click();
  await release.first().waitFor();
  check(true, "quarantining it again from the dashboard works");
}

async function insights(page) {
  await page.goto(`${BASE}/#/insights`);
  await page.locator(".chart svg").first().waitFor();
  check(await page.locator(".chart svg").count() === 2, "the insights page draws both charts");
  await shot(page, "insights");
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    await measureColdLoad(browser);
    const page = await openPage(browser);
    await operatorSeesLiveRowAndEvidence(page);
    await openWithKeyboard(page);
    await viewerCannotApprove(browser);
    await operatorApproves(page);
    await operatorQuarantines(page);
    await insights(page);
    check(problems.length === 0, `no console error, CSP violation or external request${problems.length ? `: ${problems.join("; ")}` : ""}`);
  } finally {
    await browser.close();
  }
  console.log(`METRICS ${JSON.stringify(metrics)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
