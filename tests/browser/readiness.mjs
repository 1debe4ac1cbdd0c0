// The Readiness page: one row per repository with its figures, the recommendation in words,
// the cases behind each number linking to their sessions, and an admin's switch of the mode.
//
// Env: BASE, TOKEN (an admin's), REPOSITORY (its only repository: mode act, 2 confirmed, 1
// withheld), CHROMIUM (default /usr/bin/chromium). Switches the repository to observe.

import { chromium } from "playwright-core";

const { BASE, TOKEN, REPOSITORY } = process.env;
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
    await page.getByRole("link", { name: "Readiness" }).click();
    const row = page.locator("tbody tr").first();
    await row.waitFor();
    const cells = await row.locator("td").allInnerTexts();
    check(cells[0] === REPOSITORY && cells[2] === "act", `the row names the repository and its mode: ${cells}`);
    check(cells.slice(3, 8).join(",") === "2,2,0,1,0", `would re-run, confirmed, contradicted, withheld, missed: ${cells}`);
    check(cells[8] === "100 %", `precision: ${cells[8]}`);
    const said = await page.locator(".recommendation").innerText();
    check(said.startsWith("observe (too few re-runs yet): 2 would-be re-runs"), `recommendation: ${said}`);
    await page.getByText("Confirmed (2)").click();
    const links = page.locator("details[open] a");
    check(await links.count() === 2, "each confirmed case is listed");
    const href = await links.first().getAttribute("href");
    check(href.startsWith("#/sessions/"), `a case links to its session: ${href}`);
    await links.first().click();
    await page.waitForURL(/#\/sessions\//);
    await page.goBack();
    await page.getByRole("button", { name: "Switch to observe" }).click();
    await page.locator("tbody tr td .badge", { hasText: "observe" }).waitFor();
    check(true, "the switch shows the new mode");
    check(errors.length === 0, `no page error ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
