"""DynamoDB round trips and capacity per request, and the AWS bill per 1M routed requests.

Runs the real chat and feedback handlers in-process on moto (tables from template.yaml), counts
every DynamoDB call the store makes, sizes every item it reads or writes with DynamoDB's own
rounding rules (reads: 4 KB units, half for eventually consistent; writes: 1 KB units; doubled
in transactions), and prices a month of traffic at on-demand list prices (us-east-1), as a
function of the model's latency, for the memory and architecture set in template.yaml.

    .venv/bin/python -m benchmarks.aws_cost [--requests 300] [--out benchmarks/results/aws_cost.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# List prices, us-east-1, on-demand (USD). Sources: the AWS pricing pages for each service.
PRICE_HTTP_API_PER_M = 1.00  # API Gateway HTTP API, first 300M requests/month
PRICE_LAMBDA_REQ_PER_M = 0.20
PRICE_LAMBDA_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
PRICE_DDB_WRU_PER_M = 0.625
PRICE_DDB_RRU_PER_M = 0.125
PRICE_SQS_PER_M = 0.40
PRICE_LOGS_PER_GB = 0.50  # CloudWatch Logs ingestion
LOG_BYTES_PER_REQUEST = 900
"""One JSON metrics line carrying the decision (template: SystemLogLevel WARN drops START/END/REPORT)."""
SIGNAL_SHARE = 0.2
"""Default share of turns whose follow-up carries an implicit signal (one SQS message and one
feedback transaction each); most follow-ups carry no praise or complaint. --signal-share sets it."""
SQS_REQUESTS_PER_SIGNAL = 1.2
"""SendMessage, plus the event source mapping's batched receive and delete (batch of 10)."""
MODEL_LATENCIES_S = (0.0, 0.5, 1.0, 2.0, 5.0)


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB item size in bytes: attribute names plus values (numbers ≈ digits/2 + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, v),) = value.items()
        if kind == "S":
            size += len(v.encode())
        elif kind == "N":
            size += math.ceil(len(v.replace("-", "").replace(".", "")) / 2) + 1
        elif kind == "BOOL":
            size += 1
        else:
            size += len(json.dumps(v))
    return size


def read_units(sizes: list[int], consistent: bool) -> float:
    return sum(max(1, math.ceil(s / 4096)) * (1.0 if consistent else 0.5) for s in sizes)


def write_units(sizes: list[int], transactional: bool = False) -> float:
    return sum(max(1, math.ceil(s / 1024)) * (2.0 if transactional else 1.0) for s in sizes)


class CapacityMeter:
    """Wraps the store's DynamoDB client to size what each call really reads and writes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rru = 0.0
        self.wru = 0.0
        self.calls: dict[str, int] = {}

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.client, name)
        if not callable(target):
            return target

        def call(**kwargs: Any) -> Any:
            response = target(**kwargs)
            self._measure(name, kwargs, response)
            return response

        return call

    def _existing_size(self, table: str, key: dict[str, Any]) -> int:
        got = self.client.get_item(TableName=table, Key=key).get("Item")
        return item_size(got) if got else 0

    def _measure(self, op: str, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        self._count(op)
        if op == "batch_get_item":
            for items in response.get("Responses", {}).values():
                self.rru += read_units([item_size(i) for i in items], consistent=False)
            missing = sum(len(v["Keys"]) for v in kwargs["RequestItems"].values()) - sum(
                len(v) for v in response.get("Responses", {}).values()
            )
            self.rru += 0.5 * missing  # a missing item still costs one half unit
        elif op == "get_item":
            item = response.get("Item")
            self.rru += read_units([item_size(item) if item else 0], consistent=bool(kwargs.get("ConsistentRead")))
        elif op == "query":
            total = sum(item_size(i) for i in response.get("Items", []))
            self.rru += max(1, math.ceil(total / 4096)) * 0.5
        elif op in {"put_item", "update_item"}:
            key = kwargs.get("Key") or {"pk": kwargs["Item"]["pk"], "sk": kwargs["Item"]["sk"]}
            self.wru += write_units([self._existing_size(kwargs["TableName"], key)])
        elif op == "transact_write_items":
            sizes = []
            for entry in kwargs["TransactItems"]:
                ((_action, spec),) = entry.items()
                key = spec.get("Key") or {"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]}
                sizes.append(self._existing_size(spec["TableName"], key))
            self.wru += write_units(sizes, transactional=True)


def measure(requests: int) -> dict[str, Any]:
    """Chats and feedbacks through the real handlers on moto; per-request DynamoDB figures."""
    from moto import mock_aws

    from tests.aws_env import (
        create_resources,
        fake_aws_environment,
        http_event,
        lambda_context,
        load_handler,
        lock_moto,
    )

    os.environ.update(fake_aws_environment())
    os.environ.pop("AWS_PROFILE", None)
    # The shipped config, with the per-key feedback rate lifted so every feedback is applied.
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8"))
    for router in raw["routers"].values():
        router["feedback_per_minute_per_key"] = 1_000_000
    config_path = Path(tempfile.mkdtemp()) / "routers.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    os.environ["ROUTER_CONFIG_PATH"] = str(config_path)
    lock_moto()
    with mock_aws():
        res = create_resources()
        os.environ["TABLE_NAME"] = res.table_name
        os.environ["SIGNAL_QUEUE_URL"] = res.queue_url
        from router_core import runtime, store
        from router_core.keys import create_client_key

        runtime.reset()
        chat, feedback = load_handler("chat"), load_handler("feedback")
        key = create_client_key(runtime.store(), "bench")
        meter = CapacityMeter(store._client())
        runtime.store().client = meter
        try:
            auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            # Warm the key cache and the code paths, as a warm Lambda would be.
            body = {
                "model": "smart-cheap-router",
                "messages": [{"role": "user", "content": "Write a Python function to add."}],
            }
            chat.lambda_handler(
                http_event("POST", "/v1/chat/completions", body=json.dumps(body), headers=auth), lambda_context("chat")
            )
            chat_stats: list[dict[str, float]] = []
            handler_ms: list[float] = []
            turn_ids: list[str] = []
            for i in range(requests):
                convo = [
                    {"role": "user", "content": f"Write a Python function that computes checksum number {i}."},
                    {"role": "assistant", "content": "Here is a draft."},
                    {"role": "user", "content": "Add docstrings."},
                    {"role": "assistant", "content": "Done."},
                    {"role": "user", "content": f"Write a Python function that computes checksum number {i}."},
                ]
                before = (meter.rru, meter.wru, sum(meter.calls.values()))
                runtime.store().stats.calls.clear()
                t0 = time.perf_counter()
                out = chat.lambda_handler(
                    http_event(
                        "POST",
                        "/v1/chat/completions",
                        body=json.dumps({"model": "smart-cheap-router", "messages": convo}),
                        headers=auth,
                    ),
                    lambda_context("chat"),
                )
                handler_ms.append((time.perf_counter() - t0) * 1000)
                assert out["statusCode"] == 200, out
                turn_ids.append(out["headers"]["x-router-turn-id"])
                ddb_calls = sum(v for k, v in runtime.store().stats.calls.items() if not k.startswith("SQS"))
                chat_stats.append(
                    {"round_trips": ddb_calls, "rru": meter.rru - before[0], "wru": meter.wru - before[1]}
                )
            fb_stats: list[dict[str, float]] = []
            for turn_id in turn_ids:
                before = (meter.rru, meter.wru)
                runtime.store().stats.calls.clear()
                out = feedback.lambda_handler(
                    http_event(
                        "POST", "/v1/feedback", body=json.dumps({"turn_id": turn_id, "rating": "up"}), headers=auth
                    ),
                    lambda_context("feedback"),
                )
                assert out["statusCode"] == 200, out
                calls = dict(runtime.store().stats.calls)
                fb_stats.append(
                    {
                        "round_trips": sum(calls.values()),
                        "transactions": calls.get("TransactWriteItems", 0),
                        "rru": meter.rru - before[0],
                        "wru": meter.wru - before[1],
                    }
                )
        finally:
            runtime.reset()

    def mean(rows: list[dict[str, float]], k: str) -> float:
        return statistics.fmean(r[k] for r in rows)

    return {
        "chat": {
            "requests": requests,
            "round_trips_mean": mean(chat_stats, "round_trips"),
            "round_trips_max": max(r["round_trips"] for r in chat_stats),
            "read_units_mean": mean(chat_stats, "rru"),
            "write_units_mean": mean(chat_stats, "wru"),
            "handler_ms_p50": statistics.median(handler_ms),
        },
        "feedback": {
            "requests": len(fb_stats),
            "round_trips_mean": mean(fb_stats, "round_trips"),
            "transactions_mean": mean(fb_stats, "transactions"),
            "read_units_mean": mean(fb_stats, "rru"),
            "write_units_mean": mean(fb_stats, "wru"),
        },
    }


def chat_function_settings() -> tuple[int, str]:
    """MemorySize (MB) and architecture of ChatFunction, from template.yaml (SAM globals applied)."""
    from tests.aws_env import stack_template

    props = stack_template().properties("ChatFunction")
    return int(props.get("MemorySize", 128)), (props.get("Architectures") or ["x86_64"])[0]


def price_per_million(
    measured: dict[str, Any], model_latency_s: float, memory_mb: int, arch: str, signal_share: float = SIGNAL_SHARE
) -> dict[str, float]:
    """USD per 1M routed requests (models themselves excluded)."""
    chat = measured["chat"]
    fb = measured["feedback"]
    handler_s = chat["handler_ms_p50"] / 1000
    lambda_chat = (handler_s + model_latency_s) * memory_mb / 1024 * PRICE_LAMBDA_GB_S[
        arch
    ] * 1e6 + PRICE_LAMBDA_REQ_PER_M
    # Implicit signals: one SQS message per signalled turn; the consumer runs once per batch of up to 10.
    signals = signal_share
    lambda_feedback = signals / 10 * (PRICE_LAMBDA_REQ_PER_M + 0.05 * 256 / 1024 * PRICE_LAMBDA_GB_S[arch] * 1e6)
    ddb = (chat["write_units_mean"] + signals * fb["write_units_mean"]) * PRICE_DDB_WRU_PER_M + (
        chat["read_units_mean"]
    ) * PRICE_DDB_RRU_PER_M
    sqs = signals * SQS_REQUESTS_PER_SIGNAL * PRICE_SQS_PER_M
    logs = LOG_BYTES_PER_REQUEST * 1e6 / 1e9 * PRICE_LOGS_PER_GB
    parts = {
        "api_gateway": PRICE_HTTP_API_PER_M,
        "lambda_chat": lambda_chat,
        "lambda_feedback": lambda_feedback,
        "dynamodb": ddb,
        "sqs": sqs,
        "cloudwatch_logs": logs,
    }
    parts["total"] = sum(parts.values())
    return {k: round(v, 3) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aws_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/aws_cost.json")
    parser.add_argument(
        "--signal-share", type=float, default=SIGNAL_SHARE, help="share of turns with an implicit signal"
    )
    args = parser.parse_args(argv)

    measured = measure(args.requests)
    memory, arch = chat_function_settings()
    table = {
        f"{lat:g}s": price_per_million(measured, lat, memory, arch, args.signal_share) for lat in MODEL_LATENCIES_S
    }

    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"DynamoDB per request (measured, {args.requests} chats + feedbacks)")
    for col in ("path", "round trips", "read units", "write units", "transactions"):
        t.add_column(col, justify="right")
    c, f = measured["chat"], measured["feedback"]
    t.add_row(
        "chat",
        f"{c['round_trips_mean']:.2f} (max {c['round_trips_max']})",
        f"{c['read_units_mean']:.2f}",
        f"{c['write_units_mean']:.2f}",
        "0",
    )
    t.add_row(
        "feedback",
        f"{f['round_trips_mean']:.2f}",
        f"{f['read_units_mean']:.2f}",
        f"{f['write_units_mean']:.2f}",
        f"{f['transactions_mean']:.2f}",
    )
    console.print(t)
    p = Table(title=f"USD per 1M routed requests (ChatFunction {memory} MB {arch}; models excluded)")
    p.add_column("model latency", justify="right")
    for col in next(iter(table.values())):
        p.add_column(col, justify="right")
    for lat, parts in table.items():
        p.add_row(lat, *(f"{v:.2f}" for v in parts.values()))
    console.print(p)
    console.print("Idle: nothing is billed per hour (no provisioned capacity, NAT or instances); storage only.")
    out = {"measured": measured, "chat_function": {"memory_mb": memory, "architecture": arch}, "usd_per_million": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
