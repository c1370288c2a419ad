"""The state snapshot served by GET /v1/state: three DynamoDB Queries for every router (cells,
activity, history), and at most one PutItem per HISTORY_STEP_S across every caller.

History: the dashboard's "over time" chart reads points the server keeps, so it survives
reconnects, restarts and other tabs. Each point is what a snapshot already computed (per
request type, the pick share of its costliest model; the savings ratio; turns routed), written
by the state route itself when the newest point is older than HISTORY_STEP_S (a conditional
PutItem: concurrent pollers write it once). Points exist for the times someone watched; between
them the chart draws a straight line. A poll passes `history_since` (its newest point) and reads
only newer points: one half read unit when there are none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from router_core.breaker import health_view
from router_core.config import GatewayConfig, RouterConfig
from router_core.errors import NotFound
from router_core.forgetting import half_life_seconds
from router_core.policy import build_arms, cell_prior, decision_shares
from router_core.store import NANO, ActivityEvent, CellCounters, RouterStore, aggregate_cells, health_reports

logger = logging.getLogger(__name__)

ACTIVITY_LIMIT = 50
HISTORY_STEP_S = 10
"""At most one history point per this many seconds."""
HISTORY_LIMIT = 360
"""Points returned at most (an hour at one point every HISTORY_STEP_S)."""
HISTORY_TTL_S = 24 * 3600
"""History points expire (DynamoDB TTL) after a day."""
TYPICAL_PROMPT_TOKENS = 500
"""Prompt size used for pick shares until the router has seen its own traffic."""
SHARE_DRAWS = 2000
CELL_ROWS_REUSE_S = 60
"""A warm container reuses a router's cell rows (the costly part: pick shares by sampling) while
its cell items are unchanged, for at most this long (decay moves posteriors slowly)."""
_cell_rows_cache: dict[str, tuple[str, list[dict[str, Any]]]] = {}


def build_snapshot(
    store: RouterStore, config: GatewayConfig, router_filter: str | None = None, history_since: int | None = None
) -> dict[str, Any]:
    """Every router's cells (α, β, mean, 95% interval, pick share, counts), spend, activity,
    each model's health (its circuit breaker, as last reported by a chat container) and history
    (points after `history_since` when given); only `router_filter`'s when given (NotFound when
    no router has that name)."""
    if router_filter and router_filter not in config.routers:
        raise NotFound(f"no router named {router_filter!r}", param="router", code="router_not_found")
    now = store.clock()
    raw_cells = store.query_cells()
    events = store.query_activity(ACTIVITY_LIMIT * max(1, len(config.routers)))
    points = store.query_history(since=history_since, limit=HISTORY_LIMIT)
    health = health_view(health_reports(raw_cells), config.models, time.time())
    routers = []
    for name, router in config.routers.items():
        if router_filter and name != router_filter:
            continue
        items = [i for i in raw_cells if str(i["sk"]).startswith(name + "#")]
        cells = {
            (c.request_type, c.model): c
            for c in aggregate_cells(items, now=now, half_life_s=half_life_seconds(router))
            if c.router == name
        }
        reuse_key = _reuse_key(config, name, items, now)
        cached = _cell_rows_cache.get(name)
        rows = cached[1] if cached and cached[0] == reuse_key else None
        snapshot = _router_snapshot(config, name, cells, [e for e in events if e.router == name], now, health, rows)
        _cell_rows_cache[name] = (reuse_key, snapshot["cells"])
        routers.append(snapshot)
    if router_filter is None:
        points += _record_history_point(store, routers, points, history_since, now)
    for snapshot in routers:
        snapshot["history"] = _router_history(snapshot["router"], points)
    return {"generated_at": _iso(time.time()), "history_step_s": HISTORY_STEP_S, "routers": routers}


def history_point(snapshot: dict[str, Any]) -> dict[str, Any]:
    """One router's point: per type the pick share of its costliest model (largest expected
    cost per request), the savings ratio (None before any turn), the turns routed."""
    shares: dict[str, float] = {}
    costliest: dict[str, float] = {}
    for cell in snapshot["cells"]:
        t = cell["request_type"]
        if t not in costliest or cell["expected_cost_usd"] > costliest[t]:
            costliest[t] = cell["expected_cost_usd"]
            shares[t] = cell["pick_share"]
    turns = snapshot["counts"]["turns"]
    return {"shares": shares, "savings_ratio": snapshot["spend"]["savings_ratio"] if turns else None, "turns": turns}


def _record_history_point(
    store: RouterStore, routers: list[dict[str, Any]], points: list[tuple[int, str]], since: int | None, now: float
) -> list[tuple[int, str]]:
    """The point of this step when it is due and this call wrote it (else nothing); best effort."""
    at = int(now // HISTORY_STEP_S) * HISTORY_STEP_S
    newest = points[-1][0] if points else since
    if newest is not None and newest >= at:
        return []
    body = json.dumps({s["router"]: history_point(s) for s in routers}, separators=(",", ":"))
    try:
        written = store.put_history_point(at, body, HISTORY_TTL_S)
    except Exception:  # the snapshot is still right without its history point
        logger.warning("history point not recorded", exc_info=True)
        return []
    return [(at, body)] if written else []


def _router_history(name: str, points: list[tuple[int, str]]) -> list[dict[str, Any]]:
    out = []
    for at, body in points:
        try:
            point = json.loads(body).get(name)
        except ValueError:
            continue
        if point:
            out.append({"t": at, **point})
    return out


def _reuse_key(config: GatewayConfig, name: str, items: list[dict[str, Any]], now: float) -> str:
    digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode())
    digest.update(f"{id(config)}#{name}#{int(now // CELL_ROWS_REUSE_S)}".encode())
    return digest.hexdigest()


def _router_snapshot(
    config: GatewayConfig,
    name: str,
    cells: dict[tuple[str, str], CellCounters],
    events: list[ActivityEvent],
    now: float,
    health: dict[str, dict[str, Any]],
    cell_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    router = config.routers[name]
    picks = sum(c.picks for c in cells.values())
    in_tokens = sum(c.input_tokens for c in cells.values())
    typical_prompt = int(in_tokens / picks) if picks else TYPICAL_PROMPT_TOKENS
    # Deterministic shares for a given state, so polling does not flicker.
    rng = random.Random(picks * 7919 + sum(c.feedback for c in cells.values()))
    out_cells = cell_rows or [
        row
        for request_type in router.request_types
        for row in _type_cells(config, router, request_type, cells, typical_prompt, rng)
    ]
    actual = sum(c.cost_nusd for c in cells.values()) / NANO
    baseline = sum(c.baseline_nusd for c in cells.values()) / NANO
    return {
        "router": name,
        "models": [
            {
                "name": m,
                "provider": config.models[m].provider,
                "upstream_model": config.models[m].upstream_model,
                "input_usd_per_mtok": config.models[m].input_usd_per_mtok,
                "output_usd_per_mtok": config.models[m].output_usd_per_mtok,
                "quality_tier": config.models[m].quality_tier,
                "health": health[m],
            }
            for m in router.models
        ],
        "default_model": router.default_model,
        "weights": {"quality": router.weights.quality, "cost": router.weights.cost},
        "cost_reference_usd": router.cost_reference_usd,
        "signal_gate_min_messages": router.signal_gate_min_messages,
        "forgetting_half_life_hours": router.forgetting_half_life_hours,
        "exploration_floor": router.exploration_floor,
        "prior_mass": router.prior_mass,
        "request_types": list(router.request_types),
        "cells": out_cells,
        "spend": {
            "actual_usd": round(actual, 9),
            "baseline_usd": round(baseline, 9),
            "savings_usd": round(baseline - actual, 9),
            "savings_ratio": round(1 - actual / baseline, 6) if baseline > 0 else 0.0,
        },
        "counts": {"turns": picks, "feedback": sum(c.feedback for c in cells.values())},
        "activity": [
            {
                "at": e.at,
                "request_type": e.request_type,
                "model": e.model,
                "reward": e.reward,
                "kind": e.kind,
                "source": e.source,
                "delta_alpha": round(e.delta_alpha, 4),
                "delta_beta": round(e.delta_beta, 4),
                "turn_id": e.turn_id,
            }
            for e in events[:ACTIVITY_LIMIT]
        ],
    }


def _type_cells(
    config: GatewayConfig,
    router: RouterConfig,
    request_type: str,
    cells: dict[tuple[str, str], CellCounters],
    prompt_tokens: int,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """One row per model of `request_type`: posterior, 95% interval, prior, pick share, counts, cost."""
    type_cells = {m: cells[(request_type, m)] for m in router.models if (request_type, m) in cells}
    arms = build_arms(config, router, request_type, type_cells, prompt_tokens)
    shares = decision_shares(router, arms, rng, SHARE_DRAWS)
    rows = []
    for arm in arms:
        model = config.models[arm.model]
        cell = type_cells.get(arm.model)
        prior = cell_prior(config, router, request_type, arm.model)
        lo, hi = arm.posterior.interval(0.95)
        rows.append(
            {
                "request_type": request_type,
                "model": arm.model,
                "alpha": round(arm.posterior.alpha, 4),
                "beta": round(arm.posterior.beta, 4),
                "mean": round(arm.posterior.mean, 4),
                "interval": [round(lo, 4), round(hi, 4)],
                "prior_alpha": round(prior.alpha, 4),
                "prior_beta": round(prior.beta, 4),
                "pick_share": round(shares.get(arm.model, 0.0), 4),
                "routed": cell.picks if cell else 0,
                "feedback": cell.feedback if cell else 0,
                "expected_cost_usd": round(arm.cost_units * router.cost_reference_usd, 8),
                "avg_output_tokens": round(cell.average_output_tokens(model.expected_output_tokens), 1)
                if cell
                else model.expected_output_tokens,
            }
        )
    return rows


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
