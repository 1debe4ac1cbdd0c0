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
 * Lines over days: points = [{x: epoch ms, median: ms|null, p90: ms|null}], y in minutes.
 * Days without a value leave a gap.
 */
export function lines(title, points) {
  const width = 640, height = 260, left = 48, right = 12, top = 12, bottom = 36;
  const plotW = width - left - right, plotH = height - top - bottom;
  const values = points.flatMap((p) => [p.median, p.p90]).filter((v) => v != null);
  const maxMin = niceCeil(Math.max(1, ...values.map((v) => v / 60000)));
  const xAt = (i) => left + (points.length <= 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const yAt = (ms) => top + plotH - (ms / 60000 / maxMin) * plotH;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  for (let k = 0; k <= 4; k++) {
    const v = (maxMin * k) / 4;
    const y = top + plotH - (k / 4) * plotH;
    svg.append(
      s("line", { class: k ? "grid" : "axis", x1: left, x2: width - right, y1: y, y2: y }),
      s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmtMinutes(v)),
    );
  }
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    if (i % every && i !== points.length - 1) return;
    const d = new Date(p.x);
    svg.append(s("text", { x: xAt(i), y: height - 14, "text-anchor": "middle" }, `${d.getUTCDate()}/${d.getUTCMonth() + 1}`));
  });
  svg.append(s("text", { x: 4, y: top + 2, transform: `rotate(-90 4 ${top + 2})`, "text-anchor": "end" }, "minutes"));
  for (const [key, cls] of [["p90", "line-p90"], ["median", "line-median"]]) {
    const d = path(points.map((p, i) => (p[key] == null ? null : [xAt(i), yAt(p[key])])));
    if (d) svg.append(s("path", { class: cls, d }));
  }
  points.forEach((p, i) => {
    if (p.median != null) svg.append(s("circle", { class: "dot", cx: xAt(i), cy: yAt(p.median), r: 3 }));
  });
  return svg;
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

function niceCeil(v) {
  const steps = [1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 480, 720, 1440];
  return steps.find((s) => s >= v) || Math.ceil(v / 1440) * 1440;
}

function fmtMinutes(v) {
  return `${Math.round(v * 10) / 10}`;
}
