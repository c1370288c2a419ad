"""Latency the router adds on the local stack, against the same upstream called directly.

    .venv/bin/python -m benchmarks.local_latency [--requests 1000] [--warmup 50]

Starts `tools.local_stack.sim_upstream` (zero model latency) and the local stack configured
with one openai_compatible provider pointing at it, then sends, interleaved, N chat requests
to the upstream directly and N through the router (same prompts, keep-alive clients, one at
a time). Reports, in milliseconds:

* added latency: router p50/p95/p99 minus direct p50/p95/p99;
* the chat handler's own `server-timing` (classify, dynamodb, decide, upstream): `dynamodb` is
  moto's cost (plus boto3's client work); decision time is classify + decide;
* the rest of the router's time (HTTP server, API Gateway event, Powertools, JSON), i.e. what
  the local stack and our handler add outside the timed sections, and "ours": each request's
  total minus its upstream call and its DynamoDB (moto) time;
* the time from the command to a ready stack, first start (empty state dir) and a restart.

Writes `benchmarks/results/local_latency.json`. Everything runs on 127.0.0.1 and stops itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tools.local_stack.launcher import REPO_ROOT, StackProcess, free_port

RESULTS = REPO_ROOT / "benchmarks" / "results" / "local_latency.json"
GOAL_ADDED_P95_MS = 15.0
KEY_ENV = "LOCAL_LATENCY_UPSTREAM_KEY"
ROUTER = "smart-cheap-router"
PROMPTS = (
    "Write a Python function that merges two sorted lists.",
    "What is the capital of Australia?",
    "Draft a short email telling the team the release moved to Friday.",
    "Explain what this code does: for i in range(3): print(i * i)",
    "How should I design a rate limiter for a public API?",
    "If a train travels 120 km in 1.5 hours, what is its average speed?",
    "Tell me something nice about autumn.",
    "Write a SQL query that returns the ten newest orders.",
)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99, mean, min and max of `values` (milliseconds), rounded to 0.01 ms."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    out = {
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }
    return {k: round(v, 2) for k, v in out.items()}


def server_timing(header: str | None) -> dict[str, float]:
    """`classify;dur=0.30, dynamodb;dur=1.2` → {"classify": 0.3, "dynamodb": 1.2} (ms)."""
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                out[name.strip()] = float(value)
    return out


class SimUpstreamProcess:
    """`python -m tools.local_stack.sim_upstream` on a free port, until `stop()`."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.local_stack.sim_upstream",
                "--port",
                str(self.port),
                "--api-key-env",
                KEY_ENV,
            ],
            cwd=REPO_ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30.0
        while "ready" not in log_path.read_text(errors="replace"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sim_upstream did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5.0)
        self._log.close()


def _stack_args(state_dir: Path, upstream_url: str) -> list[str]:
    return [
        *("--api-port", str(free_port()), "--site-port", str(free_port()), "--state-dir", str(state_dir)),
        *("--no-traffic", "--quiet", "--upstream-url", upstream_url, "--upstream-key-env", KEY_ENV),
        # The deployed API throttles at 50 req/s; the benchmark measures latency, not the throttle.
        *("--parameter-overrides", "ThrottleRatePerSecond=100000", "ThrottleBurst=100000"),
        # Snapshots every ~250 KB of journal: a 1,000-request run includes several, and a TTL sweep.
        *("--compact-every-mb", "0.25"),
    ]


def run(requests: int, warmup: int, workdir: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env[KEY_ENV] = "sk-local-" + secrets.token_urlsafe(16)
    upstream = SimUpstreamProcess(workdir / "sim-upstream.log", env)
    state_dir = workdir / "state"
    try:
        first = StackProcess(_stack_args(state_dir, upstream.base_url), workdir / "stack-1.log", env=env)
        first.start()
        first_ready = {"command_to_ready_s": round(first.ready_after_s or 0.0, 3)}
        first.stop()
        stack = StackProcess(_stack_args(state_dir, upstream.base_url), workdir / "stack-2.log", env=env)
        info = stack.start()
        restart_ready = {"command_to_ready_s": round(stack.ready_after_s or 0.0, 3), "reported_s": info.ready_s}
        try:
            samples = _measure(info.openai_base_url, info.client_key, upstream.base_url, env[KEY_ENV], requests, warmup)
        finally:
            stack.stop()
    finally:
        upstream.stop()
    return _report(samples, requests, warmup, first_ready, restart_ready)


def _measure(
    router_url: str, client_key: str, upstream_url: str, upstream_key: str, requests: int, warmup: int
) -> dict[str, list[Any]]:
    direct_ms: list[float] = []
    router_ms: list[float] = []
    timings: list[dict[str, float]] = []
    models: dict[str, int] = {}
    with (
        httpx.Client(base_url=upstream_url, headers={"Authorization": f"Bearer {upstream_key}"}, timeout=30.0) as up,
        httpx.Client(base_url=router_url, headers={"Authorization": f"Bearer {client_key}"}, timeout=30.0) as rt,
    ):
        for i in range(warmup + requests):
            prompt = PROMPTS[i % len(PROMPTS)]
            messages = [{"role": "user", "content": prompt}]
            started = time.perf_counter()
            direct = up.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": messages})
            direct_elapsed = (time.perf_counter() - started) * 1000.0
            started = time.perf_counter()
            routed = rt.post("/chat/completions", json={"model": ROUTER, "messages": messages})
            routed_elapsed = (time.perf_counter() - started) * 1000.0
            if direct.status_code != 200 or routed.status_code != 200:
                raise RuntimeError(
                    f"request {i}: direct {direct.status_code}, router {routed.status_code}: {routed.text}"
                )
            if i < warmup:
                continue
            direct_ms.append(direct_elapsed)
            router_ms.append(routed_elapsed)
            timings.append(server_timing(routed.headers.get("server-timing")))
            model = routed.headers.get("x-router-model", "?")
            models[model] = models.get(model, 0) + 1
    return {"direct": direct_ms, "router": router_ms, "timings": timings, "models": [models]}


def _report(
    samples: dict[str, list[Any]],
    requests: int,
    warmup: int,
    first_ready: dict[str, float],
    restart_ready: dict[str, float],
) -> dict[str, Any]:
    direct, router, timings = samples["direct"], samples["router"], samples["timings"]
    parts = ("classify", "dynamodb", "decide", "upstream")
    missing = [p for p in parts if any(p not in t for t in timings)]
    if missing:
        raise RuntimeError(f"server-timing lacks {missing}: {timings[0]}")
    per_part = {p: percentiles([t[p] for t in timings]) for p in parts}
    decision = percentiles([t["classify"] + t["decide"] for t in timings])
    outside = percentiles([total - sum(t[p] for p in parts) for total, t in zip(router, timings, strict=True)])
    besides_upstream = percentiles([total - t["upstream"] for total, t in zip(router, timings, strict=True)])
    d, r = percentiles(direct), percentiles(router)
    added = {k: round(r[k] - d[k], 2) for k in ("p50", "p95", "p99")}
    moto = per_part["dynamodb"]
    ours = percentiles([total - t["upstream"] - t["dynamodb"] for total, t in zip(router, timings, strict=True)])
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # Other work on the machine shows up in every percentile; the 1-minute load says how much.
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "requests": requests,
        "warmup": warmup,
        "models_picked": samples["models"][0],
        "direct_ms": d,
        "router_ms": r,
        "added_ms": added,
        "router_minus_upstream_ms": besides_upstream,
        "server_timing_ms": per_part,
        "decision_ms": decision,
        "moto_dynamodb_ms": moto,
        "router_own_work_ms": ours,
        "outside_timed_sections_ms": outside,
        "ready": {"first_start": first_ready, "restart": restart_ready},
        "goal": {"added_p95_ms_at_most": GOAL_ADDED_P95_MS, "met": added["p95"] <= GOAL_ADDED_P95_MS},
    }


def render(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    rows = [
        ("upstream called directly", report["direct_ms"]),
        ("through the local router", report["router_ms"]),
        ("router total − its upstream call", report["router_minus_upstream_ms"]),
        ("  server-timing dynamodb (moto)", report["server_timing_ms"]["dynamodb"]),
        ("  server-timing classify", report["server_timing_ms"]["classify"]),
        ("  server-timing decide", report["server_timing_ms"]["decide"]),
        ("  decision (classify + decide)", report["decision_ms"]),
        ("  server-timing upstream", report["server_timing_ms"]["upstream"]),
        ("  outside timed sections", report["outside_timed_sections_ms"]),
    ]
    lines = [
        f"Local latency, {report['requests']} requests each (after {report['warmup']} warm-up), ms",
        f"{'':36} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}",
    ]
    lines += [f"{label:36} {s['p50']:8.2f} {s['p95']:8.2f} {s['p99']:8.2f} {s['mean']:8.2f}" for label, s in rows]
    added, ours = report["added_ms"], report["router_own_work_ms"]
    lines += [
        f"{'added by the router (Δ percentiles)':36} {added['p50']:8.2f} {added['p95']:8.2f} {added['p99']:8.2f}",
        f"{'  ours: total − upstream − moto':36} {ours['p50']:8.2f} {ours['p95']:8.2f} {ours['p99']:8.2f}",
        "",
        f"models picked: {report['models_picked']}; load average at the end: "
        f"{report['machine']['load_average_1m_at_end']} on {report['machine']['cpus']} CPUs",
        f"command → ready: first start {report['ready']['first_start']['command_to_ready_s']:.2f} s, "
        f"restart {report['ready']['restart']['command_to_ready_s']:.2f} s",
        f"goal: added p95 ≤ {GOAL_ADDED_P95_MS:.0f} ms (moto included): "
        + ("met" if report["goal"]["met"] else "NOT met"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per path (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first (default 50)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.requests < 10 or args.warmup < 0:
        parser.error("--requests must be at least 10 and --warmup not negative")
    with tempfile.TemporaryDirectory(prefix="local-latency-") as workdir:
        report = run(args.requests, args.warmup, Path(workdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
