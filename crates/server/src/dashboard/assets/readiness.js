// Readiness: per repository, how often pipeguard's decisions would have been right, the
// recommendation in words, and the cases (sessions) behind each number. Admins switch modes here.

import { api } from "./api.js";
import { announce, failure, fill, h, percent, scroller, when } from "./dom.js";

const COLS = ["Repository", "Platform", "Mode", "Would re-run", "Confirmed", "Contradicted",
  "Withheld", "Missed", "Precision", "Median to re-run", "Since"];

export function render(root, ctx) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fill(
    root,
    h("h1", { tabindex: "-1" }, "Readiness"),
    h("p", { class: "muted" }, "Each failure's decision, measured by the re-run after it: ",
      "a person's re-run (observe mode) or pipeguard's own (act mode). Confirmed: it would re-run and ",
      "the re-run went green; contradicted: it failed again; missed: withheld, but a plain re-run healed it; ",
      "fixed by a push: nobody's re-run measured it, the next green run on its branch was a new commit."),
    body,
  );
  root.querySelector("h1").focus();

  async function load() {
    try {
      const { repositories } = await api("/api/v1/readiness");
      if (!repositories.length) {
        fill(body, h("p", { class: "empty" }, "No decision recorded yet."));
        return;
      }
      const cases = await Promise.all(repositories.map((r) =>
        api(`/api/v1/readiness/cases?repository=${encodeURIComponent(r.repository)}`)));
      fill(body, summary(repositories), repositories.map((r, i) => details(r, cases[i], ctx, load)));
    } catch (e) {
      fill(body, failure(e));
    }
  }
  load();
  return () => {};
}

function summary(list) {
  const minutes = (m) => (m === null ? "—" : `${m} min`);
  return scroller(h("table", {},
    h("thead", {}, h("tr", {}, COLS.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((r) => h("tr", {},
      h("td", {}, r.repository),
      h("td", {}, r.platform),
      h("td", {}, h("span", { class: `badge ${r.mode === "act" ? "healed" : "observed"}` }, r.mode)),
      [r.would_retry, r.confirmed, r.contradicted, r.withheld, r.missed]
        .map((n) => h("td", { class: "num" }, n)),
      h("td", { class: "num" }, percent(r.precision)),
      h("td", { class: "num" }, minutes(r.median_minutes_to_rerun)),
      h("td", {}, when(r.since)))))));
}

const GROUPS = [
  ["Confirmed", (c) => c.outcome === "confirmed"],
  ["Contradicted", (c) => c.outcome === "contradicted"],
  ["Would re-run, not re-run since", (c) => c.would_retry && !c.outcome],
  ["Missed", (c) => c.outcome === "missed"],
  ["Withheld", (c) => !c.would_retry && !c.outcome],
  ["Fixed by a push", (c) => c.outcome === "fixed_by_push"],
];

function details(r, c, ctx, reload) {
  return h("section", {},
    h("h2", {}, r.repository),
    h("p", { class: "recommendation" }, c.recommendation),
    ctx.me.role === "admin" ? switcher(r, reload) : null,
    GROUPS.map(([title, test]) => {
      const list = c.cases.filter(test);
      if (!list.length) return null;
      return h("details", {},
        h("summary", {}, `${title} (${list.length})`),
        h("ul", {}, list.map((x) => h("li", {},
          h("a", { href: `#/sessions/${encodeURIComponent(x.session_id)}` }, when(x.failed_at)),
          ` (${x.mode} mode)`))));
    }));
}

function switcher(r, reload) {
  const to = r.mode === "act" ? "observe" : "act";
  const b = h("button", { type: "button", class: "secondary" }, `Switch to ${to}`);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await api("/api/v1/mode", { method: "POST", body: { repository: r.repository, mode: to } });
      announce(`${r.repository} now ${to}`);
      reload();
    } catch (e) {
      b.disabled = false;
      b.after(failure(e));
    }
  });
  return b;
}
