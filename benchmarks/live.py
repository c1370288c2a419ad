"""Live learning benchmark: the whole system on 127.0.0.1, driven by `tools.traffic` as a user would.

    .venv/bin/python -m benchmarks.live [--seeds 10] [--shapes negative,seed] [--sessions 100,300]
                                        [--quick] [--out PATH]

For every (shape, seed) it starts a fresh local stack (`python -m tools.local_stack --no-traffic
--quiet`, its own temporary state directory, free ports, `--seed SEED`), runs
`python -m tools.traffic` against it as a subprocess (HTTP, the classifier, the signal gate,
follow-up signals through SQS and the feedback function; the seed's quality oracle;
`--concurrency 1 --rate 0`), waits until the feedback count stops moving, reads the IAM-signed
`GET /v1/state`, and repeats up to each checkpoint of `--sessions` (cumulative: 100, then 200
more → the 300-session point). The stack is stopped after every run.

Traffic shapes
  seed      the seed's traffic: success → a satisfied follow-up, failure → a neutral one (read as
            the router's weak `neutral` observation).
  negative  `--negative-signals`: failure → a complaint (a negative signal).

Seeds. Traffic run k of seed S uses `--seed S + k·100000`: traffic derives each session from
`session_rng(seed, index)` with the index restarting at 0 in every run, so reusing S would
replay the first sessions. Both shapes see the same sessions for a seed (paired).

The stacks run the shipped config unchanged (`router_core/routers.yaml`), as `make run` does.
Implicit signals are not rate-limited (the per-key limit applies to explicit feedback only), so
compressing days of sessions into seconds loses none: the signal counts check it.

Metrics, per run at each checkpoint. Notation: T the traffic's request types, M the router's
models (from the state), q(t, m) the traffic oracle's P(success) (the "true quality"), and from
the state at that checkpoint: s(t, m) the cell's `pick_share`, c(t, m) its `expected_cost_usd`,
n(t) = Σ_m routed(t, m) the turns of type t routed so far (first turns and follow-ups), w_q, w_c
the router's weights and R its `cost_reference_usd`. picks(t, m) = first turns of labelled type
t that the router sent to m (traffic's `picks`, all traffic runs so far); N = Σ picks.

  utility                 U(t, m) = w_q·q(t, m) − w_c·c(t, m)/R            (the router's own score)
  utility oracle          o(t) = argmax_m U(t, m); best-quality model b(t) = argmax_m q(t, m);
                          most expensive e(t) = argmax_m c(t, m) (ties: the state's model order)
  share.t.m               s(t, m)
  savings_ratio           1 − actual_usd/baseline_usd of the state's `spend` (every routed turn;
                          the router prices each turn's tokens on its most expensive model too)
  oracle_savings_ratio    Σ_t n(t)·(c(t, e(t)) − c(t, o(t))) / Σ_t n(t)·c(t, e(t)), over every
                          type with routed turns (types the oracle does not name: its default quality)
  savings_vs_oracle       savings_ratio / oracle_savings_ratio (None when the oracle saves nothing)
  current_savings_ratio   1 − Σ_t n(t)·Σ_m s(t, m)·c(t, m) / Σ_t n(t)·c(t, e(t)): what the shares
                          the router has now would save on the same mix; current_savings_vs_oracle
                          = current_savings_ratio / oracle_savings_ratio
  quality_kept            Σ_{t,m} picks(t, m)·q(t, m) / Σ_t picks(t)·q(t, b(t)) (equals traffic's
                          `quality.kept` over all runs so far, unrounded)
  oracle_quality_kept     the same for the utility oracle: Σ_t picks(t)·q(t, o(t)) / Σ_t picks(t)·q(t, b(t))
  current_quality_kept    Σ_t picks(t)·Σ_m s(t, m)·q(t, m) / Σ_t picks(t)·q(t, b(t))
  regret_per_session      Σ_{t,m} picks(t, m)·(U(t, o(t)) − U(t, m)) / N   (utility units, all picks so far)
  current_regret_per_session  mean over t ∈ T of Σ_m s(t, m)·(U(t, o(t)) − U(t, m)) (traffic's
                          `utility_regret_per_session`)
  signals                 follow-ups sent per kind (satisfaction, neutral, negative; one per session),
                          read = implicit signals the router reported reading in its answers, per
                          kind (a neutral follow-up is read as the router's weak `neutral` observation
                          when its `neutral_follow_up_reward` is set), applied = the state's feedback
                          count (a fresh stack starts at 0). read_ratio = read / sent; applied_ratio
                          = applied / read (what the queue, the feedback function and its rate limit
                          lost). Turns sent (traffic) vs counted (state).

Aggregate, per shape and checkpoint: mean and 95% confidence interval (Student t over seeds) of
each metric, and the number of seeds meeting each target. A share target passes when at least
⌈fraction·seeds⌉ seeds meet it; the savings and quality targets pass when the mean meets them.

Writes benchmarks/results/live.json (settings, every per-seed row, the aggregate, the targets);
prints progress on stderr and the table on stdout. Everything runs on 127.0.0.1 and stops itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from benchmarks._replay import summarize
from tools.local_stack.banner import StackInfo
from tools.local_stack.launcher import REPO_ROOT, StackProcess, free_port
from tools.traffic import DEFAULT_QUALITY, Oracle

RESULTS = REPO_ROOT / "benchmarks" / "results" / "live.json"
ROUTER = "smart-cheap-router"
SHAPES = ("negative", "seed")
SEED_STRIDE = 100_000
"""Traffic run k of seed S uses seed S + k·SEED_STRIDE (no session replays an earlier run's)."""
RUN_TIMEOUT_S = 600.0
SETTLE_S = 30.0
"""Longest wait for queued signals after a traffic run (traffic's --settle, then our own poll)."""
STABLE_S = 2.0
"""The feedback count is settled when it reached what the router read, or did not move this long."""
SHIPPED_CONFIG = REPO_ROOT / "layers" / "router_core" / "router_core" / "routers.yaml"
SIGNAL_KINDS = ("satisfaction", "neutral", "negative")


@dataclass(frozen=True)
class Target:
    """A goal on one metric at one (shape, checkpoint)."""

    shape: str
    sessions: int
    metric: str
    """Dotted path in a checkpoint row, e.g. `share.code_generation.smart`."""
    threshold: float
    seeds_fraction: float | None
    """Share targets: this fraction of the seeds must meet it; None: the mean over seeds must."""
    label: str

    def met_by(self, value: float | None) -> bool:
        return value is not None and value >= self.threshold - 1e-12


TARGETS: tuple[Target, ...] = (
    Target("negative", 300, "share.code_generation.smart", 0.90, 1.0, "code_generation → smart share ≥ 0.90"),
    Target("negative", 300, "share.factual_lookup.fast", 0.80, 0.9, "factual_lookup → fast share ≥ 0.80"),
    Target("negative", 300, "savings_vs_oracle", 0.80, None, "savings ≥ 80% of the utility oracle's"),
    Target("negative", 300, "quality_kept", 0.97, None, "quality kept ≥ 97%"),
    Target("negative", 100, "share.code_generation.smart", 0.90, 0.9, "code_generation → smart share ≥ 0.90"),
    Target("negative", 100, "share.factual_lookup.fast", 0.60, 0.8, "factual_lookup → fast share ≥ 0.60"),
    Target("seed", 300, "share.code_generation.smart", 0.80, 0.8, "code_generation → smart share ≥ 0.80"),
    Target("seed", 300, "share.factual_lookup.fast", 0.50, 0.8, "factual_lookup → fast share ≥ 0.50"),
)
SUMMARY_METRICS = (
    "savings_ratio",
    "oracle_savings_ratio",
    "savings_vs_oracle",
    "current_savings_ratio",
    "current_savings_vs_oracle",
    "quality_kept",
    "oracle_quality_kept",
    "current_quality_kept",
    "regret_per_session",
    "current_regret_per_session",
    "signals.applied_ratio",
)


# --------------------------------------------------------------------------- pure metrics


def seeds_required(fraction: float, seeds: int) -> int:
    """Seeds out of `seeds` that must meet a share target: ⌈fraction·seeds⌉ (9/10 of 2 seeds → 2)."""
    return math.ceil(fraction * seeds - 1e-9)


def lookup(row: Mapping[str, Any], path: str) -> float | None:
    """The number at dotted `path` in `row` (`share.code_generation.smart`), None when absent."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def oracle_from(summary: Mapping[str, Any]) -> Oracle:
    """The quality oracle a traffic run used (its `--json` summary names the table)."""
    return Oracle({t: dict(row) for t, row in summary["oracle"].items()}, DEFAULT_QUALITY)


def _argmax(models: Sequence[str], key: Mapping[str, float]) -> str:
    """The model with the highest value; ties go to the first in `models` (the state's order)."""
    return max(models, key=lambda m: (key[m], -models.index(m)))


def checkpoint_metrics(state: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every metric of one run at one checkpoint (see the module doc for the formulas).

    `state` is the router's row of `GET /v1/state` at the checkpoint; `summaries` are the `--json`
    summaries of every traffic run so far against this stack (a fresh one).
    """
    if not summaries:
        raise ValueError("no traffic summary")
    oracle = oracle_from(summaries[0])
    types = [str(t) for t in summaries[0]["types"]]
    models = [str(m["name"]) for m in state["models"]]
    w_q, w_c = float(state["weights"]["quality"]), float(state["weights"]["cost"])
    reference = float(state["cost_reference_usd"])
    cells: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for cell in state["cells"]:
        cells[str(cell["request_type"])][str(cell["model"])] = cell

    def utility(t: str, m: str) -> float:
        return w_q * oracle.quality(t, m) - w_c * float(cells[t][m]["expected_cost_usd"]) / reference

    def row_of(t: str) -> dict[str, Mapping[str, Any]]:
        row = cells.get(t, {})
        missing = [m for m in models if m not in row]
        if missing:
            raise ValueError(f"the state has no cell for {t} × {missing}")
        return row

    # The utility oracle and the cost baseline over every type the router routed turns of.
    routed = {t: sum(int(c.get("routed", 0)) for c in row.values()) for t, row in cells.items()}
    routed_types = [t for t, n in routed.items() if n > 0]
    base_usd = oracle_usd = current_usd = 0.0
    for t in routed_types:
        cost = {m: float(row_of(t)[m]["expected_cost_usd"]) for m in models}
        best_u = _argmax(models, {m: utility(t, m) for m in models})
        share = {m: float(cells[t][m].get("pick_share", 0.0)) for m in models}
        base_usd += routed[t] * cost[_argmax(models, cost)]
        oracle_usd += routed[t] * cost[best_u]
        current_usd += routed[t] * sum(share[m] * cost[m] for m in models)
    oracle_savings = 1.0 - oracle_usd / base_usd if base_usd > 0 else None
    current_savings = 1.0 - current_usd / base_usd if base_usd > 0 else None
    spend = state.get("spend") or {}
    actual, baseline = float(spend.get("actual_usd", 0.0)), float(spend.get("baseline_usd", 0.0))
    savings = 1.0 - actual / baseline if baseline > 0 else None

    # Per traffic type: shares, the oracle's picks, quality and regret of the first turns.
    picks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for summary in summaries:
        for t, row in summary["picks"].items():
            for m, n in row.items():
                picks[t][m] += int(n)
    share_out: dict[str, dict[str, float]] = {}
    oracle_model: dict[str, str] = {}
    best_quality_model: dict[str, str] = {}
    got_q = oracle_q = best_q = current_q = regret = 0.0
    current_regret: list[float] = []
    sessions = 0
    for t in types:
        row = row_of(t)
        share = {m: float(row[m].get("pick_share", 0.0)) for m in models}
        u = {m: utility(t, m) for m in models}
        q = {m: oracle.quality(t, m) for m in models}
        o, b = _argmax(models, u), _argmax(models, q)
        share_out[t], oracle_model[t], best_quality_model[t] = share, o, b
        current_regret.append(sum(share[m] * (u[o] - u[m]) for m in models))
        n_t = sum(picks[t].values())
        sessions += n_t
        for m, n in picks[t].items():
            got_q += n * oracle.quality(t, m)
            regret += n * (u[o] - u[m])
        best_q += n_t * q[b]
        oracle_q += n_t * q[o]
        current_q += n_t * sum(share[m] * q[m] for m in models)

    sent = {k: sum(int(s["signals"]["sent"].get(k, 0)) for s in summaries) for k in SIGNAL_KINDS}
    read_by_kind: dict[str, int] = defaultdict(int)
    for s in summaries:
        for kind, n in s["signals"]["read_by_router"].items():
            read_by_kind[str(kind)] += int(n)
    read = sum(read_by_kind.values())
    counts = state.get("counts") or {}
    applied = int(counts.get("feedback", 0))
    return {
        "sessions_completed": sum(int(s["sessions"]["completed"]) for s in summaries),
        "sessions_failed": sum(int(s["sessions"]["failed"]) for s in summaries),
        "share": share_out,
        "oracle_model": oracle_model,
        "best_quality_model": best_quality_model,
        "savings_ratio": savings,
        "oracle_savings_ratio": oracle_savings,
        "savings_vs_oracle": savings / oracle_savings if savings is not None and oracle_savings else None,
        "current_savings_ratio": current_savings,
        "current_savings_vs_oracle": (
            current_savings / oracle_savings if current_savings is not None and oracle_savings else None
        ),
        "quality_kept": got_q / best_q if best_q else None,
        "oracle_quality_kept": oracle_q / best_q if best_q else None,
        "current_quality_kept": current_q / best_q if best_q else None,
        "regret_per_session": regret / sessions if sessions else None,
        "current_regret_per_session": sum(current_regret) / len(current_regret) if current_regret else None,
        "spend": {"actual_usd": actual, "baseline_usd": baseline},
        "signals": {
            "sent": sent,
            "sent_total": sum(sent.values()),
            "read": read,
            "read_by_kind": dict(sorted(read_by_kind.items())),
            "applied": applied,
            "read_ratio": read / sum(sent.values()) if sum(sent.values()) else None,
            "applied_ratio": applied / read if read else None,
            "turns_sent": sum(int(s["turns_sent"]) for s in summaries),
            "turns_counted": int(counts.get("turns", 0)),
        },
    }


def state_cells(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The state's cells the run touched (routed or prior moved), trimmed to what the report needs."""
    keep = ("alpha", "beta", "mean", "pick_share", "routed", "feedback", "expected_cost_usd", "avg_output_tokens")
    return [
        {"request_type": c["request_type"], "model": c["model"], **{k: c.get(k) for k in keep}}
        for c in state["cells"]
        if int(c.get("routed", 0)) > 0
    ]


def trim_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a traffic `--json` summary kept in the report (the state block is ours)."""
    keys = ("rounds_requested", "sessions", "turns_sent", "duration_s", "picks", "learning", "classification")
    out = {k: summary.get(k) for k in keys}
    out.update(
        quality=summary.get("quality"),
        spend=summary.get("spend"),
        signals={k: summary["signals"].get(k) for k in ("sent", "read_by_router", "unread", "unexpected")},
        errors=summary.get("errors"),
        notes=[n for n in summary.get("notes", []) if not n.startswith("state read with AWS credentials")],
    )
    return out


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per shape and checkpoint: mean and 95% CI over seeds of every share and summary metric."""
    grouped: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("error"):
            continue
        for point in row["checkpoints"]:
            grouped[(str(row["shape"]), int(point["sessions"]))].append(point)
    out: dict[str, dict[str, Any]] = {}
    for (shape, sessions), points in sorted(grouped.items()):
        paths = sorted(
            {f"share.{t}.{m}" for p in points for t, row in p["share"].items() for m in row} | set(SUMMARY_METRICS)
        )
        entry: dict[str, Any] = {"seeds": len(points)}
        for path in paths:
            values = [v for v in (lookup(p, path) for p in points) if v is not None]
            if values:
                entry[path] = summarize(values)
        signals = {
            k: sum(int(p["signals"][k]) for p in points) for k in ("sent_total", "read", "applied", "turns_sent")
        }
        signals["turns_counted"] = sum(int(p["signals"]["turns_counted"]) for p in points)
        signals["failed_sessions"] = sum(int(p["sessions_failed"]) for p in points)
        entry["totals"] = signals
        out.setdefault(shape, {})[str(sessions)] = entry
    return out


def evaluate_targets(
    rows: Iterable[Mapping[str, Any]], agg: Mapping[str, Mapping[str, Any]], seeds: int
) -> list[dict[str, Any]]:
    """Every target for the shapes and checkpoints that were run: seeds meeting it, pass or fail."""
    points: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("error"):
            continue
        for point in row["checkpoints"]:
            points[(str(row["shape"]), int(point["sessions"]))].append(point)
    out = []
    for target in TARGETS:
        entry = agg.get(target.shape, {}).get(str(target.sessions))
        if entry is None:
            continue
        values = [lookup(p, target.metric) for p in points[(target.shape, target.sessions)]]
        met = sum(target.met_by(v) for v in values)
        stats = entry.get(target.metric)
        mean = stats["mean"] if stats else None
        if target.seeds_fraction is None:
            need = None
            passed = target.met_by(mean)
        else:
            need = seeds_required(target.seeds_fraction, seeds)
            passed = met >= need
        out.append(
            {
                "shape": target.shape,
                "sessions": target.sessions,
                "target": target.label,
                "metric": target.metric,
                "threshold": target.threshold,
                "seeds_meeting": met,
                "seeds_required": need,
                "seeds_run": seeds,
                "seeds_measured": len(values),
                "mean": mean,
                "passed": passed,
            }
        )
    return out


# --------------------------------------------------------------------------- the stack and traffic


def router_knobs() -> dict[str, Any]:
    """The router's scalar settings as the stacks load them (the state does not show them all)."""
    from router_core.config import load_config

    try:
        router = load_config(SHIPPED_CONFIG).routers[ROUTER]
    except Exception as exc:  # the report still has the state's view of the router
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    return {k: v for k, v in router.model_dump().items() if v is None or isinstance(v, int | float | str | bool)}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = ["layers/router_core", "."]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def signed_state(info: StackInfo, router: str = ROUTER) -> dict[str, Any]:
    """The router's row of the SigV4-signed `GET /v1/state` (service execute-api)."""
    url = info.api_url.rstrip("/") + "/v1/state"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(info.access_key_id, info.secret_access_key), "execute-api", info.region).add_auth(request)
    prepared = request.prepare()
    response = httpx.get(prepared.url, headers=dict(prepared.headers.items()), timeout=30.0)
    if response.status_code != 200:
        raise RuntimeError(f"GET /v1/state answered {response.status_code}: {response.text[:300]}")
    for row in response.json()["routers"]:
        if row.get("router") == router:
            return dict(row)
    raise RuntimeError(f"/v1/state has no router {router!r}")


def settled_state(info: StackInfo, expected_feedback: int) -> tuple[dict[str, Any], float]:
    """Poll the state until the feedback count reached `expected_feedback`, or did not move for
    STABLE_S, or SETTLE_S passed; the last snapshot and how long the wait took."""
    started = time.monotonic()
    state = signed_state(info)
    last, moved_at = int(state["counts"]["feedback"]), time.monotonic()
    while last < expected_feedback and time.monotonic() - moved_at < STABLE_S and time.monotonic() - started < SETTLE_S:
        time.sleep(0.25)
        state = signed_state(info)
        now = int(state["counts"]["feedback"])
        if now != last:
            last, moved_at = now, time.monotonic()
    return state, time.monotonic() - started


def run_traffic(
    info: StackInfo, *, rounds: int, seed: int, negative: bool, timeout_s: float, log: Path
) -> dict[str, Any]:
    """`python -m tools.traffic ... --json` against the stack; its summary."""
    command = [
        sys.executable,
        "-m",
        "tools.traffic",
        *("--api-url", info.api_url, "--api-key", info.client_key, "--router", ROUTER),
        *("--rounds", str(rounds), "--rate", "0", "--concurrency", "1", "--seed", str(seed)),
        *("--settle", str(SETTLE_S), "--max-duration", str(timeout_s), "--json"),
        # `--flag=value`: a secret is a value even if it starts with "-".
        f"--aws-access-key-id={info.access_key_id}",
        f"--aws-secret-access-key={info.secret_access_key}",
        *("--region", info.region),
        *(["--negative-signals"] if negative else []),
    ]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s + SETTLE_S + 60.0,
        check=False,
    )
    log.write_text(done.stderr, encoding="utf-8")
    if done.returncode not in (0, 1):  # 1: some sessions failed, the summary says which
        raise RuntimeError(f"tools.traffic exited with {done.returncode}: {done.stderr[-1500:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def run_one(
    shape: str,
    seed: int,
    checkpoints: Sequence[int],
    workdir: Path,
    *,
    timeout_s: float,
) -> dict[str, Any]:
    """One fresh stack, traffic up to every checkpoint, the metrics at each; never raises."""
    run_dir = workdir / f"{shape}-{seed}"
    run_dir.mkdir(parents=True)
    args = [
        *("--api-port", str(free_port()), "--site-port", str(free_port()), "--state-dir", str(run_dir / "state")),
        *("--no-traffic", "--quiet"),
        *("--seed", str(seed)),
    ]
    row: dict[str, Any] = {
        "shape": shape,
        "seed": seed,
        "stack_seed": seed,
        "traffic_seeds": [seed + k * SEED_STRIDE for k in range(len(checkpoints))],
        "checkpoints": [],
        "error": None,
    }
    started = time.monotonic()
    stack = StackProcess(args, run_dir / "stack.log")
    try:
        with stack:
            info = stack.start(timeout_s=90.0)
            row["stack_ready_s"] = round(stack.ready_after_s or 0.0, 2)
            host = urlsplit(info.api_url).hostname
            if host != "127.0.0.1":
                raise RuntimeError(f"the stack is not on 127.0.0.1: {info.api_url}")
            summaries: list[dict[str, Any]] = []
            done = 0
            for k, sessions in enumerate(checkpoints):
                left = timeout_s - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError(f"run timeout ({timeout_s:g} s) before {sessions} sessions")
                summary = run_traffic(
                    info,
                    rounds=sessions - done,
                    seed=row["traffic_seeds"][k],
                    negative=shape == "negative",
                    timeout_s=left,
                    log=run_dir / f"traffic-{k}.log",
                )
                summaries.append(summary)
                done = sessions
                read = sum(int(v) for s in summaries for v in s["signals"]["read_by_router"].values())
                state, waited = settled_state(info, read)
                point = {"sessions": sessions, **checkpoint_metrics(state, summaries)}
                point["settle_wait_s"] = round(waited, 2)
                point["cells"] = state_cells(state)
                point["traffic"] = trim_summary(summary)
                row["checkpoints"].append(point)
                row.setdefault("router_config", _router_settings(state))
                _progress(shape, seed, point)
    except Exception as exc:  # one broken run must not lose the others: it is reported and left out
        row["error"] = f"{exc.__class__.__name__}: {exc}"
        row["stack_log_tail"] = stack.output()[-2000:]
        print(f"  {shape} seed {seed}: FAILED {row['error'][:300]}", file=sys.stderr, flush=True)
    row["elapsed_s"] = round(time.monotonic() - started, 1)
    return row


def _router_settings(state: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "models",
        "default_model",
        "weights",
        "cost_reference_usd",
        "signal_gate_min_messages",
        "forgetting_half_life_hours",
        "exploration_floor",
        "prior_mass",
    )
    return {k: state.get(k) for k in keys}


def _progress(shape: str, seed: int, point: Mapping[str, Any]) -> None:
    share, sig = point["share"], point["signals"]
    code = share.get("code_generation", {}).get("smart")
    fact = share.get("factual_lookup", {}).get("fast")
    print(
        f"  {shape:8} seed {seed:>2} @{point['sessions']:>4}: code→smart {_num(code)}  factual→fast {_num(fact)}  "
        f"savings {_pct(point['savings_ratio'])} (oracle {_pct(point['oracle_savings_ratio'])})  "
        f"quality kept {_pct(point['quality_kept'])}  signals applied/read/sent "
        f"{sig['applied']}/{sig['read']}/{sig['sent_total']}",
        file=sys.stderr,
        flush=True,
    )


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
        except OSError:
            return ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--", "layers", "tools")),
    }


# --------------------------------------------------------------------------- output


def fmt(entry: Mapping[str, Any], path: str, *, percent: bool = False) -> str:
    """`mean ±half-width` of the 95% CI (percent points with `percent`), `–` when not measured."""
    stats = entry.get(path)
    if not stats:
        return "–"
    lo, hi = stats["ci95"]
    if percent:
        return f"{stats['mean']:.1%} ±{(hi - lo) / 2 * 100:.1f}"
    return f"{stats['mean']:.3f} ±{(hi - lo) / 2:.3f}"


def print_table(report: Mapping[str, Any]) -> None:
    """The aggregate per shape and checkpoint, then the targets (rich, on stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 220)
    agg = report["aggregate"]
    table = Table(title=f"live learning: {report['settings']['seeds']} seeds, mean ±95% CI", title_justify="left")
    for col in ("shape", "sessions", "seeds"):
        table.add_column(col)
    columns = (
        ("code→smart", "share.code_generation.smart", False),
        ("factual→fast", "share.factual_lookup.fast", False),
        ("writing→smart", "share.writing.smart", False),
        ("savings", "savings_ratio", True),
        ("oracle saves", "oracle_savings_ratio", True),
        ("saved/oracle", "savings_vs_oracle", True),
        ("now/oracle", "current_savings_vs_oracle", True),
        ("quality kept", "quality_kept", True),
        ("regret", "regret_per_session", False),
        ("regret now", "current_regret_per_session", False),
    )
    for label, _, _ in columns:
        table.add_column(label, justify="right")
    table.add_column("signals applied/read/sent", justify="right", no_wrap=True)
    for shape, points in agg.items():
        for sessions, entry in points.items():
            totals = entry["totals"]
            table.add_row(
                shape,
                sessions,
                str(entry["seeds"]),
                *[fmt(entry, path, percent=pct) for _, path, pct in columns],
                f"{totals['applied']}/{totals['read']}/{totals['sent_total']}",
            )
        table.add_section()
    table.caption = (
        "shares: the state's pick_share · savings: 1 − actual/baseline spend (always the most expensive model) · "
        "oracle saves: the per-type utility oracle on the same turns · saved/oracle, now/oracle: savings so far, "
        "and of the current shares, over the oracle's · quality kept: first turns vs the best-quality model · "
        "regret: utility per session vs the utility oracle, over all picks (regret now: current shares)"
    )
    console.print(table)
    for t in report["targets"]:
        need = f"≥ {t['seeds_required']}/{t['seeds_run']} seeds" if t["seeds_required"] is not None else "mean"
        mean = "–" if t["mean"] is None else f"{t['mean']:.3f}"
        console.print(
            f"{'PASS' if t['passed'] else 'FAIL'}  {t['shape']:8} @{t['sessions']:>4}  {t['target']:40} "
            f"({need}): {t['seeds_meeting']}/{t['seeds_measured']} seeds, mean {mean}"
        )
    if not report["targets"]:
        console.print("targets: none at these checkpoints (they are set at 100 and 300 sessions)")
    failed = [r for r in report["runs"] if r["error"]]
    if failed:
        console.print(f"failed runs: {len(failed)}: " + "; ".join(f"{r['shape']} {r['seed']}" for r in failed))


def _csv(raw: str, cast: type) -> list[Any]:
    return [cast(p.strip()) for p in raw.split(",") if p.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per shape (default 10; quick 2)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma list of negative, seed (default both)")
    parser.add_argument("--sessions", default=None, help="cumulative checkpoints (default 100,300; quick 30,60)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2 seeds, 30 + 30 sessions")
    parser.add_argument("--run-timeout", type=float, default=RUN_TIMEOUT_S, help="seconds per (shape, seed) run")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    shapes = _csv(args.shapes, str)
    checkpoints = _csv(args.sessions or ("30,60" if args.quick else "100,300"), int)
    if seeds < 1 or not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--seeds must be >= 1 and --shapes a comma list of {', '.join(SHAPES)}")
    if not checkpoints or checkpoints[0] < 1 or any(b <= a for a, b in pairwise(checkpoints)):
        parser.error("--sessions must be increasing positive numbers, e.g. 100,300")

    started = time.monotonic()
    print(
        f"live benchmark: {seeds} seeds × {', '.join(shapes)} to {checkpoints} sessions",
        file=sys.stderr,
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        workdir = Path(tmp)
        knobs = router_knobs()
        for shape in shapes:
            for seed in range(seeds):
                rows.append(
                    run_one(
                        shape,
                        seed,
                        checkpoints,
                        workdir,
                        timeout_s=args.run_timeout,
                    )
                )
    agg = aggregate(rows)
    elapsed = time.monotonic() - started
    router_config = next((r["router_config"] for r in rows if r.get("router_config")), None)
    report = {
        "settings": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **_git_commit(),
            "quick": args.quick,
            "seeds": seeds,
            "shapes": shapes,
            "checkpoints": checkpoints,
            "traffic": {"rate_s": 0, "concurrency": 1, "seed_stride": SEED_STRIDE, "settle_s": SETTLE_S},
            "stack_seeded": True,
            "router_config": router_config,
            "router_knobs": knobs,
            "elapsed_seconds": round(elapsed, 1),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "aggregate": agg,
        "targets": evaluate_targets(rows, agg, seeds),
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"wrote {args.out} in {elapsed:.0f} s")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
