// Charts as inline SVG: horizontal bars of a share, and lines over days. Each chart has a
// title for screen readers; the views also give the numbers as a table.

import { s } from "./dom.js";

/**
 * Horizontal bars, one per row: rows = [{label, value (0..1 or null), note}].
 * The bar shows value; the note (e.g. "3 of 4") is printed after it.
 */
export function bars(title, rows) {
  const rowH = 26, labelW = 170, barW = 300, noteW = 120, top = 8;
  const width = labelW + barW + noteW;
  const height = top * 2 + rows.length * rowH;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const w = r.value == null ? 0 : Math.max(1, r.value * barW);
    svg.append(
      s("text", { x: labelW - 8, y: y + 17, "text-anchor": "end" }, r.label),
      s("rect", { class: "bar-rest", x: labelW, y: y + 4, width: barW, height: rowH - 8, rx: 3 }),
      s("rect", { class: "bar-healed", x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 3 }),
      s("text", { x: labelW + barW + 8, y: y + 17 }, r.note),
    );
  });
  return svg;
}

/**
 * Lines over days: points = [{x: epoch ms, median: ms|null, p90: ms|null}]. The unit (seconds,
 * minutes, hours) follows the largest value; days without a value leave a gap.
 */
export function lines(title, points) {
  const width = 640, height = 260, left = 48, right = 16, top = 24, bottom = 30;
  const plotW = width - left - right, plotH = height - top - bottom;
  const values = points.flatMap((p) => [p.median, p.p90]).filter((v) => v != null);
  const unit = pickUnit(Math.max(0, ...values));
  const step = niceStep(Math.max(1, ...values.map((v) => v / unit.ms)) / 4);
  const max = step * 4;
  const xAt = (i) => left + (points.length <= 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const yAt = (ms) => top + plotH - (ms / unit.ms / max) * plotH;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title), s("text", { x: left, y: 12 }, unit.name));
  for (let k = 0; k <= 4; k++) {
    const y = top + plotH - (k / 4) * plotH;
    svg.append(
      s("line", { class: k ? "grid" : "axis", x1: left, x2: width - right, y1: y, y2: y }),
      s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, String(+(step * k).toPrecision(3))),
    );
  }
  // Day labels counted back from the last day, so the newest is always named.
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    if ((points.length - 1 - i) % every) return;
    const d = new Date(p.x);
    svg.append(s("text", { x: xAt(i), y: height - 10, "text-anchor": "middle" }, `${d.getUTCDate()}/${d.getUTCMonth() + 1}`));
  });
  for (const [key, cls] of [["p90", "line-p90"], ["median", "line-median"]]) {
    const d = path(points.map((p, i) => (p[key] == null ? null : [xAt(i), yAt(p[key])])));
    if (d) svg.append(s("path", { class: cls, d }));
  }
  // With few values there is no line to read: each dot says its value.
  const say = values.length <= 6;
  points.forEach((p, i) => {
    // The 90th percentile's value above its dot, the median's beside it, so equal ones both show.
    for (const [key, cls, r, dy] of [["p90", "dot-p90", 3, -8], ["median", "dot", 3.5, 4]]) {
      if (p[key] == null) continue;
      svg.append(s("circle", { class: cls, cx: xAt(i), cy: yAt(p[key]), r }));
      if (say) {
        const text = `${+(p[key] / unit.ms).toPrecision(3)} ${unit.short}`;
        svg.append(s("text", { class: "value", x: xAt(i) - 6, y: yAt(p[key]) + dy, "text-anchor": "end" }, text));
      }
    }
  });
  return svg;
}

function pickUnit(maxMs) {
  if (maxMs < 2 * 60_000) return { name: "seconds", short: "s", ms: 1000 };
  if (maxMs < 3 * 3_600_000) return { name: "minutes", short: "min", ms: 60_000 };
  return { name: "hours", short: "h", ms: 3_600_000 };
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at least v. */
function niceStep(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v);
}

/** An SVG path through the points, broken where a point is null. */
function path(pts) {
  let d = "", pen = false;
  for (const p of pts) {
    if (!p) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)} `;
    pen = true;
  }
  return d.trim();
}
