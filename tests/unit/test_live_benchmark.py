"""Live learning benchmark: the metric, aggregation and target functions on hand-made inputs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from benchmarks import live

pytestmark = pytest.mark.unit

ORACLE = {"code_generation": {"smart": 0.92, "fast": 0.35}, "factual_lookup": {"smart": 0.90, "fast": 0.85}}


def _cell(request_type: str, model: str, share: float, routed: int, cost: float) -> dict[str, Any]:
    return {
        "request_type": request_type,
        "model": model,
        "alpha": 2.0,
        "beta": 1.0,
        "mean": 0.6667,
        "pick_share": share,
        "routed": routed,
        "feedback": 0,
        "expected_cost_usd": cost,
        "avg_output_tokens": 200.0,
    }


def _state() -> dict[str, Any]:
    """Weights 0.7/0.3, reference $0.01; 20 code and 20 factual turns; a `general` type never routed."""
    return {
        "router": "smart-cheap-router",
        "models": [{"name": "fast"}, {"name": "smart"}],
        "weights": {"quality": 0.7, "cost": 0.3},
        "cost_reference_usd": 0.01,
        "cells": [
            _cell("code_generation", "fast", 0.1, 4, 0.0002),
            _cell("code_generation", "smart", 0.9, 16, 0.004),
            _cell("factual_lookup", "fast", 0.7, 12, 0.0001),
            _cell("factual_lookup", "smart", 0.3, 8, 0.002),
            _cell("general", "fast", 0.5, 0, 0.0001),
            _cell("general", "smart", 0.5, 0, 0.002),
        ],
        "spend": {"actual_usd": 0.05, "baseline_usd": 0.08},
        "counts": {"turns": 40, "feedback": 18},
    }


def _summary(
    picks: dict[str, dict[str, int]], sent: dict[str, int], read: dict[str, int], completed: int
) -> dict[str, Any]:
    return {
        "types": ["code_generation", "factual_lookup"],
        "oracle": ORACLE,
        "picks": picks,
        "sessions": {"completed": completed, "failed": 0},
        "turns_sent": 2 * completed,
        "signals": {"sent": sent, "read_by_router": read},
    }


def _summaries() -> list[dict[str, Any]]:
    return [
        _summary(
            {"code_generation": {"fast": 3, "smart": 2}, "factual_lookup": {"fast": 1, "smart": 4}},
            {"satisfaction": 7, "neutral": 3, "negative": 0},
            {"satisfaction": 7, "neutral": 2},
            10,
        ),
        _summary(
            {"code_generation": {"smart": 5}, "factual_lookup": {"fast": 5}},
            {"satisfaction": 8, "neutral": 2, "negative": 0},
            {"satisfaction": 8, "neutral": 2},
            10,
        ),
    ]


def test_checkpoint_metrics_by_hand() -> None:
    m = live.checkpoint_metrics(_state(), _summaries())
    # U = 0.7·q − 0.3·cost/0.01: code fast 0.239, smart 0.524; factual fast 0.592, smart 0.570.
    assert m["oracle_model"] == {"code_generation": "smart", "factual_lookup": "fast"}
    assert m["best_quality_model"] == {"code_generation": "smart", "factual_lookup": "smart"}
    assert m["share"]["code_generation"] == {"fast": 0.1, "smart": 0.9}
    assert m["savings_ratio"] == pytest.approx(1 - 0.05 / 0.08)  # 0.375
    # baseline 20·0.004 + 20·0.002 = 0.12; oracle 20·0.004 + 20·0.0001 = 0.082
    assert m["oracle_savings_ratio"] == pytest.approx(0.038 / 0.12)
    assert m["savings_vs_oracle"] == pytest.approx(0.375 / (0.038 / 0.12))
    # current: 20·(0.1·0.0002 + 0.9·0.004) + 20·(0.7·0.0001 + 0.3·0.002) = 0.0724 + 0.0134
    assert m["current_savings_ratio"] == pytest.approx(1 - 0.0858 / 0.12)
    assert m["current_savings_vs_oracle"] == pytest.approx(0.9)
    # picks: code fast 3 smart 7, factual fast 6 smart 4
    assert m["quality_kept"] == pytest.approx((3 * 0.35 + 7 * 0.92 + 6 * 0.85 + 4 * 0.90) / (10 * 0.92 + 10 * 0.90))
    assert m["oracle_quality_kept"] == pytest.approx(17.7 / 18.2)
    assert m["current_quality_kept"] == pytest.approx(17.28 / 18.2)
    assert m["regret_per_session"] == pytest.approx((3 * 0.285 + 4 * 0.022) / 20)
    assert m["current_regret_per_session"] == pytest.approx((0.1 * 0.285 + 0.3 * 0.022) / 2)
    assert m["sessions_completed"] == 20
    assert m["signals"] == {
        "sent": {"satisfaction": 15, "neutral": 5, "negative": 0},
        "sent_total": 20,
        "read": 19,
        "read_by_kind": {"neutral": 4, "satisfaction": 15},
        "applied": 18,
        "read_ratio": pytest.approx(0.95),
        "applied_ratio": pytest.approx(18 / 19),
        "turns_sent": 40,
        "turns_counted": 40,
    }


def test_oracle_saving_nothing_gives_no_ratio() -> None:
    state = _state()
    for cell in state["cells"]:  # factual: smart is now also the utility oracle's pick
        if cell["request_type"] == "factual_lookup" and cell["model"] == "smart":
            cell["expected_cost_usd"] = 0.0001
    m = live.checkpoint_metrics(state, _summaries())
    assert m["oracle_model"]["factual_lookup"] == "smart"
    assert m["oracle_savings_ratio"] == pytest.approx(1 - (20 * 0.004 + 20 * 0.0001) / (20 * 0.004 + 20 * 0.0001))
    assert m["savings_vs_oracle"] is None


def test_missing_cell_is_an_error() -> None:
    state = _state()
    state["cells"] = [c for c in state["cells"] if c["request_type"] != "factual_lookup" or c["model"] != "fast"]
    with pytest.raises(ValueError, match="factual_lookup"):
        live.checkpoint_metrics(state, _summaries())


def test_seeds_required_and_lookup() -> None:
    assert live.seeds_required(1.0, 10) == 10
    assert live.seeds_required(0.9, 10) == 9
    assert live.seeds_required(0.8, 10) == 8
    assert live.seeds_required(0.9, 2) == 2
    assert live.seeds_required(0.8, 3) == 3
    assert live.seeds_required(0.8, 5) == 4
    row = {"share": {"code_generation": {"smart": 0.9}}, "quality_kept": None, "flag": True}
    assert live.lookup(row, "share.code_generation.smart") == 0.9
    assert live.lookup(row, "share.code_generation.fast") is None
    assert live.lookup(row, "quality_kept") is None
    assert live.lookup(row, "flag") is None


def _point(sessions: int, code_smart: float, fact_fast: float, savings_vs_oracle: float, kept: float) -> dict[str, Any]:
    return {
        "sessions": sessions,
        "sessions_failed": 0,
        "share": {
            "code_generation": {"fast": 1 - code_smart, "smart": code_smart},
            "factual_lookup": {"fast": fact_fast, "smart": 1 - fact_fast},
        },
        "savings_ratio": 0.2,
        "savings_vs_oracle": savings_vs_oracle,
        "quality_kept": kept,
        "signals": {"sent_total": 300, "read": 300, "applied": 299, "turns_sent": 600, "turns_counted": 600,
                    "applied_ratio": 299 / 300},
    }  # fmt: skip


def test_aggregate_and_targets() -> None:
    rows = [
        {"shape": "negative", "seed": 0, "error": None, "checkpoints": [_point(300, 0.95, 0.85, 0.9, 0.98)]},
        {"shape": "negative", "seed": 1, "error": None, "checkpoints": [_point(300, 0.85, 0.75, 0.7, 0.97)]},
        {"shape": "negative", "seed": 2, "error": "RuntimeError: boom", "checkpoints": []},
    ]
    agg = live.aggregate(rows)
    entry = agg["negative"]["300"]
    assert entry["seeds"] == 2
    code = entry["share.code_generation.smart"]
    assert code["mean"] == pytest.approx(0.90)
    # Student t, 1 degree of freedom: 12.706 · stdev(0.95, 0.85) / √2 = 12.706 · 0.05
    assert code["ci95"] == pytest.approx([0.90 - 0.6353, 0.90 + 0.6353])
    assert entry["savings_ratio"] == {"mean": pytest.approx(0.2), "ci95": pytest.approx([0.2, 0.2]), "n": 2}
    assert entry["totals"] == {
        "sent_total": 600,
        "read": 600,
        "applied": 598,
        "turns_sent": 1200,
        "turns_counted": 1200,
        "failed_sessions": 0,
    }
    targets = {t["target"]: t for t in live.evaluate_targets(rows, agg, seeds=3)}
    assert set(targets) == {
        "code_generation → smart share ≥ 0.90",
        "factual_lookup → fast share ≥ 0.80",
        "savings ≥ 80% of the utility oracle's",
        "quality kept ≥ 97%",
    }  # only negative@300 was run
    code_t = targets["code_generation → smart share ≥ 0.90"]
    assert (code_t["seeds_meeting"], code_t["seeds_required"], code_t["seeds_measured"]) == (1, 3, 2)
    assert not code_t["passed"]
    fact_t = targets["factual_lookup → fast share ≥ 0.80"]
    assert (fact_t["seeds_meeting"], fact_t["seeds_required"], fact_t["passed"]) == (1, 3, False)
    savings_t = targets["savings ≥ 80% of the utility oracle's"]  # a mean target: (0.9 + 0.7) / 2 = 0.8
    assert savings_t["seeds_required"] is None
    assert savings_t["mean"] == pytest.approx(0.8)
    assert savings_t["seeds_meeting"] == 1
    assert savings_t["passed"]
    kept_t = targets["quality kept ≥ 97%"]
    assert kept_t["mean"] == pytest.approx(0.975)
    assert (kept_t["seeds_meeting"], kept_t["passed"]) == (2, True)


def test_targets_pass_when_enough_seeds_meet_them() -> None:
    base = {"shape": "seed", "error": None}
    rows = [
        {**base, "seed": s, "checkpoints": [_point(300, v, 0.6, 1.0, 1.0)]}
        for s, v in enumerate([0.81, 0.79, 0.95, 0.80, 0.9])
    ]
    targets = live.evaluate_targets(rows, live.aggregate(rows), seeds=5)
    code = next(t for t in targets if t["metric"] == "share.code_generation.smart")
    # 4 of 5 seeds at ≥ 0.80 (0.80 itself counts); ⌈0.8·5⌉ = 4 needed
    assert (code["seeds_meeting"], code["seeds_required"], code["passed"]) == (4, 4, True)


def test_trim_summary_keeps_the_report_fields() -> None:
    summary = copy.deepcopy(_summaries()[0])
    summary.update(
        rounds_requested=10,
        duration_s=1.5,
        learning={},
        classification={},
        quality={"expected": 0.8, "oracle_best": 0.9, "kept": 0.8889},
        spend={"actual_usd": 0.01},
        errors={},
        notes=["state read with AWS credentials from command line, region us-east-1", "something else"],
        state={"big": "block"},
    )
    summary["signals"].update(unread=0, unexpected=0, by_cell={})
    out = live.trim_summary(summary)
    assert "state" not in out
    assert out["notes"] == ["something else"]
    assert out["signals"] == {
        "sent": {"satisfaction": 7, "neutral": 3, "negative": 0},
        "read_by_router": {"satisfaction": 7, "neutral": 2},
        "unread": 0,
        "unexpected": 0,
    }
