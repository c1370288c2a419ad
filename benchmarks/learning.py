"""Learning benchmark: how fast and how well the router learns who to call, on replayed feedback.

    .venv/bin/python -m benchmarks.learning [--seeds 10] [--quick] [--out PATH] [--processes 2]

Datasets
  mmlu                14,042 MMLU prompts in 57 subjects (= request types) with the correctness
                      of Mixtral-8x7B (weak, declared quality tier 2) and GPT-4-1106 (strong,
                      tier 3), from lm-sys/RouteLLM (Apache-2.0, benchmarks/data/). Cost = share
                      of strong calls, as in RouteLLM's evaluation.
  mmlu_swapped_tiers  the same prompts, labels, order and noise with the two tiers swapped (weak
                      declared 3, strong 2): what a wrong `quality_tier` costs. Clean scenario,
                      router and plain_ts only.
  The demo scenario (the shipped router, its request types and prices) is not replayed here: it
  is measured live, through the classifier, the signal gate, SQS and real token counts, by
  `make bench-live` (benchmarks/live.py).
Scenarios
  clean, sparse_noisy (20% of turns rated, 15% of ratings flipped), drift_regression (half-way,
  the strong model silently answers like the weak one on the 10 busiest subjects where it was
  the best choice), drift_price_cut (half-way, the strong model gets 10x cheaper).
Policies
  always_strong, always_weak, random, plain_ts (Beta(1,1) Thompson sampling), router (the
  production path with the default RouterConfig), and type_oracle (reference only: it reads the
  labels, the best any per-type policy can do).
Metrics (per seed; mean and 95% CI over seeds; definitions in benchmarks/_replay.py)
  apgr, cpt50 (clean and sparse_noisy: the price of a strong call is swept), regret_1000 and
  regret_final (expected regret against the best model per type with hindsight, strong call
  priced 0.1 accuracy units), recovery_requests (drift: requests per affected type until the
  200-request moving average of regret stays below 0.01).
Checks (pass/fail, printed and under "checks" in the JSON)
  mmlu_no_regression: clean APGR >= 0.62 and final regret <= plain_ts's in the same run + 5%;
  swapped_tiers_regret: with swapped tiers, final regret <= plain_ts's in the same run.

Time model: request i arrives at hour i / --requests-per-hour (default: the MMLU pass spans one
week), which is what the router's time-based forgetting sees. Writes benchmarks/results/learning.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._replay import (
    DATASETS,
    POLICIES,
    REGRET_PRICE,
    SCENARIOS,
    SWEEPS_PRICE,
    Job,
    RunResult,
    apgr,
    cpt,
    demo_router_config,
    mmlu_pool,
    run_job,
    summarize,
)

RESULTS = Path(__file__).resolve().parent / "results" / "learning.json"
PRICES = (0.0, 0.04, 0.07, 0.1, 0.13, 0.17, 0.22, 0.3, 0.42, 0.6)
"""Price of one strong call, accuracy units: the cost-weight sweep (0.1 is also the regret price)."""
RANDOM_P = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
QUICK_PRICES = (0.0, 0.06, 0.1, 0.15, 0.25, 0.45)
QUICK_RANDOM_P = (0.0, 0.25, 0.5, 0.75, 1.0)
WEEK_OF_MMLU = 14_042 / 168.0
TARGETS = {
    "mmlu.clean.apgr": ">= 0.66",
    "mmlu.clean.cpt50": "<= 30 (percent)",
    "mmlu.sparse_noisy.apgr": ">= 0.63",
    "mmlu.clean.regret_1000": "<= 20",
    "mmlu.clean.regret_final": "<= 100",
    "drift.recovery_requests": "<= 150 per affected type",
    "mmlu.clean.no_regression": "apgr >= 0.62 and regret_final <= plain_ts regret_final (same run) + 5%",
    "mmlu_swapped_tiers.clean.regret_final": "<= plain_ts regret_final (same run)",
}
NO_REGRESSION_APGR = 0.62
NO_REGRESSION_REGRET_MARGIN = 0.05
SWAPPED_TIERS_SCENARIOS = ("clean",)
SWAPPED_TIERS_POLICIES = ("plain_ts", "router")
"""Tiers only reach the router's priors: plain_ts ignores them (its row equals the mmlu one)."""
REFERENCE = {
    "mmlu": {
        "weak_accuracy": 0.6808,
        "strong_accuracy": 0.8058,
        "per_subject_hindsight_apgr": 0.708,
        "routellm_best_reported_apgr": 0.60,
        "plain_ts_known_apgr": 0.623,
        "plain_ts_known_regret_final": 175,
    }
}


def build_jobs(args: argparse.Namespace) -> list[Job]:
    """Every (dataset, scenario, policy, seed) to replay; the expensive ones first."""
    prices: tuple[float, ...] = QUICK_PRICES if args.quick else PRICES
    random_p: tuple[float, ...] = QUICK_RANDOM_P if args.quick else RANDOM_P
    jobs = []
    for dataset in DATASETS:
        swapped = dataset == "mmlu_swapped_tiers"
        for scenario in SWAPPED_TIERS_SCENARIOS if swapped else SCENARIOS:
            drift = SCENARIOS[scenario].drift is not None
            for policy in SWAPPED_TIERS_POLICIES if swapped else POLICIES:
                knobs: tuple[float, ...]
                if policy in SWEEPS_PRICE:
                    knobs = (REGRET_PRICE,) if drift else prices
                elif policy == "random":
                    knobs = (0.5,) if drift else random_p
                else:
                    knobs = (REGRET_PRICE,)
                for seed in range(args.seeds):
                    jobs.append(
                        Job(
                            dataset=dataset,
                            scenario=scenario,
                            policy=policy,
                            seed=seed,
                            knobs=tuple(knobs),
                            requests_per_hour=args.requests_per_hour,
                            mmlu_stride=args.mmlu_stride,
                        )
                    )
    cost = {"router": 20, "plain_ts": 2, "type_oracle": 1, "random": 1, "always_strong": 0.2, "always_weak": 0.2}
    jobs.sort(key=lambda j: -(cost[j.policy] * len(j.knobs)))
    return jobs


def _runs(raw: Sequence[dict[str, Any]]) -> list[RunResult]:
    return [
        RunResult(
            knob=r["knob"],
            strong_share=r["strong_share"],
            accuracy=r["accuracy"],
            weak_accuracy=r["weak_accuracy"],
            strong_accuracy=r["strong_accuracy"],
        )
        for r in raw
    ]


def _at(raw: Sequence[dict[str, Any]], knob: float) -> dict[str, Any]:
    return min(raw, key=lambda r: abs(r["knob"] - knob))


def aggregate(done: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per (dataset, scenario, policy): per-seed metrics → mean, 95% CI and the raw curve."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in done:
        job: Job = item["job"]
        grouped[(job.dataset, job.scenario, job.policy)].append(item)
    out: dict[str, Any] = {}
    for (dataset, scenario, policy), items in sorted(grouped.items()):
        items.sort(key=lambda it: it["job"].seed)
        drift = SCENARIOS[scenario].drift is not None
        sweep = not drift and policy in (*SWEEPS_PRICE, "random")
        regret_knob = 0.5 if policy == "random" else REGRET_PRICE
        per_seed: dict[str, list[float]] = defaultdict(list)
        recoveries: list[int] = []
        recovered: list[bool] = []
        for it in items:
            runs = it["runs"]
            if sweep:
                per_seed["apgr"].append(apgr(_runs(runs)))
                per_seed["cpt50"].append(100.0 * cpt(_runs(runs), 0.5))  # percent of strong calls
            at = _at(runs, regret_knob)
            if at["regret_1000"] is not None:
                per_seed["regret_1000"].append(at["regret_1000"])
            per_seed["regret_final"].append(at["regret_final"])
            if at["mean_propensity"] is not None:
                per_seed["mean_propensity"].append(at["mean_propensity"])
            if drift:
                seed_rec = [r for r, _ in at["recovery"]]
                recoveries.extend(seed_rec)
                recovered.extend(ok for _, ok in at["recovery"])
                if seed_rec:
                    per_seed["recovery_requests"].append(statistics.fmean(seed_rec))
                per_seed["post_change_regret_affected"].append(at["post_change_regret_affected"])
        entry: dict[str, Any] = {"regret_final_per_seed": per_seed["regret_final"]}
        for key in ("apgr", "cpt50", "regret_1000", "regret_final", "recovery_requests", "post_change_regret_affected"):
            if per_seed.get(key):
                s = summarize(per_seed[key])
                entry[key] = s["mean"]
                entry[f"{key}_ci95"] = s["ci95"]
        if drift and recoveries:
            entry["recovery_requests_median"] = statistics.median(recoveries)
            entry["recovered_share"] = sum(recovered) / len(recovered)
            entry["affected_types_per_seed"] = len(recoveries) / len(items)
        if per_seed.get("mean_propensity"):
            entry["mean_propensity_of_picks"] = statistics.fmean(per_seed["mean_propensity"])
        if sweep:
            curve: dict[float, list[tuple[float, float]]] = defaultdict(list)
            for it in items:
                for r in it["runs"]:
                    curve[r["knob"]].append((r["strong_share"], r["accuracy"]))
            entry["curve"] = [
                {
                    "knob": k,
                    "strong_share": statistics.fmean(p[0] for p in v),
                    "accuracy": statistics.fmean(p[1] for p in v),
                }
                for k, v in sorted(curve.items())
            ]
        entry["seeds"] = len(items)
        out.setdefault(dataset, {}).setdefault(scenario, {})[policy] = entry
    return out


def _check_line(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  {text}"


def _paired(router: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Per-seed router − plain_ts final regret (both replay the same order and feedback per seed)."""
    diffs = [r - b for r, b in zip(router["regret_final_per_seed"], baseline["regret_final_per_seed"], strict=True)]
    return summarize(diffs)


def target_checks(results: dict[str, Any], requests: int) -> list[dict[str, Any]]:
    """The issue's pass/fail targets, each against plain_ts measured in the same run."""
    checks: list[dict[str, Any]] = []
    clean = results.get("mmlu", {}).get("clean", {})
    if "router" in clean and "plain_ts" in clean:
        router, plain = clean["router"], clean["plain_ts"]
        bound = plain["regret_final"] * (1.0 + NO_REGRESSION_REGRET_MARGIN)
        apgr_ok = router["apgr"] >= NO_REGRESSION_APGR
        regret_ok = router["regret_final"] <= bound
        checks.append(
            {
                "name": "mmlu_no_regression",
                "target": TARGETS["mmlu.clean.no_regression"],
                "apgr": router["apgr"],
                "apgr_passed": apgr_ok,
                "regret_final": router["regret_final"],
                "plain_ts_regret_final": plain["regret_final"],
                "regret_bound": bound,
                "regret_passed": regret_ok,
                "router_minus_plain_ts_regret": _paired(router, plain),
                "requests": requests,
                "passed": apgr_ok and regret_ok,
                "line": _check_line(
                    apgr_ok and regret_ok,
                    f"MMLU no regression: APGR {router['apgr']:.3f} (≥ {NO_REGRESSION_APGR}: "
                    f"{'yes' if apgr_ok else 'no'}); regret at {requests:,} {router['regret_final']:.1f} "
                    f"(≤ plain TS {plain['regret_final']:.1f} + 5% = {bound:.1f}: {'yes' if regret_ok else 'no'})",
                ),
            }
        )
    swapped = results.get("mmlu_swapped_tiers", {}).get("clean", {})
    if "router" in swapped and "plain_ts" in swapped:
        router, plain = swapped["router"], swapped["plain_ts"]
        ok = router["regret_final"] <= plain["regret_final"]
        checks.append(
            {
                "name": "swapped_tiers_regret",
                "target": TARGETS["mmlu_swapped_tiers.clean.regret_final"],
                "apgr": router.get("apgr"),
                "regret_final": router["regret_final"],
                "plain_ts_regret_final": plain["regret_final"],
                "ratio_to_plain_ts": router["regret_final"] / plain["regret_final"],
                "router_minus_plain_ts_regret": _paired(router, plain),
                "requests": requests,
                "passed": ok,
                "line": _check_line(
                    ok,
                    f"MMLU, tiers swapped: regret at {requests:,} {router['regret_final']:.1f} "
                    f"(≤ plain TS {plain['regret_final']:.1f}: {'yes' if ok else 'no'}; "
                    f"{router['regret_final'] / plain['regret_final']:.2f}×)",
                ),
            }
        )
    return checks


def print_table(results: dict[str, Any], checks: Sequence[dict[str, Any]]) -> None:
    """One table per dataset: policies × scenarios (rich), then the pass/fail checks."""
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def fmt(entry: dict[str, Any], key: str, digits: int = 3, scale: float = 1.0) -> str:
        if key not in entry:
            return "–"
        lo, hi = entry[f"{key}_ci95"]
        return f"{entry[key] * scale:.{digits}f} ±{(hi - lo) / 2 * scale:.{digits}f}"

    for dataset, scenarios in results.items():
        table = Table(title=f"learning: {dataset}", show_lines=False)
        table.add_column("scenario")
        table.add_column("policy")
        for col in ("APGR", "CPT50 %", "regret@1000", "regret end", "recovery/type", "recovered"):
            table.add_column(col, justify="right")
        for scenario, policies in scenarios.items():
            if scenario not in SCENARIOS:
                continue
            for policy in POLICIES:
                e = policies.get(policy)
                if e is None:
                    continue
                table.add_row(
                    scenario,
                    policy,
                    fmt(e, "apgr"),
                    fmt(e, "cpt50", 1, 1.0),
                    fmt(e, "regret_1000", 1),
                    fmt(e, "regret_final", 1),
                    fmt(e, "recovery_requests", 0),
                    f"{e['recovered_share']:.0%}" if "recovered_share" in e else "–",
                )
            table.add_section()
        console.print(table)
    for check in checks:
        console.print(check["line"], markup=False, highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="shuffle orders per scenario (default 10; quick 3)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: few seeds, a third of MMLU, short sweep")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--requests-per-hour", type=float, default=WEEK_OF_MMLU)
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 10)
    if args.seeds < 1 or args.processes < 1:
        parser.error("--seeds and --processes must be >= 1")
    args.mmlu_stride = 3 if args.quick else 1
    started = time.perf_counter()
    jobs = build_jobs(args)
    mmlu_pool(args.mmlu_stride)  # load once before forking
    if args.processes == 1:
        done = [run_job(j) for j in jobs]
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        with ctx.Pool(args.processes) as workers:
            done = list(workers.imap_unordered(run_job, jobs))
    results = aggregate(done)
    checks = target_checks(results, len(mmlu_pool(args.mmlu_stride)))
    elapsed = time.perf_counter() - started
    router = demo_router_config()
    payload = {
        **results,
        "checks": checks,
        "meta": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "seeds": args.seeds,
            "processes": args.processes,
            "elapsed_seconds": round(elapsed, 1),
            "python": platform.python_version(),
            "requests_per_hour": args.requests_per_hour,
            "prices_swept": list(QUICK_PRICES if args.quick else PRICES),
            "regret_price": REGRET_PRICE,
            "mmlu_requests": len(mmlu_pool(args.mmlu_stride)),
            "router_knobs": {
                "prior_mass": router.prior_mass,
                "exploration_floor": router.exploration_floor,
                "forgetting_half_life_hours": router.forgetting_half_life_hours,
                "posterior_temper": router.posterior_temper,
            },
            "targets": TARGETS,
            "reference": REFERENCE,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print_table(results, checks)
    print(f"wrote {args.out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
