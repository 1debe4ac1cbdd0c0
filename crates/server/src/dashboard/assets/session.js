// One session: where it is on its way, the evidence, the plan, the approval decision, the
// platform calls and commands with their output, the model's explanation, the full timeline.

import { api } from "./api.js";
import * as live from "./live.js";
import { announce, badge, duration, failure, fill, h, label, percent, runName, scroller, when } from "./dom.js";
import { decisionForm } from "./approvals.js";

export function render(root, ctx, id) {
  let shown = null;
  let notice = ""; // the outcome of this person's decision, kept across reloads
  fill(root, h("p", { class: "muted" }, "Loading…"));

  async function load() {
    try {
      const s = await api(`/api/v1/sessions/${encodeURIComponent(id)}`);
      const first = !shown;
      if (!first && s.status !== shown.status) announce(`Status is now ${label(s.status)}`);
      shown = s;
      const decided = (text) => {
        notice = text;
        load();
      };
      fill(root, page(s, ctx, decided, notice));
      if (first) root.querySelector("h1").focus();
    } catch (e) {
      fill(root, h("h1", { tabindex: "-1" }, "Session"), failure(e));
    }
  }

  const unsubscribe = live.onSession((s) => {
    if (s.id === id && shown && s.updated_at !== shown.updated_at) load();
  });
  load();
  return unsubscribe;
}

function page(s, ctx, decided, notice) {
  return [
    h("p", {}, h("a", { href: "#/sessions" }, "← All sessions")),
    h("h1", { tabindex: "-1" }, `${s.repository} · ${runName(s)} `, badge(s.status)),
    notice ? h("p", { class: "notice" }, notice) : null,
    h("ol", { class: "steps", "aria-label": "Progress" }, stages(s).map(stage)),
    s.status === "awaiting_approval" ? approvalCard(s, ctx, decided) : null,
    h("div", { class: "cols" }, factsCard(s), planCard(s.plan)),
    evidenceCard(s),
    explanationCard(s),
    actionsCard(s),
    timelineCard(s.timeline || []),
  ];
}

const CLOSED = ["healed", "failed", "escalated", "skipped"];

// received → diagnosed → planned → approved → executed → outcome, from the timeline.
function stages(s) {
  const log = s.timeline || [];
  const at = (pred) => log.find(pred)?.at;
  const terminal = CLOSED.includes(s.status);
  const decided = at((e) => !["received", "analyzing"].includes(e.status));
  const needsApproval = s.plan?.plan?.decision === "await_approval";
  const rejected = log.find((e) => e.message.startsWith("rejected by"));
  const approved = log.find((e, i) => e.status === "planned" && log.slice(0, i).some((p) => p.status === "awaiting_approval"));
  const executed = at((e) => e.status === "executing");
  const approval = !needsApproval
    ? { state: "skipped", note: "not needed" }
    : rejected
      ? { state: "bad", at: rejected.at, note: rejected.message }
      : approved
        ? { state: "done", at: approved.at, note: approved.message }
        : terminal
          ? { state: "skipped", note: `not decided: ${label(s.status)}` }
          : { state: s.status === "awaiting_approval" ? "current" : "todo", note: "waiting" };
  return [
    { name: "Received", state: "done", at: s.created_at },
    { name: "Diagnosed", state: s.category ? "done" : "current", at: decided, note: label(s.category) },
    { name: "Planned", state: s.plan ? "done" : "todo", at: decided, note: label(s.plan?.plan?.decision) },
    { name: "Approved", ...approval },
    executed
      ? { name: "Executed", state: "done", at: executed }
      : { name: "Executed", state: terminal ? "skipped" : "todo", note: terminal ? `not executed: ${label(s.status)}` : "" },
    {
      name: "Outcome",
      state: terminal ? (s.status === "healed" ? "done" : "bad") : "todo",
      at: terminal ? log.filter((e) => e.status === s.status).at(-1)?.at : undefined,
      note: terminal ? label(s.status) : "",
    },
  ];
}

function stage(st) {
  const state = { done: "done", bad: "bad", current: "current", skipped: "skipped" }[st.state] || "";
  const spoken = { done: "done", bad: "ended badly", current: "now", skipped: "skipped", todo: "not yet" }[st.state];
  return h(
    "li",
    { class: state },
    st.name,
    h("span", { class: "visually-hidden" }, `: ${spoken}`),
    st.note ? h("small", {}, st.note) : null,
    st.at ? h("small", {}, when(st.at)) : null,
  );
}

function card(title, ...body) {
  const id = `h-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), body);
}

function factsCard(s) {
  const d = s.diagnosis || {};
  const facts = [
    ["Platform", s.platform],
    ["Run", s.url ? h("a", { href: s.url, rel: "noreferrer" }, runName(s)) : runName(s)],
    ["Commit", s.head_sha ? h("code", {}, s.head_sha.slice(0, 12)) : "—"],
    ["Category", `${label(s.category)}${s.confidence != null ? ` (confidence ${percent(s.confidence)})` : ""}`],
    ["Decided by", d.analyzer || "—"],
    ["Summary", d.summary || (s.purged_at ? purged(s, "Diagnosis") : "—")],
    ["Failing tests", d.failing_tests?.length ? d.failing_tests.join(", ") : "—"],
    ["Heal attempts", s.heal_attempts],
    ["Reason", s.reason || "—"],
    ["Received", when(s.created_at)],
    ["Time to green", duration(s.time_to_green_ms)],
    ["Human verdict", s.verdict ? `${label(s.verdict.category)}${s.verdict.note ? `: ${s.verdict.note}` : ""}` : "—"],
  ];
  return card("Diagnosis", h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
}

function planCard(stored) {
  if (!stored) return card("Plan", h("p", { class: "empty" }, "No plan yet."));
  const p = stored.plan;
  const steps = scroller(h(
    "table",
    {},
    h("caption", {}, `${p.steps.length} step${p.steps.length === 1 ? "" : "s"}`),
    h("thead", {}, h("tr", {}, ["#", "Step", "Risk", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      p.steps.map((st, i) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, i + 1),
          h("td", {}, label(st.kind), st.strategy !== st.kind ? h("div", { class: "muted" }, `using ${label(st.strategy)}`) : null,
            st.delay_seconds ? h("div", { class: "muted" }, `after ${duration(st.delay_seconds * 1000)}`) : null),
          h("td", { class: `risk-${st.risk}` }, st.risk),
          h("td", {}, st.reason),
        ),
      ),
    ),
  ));
  const jobs = (stored.jobs || []).map((j) => j.name || j.id);
  return card(
    "Plan",
    h("dl", { class: "facts" },
      h("dt", {}, "Decision"), h("dd", {}, label(p.decision)),
      h("dt", {}, "Strategy"), h("dd", {}, label(p.strategy)),
      h("dt", {}, "Why"), h("dd", {}, p.reason),
      h("dt", {}, "Jobs"), h("dd", {}, jobs.length ? jobs.join(", ") : "—")),
    steps,
  );
}

function evidenceCard(s) {
  const lines = s.diagnosis?.evidence || s.evidence || [];
  if (!lines.length) {
    const why = s.purged_at ? `${purged(s, "Evidence")}.` : "No evidence lines: the diagnosis rests on none.";
    return card("Evidence", h("p", { class: "empty", id: "evidence-empty" }, why));
  }
  return card(
    "Evidence",
    h("p", { class: "muted" }, "The log lines that explain the failure, with their line numbers."),
    greenRuns(s.diagnosis?.baseline || s.baseline),
    h("ol", { class: "evidence mono", id: "evidence" },
      lines.map((e) => h("li", {}, h("span", { class: "ln" }, e.line),
        h("span", { class: "text" }, e.new === true && newMark(), e.text)))),
  );
}

/** Which green runs of the job the evidence was read against. */
function greenRuns(b) {
  if (!b?.green_runs?.length) return null;
  return h("p", { class: "muted", id: "green-runs" },
    `Compared with green runs ${b.green_runs.join(", ")}: lines marked new are in none of them.`);
}

/** A line no green run of the job printed. */
function newMark() {
  return h("span", { class: "new", title: "None of the job's green runs printed this line" }, "new");
}

/** Retention removed the log, the evidence and the diagnosis; the rest is kept. */
function purged(s, what) {
  return `${what} purged on ${when(s.purged_at)} by retention`;
}

// Present when a model explained the failure (stored with the diagnosis).
function explanationCard(s) {
  const x = s.explanation || s.diagnosis?.explanation;
  if (!x) return null;
  const a = x.answer;
  return card(
    "The model's explanation",
    h("p", { class: "muted" }, `${x.source || "model"}: ${x.reason || ""}`),
    a ? h("p", {}, a.root_cause) : null,
    (x.commands || []).length
      ? h("ul", {}, x.commands.map((c) => h("li", {}, h("code", {}, c.command), " ",
          h("span", { class: `risk-${c.risk}` }, c.risk), c.runnable ? "" : " (not runnable)", h("div", { class: "muted" }, c.reason))))
      : null,
  );
}

// What a closed session that called nothing did instead.
const NO_CALL = {
  escalated: "None: escalated to a person before anything ran.",
  skipped: "None: skipped, there was nothing to heal.",
  failed: "None: the session failed before anything ran.",
  healed: "None: healed without a call from pipeguard.",
};

function actionsCard(s) {
  const actions = s.actions || [];
  if (!actions.length) {
    return card("Platform calls and commands", h("p", { class: "empty", id: "actions-empty" }, NO_CALL[s.status] || "None yet."));
  }
  return card(
    "Platform calls and commands",
    scroller(h("table", {},
      h("thead", {}, h("tr", {}, ["Attempt", "What", "Target", "Status", "When"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, actions.map((a) => [
        h("tr", {},
          h("td", {}, a.attempt),
          h("td", {}, label(a.kind)),
          h("td", {}, h("code", {}, a.target)),
          h("td", {}, a.status),
          h("td", {}, when(a.created_at))),
        a.detail ? h("tr", {}, h("td", { colspan: 5 }, h("pre", { class: "output mono" }, a.detail))) : null,
      ])))),
  );
}

function timelineCard(log) {
  return card(
    "Timeline",
    h("ol", { class: "log" }, log.map((e) =>
      h("li", {}, h("time", { datetime: new Date(e.at).toISOString() }, when(e.at)), badge(e.status), " ", e.message))),
  );
}

function approvalCard(s, ctx, decided) {
  if (!ctx.canDecide) {
    return card("Approval", h("p", {}, "This plan waits for an operator's approval. Your role (",
      ctx.me.role, ") may read it but not decide."));
  }
  return card("Approval", h("p", {}, "This plan waits for a person: approve to run it, reject to escalate."),
    decisionForm(s.id, decided, s.plan));
}
