// Drives the pipeguard dashboard in headless Chromium (Debian's, never a downloaded one).
//
// Env: BASE (the server's URL), OPERATOR_TOKEN, VIEWER_TOKEN, INGEST_TOKEN, SHOT_DIR (where
// screenshots go), CHROMIUM (default /usr/bin/chromium), ESCALATED_ID and PURGED_ID (an
// escalated session that called nothing, and one retention purged). The server must hold one
// session awaiting approval. Exits non-zero on the first failed check; prints METRICS {json}
// at the end.

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
const ESCALATED_ID = env("ESCALATED_ID");
const PURGED_ID = env("PURGED_ID");
const PHONE = { width: 390, height: 844 };
// A registry URL far longer than any line of the page and without a hyphen or space to break
// at: it must wrap, not widen the cards.
const LONG_URL = `https://registry.npmjs.org/@acme%2f${"generated_client_".repeat(12)}sdk/sdk_1.3.0.tgz`;
const WAIT = 20_000;

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

const metrics = {};
const problems = [];

// KEEP_GOING=1 reports every failed check instead of stopping at the first (the run still fails).
const KEEP_GOING = process.env.KEEP_GOING === "1";
const failed = [];

function check(cond, what) {
  if (cond) {
    console.log(`ok - ${what}`);
  } else if (KEEP_GOING) {
    console.log(`not ok - ${what}`);
    failed.push(what);
  } else {
    throw new Error(`check failed: ${what}`);
  }
}

/** A page that records console errors, CSP violations and any request leaving BASE. */
async function openPage(browser, viewport = { width: 1366, height: 800 }) {
  const context = await browser.newContext({ viewport });
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
      error_message: `npm ERR! network request to ${LONG_URL} failed, reason: read ECONNRESET`,
      target_hosts: ["ci-runner-7"],
      log: `> npm ci\nnpm ERR! network request to ${LONG_URL} failed, reason: read ECONNRESET\n`,
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
  await checkSessionLayout(page, "session page");
  await shot(page, "session-evidence");
  return id;
}

/** The login page shows the command that makes a token (the CLI test runs it). */
async function loginPageShowsTheTokenCommand(browser) {
  const page = await openPage(browser);
  await page.goto(`${BASE}/`);
  await page.locator("#login").waitFor();
  const command = (await page.locator("#login pre code, #login code").first().innerText()).trim();
  check(command === "pipeguard token create --role admin --name you",
    `the login page shows \`${command}\` to make a token`);
  await shot(page, "login");
  await page.context().close();
}

/** Nothing is wider than the window: no sideways scrolling of the whole page. */
async function checkNoPageOverflow(page, where) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(scroll <= width, `the ${where} is no wider than the window (${scroll} <= ${width} px)`);
}

/** A long summary stays inside the Diagnosis card, beside the Plan card; evidence lines wrap. */
async function checkSessionLayout(page, where) {
  const boxes = await page.evaluate(() => {
    const rect = (el) => el && el.getBoundingClientRect().toJSON();
    const card = (id) => document.getElementById(id)?.closest("section");
    const summary = [...document.querySelectorAll("#view .facts dt")].find((dt) => dt.textContent === "Summary");
    const evidence = document.getElementById("evidence");
    return {
      diagnosis: rect(card("h-diagnosis")),
      plan: rect(card("h-plan")),
      summary: rect(summary?.nextElementSibling),
      summaryText: summary?.nextElementSibling.textContent,
      evidence: evidence && { scroll: evidence.scrollWidth, client: evidence.clientWidth },
      longest: evidence && Math.max(...[...evidence.querySelectorAll("li")].map((t) => t.getBoundingClientRect().height)),
      lineHeight: evidence && parseFloat(getComputedStyle(evidence.querySelector("li")).lineHeight),
    };
  });
  const { diagnosis: d, plan: p, summary: s } = boxes;
  check(boxes.summaryText.length > 200, `the ${where} has a long summary (${boxes.summaryText.length} characters: ${boxes.summaryText})`);
  check(s.left >= d.left && s.right <= d.right + 0.5 && s.bottom <= d.bottom + 0.5,
    `the ${where}'s summary stays inside the Diagnosis card (${Math.round(s.right)} <= ${Math.round(d.right)} px)`);
  // Beside the Plan card (wide windows) or above it (narrow ones), the summary never reaches it.
  const intoPlan = !(s.right <= p.left || p.right <= s.left || s.bottom <= p.top || p.bottom <= s.top);
  check(!intoPlan, `the ${where}'s summary does not run under the Plan card`);
  check(boxes.evidence.scroll <= boxes.evidence.client,
    `the ${where}'s evidence lines wrap (${boxes.evidence.scroll} <= ${boxes.evidence.client} px, no sideways scrolling)`);
  check(boxes.longest > 1.5 * boxes.lineHeight, `the ${where}'s long evidence line runs over several lines`);
  await checkNoPageOverflow(page, where);
}

/** Run labels as each platform names them, never a stand-in attempt number. */
async function checkRunLabels(page) {
  const runs = await page.locator("#sessions tbody td a").allInnerTexts();
  check(runs.length > 0 && runs.every((r) => !/1000000|#.*#/.test(r)), `no run label repeats an id or shows a stand-in attempt: ${runs.join(" | ")}`);
  check(runs.some((r) => /^ci run \d+, attempt 2$/.test(r)), "the healed GitHub run reads `ci run N, attempt 2`");
  check(runs.some((r) => /^integration-tests #\d+$/.test(r)), "a generic failure reads `integration-tests #BUILD`");
}

/** The text of a session page's card below its heading. */
async function cardText(page, title) {
  const card = page.locator("section.card", { has: page.locator("h2", { hasText: title }) });
  return (await card.locator(".empty").innerText()).trim();
}

/** An escalated session says nothing ran; a purged one says retention removed its evidence. */
async function closedSessionsSayWhatHappened(page) {
  await page.goto(`${BASE}/#/sessions/${ESCALATED_ID}`);
  await page.locator("h1 .badge", { hasText: "escalated" }).waitFor();
  const executed = await page.locator(".steps li", { hasText: "Executed" }).innerText();
  check(executed.includes("not executed: escalated"), `an escalated session's progress says \`${executed.replace(/\s+/g, " ")}\``);
  const calls = await cardText(page, "Platform calls and commands");
  check(calls === "None: escalated to a person before anything ran.", `its platform calls say \`${calls}\``);
  check(!(await page.locator("#view").innerText()).includes("not yet"), "nothing on an escalated session's page says `not yet`");
  await shot(page, "session-escalated");

  await page.goto(`${BASE}/#/sessions/${PURGED_ID}`);
  await page.locator("h1 .badge").waitFor();
  const evidence = await cardText(page, "Evidence");
  check(/^Evidence purged on .+ by retention\.$/.test(evidence), `a purged session's evidence says \`${evidence}\``);
  await shot(page, "session-purged");
}

/** At phone width the list scrolls inside its box, and a session page fits. */
async function phoneWidth(browser, sessionId) {
  const page = await openPage(browser, PHONE);
  await login(page, OPERATOR);
  await page.locator("#sessions tbody tr[data-id]").first().waitFor();
  const box = await page.evaluate(() => {
    const table = document.getElementById("sessions");
    const wrap = table.parentElement;
    return { table: table.scrollWidth, wrap: wrap.clientWidth, right: wrap.getBoundingClientRect().right,
      scrolls: ["auto", "scroll"].includes(getComputedStyle(wrap).overflowX) };
  });
  check(box.right <= PHONE.width && (box.table <= box.wrap || box.scrolls),
    `at ${PHONE.width} px the session table fits or scrolls inside its box (table ${box.table} px, box ${box.wrap} px)`);
  await checkNoPageOverflow(page, `sessions list at ${PHONE.width} px`);
  await shot(page, "sessions-phone");
  await page.goto(`${BASE}/#/sessions/${sessionId}`);
  await page.locator("#evidence li").first().waitFor();
  await checkNoPageOverflow(page, `session page at ${PHONE.width} px`);
  const [summary, card] = await page.evaluate(() => {
    const dt = [...document.querySelectorAll("#view .facts dt")].find((x) => x.textContent === "Summary");
    return [dt.nextElementSibling.getBoundingClientRect().right, dt.closest("section").getBoundingClientRect().right];
  });
  check(summary <= card + 0.5, `at ${PHONE.width} px the summary stays inside its card`);
  await shot(page, "session-phone");
  await page.context().close();
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
  const notice = await page.locator("#view .notice").innerText();
  check(notice === "Approved: retry of deploy-production starts now.", `the page says what the approval started: \`${notice}\``);
  await badge.filter({ hasText: "healed" }).waitFor();
  check(true, "the approved re-run healed the session, seen live");
  await page.locator("#approval-count").waitFor({ state: "hidden" });
  check(true, "the navigation's count of waiting plans dropped to none");
  await shot(page, "session-healed");
  const run = await page.locator(".facts dt:text-is('Run') + dd").innerText();
  check(/^release run \d+, attempt 2$/.test(run), `the healed deploy's run reads \`${run}\``);
}

async function operatorQuarantines(page) {
  await page.goto(`${BASE}/#/flaky`);
  const release = page.getByRole("button", { name: /^Un-quarantine api::lists_users in / });
  const quarantine = page.getByRole("button", { name: /^Quarantine api::lists_users in / });
  await page.locator("td code", { hasText: "api::lists_users" }).first().waitFor();
  check(await release.count() > 0, "a quarantined test has an Un-quarantine button");
  await weeklyTrend(page);
  if (!(await release.count())) return;
  await release.first().waitFor();
  await shot(page, "flaky");
  await release.first().click();
  await quarantine.waitFor();
  check(await release.count() === 0, "un-quarantining the flaky test shows a Quarantine button");
  await quarantine.click();
  await release.first().waitFor();
  check(true, "quarantining it again from the dashboard works");
}

/** The flaky tests' weekly trend, as the API reports it, with the tests that got worse marked. */
async function weeklyTrend(page) {
  const resp = await fetch(`${BASE}/api/v1/flaky-tests?limit=200`, { headers: { authorization: `Bearer ${OPERATOR}` } });
  const { flaky_tests: list } = await resp.json();
  const t = list.find((x) => x.test === "api::lists_users");
  check(t?.trend?.worse_this_week === true, "the API says api::lists_users failed more this week than last");
  const row = page.locator("#view table").first().locator("tr", { has: page.locator("td code", { hasText: "api::lists_users" }) });
  const cells = await row.locator("td").allInnerTexts();
  const week = `${t.trend.failures_this_week} (last week ${t.trend.failures_last_week})`;
  check(cells.some((c) => c.includes("worse this week") && c.includes(week)),
    `its row shows the trend \`${week}\` marked worse this week (cells: ${cells.join(" | ")})`);
  check((await row.getAttribute("class")) === "worse", "the row of a test that got worse is marked");
  const steady = list.filter((x) => !x.trend.worse_this_week).map((x) => x.test);
  for (const name of steady) {
    const r = page.locator("#view table").first().locator("tr", { has: page.locator("td code", { hasText: name }) });
    check(await r.locator(".badge.worse").count() === 0, `${name}, no worse this week, is not marked`);
  }
}

async function insights(page) {
  await page.goto(`${BASE}/#/insights`);
  await page.locator(".chart svg").first().waitFor();
  check(await page.locator(".chart svg").count() === 2, "the insights page draws both charts");
  // Every session finished today: the axis spans the week up to today, not 30 empty days.
  const title = await page.locator(".chart h2").nth(1).innerText();
  check(title === "Time to green, last 7 days", `the time chart's axis fits the data: \`${title}\``);
  await shot(page, "insights");
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    await measureColdLoad(browser);
    await loginPageShowsTheTokenCommand(browser);
    const page = await openPage(browser);
    const longSession = await operatorSeesLiveRowAndEvidence(page);
    await openWithKeyboard(page);
    await closedSessionsSayWhatHappened(page);
    await phoneWidth(browser, longSession);
    await viewerCannotApprove(browser);
    await operatorApproves(page);
    await operatorQuarantines(page);
    await page.goto(`${BASE}/#/sessions`);
    await page.locator("#sessions tbody tr[data-id]").first().waitFor();
    await checkRunLabels(page);
    await insights(page);
    check(problems.length === 0, `no console error, CSP violation or external request${problems.length ? `: ${problems.join("; ")}` : ""}`);
  } finally {
    await browser.close();
  }
  if (failed.length) throw new Error(`${failed.length} check(s) failed: ${failed.join("; ")}`);
  console.log(`METRICS ${JSON.stringify(metrics)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
