// Pure readings of one router's GET /v1/state snapshot. No DOM, no fetch: the browser tests
// import this module and check the numbers directly.

/** A cell's identity within a router: "request_type|model". */
export function cellKey(cell) {
  return `${cell.request_type}|${cell.model}`;
}

/**
 * The router's cells grouped by request type, in the snapshot's `request_types` order.
 * Each group: {type, cells (in the router's model order), routed, feedback, leader, costliest, best}.
 * `leader` is the model the router picks most often (largest pick_share, as the server computed it,
 * cost included); `costliest` has the largest expected cost per request; `best` the largest mean.
 */
export function groupByType(router) {
  const order = new Map((router.models || []).map((m, i) => [m.name, i]));
  const groups = [];
  for (const type of router.request_types || []) {
    const cells = (router.cells || [])
      .filter((c) => c.request_type === type)
      .sort((a, b) => (order.get(a.model) ?? 99) - (order.get(b.model) ?? 99));
    if (cells.length === 0) continue;
    const top = (field) => cells.reduce((a, b) => (b[field] > a[field] ? b : a)).model;
    groups.push({
      type,
      cells,
      routed: cells.reduce((s, c) => s + (c.routed || 0), 0),
      feedback: cells.reduce((s, c) => s + (c.feedback || 0), 0),
      leader: cells.reduce((a, b) => (b.pick_share > a.pick_share || (b.pick_share === a.pick_share && b.mean > a.mean) ? b : a)).model,
      costliest: top("expected_cost_usd"),
      best: top("mean"),
    });
  }
  return groups;
}

/**
 * Quality kept: expected quality of the router's current picks relative to always choosing the
 * best model, per request type, weighted by how many requests each type has routed:
 *   Σ_t n_t · Σ_m share_{t,m} · mean_{t,m}  ÷  Σ_t n_t · max_m mean_{t,m}
 * Returns a ratio in [0, 1], or null before any request was routed.
 */
export function qualityKept(router) {
  let kept = 0;
  let best = 0;
  for (const group of groupByType(router)) {
    if (group.routed <= 0) continue;
    const shareSum = group.cells.reduce((s, c) => s + c.pick_share, 0);
    if (shareSum <= 0) continue;
    const expected = group.cells.reduce((s, c) => s + c.pick_share * c.mean, 0) / shareSum;
    kept += group.routed * expected;
    best += group.routed * Math.max(...group.cells.map((c) => c.mean));
  }
  return best > 0 ? Math.min(1, kept / best) : null;
}

/**
 * What a poll compares to decide whether anything changed: counts, spend and the newest
 * activity event of every router (history points are written by polls themselves, so they
 * are not a change).
 */
export function stateSignature(state) {
  return JSON.stringify(
    (state.routers || []).map((r) => [
      r.router,
      r.counts,
      r.spend && r.spend.actual_usd,
      r.activity && r.activity[0] ? activityKey(r.activity[0]) : "",
    ]),
  );
}

/** A sentence on the trade the router is making; null before there is anything to judge. */
export function verdict(savingsRatio, kept) {
  if (kept === null || !Number.isFinite(savingsRatio)) return null;
  if (kept >= 0.95 && savingsRatio >= 0.3) return { tone: "good", text: "Big win: most of the quality for a fraction of the price." };
  if (kept >= 0.85 && savingsRatio >= 0.1) return { tone: "good", text: "Good trade: real savings, little quality given up." };
  if (kept >= 0.85) return { tone: "warn", text: "Quality is kept but savings are small: the cheaper models are rarely good enough yet." };
  if (kept >= 0.75) return { tone: "warn", text: "Mixed: savings cost noticeable quality. Consider raising the quality weight." };
  return { tone: "bad", text: "Saving money at the users' expense: raise the quality weight." };
}

/** Identity of an activity event across polls. */
export function activityKey(event) {
  return `${event.turn_id}|${event.at}|${event.source}`;
}

/**
 * Merge a poll's activity (newest first) into the kept log (newest first), without duplicates,
 * keeping at most `limit` events. Returns {log, fresh}: fresh holds the keys not seen before.
 */
export function mergeActivity(log, incoming, limit = 200) {
  const seen = new Set(log.map(activityKey));
  const fresh = new Set();
  const added = [];
  for (const event of incoming || []) {
    const key = activityKey(event);
    if (seen.has(key)) continue;
    seen.add(key);
    fresh.add(key);
    added.push(event);
  }
  if (added.length === 0) return { log, fresh };
  const merged = [...added, ...log].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return { log: merged.slice(0, limit), fresh };
}

/** Keys of cells whose α or β differ from the previous snapshot of the same router. */
export function movedCells(previous, router) {
  const moved = new Set();
  if (!previous) return moved;
  const before = new Map((previous.cells || []).map((c) => [cellKey(c), c]));
  for (const cell of router.cells || []) {
    const old = before.get(cellKey(cell));
    if (old && (Math.abs(old.alpha - cell.alpha) > 1e-6 || Math.abs(old.beta - cell.beta) > 1e-6)) moved.add(cellKey(cell));
  }
  return moved;
}

/** The router's most expensive model at its list prices (input + output per million tokens). */
export function priciestModel(router) {
  const models = router.models || [];
  if (models.length === 0) return null;
  return models.reduce((a, b) =>
    b.input_usd_per_mtok + b.output_usd_per_mtok > a.input_usd_per_mtok + a.output_usd_per_mtok ? b : a,
  ).name;
}
