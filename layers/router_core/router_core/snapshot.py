"""The state snapshot served by GET /v1/state: two DynamoDB round trips for every router."""

from __future__ import annotations

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

ACTIVITY_LIMIT = 50
TYPICAL_PROMPT_TOKENS = 500
"""Prompt size used for pick shares until the router has seen its own traffic."""
SHARE_DRAWS = 2000


def build_snapshot(store: RouterStore, config: GatewayConfig, router_filter: str | None = None) -> dict[str, Any]:
    """Every router's cells (α, β, mean, 95% interval, pick share, counts), spend, activity and
    each model's health (its circuit breaker, as last reported by a chat container);
    only `router_filter`'s when given (NotFound when no router has that name)."""
    if router_filter and router_filter not in config.routers:
        raise NotFound(f"no router named {router_filter!r}", param="router", code="router_not_found")
    now = store.clock()
    raw_cells = store.query_cells()
    events = store.query_activity(ACTIVITY_LIMIT * max(1, len(config.routers)))
    health = health_view(health_reports(raw_cells), config.models, time.time())
    routers = []
    for name, router in config.routers.items():
        if router_filter and name != router_filter:
            continue
        cells = {
            (c.request_type, c.model): c
            for c in aggregate_cells(
                [i for i in raw_cells if str(i["sk"]).startswith(name + "#")],
                now=now,
                half_life_s=half_life_seconds(router),
            )
            if c.router == name
        }
        routers.append(_router_snapshot(config, name, cells, [e for e in events if e.router == name], now, health))
    return {"generated_at": _iso(time.time()), "routers": routers}


def _router_snapshot(
    config: GatewayConfig,
    name: str,
    cells: dict[tuple[str, str], CellCounters],
    events: list[ActivityEvent],
    now: float,
    health: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    router = config.routers[name]
    picks = sum(c.picks for c in cells.values())
    in_tokens = sum(c.input_tokens for c in cells.values())
    typical_prompt = int(in_tokens / picks) if picks else TYPICAL_PROMPT_TOKENS
    # Deterministic shares for a given state, so polling does not flicker.
    rng = random.Random(picks * 7919 + sum(c.feedback for c in cells.values()))
    out_cells = [
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
