// The Runners page: the suspect runner first with the figures `GET /api/v1/runners` gives and
// why it is suspect; a viewer sees no button; an operator takes it out, then releases it, and
// the row follows each time.
//
// Env: BASE, OPERATOR_TOKEN, VIEWER_TOKEN, PLATFORM and SUSPECT (the one suspect runner, not
// taken out), CHROMIUM (default /usr/bin/chromium). Leaves SUSPECT released.

import { chromium } from "playwright-core";

const { BASE, OPERATOR_TOKEN, VIEWER_TOKEN, PLATFORM, SUSPECT } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"];
const KEY = `${PLATFORM}/${SUSPECT}`;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function listed() {
  const r = await fetch(`${BASE}/api/v1/runners`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
  return (await r.json()).runners;
}

async function open(browser, token, errors) {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  await page.goto(`${BASE}/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#whoami").filter({ hasText: "(" }).waitFor();
  await page.getByRole("link", { name: "Runners" }).click();
  await page.locator("tbody tr").first().waitFor();
  return page;
}

/** The row's cells: runner, platform, jobs, failures, unrelated, state, why. */
async function cells(row) {
  return (await row.locator("td").allInnerTexts()).map((t) => t.trim());
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  const errors = [];
  try {
    const api = await listed();
    const viewer = await open(browser, VIEWER_TOKEN, errors);
    check(await viewer.locator("tbody tr").count() === api.length, `one row per runner (${api.length})`);
    check(await viewer.locator("tbody button").count() === 0, "a viewer sees no button");
    await viewer.close();

    const page = await open(browser, OPERATOR_TOKEN, errors);
    const first = page.locator("tbody tr").first();
    check(await first.getAttribute("data-runner") === KEY, `the suspect runner comes first: ${await first.getAttribute("data-runner")}`);
    for (const r of api) {
      const c = await cells(page.locator(`tbody tr[data-runner="${r.platform}/${r.name}"]`));
      const want = [r.name, r.platform, `${r.jobs}`, `${r.failures}`, `${r.unrelated_failures}`];
      check(c.slice(0, 5).join("|") === want.join("|"), `${r.name}'s figures are the API's: ${c.slice(0, 5)}`);
      const state = r.quarantined ? "taken out" : r.suspect ? "suspect" : "ok";
      check(c[5] === state, `${r.name} is ${state}`);
      check(c[6] === (r.detail ?? "—"), `${r.name}'s why is the recorded one: ${c[6]}`);
    }
    const suspect = api.find((r) => r.platform === PLATFORM && r.name === SUSPECT);
    check(suspect?.suspect && !suspect.quarantined && /unrelated failures in \d+ jobs/.test(suspect.detail),
      `the API has ${KEY} suspect with why: ${JSON.stringify(suspect)}`);
    const others = api.filter((r) => !(r.platform === PLATFORM && r.name === SUSPECT));
    check(await page.getByRole("button", { name: "Release" }).count() === 1, "only the suspect runner can be released");
    const takeable = api.filter((r) => r.can_take_out && !r.quarantined);
    check(takeable.length < api.length && await page.getByRole("button", { name: "Take out" }).count() === takeable.length,
      `only runners the platform's API can take out have Take out (${takeable.length} of ${api.length})`);
    for (const r of api.filter((r) => !r.can_take_out)) {
      const buttons = page.locator(`tbody tr[data-runner="${r.platform}/${r.name}"] button`);
      check(await buttons.count() === 0, `${r.platform}/${r.name} has no button`);
    }

    await first.getByRole("button", { name: "Take out" }).click();
    await first.locator(".badge", { hasText: "taken out" }).waitFor();
    const out = (await listed()).find((r) => r.name === SUSPECT);
    check(out.quarantined && (await cells(first))[6] === out.detail && out.detail.startsWith("taken out: "),
      `after Take out the row says how: ${out.detail}`);
    check(await first.getByRole("button", { name: "Take out" }).count() === 0, "a runner taken out has no Take out button");

    await first.getByRole("button", { name: "Release" }).click();
    const row = page.locator(`tbody tr[data-runner="${KEY}"]`);
    await row.locator(".badge", { hasText: "ok" }).waitFor();
    const c = await cells(row);
    const released = (await listed()).find((r) => r.name === SUSPECT);
    check(!released.suspect && !released.quarantined && released.jobs === 0, `the API released it: ${JSON.stringify(released)}`);
    check(c[2] === "0" && c[3] === "0" && c[6] === released.detail, `the row starts afresh: ${c}`);
    check(await page.locator("tbody tr").first().getAttribute("data-runner") !== KEY || others.length === 0,
      "released, it is no longer first");
    check(errors.length === 0, `no page error ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
