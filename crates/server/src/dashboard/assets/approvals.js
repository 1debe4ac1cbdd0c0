// Plans waiting for people, and the approve / reject form (operators and admins only: the
// server decides too, this only spares a viewer buttons that would be refused).

import { api } from "./api.js";
import * as live from "./live.js";
import { announce, badge, failure, fill, h, label, runName, when } from "./dom.js";

export function render(root, ctx) {
  const list = h("div", { id: "approvals" }, h("p", { class: "muted" }, "Loading…"));
  const notice = h("p", { role: "status", class: "notice" });
  fill(root, h("h1", { tabindex: "-1" }, "Approvals"), notice, list);
  root.querySelector("h1").focus();

  let timer = null;
  async function load() {
    try {
      const { approvals } = await api("/api/v1/approvals");
      if (!approvals.length) {
        fill(list, h("p", { class: "empty" }, "No plan is waiting for approval."));
        return;
      }
      const decided = (text) => {
        notice.textContent = text;
        load();
      };
      fill(list, approvals.map((a) => item(a, ctx, decided)));
    } catch (e) {
      fill(list, failure(e));
    }
  }
  const unsubscribe = live.onSession(() => {
    clearTimeout(timer);
    timer = setTimeout(load, 300);
  });
  load();
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}

function item(a, ctx, reload) {
  const s = a.session;
  const plan = a.plan?.plan;
  const title = `${s.repository} · ${runName(s)}`;
  const id = `a-${s.id}`;
  return h(
    "section",
    { class: "card approval", "aria-labelledby": id, "data-id": s.id },
    h("h2", { id }, h("a", { href: `#/sessions/${encodeURIComponent(s.id)}` }, title), " ", badge(s.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Category"), h("dd", {}, label(s.category)),
      h("dt", {}, "Why it waits"), h("dd", {}, plan?.reason || s.reason || "—"),
      h("dt", {}, "Steps"), h("dd", {}, (plan?.steps || []).map((st) =>
        h("div", {}, label(st.kind), " — ", h("span", { class: `risk-${st.risk}` }, `${st.risk} risk`), `: ${st.reason}`))),
      h("dt", {}, "Approvals"), h("dd", {}, `${a.approvals.length} of ${a.required}`,
        a.approvals.length ? ` (${a.approvals.map((x) => x.approver).join(", ")})` : ""),
      h("dt", {}, "Expires"), h("dd", {}, when(a.expires_at), h("div", { class: "muted" }, "undecided by then, it is escalated"))),
    ctx.canDecide ? decisionForm(s.id, reload, a.plan) : h("p", { class: "muted" }, "An operator decides on this plan."),
  );
}

/** What an approved plan runs: "retry of deploy-production". */
export function planned(stored) {
  const p = stored?.plan;
  if (!p) return "the plan";
  const jobs = (stored.jobs || []).map((j) => j.name || j.id);
  return `${label(p.strategy)}${jobs.length ? ` of ${jobs.join(", ")}` : ""}`;
}

/**
 * A comment box with Approve and Reject buttons for session `id` and its stored plan; calls
 * done(outcome) after.
 */
export function decisionForm(id, done, plan) {
  const commentId = `comment-${id}`;
  const comment = h("textarea", { id: commentId, rows: 2, maxlength: 2000 });
  const result = h("p", { role: "status", class: "muted" });
  const decide = async (verb, buttons) => {
    buttons.forEach((b) => (b.disabled = true));
    try {
      const r = await api(`/api/v1/sessions/${encodeURIComponent(id)}/${verb}`, {
        method: "POST",
        body: { comment: comment.value.trim() || undefined },
      });
      const text = r.status === "awaiting_approval"
        ? `Your approval is recorded: ${r.approvals} of ${r.required}.`
        : verb === "approve"
          ? `Approved: ${planned(plan)} starts now.`
          : `Rejected: ${planned(plan)} will not run; the session is escalated to a person.`;
      announce(text);
      window.dispatchEvent(new CustomEvent("pipeguard:decided"));
      done(text);
    } catch (e) {
      fill(result, failure(e));
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  const approve = h("button", { type: "button", class: "approve" }, "Approve");
  const reject = h("button", { type: "button", class: "danger reject" }, "Reject");
  approve.addEventListener("click", () => decide("approve", [approve, reject]));
  reject.addEventListener("click", () => decide("reject", [approve, reject]));
  return h(
    "div",
    {},
    h("div", { class: "decide" },
      h("div", {}, h("label", { for: commentId }, "Comment (optional)"), comment),
      approve,
      reject),
    result,
  );
}
