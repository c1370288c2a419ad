// The "over time" chart: kept in the page from successive polls, bounded, redrawn with uPlot.
import uPlot from "../vendor/uPlot.esm.js";
import { h, typeLabel } from "./dom.js";

const TYPE_COLORS = ["#6366f1", "#f59e0b", "#10b981", "#ef4444", "#06b6d4", "#a855f7", "#84cc16", "#ec4899"];
const MAX_POINTS = 900;
const MIN_SPACING_S = 1;
const WINDOW_MIN_S = 60;

/** Series colour of the i-th request type. */
export function typeColor(index) {
  return TYPE_COLORS[index % TYPE_COLORS.length];
}

// At least a minute of axis, so the first points do not stretch the axis into years.
function timeWindow(_u, min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    const now = Date.now() / 1000;
    return [now - WINDOW_MIN_S, now];
  }
  return max - min < WINDOW_MIN_S ? [max - WINDOW_MIN_S, max + 1] : [min, max];
}

export class HistoryChart {
  /** container: element to draw into. */
  constructor(container) {
    this.container = container;
    this.plot = null;
    this.types = [];
    this.data = [];
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
  }

  /** Forget every point (router switch, disconnect). */
  reset() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.types = [];
    this.data = [];
    this.container.replaceChildren();
    this.container.dataset.points = "0";
  }

  /**
   * Add one point: `atMs` wall-clock milliseconds, `shares` request type → pick share of the
   * costliest model, `savingsRatio` in [0, 1] (null before any spend). At most one point a second.
   */
  push(types, atMs, shares, savingsRatio) {
    if (!this.plot || types.join() !== this.types.join()) this.build(types);
    const t = atMs / 1000;
    const xs = this.data[0];
    if (xs.length && t - xs[xs.length - 1] < MIN_SPACING_S) return;
    xs.push(t);
    types.forEach((type, i) => this.data[i + 1].push(shares[type] ?? null));
    this.data[types.length + 1].push(savingsRatio);
    if (xs.length > MAX_POINTS) for (const column of this.data) column.splice(0, column.length - MAX_POINTS);
    this.plot.setData(this.data);
    this.container.dataset.points = String(xs.length);
  }

  /** Number of points kept. */
  get length() {
    return this.data.length ? this.data[0].length : 0;
  }

  build(types) {
    this.reset();
    this.types = [...types];
    this.data = [[], ...types.map(() => []), []];
    const style = getComputedStyle(document.documentElement);
    const ink = style.getPropertyValue("--muted").trim() || "#64748b";
    const grid = style.getPropertyValue("--grid").trim() || "rgba(100,116,139,0.15)";
    const percent = (_u, value) => (value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`);
    const opts = {
      width: Math.max(280, this.container.clientWidth),
      height: 240,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: timeWindow }, y: { range: [0, 1] } },
      axes: [
        { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 48, values: (_u, vals) => vals.map((v) => `${Math.round(v * 100)}%`) },
      ],
      series: [
        { value: "{HH}:{mm}:{ss}" },
        ...types.map((type, i) => ({ label: typeLabel(type), stroke: typeColor(i), width: 1.6, value: percent, spanGaps: true })),
        { label: "savings ratio", stroke: ink, width: 2.2, dash: [7, 5], value: percent, spanGaps: true },
      ],
      legend: { live: true },
    };
    this.container.append(h("div", { className: "history-plot" }));
    this.plot = new uPlot(opts, this.data, this.container.firstChild);
  }

  fit() {
    if (this.plot) this.plot.setSize({ width: Math.max(280, this.container.clientWidth), height: 240 });
  }
}
