// The "over time" chart: the history points the server keeps (GET /v1/state `history`), drawn
// with uPlot. The legend is the page's own list: it shows the newest values (or the hovered
// point's) as text, so it is never blank and screen readers read it.
import uPlot from "../vendor/uPlot.esm.js";
import { h, typeLabel } from "./dom.js";

const TYPE_COLORS = ["#6366f1", "#f59e0b", "#10b981", "#ef4444", "#06b6d4", "#a855f7", "#84cc16", "#ec4899"];
const MAX_POINTS = 900;
const WINDOW_MIN_S = 60;
const HEIGHT = 240;
/** Pixels between x ticks at least: a tick label ("12:34" or "12:34:56") fits with room to spare. */
const TICK_SPACE_PX = 72;

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

const pad = (n) => String(n).padStart(2, "0");

/** Tick labels: local "HH:MM", with seconds only when the ticks are less than a minute apart. */
export function timeLabels(splits) {
  const step = splits.length > 1 ? splits[1] - splits[0] : 60;
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return step < 60 ? `${hm}:${pad(d.getSeconds())}` : hm;
  });
}

const percent = (value) => (value === null || value === undefined || !Number.isFinite(value) ? "no data" : `${Math.round(value * 100)}%`);

export class HistoryChart {
  /** container: element to draw into. */
  constructor(container) {
    this.container = container;
    this.plot = null;
    this.types = [];
    this.data = [];
    this.legend = null;
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
  }

  /** Forget every point (router switch, disconnect). */
  reset() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.legend = null;
    this.types = [];
    this.data = [];
    this.container.replaceChildren();
    this.container.dataset.points = "0";
  }

  /** Time (epoch seconds) of the newest point, or null. */
  get newest() {
    const xs = this.data[0];
    return xs && xs.length ? xs[xs.length - 1] : null;
  }

  /** Number of points kept. */
  get length() {
    return this.data.length ? this.data[0].length : 0;
  }

  /**
   * Add the server's points newer than the newest kept: each {t (epoch seconds), shares
   * (request type → pick share of its costliest model), savings_ratio (null before any spend)}.
   */
  add(types, points) {
    if (!this.plot || types.join() !== this.types.join()) this.build(types);
    const xs = this.data[0];
    let added = 0;
    for (const point of [...points].sort((a, b) => a.t - b.t)) {
      if (xs.length && point.t <= xs[xs.length - 1]) continue;
      xs.push(point.t);
      types.forEach((type, i) => this.data[i + 1].push(point.shares?.[type] ?? null));
      this.data[types.length + 1].push(point.savings_ratio ?? null);
      added += 1;
    }
    if (xs.length > MAX_POINTS) for (const column of this.data) column.splice(0, column.length - MAX_POINTS);
    if (added) this.plot.setData(this.data);
    this.container.dataset.points = String(xs.length);
    this.showValues(null);
  }

  /** Legend values of point `idx` (null: the newest value of each series). */
  showValues(idx) {
    if (!this.legend) return;
    const n = this.length;
    this.legend.forEach((item, s) => {
      const column = this.data[s + 1];
      let value = null;
      if (idx !== null && idx !== undefined) value = column[idx];
      else for (let i = n - 1; i >= 0 && value === null; i -= 1) value = column[i];
      item.value.textContent = percent(value);
    });
  }

  build(types) {
    this.reset();
    this.types = [...types];
    this.data = [[], ...types.map(() => []), []];
    const style = getComputedStyle(document.documentElement);
    const ink = style.getPropertyValue("--muted").trim() || "#64748b";
    const grid = style.getPropertyValue("--grid").trim() || "rgba(100,116,139,0.15)";
    const series = [
      ...types.map((type, i) => ({ label: typeLabel(type), stroke: typeColor(i), width: 1.6, spanGaps: true })),
      { label: "savings ratio", stroke: ink, width: 2.2, dash: [7, 5], spanGaps: true },
    ];
    const opts = {
      width: Math.max(280, this.container.clientWidth),
      height: HEIGHT,
      // Room on the right for the last tick's label, centred on the plot's edge.
      padding: [12, 32, 0, 0],
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: timeWindow }, y: { range: [0, 1] } },
      axes: [
        { stroke: ink, space: TICK_SPACE_PX, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: (_u, splits) => timeLabels(splits) },
        { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 48, values: (_u, vals) => vals.map((v) => `${Math.round(v * 100)}%`) },
      ],
      series: [{}, ...series],
      legend: { show: false },
      hooks: {
        setCursor: [(u) => this.showValues(u.cursor.idx ?? null)],
        // The x tick labels as drawn (text and centre in CSS pixels), for checks that they never overlap.
        draw: [(u) => this.recordTicks(u)],
      },
    };
    const plotBox = h("div", { className: "history-plot", attrs: { "aria-hidden": "true" } });
    this.legend = series.map((s) => ({
      node: h("li", { className: "history-key" }, h("span", { className: "history-swatch", style: { "--series-color": s.stroke }, dataset: { dashed: s.dash ? "true" : "false" } })),
      label: s.label,
      value: h("span", { className: "history-value" }),
    }));
    for (const item of this.legend) item.node.append(h("span", { className: "history-label", text: `${item.label}: ` }), item.value);
    const legend = h("ul", { className: "history-legend", attrs: { "aria-label": "newest values" } }, this.legend.map((item) => item.node));
    this.container.append(plotBox, legend);
    this.plot = new uPlot(opts, this.data, plotBox);
  }

  recordTicks(u) {
    const axis = u.axes[0];
    const splits = axis._splits || [];
    const values = axis._values || [];
    const left = u.over.offsetLeft;
    const ticks = splits.map((split, i) => ({ text: String(values[i] ?? ""), x: left + u.valToPos(split, "x") })).filter((t) => t.text);
    this.container.dataset.xTicks = JSON.stringify({ font: axis.font?.[0] ?? "12px sans-serif", width: u.width, ticks });
  }

  fit() {
    if (this.plot) this.plot.setSize({ width: Math.max(280, this.container.clientWidth), height: HEIGHT });
  }
}
