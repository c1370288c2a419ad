"""Fuzzing every route: many malformed requests, and how many were answered with a 5xx (target 0).

The same generators as the property tests (`tests/malformed.py`: raw bytes, JSON nested
thousands of levels deep, Unicode in every field, header, query parameter and id, SQS records
of any shape), but many more requests and a fresh seed per run, sent as real API Gateway v2.0
(or SQS) events to the handlers in-process on moto. Prints one row per route (requests,
statuses, 5xx, other problems, mean handler time) and every distinct problem found, and writes
the settings and results to benchmarks/results/fuzz.json.

    .venv/bin/python -m benchmarks.fuzz [--requests 10000] [--seed 1] [--routes chat feedback ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import benchmarks  # noqa: F401  (puts the layer on the import path)

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
PER_EXAMPLE = 4
"""Requests drawn per hypothesis example (as in the property tests)."""


def run(requests: int, seed: int, routes: Sequence[str]) -> dict[str, Any]:
    """Send `requests` generated requests to each of `routes`; the summary rows and problems."""
    import hypothesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from moto import mock_aws

    from tests.aws_env import create_resources, fake_aws_environment, load_handler, lock_moto
    from tests.malformed import STRATEGIES, Driver, Probe, summary_rows

    os.environ.update(fake_aws_environment())
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("ROUTER_CONFIG_PATH", None)
    lock_moto()
    logging.disable(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    seconds: dict[str, float] = {}
    with mock_aws():
        resources = create_resources()
        os.environ["TABLE_NAME"] = resources.table_name
        os.environ["SIGNAL_QUEUE_URL"] = resources.queue_url
        from router_core import runtime
        from router_core.keys import create_client_key

        runtime.reset()
        key = create_client_key(runtime.store(), "fuzz")
        driver = Driver(load_handler("chat"), load_handler("feedback"), load_handler("state"), key)
        for route in routes:

            @settings(
                max_examples=max(1, requests // PER_EXAMPLE),
                deadline=None,
                database=None,
                derandomize=False,
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.seed(seed)
            @given(st.lists(STRATEGIES[route], min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
            def send(probes: list[Probe]) -> None:
                for probe in probes:
                    driver.run(probe)  # problems are collected, not raised: the run goes on

            started = time.perf_counter()
            with redirect_stdout(StringIO()):  # the handlers' metric lines
                send()
            seconds[route] = round(time.perf_counter() - started, 1)
        runtime.reset()
    rows = [r for r in summary_rows(driver) if r["route"] in routes]
    for row in rows:
        row["wall_s"] = seconds[row["route"]]
    distinct: dict[str, dict[str, Any]] = {}
    for probe, problem in driver.failures:
        distinct.setdefault(f"{probe.route}: {problem[:160]}", {"count": 0, "probe": repr(probe)[:600]})
        distinct[f"{probe.route}: {problem[:160]}"]["count"] += 1
    return {"rows": rows, "problems": distinct}


def main(argv: Sequence[str] | None = None) -> int:
    from tests.malformed import ROUTES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="generated requests per route")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000, help="hypothesis seed")
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.requests, args.seed, args.routes)
    payload = {
        "settings": {"requests_per_route": args.requests, "seed": args.seed, "routes": args.routes},
        **result,
        "meta": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"malformed requests per route (seed {args.seed})")
    for column in ("route", "requests", "statuses", "≥ 500", "other problems", "mean handler ms", "wall s"):
        table.add_column(column, justify="left" if column in ("route", "statuses") else "right")
    for row in result["rows"]:
        table.add_row(
            row["route"],
            str(row["probes"]),
            " ".join(f"{k}×{v}" for k, v in row["statuses"].items()),
            str(row["responses_5xx"]),
            str(row["problems"] - row["responses_5xx"]),
            f"{row['mean_ms']:.2f}" if row["mean_ms"] is not None else "-",
            f"{row['wall_s']:.1f}",
        )
    console = Console()
    console.print(table)
    for problem, info in result["problems"].items():
        console.print(f"[red]{info['count']}×[/red] {problem}\n    {info['probe']}", markup=True, highlight=False)
    print(f"wrote {args.out}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
