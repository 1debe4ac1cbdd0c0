// Insights: healing success by category, and time to green over the last days.

import { api } from "./api.js";
import { bars, lines } from "./charts.js";
import { duration, failure, fill, h, label, percent, scroller } from "./dom.js";

const DAYS = 30;

export function render(root) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fill(root, h("h1", { tabindex: "-1" }, "Insights"), body);
  root.querySelector("h1").focus();
  Promise.all([api("/api/v1/stats"), api(`/api/v1/stats/daily?days=${DAYS}`)])
    .then(([stats, daily]) => fill(body, tiles(stats), h("div", { class: "charts" }, byCategory(stats), overTime(daily.days))))
    .catch((e) => fill(body, failure(e)));
  return () => {};
}

function tiles(st) {
  const t = st.total;
  const tile = (name, value) => h("div", { class: "tile" }, h("strong", {}, value), name);
  return h("div", { class: "tiles" },
    tile("sessions", t.sessions),
    tile("healed", t.healed),
    tile("healing success", percent(t.healing_success_rate)),
    tile("escalated", t.escalated),
    tile("median time to green", duration(st.time_to_green_ms.median)),
    tile("p90 time to green", duration(st.time_to_green_ms.p90)));
}

function section(title, chart, legend, tableHead, tableRows) {
  const id = `c-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "card chart", "aria-labelledby": id },
    h("h2", { id }, title),
    chart,
    legend,
    h("details", {}, h("summary", {}, "Show the numbers"),
      scroller(h("table", {}, h("thead", {}, h("tr", {}, tableHead.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, tableRows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))))));
}

function byCategory(st) {
  // Healed out of those pipeguard acted on (healed + failed); escalations are hand-offs.
  const rows = st.by_category
    .filter((c) => c.healed + c.failed + c.escalated > 0)
    .sort((a, b) => (b.healing_success_rate ?? -1) - (a.healing_success_rate ?? -1));
  if (!rows.length) return section("Healing success by category", h("p", { class: "empty" }, "No finished session yet."), null, [], []);
  const chart = bars("Healing success by category", rows.map((c) => ({
    label: label(c.category),
    value: c.healing_success_rate,
    note: c.healed + c.failed ? `${c.healed} of ${c.healed + c.failed}` : `${c.escalated} escalated`,
  })));
  return section("Healing success by category", chart,
    h("ul", { class: "legend" }, h("li", {}, h("span", { class: "key healed" }), "healed, of the failures pipeguard acted on")),
    ["Category", "Sessions", "Healed", "Failed", "Escalated", "Success"],
    rows.map((c) => [label(c.category), c.sessions, c.healed, c.failed, c.escalated, percent(c.healing_success_rate)]));
}

// The narrowest axis of the time chart, in days: one day's dot alone reads as nothing.
const MIN_DAYS = 7;

/** The days from the first with a finished session on, at least MIN_DAYS of them. */
function sinceFirstData(days) {
  const first = days.findIndex((d) => d.finished > 0);
  if (first < 0) return [];
  return days.slice(Math.max(0, Math.min(first, days.length - MIN_DAYS)));
}

function overTime(all) {
  const days = sinceFirstData(all);
  if (!days.length) {
    return section("Time to green", h("p", { class: "empty" }, "No finished session yet."), null, [], []);
  }
  const points = days.map((d) => ({ x: d.day_ms, median: d.time_to_green_median_ms, p90: d.time_to_green_p90_ms }));
  const title = `Time to green, last ${days.length} days`;
  return section(title, lines(title, points),
    h("ul", { class: "legend" },
      h("li", {}, h("span", { class: "key median" }), "median"),
      h("li", {}, h("span", { class: "key p90" }), "90th percentile")),
    ["Day (UTC)", "Finished", "Healed", "Escalated", "Median", "p90"],
    days.filter((d) => d.finished).map((d) => [new Date(d.day_ms).toISOString().slice(0, 10), d.finished, d.healed,
      d.escalated, duration(d.time_to_green_median_ms), duration(d.time_to_green_p90_ms)]));
}
