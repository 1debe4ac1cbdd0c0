// The dashboard's entry: login, the views behind #/… addresses, the live connection.

import { api, forget, setToken, token } from "./api.js";
import * as live from "./live.js";
import { refreshAges } from "./dom.js";
import * as sessions from "./sessions.js";
import * as session from "./session.js";
import * as approvals from "./approvals.js";
import * as flaky from "./flaky.js";
import * as insights from "./insights.js";
import * as readiness from "./readiness.js";
import * as runners from "./runners.js";

const $ = (id) => document.getElementById(id);

// Address → view. Each view's render(root, ctx, …args) returns a function that tears it down.
const ROUTES = [
  { path: /^\/sessions\/([^/?]+)$/, view: session, nav: "sessions" },
  { path: /^\/approvals$/, view: approvals, nav: "approvals" },
  { path: /^\/flaky$/, view: flaky, nav: "flaky" },
  { path: /^\/insights$/, view: insights, nav: "insights" },
  { path: /^\/readiness$/, view: readiness, nav: "readiness" },
  { path: /^\/runners$/, view: runners, nav: "runners" },
  { path: /^(?:\/sessions)?\/?$/, view: sessions, nav: "sessions" },
];

let ctx = null; // { me: {name, role}, canDecide }
let teardown = null;

function route() {
  if (!ctx) return;
  teardown?.();
  teardown = null;
  const hash = location.hash.replace(/^#/, "") || "/sessions";
  const [path, search] = hash.split("?");
  const match = ROUTES.map((r) => [r, r.path.exec(path)]).find(([, m]) => m);
  // Each view draws into its own element: a view left while it was still loading then fills
  // a detached element, never the page that replaced it.
  const root = document.createElement("div");
  $("view").replaceChildren(root);
  if (!match) {
    location.replace("#/sessions");
    return;
  }
  const [r, m] = match;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const params = new URLSearchParams(search || "");
  teardown = r.view.render(root, ctx, ...m.slice(1).map(decodeURIComponent), params);
}

async function enter() {
  const me = await api("/api/v1/whoami");
  ctx = { me, canDecide: me.role === "operator" || me.role === "admin" };
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("whoami").textContent = `${me.name} (${me.role})`;
  live.start();
  watchApprovals();
  route();
}

function showLogin(message = "") {
  ctx = null;
  teardown?.();
  teardown = null;
  live.stop();
  $("view").replaceChildren();
  $("incident-banner").hidden = true;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  setToken(t);
  try {
    await enter();
    $("token").value = "";
    $("main").focus();
  } catch (e) {
    forget();
    const why = e.status === 403 ? "This token may not read the dashboard." : e.message;
    showLogin(`Login failed: ${why}`);
  }
}

// The count of plans waiting, in the navigation; refreshed when a session changes.
async function refreshApprovalCount() {
  try {
    const { approvals: list } = await api("/api/v1/approvals");
    const el = $("approval-count");
    el.textContent = list.length;
    el.hidden = list.length === 0;
    el.setAttribute("aria-label", `${list.length} waiting`);
  } catch {
    /* shown by the views */
  }
}

// A banner while an incident is open: its failures are held, not retried into the outage.
async function refreshIncidents() {
  try {
    const { incidents } = await api("/api/v1/incidents?limit=20");
    const open = incidents.filter((i) => i.closed_at === null);
    const el = $("incident-banner");
    el.hidden = open.length === 0;
    el.textContent = open
      .map((i) => `Incident ${i.id}: ${i.cause} at ${i.target} across ${i.repositories} repositories — ` +
        `${i.sessions_held} session(s) held, ${i.canaries} canary re-run(s) so far.`)
      .join(" ");
  } catch {
    /* shown by the views */
  }
}

let approvalTimer = null;
let unwatchApprovals = null;
function watchApprovals() {
  refreshApprovalCount();
  refreshIncidents();
  unwatchApprovals?.();
  unwatchApprovals = live.onSession(() => {
    clearTimeout(approvalTimer);
    approvalTimer = setTimeout(() => {
      refreshApprovalCount();
      refreshIncidents();
    }, 300);
  });
}

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => {
    forget();
    showLogin("Logged out.");
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("pipeguard:decided", refreshApprovalCount);
  window.addEventListener("pipeguard:unauthorized", () => {
    forget();
    showLogin("The server refused the token (revoked or expired): log in again.");
  });
  live.onState((state) => {
    const el = $("live");
    el.className = `live ${state}`;
    el.textContent = state === "on" ? "live" : "reconnecting…";
  });
  setInterval(() => refreshAges(), 15_000);
  if (token()) enter().catch((e) => showLogin(e.status === 401 ? "" : e.message));
  else showLogin();
}

init();
