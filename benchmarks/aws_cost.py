"""DynamoDB round trips and capacity per request, and the AWS bill per 1M routed requests.

Runs the real chat, feedback and state handlers in-process on moto (tables from template.yaml):
conversations of several turns (each follow-up read as implicit feedback on the previous turn),
every queued signal through the SQS consumer in batches, and the state route as an open
dashboard polls it. It counts every DynamoDB call, sizes every item read or written with
DynamoDB's rounding rules (reads: 4 KB units, half for eventually consistent; writes: 1 KB
units; doubled in transactions), counts the bytes each handler writes to stdout (what CloudWatch
Logs ingests), and prices the result at on-demand list prices (us-east-1) for the memory,
architecture, log levels and batch size set in template.yaml, as a function of the model's
latency. The signals per request are measured too: with neutral follow-ups read as weak
feedback, every follow-up on a gated turn is one signal. One open dashboard tab is priced
separately, per day. Every setting is recorded in the JSON.

    .venv/bin/python -m benchmarks.aws_cost [--sessions 150] [--turns-per-session 2]
        [--out benchmarks/results/aws_cost.json]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# List prices, us-east-1, on-demand (USD). Sources: the AWS pricing pages for each service.
PRICE_HTTP_API_PER_M = 1.00  # API Gateway HTTP API, first 300M requests/month
PRICE_LAMBDA_REQ_PER_M = 0.20
PRICE_LAMBDA_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
PRICE_DDB_WRU_PER_M = 0.625
PRICE_DDB_RRU_PER_M = 0.125
PRICE_SQS_PER_M = 0.40
# Provisioned capacity (TableCapacityMode=provisioned): per capacity unit and hour, us-east-1
# (https://aws.amazon.com/dynamodb/pricing/provisioned/). A unit-hour serves 3,600 units at 100%
# use; auto scaling (template: target tracking at 70%) keeps the use near its target.
PRICE_DDB_WCU_HOUR = 0.00065
PRICE_DDB_RCU_HOUR = 0.00013
PROVISIONED_TARGET_UTILIZATION = 0.70
PROVISIONED_UTILIZATIONS = (0.70, 0.50, 0.30)
PRICE_LOGS_PER_GB = 0.50  # CloudWatch Logs ingestion (standard class)
LOG_EVENT_OVERHEAD_BYTES = 26
"""Counted per log event on top of its text, as CloudWatch Logs sizes events."""
SQS_REQUESTS_PER_SIGNAL = 1.2
"""SendMessage, plus the event source mapping's batched receive and delete (batch of 10)."""
MODEL_LATENCIES_S = (0.0, 0.5, 1.0, 2.0, 5.0)
SIGNAL_SHARES = (0.0, 0.2, 0.5, 0.8)
"""Signals per request priced at 1 s: 0 for single-request traffic (no follow-ups), 0.5 for the
demo's gated opening plus one follow-up, 0.8 for five-request conversations."""
TARGET_USD_PER_MILLION = 5.0
DASHBOARD_POLLING = (
    ("every 0.5 s, state changing", 0.5, True),
    ("every 1 s, state changing", 1.0, True),
    ("every 16 s, idle", 16.0, False),
)
"""A fixed 500 ms poll; the page's fastest default (1 s, while the state changes); its slowest
(16 s, nothing changes)."""
HISTORY_STEP_S = 10

# The streaming path: CloudFront (the client's base URL) → Lambda function URL (RESPONSE_STREAM)
# → the chat function behind the Lambda Web Adapter. Sources:
# https://aws.amazon.com/cloudfront/pricing/ (data transfer out to the internet, US/Mexico/Canada
#   and Europe, first 10 TB: $0.085/GB; HTTPS requests in the US and Europe: $0.0100 per 10,000;
#   origin fetches from AWS origins are free; data sent to the origin (the POST body): $0.020/GB);
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html (streamed
#   responses cost extra: https://aws.amazon.com/lambda/pricing/ bills streamed bytes beyond the
#   first 6 MB per request, $0.008/GB; our answers are far below 6 MB);
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-urls.html (function URLs: no charge of their
#   own; invocations and duration are billed as any invocation).
# Buffered path for comparison: https://aws.amazon.com/api-gateway/pricing/ (HTTP API data out
#   billed at EC2 internet rates, $0.09/GB first 10 TB).
PRICE_CLOUDFRONT_HTTPS_PER_M = 1.00  # $0.0100 per 10,000 HTTPS requests (US, Europe)
PRICE_CLOUDFRONT_OUT_PER_GB = 0.085  # to the internet, first 10 TB a month (US, Europe)
PRICE_CLOUDFRONT_TO_ORIGIN_PER_GB = 0.020  # request bodies forwarded to the origin (US, Europe)
PRICE_LAMBDA_STREAM_PER_GB = 0.008  # streamed bytes beyond the first 6 MB of each response
LAMBDA_STREAM_FREE_BYTES = 6 * 1024 * 1024
PRICE_API_OUT_PER_GB = 0.09  # API Gateway responses to the internet, first 10 TB
RESPONSE_HEAD_BYTES = 600
"""Status line and headers of one chat response (x-router-*, server-timing, CORS): an estimate."""
LWA_PROXY_MS = 2.0
"""What the Lambda Web Adapter adds to each invocation (a loopback HTTP hop): an assumption, not
measured here; its own start is once per execution environment (cold start), not per request."""
TOKEN_CHARS = 4
"""Characters per streamed chunk of the simulated models here: about one token per chunk, as
OpenAI-style upstreams send (the measured `content_chunks_per_token` is reported)."""


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


class StdoutBytes:
    """Bytes and lines a handler writes to stdout (print and every logging stream on stdout),
    which Lambda sends to CloudWatch Logs."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.sample = ""

    def run(self, call: Any) -> Any:
        buffer = io.StringIO()
        targets = {id(sys.stdout), id(sys.__stdout__)}
        loggers = [
            logging.getLogger(),
            *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
        ]
        swapped = [
            (h, h.stream)
            for lg in loggers
            for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and id(h.stream) in targets
        ]
        saved = sys.stdout
        for handler, _ in swapped:
            handler.stream = buffer
        sys.stdout = buffer
        try:
            return call()
        finally:
            sys.stdout = saved
            for handler, stream in swapped:
                handler.stream = stream
            lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
            self.bytes += sum(len(line.encode()) for line in lines)
            self.lines += len(lines)
            if lines and not self.sample:
                self.sample = lines[-1]


def access_log_bytes(route_key: str, status: int, latency_ms: int) -> int:
    """One API Gateway access log line, rendered from the template's format with typical values."""
    from tests.aws_env import stack_template

    t = stack_template()
    (stage,) = t.of_type("AWS::ApiGatewayV2::Stage")
    fmt = t.properties(stage)["AccessLogSettings"]["Format"]
    values = {
        "$context.requestId": "JTc3_gFoIAMEVJg=",
        "$context.routeKey": route_key,
        "$context.status": str(status),
        "$context.integrationLatency": str(latency_ms),
        "$context.identity.sourceIp": "203.0.113.17",
    }
    for name, value in values.items():
        fmt = fmt.replace(name, value)
    return len(fmt.encode())


def measure(sessions: int, turns_per_session: int) -> dict[str, Any]:
    """Sessions of `turns_per_session` chat requests through the real handlers on moto (each
    follow-up in the same session, so the router reads it as feedback on the previous turn),
    then every queued signal through the feedback handler in SQS batches of 10, then the state
    route as an open dashboard polls it. Per request: DynamoDB calls and units, handler time,
    stdout bytes; per signal and per state call the same."""
    import boto3
    from moto import mock_aws

    from tests.aws_env import (
        REGION,
        create_resources,
        fake_aws_environment,
        http_event,
        lambda_context,
        load_handler,
        lock_moto,
        sqs_event,
    )
    from tools.corpus import PROMPTS, follow_up, opening_messages

    os.environ.update(fake_aws_environment())
    os.environ.pop("AWS_PROFILE", None)
    # The shipped config, with the simulated models streaming one ~token (4 characters) per
    # chunk, as OpenAI-style upstreams do: the streamed answers below are then sized as a real
    # token-by-token stream (nothing else reads this setting).
    shipped = yaml.safe_load(resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8"))
    shipped["providers"]["simulated"]["stream_piece_chars"] = TOKEN_CHARS
    shipped["providers"]["simulated"]["stream_interval_ms"] = 0  # sizes, not pace, are measured here
    config_dir = tempfile.mkdtemp(prefix="bench-cost-")
    config_path = os.path.join(config_dir, "routers.yaml")
    with open(config_path, "w", encoding="utf-8") as out:
        yaml.safe_dump(shipped, out)
    os.environ["ROUTER_CONFIG_PATH"] = config_path
    lock_moto()
    rng = random.Random(7)
    kinds = ("satisfaction", "neutral", "negative")
    types = sorted(PROMPTS)
    with mock_aws():
        res = create_resources()
        os.environ["TABLE_NAME"] = res.table_name
        os.environ["SIGNAL_QUEUE_URL"] = res.queue_url
        from router_core import runtime, store
        from router_core.keys import create_client_key

        runtime.reset()
        chat, feedback, state = load_handler("chat"), load_handler("feedback"), load_handler("state")
        key = create_client_key(runtime.store(), "bench")
        meter = CapacityMeter(store._client())
        runtime.store().client = meter
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        chat_out, fb_out, state_out = StdoutBytes(), StdoutBytes(), StdoutBytes()

        request_bytes: list[int] = []
        response_bytes: list[int] = []

        def send(messages: list[dict[str, Any]], session: str | None) -> dict[str, Any]:
            headers = {**auth, **({"x-router-session-id": session} if session else {})}
            body = json.dumps({"model": "smart-cheap-router", "messages": messages})
            event = http_event("POST", "/v1/chat/completions", body=body, headers=headers)
            result: dict[str, Any] = chat.lambda_handler(event, lambda_context("chat"))
            assert result["statusCode"] == 200, result
            request_bytes.append(len(body.encode()))
            response_bytes.append(len(result["body"].encode()))
            return result

        def send_stream(messages: list[dict[str, Any]]) -> list[str]:
            """The streaming entry's body pieces (what the function URL sends, one per event)."""
            body = json.dumps({"model": "smart-cheap-router", "messages": messages, "stream": True,
                               "stream_options": {"include_usage": True}})  # fmt: skip
            event = http_event("POST", "/v1/chat/completions", body=body, headers=auth)
            out: list[Any] = StdoutBytes().run(lambda: list(chat.stream_handler(event, lambda_context("chat"))))
            assert out[0]["statusCode"] == 200, out
            return [str(piece) for piece in out[1:]]

        try:
            # Warm the key cache and the code paths, as a warm Lambda would be.
            StdoutBytes().run(lambda: send([{"role": "user", "content": "Write a Python function to add."}], None))
            rows: list[dict[str, float]] = []
            handler_ms: list[float] = []
            sent_before = 0
            for i in range(sessions):
                request_type = types[i % len(types)]
                conversation = opening_messages(rng.choice(PROMPTS[request_type]), rng)
                session = None
                for turn in range(turns_per_session):
                    if turn:
                        conversation.append(
                            {"role": "user", "content": follow_up(kinds[(i + turn) % 3], request_type, rng)}
                        )
                    before = (meter.rru, meter.wru)
                    runtime.store().stats.calls.clear()
                    t0 = time.perf_counter()
                    out = chat_out.run(lambda c=list(conversation), s=session: send(c, s))
                    handler_ms.append((time.perf_counter() - t0) * 1000)
                    calls = runtime.store().stats.calls
                    sent = calls.get("SQS.SendMessage", 0)
                    rows.append(
                        {
                            "round_trips": sum(v for k, v in calls.items() if not k.startswith("SQS")),
                            "rru": meter.rru - before[0],
                            "wru": meter.wru - before[1],
                            "signals": sent,
                        }
                    )
                    sent_before += sent
                    session = out["headers"]["x-router-session-id"]
                    answer = json.loads(out["body"])["choices"][0]["message"]["content"]
                    conversation.append({"role": "assistant", "content": answer})

            # Response sizes: the buffered JSON answers above, and the same kind of answer as
            # chat.completion.chunk events from the streaming entry, one ~token per chunk.
            streamed = [
                _sse_sizes(send_stream(opening_messages(rng.choice(PROMPTS[types[n % len(types)]]), rng)))
                for n in range(20)
            ]

            # Every queued signal, in batches of 10 as the event source mapping delivers them.
            sqs = boto3.client("sqs", region_name=REGION)
            arn = sqs.get_queue_attributes(QueueUrl=res.queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            batches: list[dict[str, float]] = []
            applied = 0
            while True:
                got = sqs.receive_message(QueueUrl=res.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                    "Messages", []
                )
                if not got:
                    break
                before = (meter.rru, meter.wru)
                t0 = time.perf_counter()
                result = fb_out.run(
                    lambda g=got: feedback.lambda_handler(sqs_event(g, arn), lambda_context("feedback"))
                )
                seconds = time.perf_counter() - t0
                assert not result.get("batchItemFailures"), result
                applied += len(got)
                batches.append(
                    {
                        "messages": len(got),
                        "seconds": seconds,
                        "rru": meter.rru - before[0],
                        "wru": meter.wru - before[1],
                    }
                )
                sqs.delete_message_batch(
                    QueueUrl=res.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
                )

            # The state route: the first read of a dashboard tab (whole history), then polls
            # (history_since = its newest point), as static_site/js/dashboard.js sends them.
            def poll(since: int | None) -> dict[str, Any]:
                query = {} if since is None else {"history_since": str(since)}
                event = http_event("GET", "/v1/state", query=query, signed=True)
                result: dict[str, Any] = state.lambda_handler(event, lambda_context("state"))
                assert result["statusCode"] == 200, result
                return result

            first_before = meter.rru
            first = json.loads(state_out.run(lambda: poll(None))["body"])
            first_rru = meter.rru - first_before
            newest = max((p["t"] for r in first["routers"] for p in r["history"]), default=None)
            # Idle polls (nothing changed since the last) and active ones (a chat request in between).
            polls: dict[str, list[dict[str, float]]] = {"idle": [], "active": []}
            for n in range(40):
                kind = "active" if n % 2 else "idle"
                if kind == "active":
                    opening = opening_messages(rng.choice(PROMPTS[types[n % len(types)]]), rng)
                    StdoutBytes().run(lambda o=opening: send(o, None))
                before = (meter.rru, meter.wru)
                t0 = time.perf_counter()
                state_out.run(lambda: poll(newest))
                polls[kind].append(
                    {"seconds": time.perf_counter() - t0, "rru": meter.rru - before[0], "wru": meter.wru - before[1]}
                )
        finally:
            runtime.reset()

    def mean(items: list[dict[str, float]], k: str) -> float:
        return statistics.fmean(r[k] for r in items)

    chats = len(rows)
    return {
        "chat": {
            "requests": chats,
            "sessions": sessions,
            "turns_per_session": turns_per_session,
            "round_trips_mean": mean(rows, "round_trips"),
            "round_trips_max": max(r["round_trips"] for r in rows),
            "read_units_mean": mean(rows, "rru"),
            "write_units_mean": mean(rows, "wru"),
            "handler_ms_p50": statistics.median(handler_ms),
            "signals_per_request": sent_before / chats,
            "log_bytes_per_request": chat_out.bytes / chats,
            "log_lines_per_request": chat_out.lines / chats,
            "log_sample": chat_out.sample,
            "request_bytes_mean": statistics.fmean(request_bytes[1:]),
            "response_bytes_mean": statistics.fmean(response_bytes[1:]),
        },
        "streamed_answer": {
            "answers": len(streamed),
            "sse_bytes_mean": statistics.fmean(x["bytes"] for x in streamed),
            "gzip_bytes_mean": statistics.fmean(x["gzip_bytes"] for x in streamed),
            "events_mean": statistics.fmean(x["events"] for x in streamed),
            "content_chunks_per_token": sum(x["content_chunks"] for x in streamed) / sum(x["tokens"] for x in streamed),
            "completion_tokens_mean": statistics.fmean(x["tokens"] for x in streamed),
        },
        "implicit_feedback": {
            "signals": applied,
            "batches": len(batches),
            "read_units_per_signal": sum(b["rru"] for b in batches) / max(1, applied),
            "write_units_per_signal": sum(b["wru"] for b in batches) / max(1, applied),
            "handler_ms_per_batch_p50": statistics.median(b["seconds"] for b in batches) * 1000 if batches else 0.0,
            "log_bytes_per_signal": fb_out.bytes / max(1, applied),
            "log_lines_per_signal": fb_out.lines / max(1, applied),
        },
        "state": {
            "first_read_units": first_rru,
            "poll_read_units_mean": mean(polls["idle"] + polls["active"], "rru"),
            "poll_write_units_mean": mean(polls["idle"] + polls["active"], "wru"),
            "handler_ms_p50_active": statistics.median(p["seconds"] for p in polls["active"]) * 1000,
            "handler_ms_p50_idle": statistics.median(p["seconds"] for p in polls["idle"]) * 1000,
            "log_bytes_per_call": state_out.bytes / (len(polls["idle"]) + len(polls["active"]) + 1),
        },
    }


def _sse_sizes(pieces: list[str]) -> dict[str, float]:
    """One streamed answer: its bytes as sent plain and gzip-encoded (each event flushed through
    the compressor, as the stream server does for clients that accept gzip), its events and
    content chunks, its output tokens."""
    from router_core.openai_format import GzipEventStream

    gzip = GzipEventStream()
    raw = [piece.encode("utf-8") for piece in pieces]
    gzipped = sum(len(gzip.piece(data)) for data in raw) + len(gzip.end())
    tokens, content_chunks = 0, 0
    for piece in pieces:
        if not piece.startswith("data: {"):
            continue
        chunk = json.loads(piece[len("data: ") :])
        if chunk.get("usage"):
            tokens = int(chunk["usage"]["completion_tokens"])
        content_chunks += sum(1 for c in chunk.get("choices") or () if (c.get("delta") or {}).get("content"))
    return {
        "bytes": sum(len(d) for d in raw),
        "gzip_bytes": gzipped,
        "events": len(pieces),
        "content_chunks": content_chunks,
        "tokens": tokens,
    }


def streamed_response_bytes(measured: dict[str, Any], *, gzip: bool = True) -> float:
    """A streamed answer's bytes to the client: the measured token-by-token stream, gzip-encoded
    (the OpenAI SDKs and browsers accept gzip) or plain, plus the head."""
    st = measured["streamed_answer"]
    return (st["gzip_bytes_mean"] if gzip else st["sse_bytes_mean"]) + RESPONSE_HEAD_BYTES


def streaming_price_per_million(
    measured: dict[str, Any],
    settings: dict[str, Any],
    model_latency_s: float,
    signals: float | None = None,
    *,
    gzip: bool = True,
) -> dict[str, float]:
    """USD per 1M routed requests on the streaming path (models excluded): CloudFront → function
    URL (RESPONSE_STREAM) → the chat function behind the Lambda Web Adapter, same memory and
    architecture, billed for the whole stream. DynamoDB, SQS and the feedback function are the
    buffered path's (a streamed turn makes the same writes); no API Gateway access log line.
    `gzip`: the client accepts gzip (the stream is sent encoded), else plain."""
    buffered = price_per_million(measured, settings, model_latency_s, signals)
    chat = measured["chat"]
    body = streamed_response_bytes(measured, gzip=gzip)
    seconds = chat["handler_ms_p50"] / 1000 + model_latency_s + LWA_PROXY_MS / 1000
    per_request = {
        "cloudfront_requests": PRICE_CLOUDFRONT_HTTPS_PER_M / 1e6,
        "cloudfront_data_out": body / 1e9 * PRICE_CLOUDFRONT_OUT_PER_GB
        + chat["request_bytes_mean"] / 1e9 * PRICE_CLOUDFRONT_TO_ORIGIN_PER_GB,
        "lambda_chat": lambda_usd(seconds, settings["chat_function"])
        + max(0.0, body - LAMBDA_STREAM_FREE_BYTES) / 1e9 * PRICE_LAMBDA_STREAM_PER_GB,
    }
    parts = {k: v * 1e6 for k, v in per_request.items()}
    parts |= {k: buffered[k] for k in ("lambda_feedback", "dynamodb", "sqs")}
    parts["cloudwatch_logs"] = buffered["cloudwatch_logs"] - log_usd(measured["access_log_bytes"], 1) * 1e6
    parts["total"] = sum(parts.values())
    return {k: round(v, 3) for k, v in parts.items()}


def buffered_data_out_per_million(measured: dict[str, Any]) -> float:
    """The buffered path's response bytes to the internet (API Gateway), USD per 1M requests:
    not in `price_per_million` (its table predates it), added for the like-for-like comparison."""
    return round((measured["chat"]["response_bytes_mean"] + RESPONSE_HEAD_BYTES) / 1e9 * PRICE_API_OUT_PER_GB * 1e6, 3)


def function_settings(logical_id: str) -> dict[str, Any]:
    """MemorySize (MB) and architecture of a function, from template.yaml (SAM globals applied)."""
    from tests.aws_env import stack_template

    props = stack_template().properties(logical_id)
    return {
        "memory_mb": int(props.get("MemorySize", 128)),
        "architecture": (props.get("Architectures") or ["x86_64"])[0],
    }


def template_settings() -> dict[str, Any]:
    from tests.aws_env import stack_template

    t = stack_template()
    chat_env = t.properties("ChatFunction")
    mapping = next(iter(t.of_type("AWS::Lambda::EventSourceMapping")))
    return {
        "chat_function": function_settings("ChatFunction"),
        "feedback_function": function_settings("FeedbackFunction"),
        "state_function": function_settings("StateFunction"),
        "log_level": t.parameters["LogLevel"],
        "system_log_level": chat_env["LoggingConfig"]["SystemLogLevel"],
        "signal_batch_size": int(t.properties(mapping)["BatchSize"]),
    }


def lambda_usd(seconds: float, fn: dict[str, Any]) -> float:
    """One invocation: duration × memory at the architecture's price, plus the request fee."""
    return seconds * fn["memory_mb"] / 1024 * PRICE_LAMBDA_GB_S[fn["architecture"]] + PRICE_LAMBDA_REQ_PER_M / 1e6


def log_usd(event_bytes: float, events: float) -> float:
    return (event_bytes + LOG_EVENT_OVERHEAD_BYTES * events) / 1e9 * PRICE_LOGS_PER_GB


def unit_prices_per_million(utilization: float | None) -> tuple[float, float]:
    """(write, read) USD per 1M DynamoDB units: on-demand (None), or provisioned capacity whose
    `utilization` (0..1] of the paid unit-hours is used."""
    if utilization is None:
        return PRICE_DDB_WRU_PER_M, PRICE_DDB_RRU_PER_M
    return (
        PRICE_DDB_WCU_HOUR / (3600 * utilization) * 1e6,
        PRICE_DDB_RCU_HOUR / (3600 * utilization) * 1e6,
    )


def price_per_million(
    measured: dict[str, Any],
    settings: dict[str, Any],
    model_latency_s: float,
    signals: float | None = None,
    *,
    provisioned_utilization: float | None = None,
) -> dict[str, float]:
    """USD per 1M routed requests (models themselves excluded), every input measured; `signals`
    per request replaces the measured share (to price other conversation shapes);
    `provisioned_utilization` prices the table's units as provisioned capacity used that much."""
    chat, fb = measured["chat"], measured["implicit_feedback"]
    signals = chat["signals_per_request"] if signals is None else signals
    batch = settings["signal_batch_size"]
    wru, rru = unit_prices_per_million(provisioned_utilization)
    per_request = {
        "api_gateway": PRICE_HTTP_API_PER_M / 1e6,
        "lambda_chat": lambda_usd(chat["handler_ms_p50"] / 1000 + model_latency_s, settings["chat_function"]),
        "lambda_feedback": signals
        / batch
        * lambda_usd(fb["handler_ms_per_batch_p50"] / 1000, settings["feedback_function"]),
        "dynamodb": (chat["write_units_mean"] + signals * fb["write_units_per_signal"]) * wru / 1e6
        + (chat["read_units_mean"] + signals * fb["read_units_per_signal"]) * rru / 1e6,
        "sqs": signals * SQS_REQUESTS_PER_SIGNAL * PRICE_SQS_PER_M / 1e6,
        "cloudwatch_logs": log_usd(chat["log_bytes_per_request"], chat["log_lines_per_request"])
        + log_usd(measured["access_log_bytes"], 1)
        + signals * log_usd(fb["log_bytes_per_signal"], fb["log_lines_per_signal"]),
    }
    parts = {k: v * 1e6 for k, v in per_request.items()}
    parts["total"] = sum(parts.values())
    return {k: round(v, 3) for k, v in parts.items()}


def _utilization_within_target(measured: dict[str, Any], settings: dict[str, Any]) -> float | None:
    """The lowest use of provisioned capacity at which 1 s costs at most the target (None: never).

    Only the DynamoDB part depends on the use u, as (its cost at full use) / u, so the bound is
    that cost over what the target leaves once every other part is paid."""
    full = price_per_million(measured, settings, 1.0, provisioned_utilization=1.0)
    room = TARGET_USD_PER_MILLION - (full["total"] - full["dynamodb"])
    return full["dynamodb"] / room if room >= full["dynamodb"] else None


def min_capacity_usd_per_month() -> float:
    """A provisioned table at its minimum (TableMinCapacity read and write units), 730 hours."""
    from tests.aws_env import stack_template

    units = int(stack_template().parameters["TableMinCapacity"])
    return units * (PRICE_DDB_WCU_HOUR + PRICE_DDB_RCU_HOUR) * 730


def dashboard_usd_per_day(
    measured: dict[str, Any], settings: dict[str, Any], poll_s: float, active: bool
) -> dict[str, float]:
    """One open dashboard tab polling every `poll_s` seconds for a day (0 calls while hidden);
    `active`: the state changes between polls (no reuse of the computed pick shares)."""
    st = measured["state"]
    handler_ms = st["handler_ms_p50_active"] if active else st["handler_ms_p50_idle"]
    calls = 86_400 / poll_s
    history_writes = 86_400 / HISTORY_STEP_S  # the state route writes one point per step while polled
    parts = {
        "calls": calls,
        "api_gateway": calls * PRICE_HTTP_API_PER_M / 1e6,
        "lambda_state": calls * lambda_usd(handler_ms / 1000, settings["state_function"]),
        "dynamodb": calls * st["poll_read_units_mean"] * PRICE_DDB_RRU_PER_M / 1e6
        + history_writes * PRICE_DDB_WRU_PER_M / 1e6,
        "cloudwatch_logs": calls * (log_usd(st["log_bytes_per_call"], 0) + log_usd(measured["access_log_bytes"], 1)),
    }
    parts["total"] = sum(v for k, v in parts.items() if k != "calls")
    return {k: (round(v) if k == "calls" else round(v, 4)) for k, v in parts.items()}


def price_table(title: str, first_column: str, rows: dict[str, dict[str, float]]) -> Any:
    """A rich table of USD parts per row (one column per part, the row's label first)."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column(first_column, justify="right")
    for col in next(iter(rows.values())):
        t.add_column(col, justify="right")
    for label, parts in rows.items():
        t.add_row(label, *(f"{v:.2f}" for v in parts.values()))
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aws_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=150, help="conversations driven through the chat handler")
    parser.add_argument(
        "--turns-per-session",
        type=int,
        default=2,
        help="chat requests per conversation (2: the demo traffic's gated opening and one follow-up)",
    )
    parser.add_argument("--out", default="benchmarks/results/aws_cost.json")
    args = parser.parse_args(argv)

    measured = measure(args.sessions, args.turns_per_session)
    measured["access_log_bytes"] = access_log_bytes("POST /v1/chat/completions", 200, 1012)
    settings = template_settings()
    table = {f"{lat:g}s": price_per_million(measured, settings, lat) for lat in MODEL_LATENCIES_S}
    by_share = {f"{share:g}": price_per_million(measured, settings, 1.0, share) for share in SIGNAL_SHARES}
    base = price_per_million(measured, settings, 1.0, 0.0)["total"]
    per_signal = price_per_million(measured, settings, 1.0, 1.0)["total"] - base
    break_even = (TARGET_USD_PER_MILLION - base) / per_signal if per_signal > 0 else None
    dashboard = {
        label: dashboard_usd_per_day(measured, settings, poll, active) for label, poll, active in DASHBOARD_POLLING
    }
    by_capacity = {"on-demand": table["1s"]} | {
        f"provisioned, {u:.0%} used": price_per_million(measured, settings, 1.0, provisioned_utilization=u)
        for u in PROVISIONED_UTILIZATIONS
    }
    provisioned_within = _utilization_within_target(measured, settings)
    streaming = {f"{lat:g}s": streaming_price_per_million(measured, settings, lat) for lat in MODEL_LATENCIES_S}
    buffered_out = buffered_data_out_per_million(measured)
    buffered_1s = table["1s"]["total"] + buffered_out
    streaming_1s = streaming["1s"]["total"]
    versus = {
        "buffered_usd_per_million": round(buffered_1s, 3),
        "buffered_parts": {**table["1s"], "api_data_out": buffered_out},
        "streaming_usd_per_million": round(streaming_1s, 3),
        "streaming_parts": streaming["1s"],
        "difference_usd_per_million": round(streaming_1s - buffered_1s, 3),
        "without_data_transfer": {
            "buffered": table["1s"]["total"],
            "streaming": round(streaming_1s - streaming["1s"]["cloudfront_data_out"], 3),
        },
        "goal": "streaming ≤ buffered (both with their response bytes to the internet)",
        "result": "PASS" if streaming_1s <= buffered_1s else "FAIL",
    }

    from rich.console import Console
    from rich.table import Table

    console = Console()
    c, f, st = measured["chat"], measured["implicit_feedback"], measured["state"]
    t = Table(
        title=f"Per request (measured: {c['requests']} chats in {c['sessions']} sessions of {c['turns_per_session']}, "
        f"{f['signals']} implicit signals in {f['batches']} batches)"
    )
    for col in ("path", "DynamoDB round trips", "read units", "write units", "log bytes", "handler ms p50"):
        t.add_column(col, justify="right")
    t.add_row(
        "chat request",
        f"{c['round_trips_mean']:.2f} (max {c['round_trips_max']})",
        f"{c['read_units_mean']:.2f}",
        f"{c['write_units_mean']:.2f}",
        f"{c['log_bytes_per_request']:.0f} + access log {measured['access_log_bytes']}",
        f"{c['handler_ms_p50']:.1f}",
    )
    t.add_row(
        "implicit signal",
        "1 (TransactWriteItems)",
        f"{f['read_units_per_signal']:.2f}",
        f"{f['write_units_per_signal']:.2f}",
        f"{f['log_bytes_per_signal']:.0f}",
        f"{f['handler_ms_per_batch_p50']:.1f} per batch",
    )
    t.add_row(
        "state poll",
        "3 Queries",
        f"{st['poll_read_units_mean']:.2f} (first read {st['first_read_units']:.1f})",
        f"{st['poll_write_units_mean']:.2f}",
        f"{st['log_bytes_per_call']:.0f}",
        f"{st['handler_ms_p50_active']:.1f} ({st['handler_ms_p50_idle']:.1f} unchanged)",
    )
    console.print(t)
    console.print(f"Signals per chat request (measured): {c['signals_per_request']:.3f}")
    chat_fn = settings["chat_function"]
    chat_label = f"ChatFunction {chat_fn['memory_mb']} MB {chat_fn['architecture']}"
    console.print(price_table(f"USD per 1M routed requests ({chat_label}; models excluded)", "model latency", table))
    console.print(
        price_table(
            "Streaming path, USD per 1M routed requests (CloudFront → function URL → chat λ via LWA)",
            "model latency",
            streaming,
        )
    )
    console.print(
        f"At 1 s, with each path's response bytes to the internet: buffered ${buffered_1s:.2f} "
        f"(of which API data out ${buffered_out:.2f}), streaming ${streaming_1s:.2f} "
        f"({streamed_response_bytes(measured):.0f} bytes per streamed answer): {versus['result']} "
        "(goal: streaming ≤ buffered)"
    )
    console.print(
        price_table(
            "USD per 1M routed requests at 1 s model latency, by implicit signals per request",
            "signals per request",
            by_share,
        )
    )
    console.print(
        f"At 1 s: ${base:.2f} per 1M without signals, +${per_signal:.2f} per 1M signals; "
        f"${TARGET_USD_PER_MILLION:.2f} holds up to {break_even:.2f} signals per request."
        if break_even is not None
        else ""
    )
    console.print(
        price_table(
            "USD per 1M routed requests at 1 s model latency, by the table's capacity mode (TableCapacityMode)",
            "DynamoDB",
            by_capacity,
        )
    )
    target_met = by_capacity["on-demand"]["total"] <= TARGET_USD_PER_MILLION
    console.print(
        f"On-demand: ${by_capacity['on-demand']['total']:.2f} "
        f"({'PASS' if target_met else 'FAIL'}, target ${TARGET_USD_PER_MILLION:.2f}). "
        f"Provisioned at the auto-scaling target ({PROVISIONED_TARGET_UTILIZATION:.0%} used): "
        f"${by_capacity[f'provisioned, {PROVISIONED_TARGET_UTILIZATION:.0%} used']['total']:.2f}; "
        + (
            f"${TARGET_USD_PER_MILLION:.2f} holds while at least {provisioned_within:.0%} of the capacity is used."
            if provisioned_within is not None
            else f"above ${TARGET_USD_PER_MILLION:.2f} at any use."
        )
    )
    d = Table(title="Fixed: one open dashboard tab, USD per day (a hidden tab polls nothing)")
    d.add_column("polling", justify="right")
    for col in next(iter(dashboard.values())):
        d.add_column(col, justify="right")
    for poll, parts in dashboard.items():
        d.add_row(poll, *(str(v) for v in parts.values()))
    console.print(d)
    console.print(
        "Idle: nothing else is billed per hour (on-demand table, no NAT or instances); storage only. A provisioned "
        f"table bills its minimum capacity: ${min_capacity_usd_per_month():.2f} a month at TableMinCapacity's default."
    )
    out = {
        "settings": {
            **settings,
            "sessions": args.sessions,
            "turns_per_session": args.turns_per_session,
            "model_latencies_s": list(MODEL_LATENCIES_S),
            "sqs_requests_per_signal": SQS_REQUESTS_PER_SIGNAL,
            "log_event_overhead_bytes": LOG_EVENT_OVERHEAD_BYTES,
            "history_step_s": HISTORY_STEP_S,
            "prices_usd": {
                "http_api_per_million": PRICE_HTTP_API_PER_M,
                "lambda_request_per_million": PRICE_LAMBDA_REQ_PER_M,
                "lambda_gb_second": PRICE_LAMBDA_GB_S,
                "dynamodb_write_unit_per_million": PRICE_DDB_WRU_PER_M,
                "dynamodb_read_unit_per_million": PRICE_DDB_RRU_PER_M,
                "sqs_per_million": PRICE_SQS_PER_M,
                "logs_ingested_per_gb": PRICE_LOGS_PER_GB,
                "cloudfront_https_requests_per_million": PRICE_CLOUDFRONT_HTTPS_PER_M,
                "cloudfront_data_out_per_gb": PRICE_CLOUDFRONT_OUT_PER_GB,
                "cloudfront_to_origin_per_gb": PRICE_CLOUDFRONT_TO_ORIGIN_PER_GB,
                "lambda_streamed_per_gb_beyond_6mb": PRICE_LAMBDA_STREAM_PER_GB,
                "api_gateway_data_out_per_gb": PRICE_API_OUT_PER_GB,
            },
            "streaming_path": {
                "shape": "CloudFront (HTTPS) → Lambda function URL, InvokeMode RESPONSE_STREAM → chat function "
                "behind the Lambda Web Adapter, same memory and architecture as ChatFunction",
                "billed_duration": "handler time + model latency (the whole stream) + the adapter's proxy hop",
                "lwa_proxy_ms_assumed": LWA_PROXY_MS,
                "lwa_init": "once per execution environment (a cold start), not priced per request",
                "characters_per_streamed_chunk": TOKEN_CHARS,
                "encoding": "gzip, each event flushed (clients that accept it: OpenAI SDKs, browsers)",
                "response_head_bytes_assumed": RESPONSE_HEAD_BYTES,
                "same_as_buffered": "DynamoDB writes and reads, SQS, the feedback function, the chat function's logs",
                "not_billed": "function URL itself; streamed bytes under 6 MB per response; no API Gateway access log",
                "free_tiers": "ignored (CloudFront's 10M requests and 1 TB a month, Lambda's monthly free tier)",
            },
        },
        "measured": measured,
        "usd_per_million": table,
        "usd_per_million_at_1s_by_signals_per_request": by_share,
        "usd_per_million_at_1s_by_capacity_mode": by_capacity,
        "provisioned": {
            "auto_scaling_target_utilization": PROVISIONED_TARGET_UTILIZATION,
            "utilization_within_target": None if provisioned_within is None else round(provisioned_within, 3),
            "minimum_capacity_usd_per_month": round(min_capacity_usd_per_month(), 2),
            "prices_usd": {
                "write_capacity_unit_hour": PRICE_DDB_WCU_HOUR,
                "read_capacity_unit_hour": PRICE_DDB_RCU_HOUR,
            },
        },
        "at_1s": {
            "usd_per_million_without_signals": round(base, 3),
            "usd_per_million_signals": round(per_signal, 3),
            "signals_per_request_within_target": None if break_even is None else round(break_even, 3),
            "target_usd_per_million": TARGET_USD_PER_MILLION,
        },
        "dashboard_tab_usd_per_day": dashboard,
        "streaming_usd_per_million": streaming,
        "streamed_response_bytes": round(streamed_response_bytes(measured)),
        "streamed_response_bytes_plain": round(streamed_response_bytes(measured, gzip=False)),
        "streaming_without_gzip_at_1s": streaming_price_per_million(measured, settings, 1.0, gzip=False),
        "at_1s_buffered_vs_streaming": versus,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
