// Runners, agents and nodes: each one's jobs and failures over the window, suspect ones first
// with why; operators take a runner out through its platform's API or release it.

import { api } from "./api.js";
import { action, failure, fill, h, scroller } from "./dom.js";

const COLS = ["Runner", "Platform", "Jobs", "Failures", "Unrelated failures", "State", "Why", ""];

export function render(root, ctx) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fill(
    root,
    h("h1", { tabindex: "-1" }, "Runners"),
    h("p", { class: "muted" }, "Jobs per runner over the last 24 hours (since its release, if later). ",
      "Failures of one repository with one cause count once as unrelated failures; a runner whose ",
      "unrelated failures are far above its pool's is suspect until an operator releases it. ",
      "Releasing does not put it back into service on the platform."),
    body,
  );
  root.querySelector("h1").focus();

  async function load() {
    try {
      const { runners } = await api("/api/v1/runners");
      fill(body, runners.length
        ? runnerTable(ordered(runners), ctx, load)
        : h("p", { class: "empty" }, "No runner seen yet: deliveries that name the runner a job ran on are counted."));
    } catch (e) {
      fill(body, failure(e));
    }
  }
  load();
  return () => {};
}

// Suspect first, then taken out, then by unrelated failures and failures; ties by name.
function ordered(list) {
  const rank = (r) => [r.suspect ? 0 : 1, r.quarantined ? 0 : 1, -r.unrelated_failures, -r.failures];
  return [...list].sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    const i = x.findIndex((v, k) => v !== y[k]);
    return i >= 0 ? x[i] - y[i] : `${a.platform}/${a.name}`.localeCompare(`${b.platform}/${b.name}`);
  });
}

function state(r) {
  if (r.quarantined) return h("span", { class: "badge failed" }, "taken out");
  if (r.suspect) return h("span", { class: "badge worse" }, "suspect");
  return h("span", { class: "badge healed" }, "ok");
}

function runnerTable(list, ctx, reload) {
  return scroller(h("table", {},
    h("thead", {}, h("tr", {}, COLS.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((r) => h("tr", {
      class: r.suspect || r.quarantined ? "worse" : undefined,
      "data-runner": `${r.platform}/${r.name}`,
    },
      h("td", {}, h("code", {}, r.name)),
      h("td", {}, r.platform),
      h("td", { class: "num" }, r.jobs),
      h("td", { class: "num" }, r.failures),
      h("td", { class: "num" }, r.unrelated_failures),
      h("td", {}, state(r)),
      h("td", { class: "why" }, r.detail || "—"),
      h("td", {}, ctx.canDecide ? actions(r, reload) : ""))))));
}

// "Take out" while it is in service and its platform's API can, "Release" while it is suspect
// or taken out.
function actions(r, reload) {
  const path = `/api/v1/runners/${encodeURIComponent(r.platform)}/${encodeURIComponent(r.name)}`;
  const post = (to) => () => api(`${path}/${to}`, { method: "POST", body: {} });
  return [
    !r.quarantined && !r.can_take_out && r.suspect &&
      h("span", { class: "muted", title: `${r.platform}'s API cannot take it out here` }, "take out by hand"),
    !r.quarantined && r.can_take_out && action("Take out", "secondary", `Take out ${r.name} (${r.platform})`, post("quarantine"), reload),
    " ",
    (r.suspect || r.quarantined) && action("Release", "secondary", `Release ${r.name} (${r.platform})`, post("release"), reload),
  ];
}
