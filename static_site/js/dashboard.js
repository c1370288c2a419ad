// Live dashboard: polls the IAM-signed GET /v1/state and draws posteriors, pick shares, the cost
// meter, the activity log and a short history. Every API string is written with textContent.
import { pageOrigin } from "./api.js";
import { formatClock, formatDelta, formatPercent, formatUsd, h, replaceChildren, typeLabel } from "./dom.js";
import { HistoryChart } from "./history-chart.js";
import { clearSession, loadSession, loadSiteConfig, normaliseApiUrl, saveSession } from "./settings.js";
import {
  activityKey,
  cellKey,
  groupByType,
  mergeActivity,
  movedCells,
  priciestModel,
  qualityKept,
  stateSignature,
  verdict,
} from "./snapshot.js";
import { canSign, StateClient } from "./state-client.js";
import { hideHint, setStatus, showHint } from "./status.js";

const PAGE = "dashboard";
const FIELDS = ["apiUrl", "region", "accessKeyId", "secretAccessKey", "sessionToken", "pollMs", "router", "connected"];
const MODEL_COLORS = ["#6366f1", "#f59e0b", "#10b981", "#ef4444", "#06b6d4", "#a855f7"];
const NETWORK_RETRY_MS = 2000;
const ACTIVITY_KEPT = 200;
const DEFAULT_POLL_MS = 1000;
/** Slowest poll: while nothing changes the interval doubles from the form's value up to this. */
const IDLE_POLL_MS = 16000;

const $ = (id) => document.getElementById(id);
const form = $("connect");
const inputs = {
  apiUrl: $("api-url"),
  region: $("region"),
  accessKeyId: $("access-key-id"),
  secretAccessKey: $("secret-access-key"),
  sessionToken: $("session-token"),
  pollMs: $("poll-ms"),
};

const view = {
  client: null,
  apiUrl: "",
  pollMs: DEFAULT_POLL_MS,
  delayMs: DEFAULT_POLL_MS,
  signature: "",
  paused: false,
  hidden: false,
  timer: null,
  generation: 0,
  router: "",
  previous: null,
  activity: [],
  rows: new Map(),
  groups: new Map(),
  chart: new HistoryChart($("history-chart")),
};

// ---------------------------------------------------------------- hints

function explainFailure(failure) {
  const url = `${view.apiUrl}v1/state`;
  switch (failure.kind) {
    case "network":
      return showHint(
        "Cannot reach the API (network or CORS error).",
        `The browser could not read ${url}: ${failure.message}.`,
        `Check the API URL. If it is right, the API does not allow this page's origin (${pageOrigin()}) through CORS: ` +
          "the template allows its CloudFront site and one ExtraCorsOrigin parameter — deploy with ExtraCorsOrigin set to this origin, " +
          "or open the pages from the stack's DashboardUrl. Pages must be served over https or from localhost.",
      );
    case "unauthorized":
    case "forbidden":
      return showHint(
        `HTTP ${failure.status}: the signature was refused.`,
        "These credentials are not an IAM identity allowed to invoke GET /v1/state — check the access key, secret, " +
          "region and the execute-api:Invoke permission on StateRouteArn (a stack output). Temporary credentials also need their session token.",
        `The API said: ${failure.message}`,
      );
    case "not_found":
      return showHint(
        "HTTP 404: nothing answers GET /v1/state there.",
        `Check the API URL (the stack output ApiUrl, for example https://abc123.execute-api.us-east-1.amazonaws.com/); ${url} does not exist. ` +
          "If the URL is right, the router you selected is no longer configured.",
        `The API said: ${failure.message}`,
      );
    default:
      return showHint(
        `HTTP ${failure.status}: the state endpoint failed.`,
        `The API said: ${failure.message}`,
        "Retrying on the next poll.",
      );
  }
}

// ---------------------------------------------------------------- connection and polling

function readForm() {
  const pollMs = Math.max(100, Number.parseInt(inputs.pollMs.value, 10) || DEFAULT_POLL_MS);
  return {
    apiUrl: normaliseApiUrl(inputs.apiUrl.value),
    region: inputs.region.value.trim(),
    accessKeyId: inputs.accessKeyId.value.trim(),
    secretAccessKey: inputs.secretAccessKey.value.trim(),
    sessionToken: inputs.sessionToken.value.trim(),
    pollMs,
  };
}

function connect() {
  const values = readForm();
  if (!canSign()) return explainInsecure();
  if (!values.apiUrl) {
    inputs.apiUrl.focus();
    return showHint("Enter the API URL.", "An http(s) URL such as the stack output ApiUrl.");
  }
  saveSession(PAGE, { ...values, pollMs: String(values.pollMs), connected: "1" });
  inputs.apiUrl.value = values.apiUrl;
  disconnect({ keepSaved: true });
  view.apiUrl = values.apiUrl;
  view.pollMs = values.pollMs;
  view.delayMs = values.pollMs;
  view.client = new StateClient(values.apiUrl, values.region, values);
  view.generation += 1;
  setStatus("connecting", "Connecting…");
  collapseForm(`${values.apiUrl} · ${values.region} · ${values.accessKeyId || "no access key"}`);
  $("connect-button").textContent = "Reconnect";
  $("pause-button").disabled = false;
  $("disconnect-button").disabled = false;
  poll(view.generation);
}

// Once connected, the form folds into one line so the board gets the screen; "Edit" unfolds it.
function collapseForm(summary) {
  form.dataset.collapsed = "true";
  $("connect-summary").textContent = summary;
  $("connect-summary").hidden = false;
  $("edit-button").hidden = false;
}

function expandForm() {
  delete form.dataset.collapsed;
  $("connect-summary").hidden = true;
  $("edit-button").hidden = true;
}

function disconnect({ keepSaved = false } = {}) {
  view.generation += 1;
  clearTimeout(view.timer);
  view.client = null;
  view.paused = false;
  resetRouterView();
  $("pause-button").textContent = "Pause";
  $("pause-button").disabled = true;
  $("disconnect-button").disabled = true;
  $("connect-button").textContent = "Connect";
  $("board").hidden = true;
  $("router-bar").hidden = true;
  $("welcome").hidden = false;
  if (!keepSaved) expandForm();
  hideHint();
  setStatus("off", "Disconnected");
  if (!keepSaved) {
    saveSession(PAGE, { connected: "" });
    clearSession(PAGE, ["secretAccessKey", "sessionToken"]);
    inputs.secretAccessKey.value = "";
    inputs.sessionToken.value = "";
  }
}

function togglePause() {
  if (!view.client) return;
  view.paused = !view.paused;
  $("pause-button").textContent = view.paused ? "Resume" : "Pause";
  if (view.paused) {
    clearTimeout(view.timer);
    view.generation += 1;
    setStatus("paused", "Paused");
  } else {
    view.generation += 1;
    poll(view.generation);
  }
}

/** Adaptive polling: the form's interval after a change, doubling while nothing changes, up to IDLE_POLL_MS. */
function nextDelay(changed) {
  view.delayMs = changed ? view.pollMs : Math.min(IDLE_POLL_MS, Math.max(view.pollMs, view.delayMs * 2));
  document.body.dataset.pollDelayMs = String(view.delayMs);
  return view.delayMs;
}

async function poll(generation) {
  if (!view.client || view.paused || view.hidden || generation !== view.generation) return;
  let delay = view.delayMs;
  try {
    const state = await view.client.fetchState(null, view.chart.newest);
    if (generation !== view.generation) return;
    hideHint();
    const signature = stateSignature(state);
    delay = nextDelay(signature !== view.signature);
    view.signature = signature;
    render(state, delay);
  } catch (failure) {
    if (generation !== view.generation) return;
    if (!failure || !failure.kind) {
      // A snapshot this page cannot draw: say so, keep the error in the console, keep polling.
      console.error(failure);
      showHint("The state could not be drawn.", String(failure && failure.message ? failure.message : failure));
      setStatus("error", "Unreadable state — retrying");
      view.timer = setTimeout(() => poll(generation), Math.max(delay, NETWORK_RETRY_MS));
      return;
    }
    explainFailure(failure);
    if (["unauthorized", "forbidden", "not_found"].includes(failure.kind)) {
      // Polling again cannot fix credentials or a wrong URL: stop and let the user edit them.
      setStatus("error", `HTTP ${failure.status}`);
      expandForm();
      $("pause-button").disabled = true;
      return;
    }
    setStatus("error", failure.kind === "network" ? "Unreachable — retrying" : `HTTP ${failure.status} — retrying`);
    delay = Math.max(delay, NETWORK_RETRY_MS);
  }
  view.timer = setTimeout(() => poll(generation), delay);
}

// A hidden tab does not poll (nobody sees it, and each poll is billed); it polls at once when shown.
function visibilityChanged() {
  view.hidden = document.visibilityState === "hidden";
  document.body.dataset.polling = view.hidden ? "hidden" : "visible";
  if (!view.client || view.paused) return;
  clearTimeout(view.timer);
  view.generation += 1;
  if (view.hidden) {
    setStatus("paused", "Paused while the tab is hidden");
  } else {
    view.delayMs = view.pollMs;
    poll(view.generation);
  }
}

function explainInsecure() {
  setStatus("error", "Insecure context");
  $("connect-button").disabled = true;
  showHint(
    "This page cannot sign requests here.",
    "Signing GET /v1/state needs the browser's crypto.subtle, which exists only in secure contexts: " +
      "open the page over https (the stack's DashboardUrl) or from http://localhost / http://127.0.0.1.",
  );
}

// ---------------------------------------------------------------- rendering

function resetRouterView() {
  view.previous = null;
  view.signature = "";
  view.activity = [];
  view.rows.clear();
  view.groups.clear();
  $("type-groups").replaceChildren();
  $("activity-log").replaceChildren();
  view.chart.reset();
}

function render(state, delay) {
  const routers = state.routers;
  if (routers.length === 0) {
    setStatus("error", "No routers");
    return showHint("The API has no routers configured.", "Add a router to the configuration (routers.yaml) and redeploy.");
  }
  const names = routers.map((r) => r.router);
  const saved = loadSession(PAGE, ["router"]).router;
  const chosen = names.includes(view.router) ? view.router : names.includes(saved) ? saved : names[0];
  if (chosen !== view.router) {
    resetRouterView();
    view.router = chosen;
  }
  renderRouterPicker(names);
  const router = routers.find((r) => r.router === chosen);
  $("welcome").hidden = true;
  $("board").hidden = false;
  $("router-bar").hidden = false;
  setStatus("live", `Live · ${formatClock(state.generated_at)} · every ${formatSeconds(delay)}`);
  renderFacts(router);
  renderMeter(router);
  renderGroups(router);
  renderActivity(router);
  view.chart.add(router.request_types, router.history || []);
  view.previous = router;
}

function formatSeconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function renderRouterPicker(names) {
  const select = $("router-select");
  $("router-picker").hidden = names.length < 2;
  const current = [...select.options].map((o) => o.value);
  if (current.join() !== names.join()) replaceChildren(select, names.map((n) => h("option", { value: n, text: n })));
  select.value = view.router;
}

function chip(text, title) {
  return h("li", { className: "chip", text, title });
}

function renderFacts(router) {
  $("router-name").textContent = router.router;
  const halfLife = router.forgetting_half_life_hours;
  replaceChildren(
    $("router-facts"),
    chip(`quality ${router.weights.quality} · cost ${router.weights.cost}`, "Score = quality weight × sampled quality − cost weight × expected $ ÷ cost reference"),
    chip(`cost reference ${formatUsd(router.cost_reference_usd)}`, "A request costing this much weighs one full quality point"),
    chip(`gate ≥ ${router.signal_gate_min_messages} messages`, "Feedback counts once the conversation (system excluded, answer included) has this many messages"),
    chip(halfLife ? `half-life ${halfLife} h` : "no forgetting", "Evidence loses half its weight after this long"),
    chip(`exploration ${formatPercent(router.exploration_floor, 1)}`, "Share of requests routed uniformly at random"),
    router.models.map((m) =>
      chip(`${m.name} ${formatUsd(m.input_usd_per_mtok)} / ${formatUsd(m.output_usd_per_mtok)} per Mtok`, `${m.name}: input / output price per million tokens`),
    ),
    router.models.map(healthChip),
  );
}

// A model whose circuit breaker is open (skipped) or half-open (being probed); nothing when healthy.
function healthChip(model) {
  const health = model.health || { state: "closed" };
  if (health.state === "closed") return null;
  const text = health.state === "open"
    ? `${model.name} skipped (${health.reason}) until ${formatClock(health.retry_at)}`
    : `${model.name} being probed (${health.reason})`;
  const node = chip(text, `${model.name}: circuit breaker ${health.state.replace("_", "-")} since ${formatClock(health.since)}`);
  node.dataset.health = health.state;
  return node;
}

function tone(value, good, warn) {
  if (value === null || !Number.isFinite(value)) return "neutral";
  return value >= good ? "good" : value >= warn ? "warn" : "bad";
}

function renderMeter(router) {
  const { spend, counts } = router;
  const hasSpend = counts.turns > 0 && spend.baseline_usd > 0;
  const kept = qualityKept(router);
  $("priciest-name").textContent = priciestModel(router) || "the priciest model";
  $("savings-ratio").textContent = hasSpend ? formatPercent(spend.savings_ratio, 1) : "—";
  $("savings-usd").textContent = formatUsd(spend.savings_usd);
  $("actual-usd").textContent = formatUsd(spend.actual_usd);
  $("baseline-usd").textContent = formatUsd(spend.baseline_usd);
  $("metric-savings").dataset.tone = hasSpend ? tone(spend.savings_ratio, 0.3, 0.05) : "neutral";
  $("quality-kept").textContent = kept === null ? "—" : formatPercent(kept, 1);
  $("metric-quality").dataset.tone = tone(kept, 0.9, 0.75);
  $("count-turns").textContent = counts.turns.toLocaleString();
  $("count-feedback").textContent = counts.feedback.toLocaleString();
  const judged = hasSpend ? verdict(spend.savings_ratio, kept) : null;
  const line = $("verdict");
  line.hidden = !judged;
  if (judged) {
    line.dataset.tone = judged.tone;
    line.textContent = `${judged.text} Based on ${counts.feedback.toLocaleString()} feedback signals across ${counts.turns.toLocaleString()} routed requests.`;
  }
}

function modelColor(router, model) {
  const index = router.models.findIndex((m) => m.name === model);
  return MODEL_COLORS[(index < 0 ? 0 : index) % MODEL_COLORS.length];
}

function renderGroups(router) {
  const container = $("type-groups");
  const moved = movedCells(view.previous, router);
  for (const group of groupByType(router)) {
    let entry = view.groups.get(group.type);
    if (!entry) {
      entry = buildGroup(router, group);
      view.groups.set(group.type, entry);
      container.append(entry.node);
    }
    entry.node.classList.toggle("is-quiet", group.routed === 0 && group.feedback === 0);
    entry.counts.textContent = `${group.routed.toLocaleString()} routed · ${group.feedback.toLocaleString()} feedback`;
    for (const cell of group.cells) {
      const segment = entry.segments.get(cell.model);
      segment.style.width = `${(cell.pick_share * 100).toFixed(2)}%`;
      segment.title = `${cell.model}: ${formatPercent(cell.pick_share, 1)} of this type's picks`;
      // Label only what fits: name and share on wide segments, the share alone on narrow ones.
      // Screen readers get every model's share as text (the visible label is hidden from them).
      const label = cell.pick_share >= 0.22 ? `${cell.model} ${formatPercent(cell.pick_share)}` : formatPercent(cell.pick_share);
      segment.firstChild.textContent = cell.pick_share >= 0.08 ? label : "";
      segment.lastChild.textContent = `${cell.model}: ${formatPercent(cell.pick_share, 1)}`;
      updateRow(view.rows.get(cellKey(cell)), cell, group, moved.has(cellKey(cell)));
    }
  }
}

function buildGroup(router, group) {
  const segments = new Map();
  const share = h(
    "div",
    { className: "share-bar", attrs: { role: "list", "aria-label": `pick share for ${typeLabel(group.type)}` } },
    group.cells.map((cell) => {
      const segment = h(
        "span",
        { className: "share-segment", attrs: { role: "listitem" }, style: { "--model-color": modelColor(router, cell.model) } },
        h("span", { attrs: { "aria-hidden": "true" } }),
        h("span", { className: "sr-only" }),
      );
      segments.set(cell.model, segment);
      return segment;
    }),
  );
  const counts = h("span", { className: "type-counts" });
  const rows = group.cells.map((cell) => {
    const row = buildRow(router, cell);
    view.rows.set(cellKey(cell), row);
    return row.node;
  });
  const node = h(
    "article",
    { className: "type-group", dataset: { type: group.type } },
    h("header", { className: "type-head" }, h("h3", { text: typeLabel(group.type) }), counts),
    h("div", { className: "share-line" }, h("span", { className: "share-caption", text: "pick share" }), share),
    rows,
  );
  return { node, counts, segments };
}

function buildRow(router, cell) {
  const parts = {
    name: h("span", { className: "model-name", text: cell.model }),
    badge: h("span", { className: "badge badge-leader", text: "pick" }),
    interval: h("span", { className: "bar-interval" }),
    mean: h("span", { className: "bar-mean" }),
    prior: h("span", { className: "bar-prior" }),
    meanText: h("span", { className: "cell-mean" }),
    stats: h("span", { className: "cell-stats" }),
  };
  parts.bar = h("span", { className: "cell-bar" }, parts.interval, parts.mean, parts.prior);
  parts.node = h(
    "div",
    { className: "cell-row", dataset: { type: cell.request_type, model: cell.model }, style: { "--model-color": modelColor(router, cell.model) } },
    h("span", { className: "cell-model" }, h("span", { className: "model-dot" }), parts.name, parts.badge),
    parts.bar,
    parts.meanText,
    parts.stats,
  );
  return parts;
}

function updateRow(row, cell, group, moved) {
  const pct = (x) => `${(Math.min(1, Math.max(0, x)) * 100).toFixed(2)}%`;
  const [lo, hi] = cell.interval;
  const priorMean = cell.prior_alpha / (cell.prior_alpha + cell.prior_beta);
  const isLeader = group.leader === cell.model;
  row.node.classList.toggle("is-leader", isLeader);
  row.badge.hidden = !isLeader;
  Object.assign(row.node.dataset, {
    alpha: cell.alpha,
    beta: cell.beta,
    mean: cell.mean,
    pickShare: cell.pick_share,
    leader: isLeader ? "true" : "false",
  });
  row.interval.style.left = pct(lo);
  row.interval.style.width = pct(hi - lo);
  row.mean.style.width = pct(cell.mean);
  row.prior.style.left = pct(priorMean);
  row.meanText.textContent = formatPercent(cell.mean);
  row.stats.textContent =
    `α ${cell.alpha.toFixed(1)} · β ${cell.beta.toFixed(1)} · ${cell.routed.toLocaleString()} routed · ${cell.feedback.toLocaleString()} feedback`;
  row.node.title =
    `${cell.model} on ${typeLabel(cell.request_type)}: picked ${formatPercent(cell.pick_share, 1)} of the time\n` +
    `Beta(α ${cell.alpha.toFixed(2)}, β ${cell.beta.toFixed(2)}): mean ${formatPercent(cell.mean, 1)}, ` +
    `95% interval ${formatPercent(lo, 1)}–${formatPercent(hi, 1)}\n` +
    `Prior Beta(${cell.prior_alpha.toFixed(2)}, ${cell.prior_beta.toFixed(2)}): mean ${formatPercent(priorMean, 1)}\n` +
    `Expected cost ${formatUsd(cell.expected_cost_usd)} per request (≈${Math.round(cell.avg_output_tokens)} output tokens)`;
  if (moved) {
    row.node.classList.remove("moved");
    void row.node.offsetWidth; // restart the highlight animation
    row.node.classList.add("moved");
  }
}

function renderActivity(router) {
  const merged = mergeActivity(view.activity, router.activity, ACTIVITY_KEPT);
  $("activity-empty").hidden = merged.log.length > 0;
  if (merged.log === view.activity && $("activity-log").childElementCount === merged.log.length) return;
  view.activity = merged.log;
  replaceChildren(
    $("activity-log"),
    merged.log.map((event) => activityItem(event, merged.fresh.has(activityKey(event)))),
  );
}

function activityItem(event, fresh) {
  const up = event.reward >= 0.5;
  const reward = event.reward === 0 || event.reward === 1 ? "" : ` ${event.reward.toFixed(2)}`;
  const deltas = `Δα ${formatDelta(event.delta_alpha ?? 0)} · Δβ ${formatDelta(event.delta_beta ?? 0)}`;
  return h(
    "li",
    {
      className: `activity-item${fresh ? " fresh" : ""}`,
      dataset: { tone: up ? "up" : "down", turnId: event.turn_id },
      title: `turn ${event.turn_id}`,
    },
    h("time", { dateTime: event.at, text: formatClock(event.at) }),
    h("span", { className: "activity-thumb", text: (up ? "👍" : "👎") + reward, attrs: { "aria-label": `reward ${event.reward}` } }),
    h("span", { className: "activity-route" }, typeLabel(event.request_type), h("span", { className: "arrow", text: " → " }), h("strong", { text: event.model })),
    h("span", { className: "activity-kind", text: event.kind }),
    h("span", { className: `badge badge-${event.source}`, text: event.source }),
    h("span", { className: "activity-delta", text: deltas }),
  );
}

// ---------------------------------------------------------------- start

async function start() {
  const saved = loadSession(PAGE, FIELDS);
  const site = await loadSiteConfig();
  inputs.apiUrl.value = saved.apiUrl || site.apiUrl || "";
  inputs.region.value = saved.region || site.region || "us-east-1";
  // The local stack's config.json carries its own local-only credentials; a deployed site's never does.
  inputs.accessKeyId.value = saved.accessKeyId || site.accessKeyId || "";
  inputs.secretAccessKey.value = saved.secretAccessKey || site.secretAccessKey || "";
  inputs.sessionToken.value = saved.sessionToken;
  inputs.pollMs.value = saved.pollMs || String(DEFAULT_POLL_MS);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  $("disconnect-button").addEventListener("click", () => disconnect());
  $("pause-button").addEventListener("click", togglePause);
  $("edit-button").addEventListener("click", expandForm);
  $("router-select").addEventListener("change", (event) => {
    saveSession(PAGE, { router: event.target.value });
    resetRouterView();
    view.router = event.target.value;
    if (view.client && !view.paused) {
      view.generation += 1;
      clearTimeout(view.timer);
      poll(view.generation);
    }
  });
  document.addEventListener("visibilitychange", visibilityChanged);
  view.hidden = document.visibilityState === "hidden";
  document.body.dataset.ready = "true";
  if (!canSign()) return explainInsecure();
  if (saved.connected && saved.apiUrl && saved.accessKeyId && saved.secretAccessKey) connect();
}

start();
