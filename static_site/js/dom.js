// DOM building without HTML strings: every piece of text from the API goes through textContent,
// so a model name or an error message can never become markup.

/**
 * Create an element.
 * props: className, text, title, attrs (attribute map), dataset, style (object), on (event map),
 * plus any writable property (value, type, disabled, hidden...).
 * children: nodes, strings (become text nodes), arrays of those, or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "attrs") for (const [a, v] of Object.entries(value)) node.setAttribute(a, String(v));
    else if (key === "dataset") for (const [d, v] of Object.entries(value)) node.dataset[d] = String(v);
    else if (key === "style") for (const [s, v] of Object.entries(value)) node.style.setProperty(s, String(v));
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `node` with `children`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** Dollars with enough digits to show fractions of a cent. */
export function formatUsd(value) {
  if (!Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  const digits = abs === 0 ? 2 : abs < 0.01 ? 5 : abs < 1 ? 4 : 2;
  return (value < 0 ? "−$" : "$") + abs.toFixed(digits);
}

/** A ratio in [0, 1] as a percentage; `digits` decimals. */
export function formatPercent(ratio, digits = 0) {
  if (!Number.isFinite(ratio)) return "—";
  return (ratio * 100).toFixed(digits) + "%";
}

/** Local wall-clock time HH:MM:SS of an ISO timestamp. */
export function formatClock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

/** A request type id ("code_generation") as a label ("code generation"). */
export function typeLabel(requestType) {
  return String(requestType).replaceAll("_", " ");
}

/** Short signed number for posterior deltas: +0.7, −1. */
export function formatDelta(value) {
  const rounded = Math.round(value * 100) / 100;
  if (rounded === 0) return "0";
  return (rounded > 0 ? "+" : "−") + String(Math.abs(rounded));
}
