// The session page marks the evidence lines no green run of the job printed.
//
// Env: BASE, TOKEN (a viewer's), SESSION_ID (a session read against green runs whose evidence
// holds NEW_TEXT, a line that is new), CHROMIUM (default /usr/bin/chromium).

import { chromium } from "playwright-core";

const { BASE, TOKEN, SESSION_ID, NEW_TEXT } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${BASE}/`);
    await page.getByLabel("API token").fill(TOKEN);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#whoami").filter({ hasText: "(" }).waitFor();
    await page.goto(`${BASE}/#/sessions/${SESSION_ID}`);
    await page.locator("#evidence li").first().waitFor();
    const marked = page.locator("#evidence li", { has: page.locator(".new") });
    check(await marked.count() >= 1, "a new evidence line carries the marker");
    check((await marked.first().innerText()).includes(NEW_TEXT), "the marked line is the new one");
    check((await page.locator("#green-runs").innerText()).includes("61"), "the green runs compared with are named");
    check(errors.length === 0, `no page error ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
