// Small DOM helpers. Text is always set as text (never parsed as HTML), so data from logs and
// webhooks cannot inject markup.

/** Creates an element: h("a", {href: "#/x", class: "y"}, "text", childNode…). */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an SVG element with attributes and children. */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says something to screen readers without moving focus. */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

export const STATUSES = [
  "received", "analyzing", "planned", "awaiting_approval", "executing", "verifying",
  "held", "healed", "failed", "escalated", "skipped", "observed",
];

export function label(name) {
  return name ? String(name).replaceAll("_", " ") : "—";
}

/** The run as its platform names it ("#1003, retry 1", "search-indexer #42"): the server's label. */
export function runName(s) {
  return s.run_label || `${s.workflow || "run"} #${s.run}`;
}

/** A table in a box that scrolls sideways when the table is wider than the screen. */
export function scroller(table) {
  return h("div", { class: "table-scroll" }, table);
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, label(status));
}

/** "5 s", "3 min", "2 h", "4 d". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** A <time> with the age ("3 min ago") and the exact time as its tooltip. */
export function ago(ms) {
  const t = h("time", { datetime: new Date(ms).toISOString(), title: when(ms), "data-ago": ms });
  t.textContent = `${duration(Date.now() - ms)} ago`;
  return t;
}

/** Refreshes every age on the page (called each few seconds). */
export function refreshAges(root = document) {
  for (const t of root.querySelectorAll("time[data-ago]")) {
    t.textContent = `${duration(Date.now() - Number(t.dataset.ago))} ago`;
  }
}

export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

export function percent(x) {
  return x === null || x === undefined ? "—" : `${Math.round(x * 100)} %`;
}

/** An error message in place of a view's content. */
export function failure(err) {
  return h("p", { class: "error", role: "alert" }, err?.message || String(err));
}

/** A button that runs `run` (an API call), says so, then reloads the view; an error is shown
 * beside it and the button can be pressed again. */
export function action(text, cls, label, run, reload) {
  const b = h("button", { type: "button", class: cls, "aria-label": label }, text);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await run();
      announce(`${label}: done`);
      reload();
    } catch (e) {
      b.disabled = false;
      b.after(failure(e));
    }
  });
  return b;
}
