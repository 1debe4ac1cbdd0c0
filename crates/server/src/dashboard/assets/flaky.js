// Flaky tests, most costly first, with their weekly trend (those that got worse this week are
// marked), quarantine for operators; and the quarantine list with owners and end dates.

import { api, query } from "./api.js";
import { action, duration, failure, fill, h, percent, scroller, when } from "./dom.js";

export function render(root, ctx) {
  const tests = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const quarantined = h("div");
  fill(
    root,
    h("h1", { tabindex: "-1" }, "Flaky tests"),
    h("p", { class: "muted" }, "Tests that failed and then passed on the same commit. ",
      "A failure whose tests are all quarantined is retried at once instead of escalated."),
    tests,
    h("h2", {}, "Quarantine"),
    h("p", { class: "muted" }, "Un-quarantine a test once it is fixed: its failures are then diagnosed and, ",
      "when they need a person, escalated again."),
    quarantined,
  );
  root.querySelector("h1").focus();

  async function load() {
    try {
      const [{ flaky_tests: list }, { quarantine }] = await Promise.all([
        api("/api/v1/flaky-tests?limit=200"),
        api("/api/v1/quarantine"),
      ]);
      fill(tests, list.length ? flakyTable(list, ctx, load) : h("p", { class: "empty" }, "No flaky test seen yet."));
      fill(quarantined, quarantine.length ? quarantineTable(quarantine, ctx, load) : h("p", { class: "empty" }, "No test is quarantined."));
    } catch (e) {
      fill(tests, failure(e));
    }
  }
  load();
  return () => {};
}

function table(cols, rows) {
  return scroller(h("table", {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

function flakyTable(list, ctx, reload) {
  const cols = ["Test", "Repository", "Runs", "Flaky", "Failed", "Flakiness", "Attempts failed",
    "This week", "Time lost", "Last seen", ""];
  return table(cols, list.map((t) => h("tr", t.trend?.worse_this_week ? { class: "worse" } : {},
    h("td", {}, h("code", {}, t.test)),
    h("td", {}, t.repository),
    h("td", { class: "num" }, t.runs),
    h("td", { class: "num" }, t.flaky_failures),
    h("td", { class: "num" }, t.failures),
    h("td", { class: "num" }, percent(t.flakiness_rate)),
    h("td", { class: "num", title: `${t.failed_attempts} of ${t.runs_including_retries} attempts, re-runs included` },
      percent(t.attempt_failure_rate)),
    h("td", {}, trend(t.trend)),
    h("td", { class: "num" }, duration(t.time_lost_seconds * 1000)),
    h("td", {}, when(t.last_seen)),
    h("td", {}, t.quarantined
      ? (ctx.canDecide ? unquarantine(t, reload) : "quarantined")
      : (ctx.canDecide ? quarantine(t, ctx, reload) : "")))));
}

// Failures this week against the week before; a test that failed more often is marked.
function trend(t) {
  if (!t) return "—";
  const text = `${t.failures_this_week} (last week ${t.failures_last_week})`;
  return t.worse_this_week
    ? h("span", {}, h("span", { class: "badge worse" }, "worse this week"), " ", text)
    : text;
}

function quarantineTable(list, ctx, reload) {
  const cols = ["Test", "Repository", "Reason", "Owner", "Since", "Until", "Ticket", ""];
  return table(cols, list.map((q) => h("tr", {},
    h("td", {}, h("code", {}, q.test)),
    h("td", {}, q.repository),
    h("td", {}, q.reason || "—"),
    h("td", {}, q.owner || "—"),
    h("td", {}, when(q.added_at)),
    h("td", {}, q.expires_at ? when(q.expires_at) : "—"),
    h("td", {}, q.ticket_url ? h("a", { href: q.ticket_url }, "ticket")
      : (q.ticket_error ? h("span", { title: q.ticket_error }, "not filed yet") : "—")),
    h("td", {}, ctx.canDecide ? unquarantine(q, reload) : ""))));
}

function quarantine(t, ctx, reload) {
  return action("Quarantine", "secondary", `Quarantine ${t.test} in ${t.repository}`, () =>
    api("/api/v1/quarantine", {
      method: "POST",
      body: { repository: t.repository, test: t.test, reason: `flaky; quarantined by ${ctx.me.name} from the dashboard` },
    }), reload);
}

function unquarantine(t, reload) {
  return action("Un-quarantine", "secondary", `Un-quarantine ${t.test} in ${t.repository}`, () =>
    api(`/api/v1/quarantine${query({ repository: t.repository, test: t.test })}`, { method: "DELETE" }), reload);
}
