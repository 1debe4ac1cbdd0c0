// The sessions list: filters the server applies (repository, status, category, platform), a
// search over the loaded rows, and rows that appear and change live.

import { api, query } from "./api.js";
import * as live from "./live.js";
import { STATUSES, ago, announce, badge, failure, fill, h, label, runName, scroller } from "./dom.js";

const FILTERS = ["status", "category", "platform", "repository"];
const PAGE = 100;

export function render(root, ctx, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  const rows = new Map(); // id → session, newest first
  const body = h("tbody");
  const caption = h("caption", { "aria-live": "polite" }, "Loading…");
  const search = h("input", { id: "search", type: "search", placeholder: "repository, workflow, reason…" });
  const form = filterForm(filters, search, () => {
    history.replaceState(null, "", `#/sessions${query(filters)}`);
    load();
  });
  const redraw = () => drawRows(body, caption, [...rows.values()], search.value, filters);
  search.addEventListener("input", redraw);

  fill(
    root,
    h("h1", { tabindex: "-1" }, "Sessions"),
    form,
    scroller(h("table", { id: "sessions" }, caption, head(), body)),
  );
  root.querySelector("h1").focus();

  async function load() {
    try {
      const { sessions } = await api(`/api/v1/sessions${query({ ...filters, limit: PAGE })}`);
      rows.clear();
      for (const s of sessions) rows.set(s.id, s);
      redraw();
      const repos = [...new Set(sessions.map((s) => s.repository))].sort();
      fill(form.querySelector("#repositories"), repos.map((r) => h("option", { value: r })));
      performance.mark("pipeguard:sessions-rendered");
    } catch (e) {
      fill(caption, failure(e));
    }
  }

  const unsubscribe = live.onSession((s) => {
    if (!matches(s, filters)) {
      if (rows.delete(s.id)) redraw();
      return;
    }
    const isNew = !rows.has(s.id);
    rows.set(s.id, s);
    // Newest first, as the server lists them.
    const sorted = [...rows.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1));
    rows.clear();
    for (const x of sorted.slice(0, PAGE)) rows.set(x.id, x);
    redraw();
    const tr = body.querySelector(`tr[data-id="${CSS.escape(s.id)}"]`);
    tr?.classList.add("new");
    if (isNew) announce(`New session: ${s.repository}, ${label(s.status)}`);
  });

  load();
  fillChoices(form);
  return unsubscribe;
}

function matches(s, f) {
  return FILTERS.every((k) => !f[k] || s[k] === f[k]);
}

function head() {
  const cols = ["Status", "Repository", "Run", "Category", "Platform", "Age"];
  return h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c))));
}

function drawRows(body, caption, sessions, term, filters) {
  const t = term.trim().toLowerCase();
  const shown = t ? sessions.filter((s) => haystack(s).includes(t)) : sessions;
  fill(body, shown.map(row));
  const scope = FILTERS.filter((k) => filters[k]).map((k) => `${k} ${label(filters[k])}`);
  caption.textContent =
    `${shown.length} session${shown.length === 1 ? "" : "s"}` +
    (scope.length ? ` (${scope.join(", ")})` : "") +
    (t ? ` matching “${term.trim()}”` : "") +
    ", updated live";
  if (!shown.length) fill(body, h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No sessions.")));
}

function haystack(s) {
  return [s.id, s.repository, s.workflow, s.run, s.run_label, s.category, s.status, s.platform, s.reason]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
}

function row(s) {
  const href = `#/sessions/${encodeURIComponent(s.id)}`;
  return h(
    "tr",
    { "data-id": s.id, "data-status": s.status, onclick: (e) => e.target.tagName !== "A" && (location.hash = href) },
    h("td", {}, badge(s.status)),
    h("td", {}, s.repository),
    h("td", {}, h("a", { href }, runName(s))),
    h("td", {}, label(s.category)),
    h("td", {}, s.platform),
    h("td", {}, ago(s.created_at)),
  );
}

function filterForm(filters, search, onChange) {
  const select = (name, text, options) => {
    const el = h(
      "select",
      { id: `f-${name}`, name },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o }, label(o))),
    );
    el.value = filters[name];
    el.addEventListener("change", () => {
      filters[name] = el.value;
      onChange();
    });
    return h("div", {}, h("label", { for: el.id }, text), el);
  };
  const repo = h("input", { id: "f-repository", name: "repository", list: "repositories", value: filters.repository, placeholder: "owner/name" });
  repo.addEventListener("change", () => {
    filters.repository = repo.value.trim();
    onChange();
  });
  return h(
    "form",
    { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
    select("status", "Status", STATUSES),
    select("category", "Category", filters.category ? [filters.category] : []),
    select("platform", "Platform", filters.platform ? [filters.platform] : []),
    h("div", {}, h("label", { for: repo.id }, "Repository"), repo, h("datalist", { id: "repositories" })),
    h("div", {}, h("label", { for: "search" }, "Search"), search),
  );
}

/** Category and platform choices: those the server has seen. */
async function fillChoices(form) {
  try {
    const stats = await api("/api/v1/stats");
    addOptions(form.querySelector("#f-category"), stats.by_category.map((c) => c.category));
    addOptions(form.querySelector("#f-platform"), stats.by_platform.map((p) => p.platform));
  } catch {
    /* the filters still work by typing */
  }
}

function addOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of values) if (!have.has(v)) select.append(h("option", { value: v }, label(v)));
}
