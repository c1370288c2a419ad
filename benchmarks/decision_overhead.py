"""Decision overhead: classify + build arms + pick (propensity included) for a router of 10 models.

    .venv/bin/python -m benchmarks.decision_overhead [--decisions 20000] [--out PATH]

Times, in process and after a warm-up, exactly what the chat path runs between reading the
cells and calling the model: `classify(messages, request_types)`, the capability filter
(`requirements_of`, which also estimates the prompt's tokens, and `CapabilityIndex.split`;
alone in `benchmarks/capability_filter.py`), `policy.build_arms` (cold-start priors, decayed
evidence, expected cost of this request) and `bandit.pick_model` with the router's knobs
(exploration floor, tempering, exact propensity).
The messages are the five-message demo conversations of `tools/corpus.py`.

Two router states: `learned` (cells filled by 4,000 simulated rated turns of the router itself
against a random quality oracle) and `cold` (no cells: every arm is its prior, all overlap, the
propensity integral's worst case). Absolute times on a shared 2-core machine are noisy, so the
same run also times two baselines on the same arms: one `random.betavariate` draw per model
plus an argmax (plain Thompson sampling, no propensity), and the classifier alone.

Writes benchmarks/results/decision_overhead.json (p50/p95/p99/mean in µs, and ratios).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router_core.bandit import Arm
from router_core.capabilities import CapabilityIndex, requirements_of
from router_core.classifier import classify
from router_core.config import GatewayConfig, parse_config
from router_core.policy import build_arms, decide, estimate_prompt_tokens
from router_core.store import CellCounters

import benchmarks  # noqa: F401  (puts the layer on the import path)
from benchmarks._meta import run_meta
from tools.corpus import PROMPTS, opening_messages

RESULTS = Path(__file__).resolve().parent / "results" / "decision_overhead.json"
ROUTER = "ten-model-router"
GOAL_P99_US = 1000.0
# name: (tier, input $/Mtok, output $/Mtok, strengths): a plausible 10-model catalogue
CATALOGUE: dict[str, tuple[int, float, float, tuple[str, ...]]] = {
    "nano": (1, 0.05, 0.20, ()),
    "mini": (1, 0.10, 0.40, ("factual_lookup",)),
    "fast": (2, 0.15, 0.60, ("writing", "general")),
    "haiku": (2, 0.25, 1.25, ("factual_lookup",)),
    "flash": (2, 0.30, 2.50, ("code_understanding",)),
    "mid": (2, 0.40, 1.60, ()),
    "coder": (3, 1.25, 10.0, ("code_generation", "code_understanding")),
    "smart": (3, 2.50, 10.0, ("code_generation", "technical_design", "analytical_reasoning")),
    "sonnet": (3, 3.00, 15.0, ("writing", "technical_design")),
    "reasoner": (4, 15.0, 60.0, ("analytical_reasoning", "technical_design")),
}


def ten_model_config() -> GatewayConfig:
    """A gateway with one router over the 10 models of `CATALOGUE` (simulated provider)."""
    lines = ["providers:", "  sim: {type: simulated}", "models:"]
    for name, (tier, price_in, price_out, strengths) in CATALOGUE.items():
        lines.append(
            f"  {name}: {{provider: sim, upstream_model: {name}, input_usd_per_mtok: {price_in}, "
            f"output_usd_per_mtok: {price_out}, quality_tier: {tier}, strengths: [{', '.join(strengths)}]}}"
        )
    lines += ["routers:", f"  {ROUTER}:", f"    models: [{', '.join(CATALOGUE)}]", "    default_model: fast"]
    return parse_config("\n".join(lines), "decision_overhead")


def conversations(count: int, seed: int = 1) -> list[list[dict[str, Any]]]:
    """Demo conversations cycling through every request type of the corpus."""
    rng = random.Random(seed)
    prompts = [p for group in PROMPTS.values() for p in group]
    return [opening_messages(prompts[i % len(prompts)], rng) for i in range(count)]


def learned_cells(config: GatewayConfig, turns: int, seed: int = 2) -> dict[str, dict[str, CellCounters]]:
    """Cells after `turns` rated turns routed by the router itself against a random oracle."""
    router = config.routers[ROUTER]
    rng = random.Random(seed)
    quality = {
        (t, m): min(
            0.97, 0.35 + 0.12 * CATALOGUE[m][0] + (0.1 if t in CATALOGUE[m][3] else 0.0) + rng.uniform(-0.1, 0.1)
        )
        for t in router.request_types
        for m in router.models
    }
    cells: dict[str, dict[str, CellCounters]] = {t: {} for t in router.request_types}
    convs = conversations(64, seed)
    for i in range(turns):
        messages = convs[i % len(convs)]
        request_type = router.request_types[i % len(router.request_types)]
        arms = build_arms(config, router, request_type, cells[request_type], estimate_prompt_tokens(messages))
        decision = decide(router, arms, rng)
        reward = 1.0 if rng.random() < quality[(request_type, decision.model)] else 0.0
        old = cells[request_type].get(decision.model) or CellCounters(ROUTER, request_type, decision.model)
        cells[request_type][decision.model] = CellCounters(
            ROUTER,
            request_type,
            decision.model,
            alpha_evidence=old.alpha_evidence + reward,
            beta_evidence=old.beta_evidence + 1.0 - reward,
            picks=old.picks + 1,
            feedback=old.feedback + 1,
            input_tokens=old.input_tokens + 300,
            output_tokens=old.output_tokens + 350,
        )
    return cells


def timed(fn: Callable[[int], object], count: int, warmup: int) -> list[float]:
    """Per-call wall time of fn(i) in microseconds, after `warmup` untimed calls."""
    for i in range(warmup):
        fn(i)
    gc.collect()
    out = [0.0] * count
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        fn(i)
        out[i] = (clock() - start) / 1000.0
    return out


def stats(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of samples (µs)."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "p99": round(cuts[98], 2),
        "mean": round(statistics.fmean(samples), 2),
        "max": round(max(samples), 2),
        "n": len(samples),
    }


def measure(
    config: GatewayConfig, cells: dict[str, dict[str, CellCounters]], count: int, warmup: int
) -> dict[str, Any]:
    """Time the full decision, pick_model alone and the baselines on one router state."""
    router = config.routers[ROUTER]
    convs = conversations(256)
    rng = random.Random(3)
    types = [classify(m, router.request_types).request_type for m in convs]
    arms_by_conv = [
        build_arms(config, router, t, cells[t], estimate_prompt_tokens(m)) for t, m in zip(types, convs, strict=True)
    ]

    index = CapabilityIndex(config)

    def decision(i: int) -> object:
        messages = convs[i % len(convs)]
        request_type = classify(messages, router.request_types).request_type
        need = requirements_of(messages, {"temperature": 0.7})
        able, _ = index.split(router.models, need)
        arms = build_arms(config, router, request_type, cells[request_type], need.prompt_tokens, models=able)
        return decide(router, arms, rng)

    def pick_only(i: int) -> object:
        return decide(router, arms_by_conv[i % len(arms_by_conv)], rng)

    def plain_ts(i: int) -> object:
        arms: list[Arm] = arms_by_conv[i % len(arms_by_conv)]
        qw, cw = router.weights.quality, router.weights.cost
        return max(arms, key=lambda a: qw * rng.betavariate(a.posterior.alpha, a.posterior.beta) - cw * a.cost_units)

    def classify_only(i: int) -> object:
        return classify(convs[i % len(convs)], router.request_types)

    out = {
        "decision": stats(timed(decision, count, warmup)),
        "pick_model": stats(timed(pick_only, count, warmup)),
        "baseline_plain_ts_argmax": stats(timed(plain_ts, count, warmup)),
        "classify": stats(timed(classify_only, count, warmup)),
    }
    base = out["baseline_plain_ts_argmax"]
    out["ratio_decision_to_plain_ts"] = {k: round(out["decision"][k] / base[k], 2) for k in ("p50", "p95", "p99")}
    out["ratio_pick_model_to_plain_ts"] = {k: round(out["pick_model"][k] / base[k], 2) for k in ("p50", "p95", "p99")}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="timed decisions per measurement (≥ 100)")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.decisions < 100:
        parser.error("--decisions must be >= 100")
    config = ten_model_config()
    cold: dict[str, dict[str, CellCounters]] = {t: {} for t in config.routers[ROUTER].request_types}
    states = {"learned": learned_cells(config, 4_000), "cold": cold}
    started = time.perf_counter()
    results = {name: measure(config, cells, args.decisions, args.warmup) for name, cells in states.items()}
    meets_goal = {name: r["decision"]["p99"] <= GOAL_P99_US for name, r in results.items()}
    payload = {
        "router_models": len(CATALOGUE),
        "results_us": results,
        "goal": {"decision_p99_us": GOAL_P99_US},
        "meets_goal": meets_goal,
        "meta": run_meta(started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"decision overhead, {len(CATALOGUE)} models, {args.decisions:,} decisions each (µs)")
    for col in ("state", "what", "p50", "p95", "p99", "mean", "p99 / plain TS p99"):
        table.add_column(col, justify="right" if col not in ("state", "what") else "left")
    for name, r in results.items():
        base = r["baseline_plain_ts_argmax"]["p99"]
        for what in ("decision", "pick_model", "classify", "baseline_plain_ts_argmax"):
            s = r[what]
            table.add_row(
                name,
                what,
                f"{s['p50']:.1f}",
                f"{s['p95']:.1f}",
                f"{s['p99']:.1f}",
                f"{s['mean']:.1f}",
                f"{s['p99'] / base:.1f}x",
            )
        table.add_section()
    Console().print(table)
    print(
        f"goal: decision p99 <= {GOAL_P99_US:.0f} µs: "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in meets_goal.items())
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
