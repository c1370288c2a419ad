"""Streamed answers through the local stack, against the same upstream called directly.

    .venv/bin/python -m benchmarks.streaming [--requests 200] [--concurrency 8] [--quick]

Starts, on 127.0.0.1 only, a fake OpenAI-compatible upstream (in this process: `POST
/v1/chat/completions`; with `stream: true` it answers `chat.completion.chunk` events, a role
chunk at once, then content chunks `--interval-ms` apart, a finish chunk, a usage chunk when
`stream_options.include_usage` is asked, `[DONE]`; otherwise one JSON completion after the
time the stream would have taken) and the local
stack with every model pointed at it. Then, each streamed request timed from its send to the
network read that brought each content chunk:

(a) time to first content chunk, the upstream called directly (the baseline, same run, same
    load: each worker sends one direct and one routed request in turn) and through the
    router, p50/p95 over `--requests` each; target router p95 ≤ upstream p95 + 50 ms;
(b) spread: the span from first to last content chunk through the router, over the
    upstream's own span measured directly; target ≥ 0.80 for 95% of requests (a buffered
    answer arrives in one read: spread 0);
(c) a 60-second answer (60 chunks 1 s apart) arrives whole through the router (skipped by
    `--quick`);
(d) the official `openai` client's streaming API sees ≥ 10 separate arrivals of a 20-chunk
    answer (arrivals at least a third of the interval apart).

Prints a table and writes `benchmarks/results/streaming.json` (settings, figures, PASS/FAIL per
target). Bounded: every request has a timeout, the run stops the stack and the upstream it
started whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks._meta import run_meta
from benchmarks.local_latency import percentiles
from tools.local_stack.launcher import REPO_ROOT, StackProcess, free_port

RESULTS = REPO_ROOT / "benchmarks" / "results" / "streaming.json"
ROUTER = "smart-cheap-router"
KEY_ENV = "STREAMING_BENCH_UPSTREAM_KEY"
CHUNKS = 20
INTERVAL_MS = 150.0
LONG_CHUNKS = 60
LONG_INTERVAL_MS = 1000.0
TTFC_SLACK_MS = 50.0
MIN_SPREAD = 0.80
SPREAD_SHARE = 0.95
MIN_CLIENT_ARRIVALS = 10
REQUEST_TIMEOUT_S = 120.0
PLAN = re.compile(r"\[stream (\d+) x (\d+(?:\.\d+)?) ms\]")
"""How a prompt asks the fake upstream for its stream: `[stream 20 x 150 ms]`."""


def prompt(chunks: int, interval_ms: float) -> str:
    return f"Write a Python function that merges two sorted lists. [stream {chunks} x {interval_ms:g} ms]"


def piece(i: int) -> str:
    """The fake upstream's content chunk `i`: known text, so arrival can be checked whole."""
    return f"token{i:03d} "


# ------------------------------------------------------------------ the fake upstream


class FakeUpstream(ThreadingHTTPServer):
    """An OpenAI-compatible chat endpoint on 127.0.0.1 whose streams follow the prompt's plan."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, api_key: str) -> None:
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.api_key = api_key
        self._thread = threading.Thread(target=self.serve_forever, name="fake-upstream", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FakeUpstream

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if self.headers.get("authorization") != f"Bearer {self.server.api_key}":
            return self._json(401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": None}})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": None}})
        text = " ".join(str(m.get("content")) for m in body.get("messages") or () if isinstance(m, dict))
        found = PLAN.findall(text)
        chunks, interval_ms = (int(found[-1][0]), float(found[-1][1])) if found else (CHUNKS, INTERVAL_MS)
        model = str(body.get("model", "fake"))
        usage = {"prompt_tokens": len(text) // 4, "completion_tokens": chunks, "total_tokens": len(text) // 4 + chunks}
        if not body.get("stream"):
            # A whole answer takes as long as its stream would: the model writes it at the same pace.
            time.sleep(chunks * interval_ms / 1000.0)
            message = {"role": "assistant", "content": "".join(piece(i) for i in range(chunks))}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._stream(model, chunks, interval_ms / 1000.0, usage if include_usage else None)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, chunks: int, interval_s: float, usage: dict[str, int] | None) -> None:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def send(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> None:
            event = {
                **base,
                "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            self._chunk(f"data: {json.dumps(event | extra)}\n\n")

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        started = time.perf_counter()
        try:
            send({"role": "assistant", "content": ""})
            for i in range(chunks):
                time.sleep(max(0.0, started + (i + 1) * interval_s - time.perf_counter()))
                send({"content": piece(i)})
            send({}, "stop")
            if usage is not None:
                send(None, usage=usage)
            self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# ------------------------------------------------------------------ one streamed request, timed


@dataclass
class Trace:
    """One streamed request as the client saw it (times in seconds from the send)."""

    status: int = 0
    head_s: float | None = None
    content_s: list[float] = field(default_factory=list)
    text: str = ""
    done: bool = False
    error: dict[str, Any] | None = None
    router_model: str | None = None
    turn_id: str | None = None
    reads: int = 0

    @property
    def ttfc_ms(self) -> float | None:
        return self.content_s[0] * 1000.0 if self.content_s else None

    @property
    def span_s(self) -> float:
        return self.content_s[-1] - self.content_s[0] if len(self.content_s) > 1 else 0.0


def stream_once(client: httpx.Client, path: str, body: dict[str, Any]) -> Trace:
    """POST `body` with stream true and read the SSE body read by read (gzip-decoded as the
    router sends it to clients that accept it), timing each content chunk."""
    trace = Trace()
    pending = b""
    sent = time.perf_counter()
    with client.stream("POST", path, json=body, timeout=REQUEST_TIMEOUT_S) as response:
        trace.status = response.status_code
        trace.head_s = time.perf_counter() - sent
        trace.router_model = response.headers.get("x-router-model")
        trace.turn_id = response.headers.get("x-router-turn-id")
        if response.status_code != 200:
            response.read()
            trace.error = {"message": response.text[:300], "status": response.status_code}
            return trace
        for data in response.iter_bytes():  # decoded (gzip) as each read arrives
            now = time.perf_counter() - sent
            trace.reads += 1
            pending = (pending + data).replace(b"\r\n", b"\n")
            *events, pending = pending.split(b"\n\n")
            for event in events:
                _apply(trace, event.decode(), now)
    return trace


def _apply(trace: Trace, event: str, now: float) -> None:
    data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
    if not data:
        return
    if data == "[DONE]":
        trace.done = True
        return
    chunk = json.loads(data)
    if "error" in chunk:
        trace.error = chunk["error"]
        return
    if isinstance(chunk.get("router"), dict):
        trace.turn_id = trace.turn_id or chunk["router"].get("turn_id")
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if content:
            trace.text += content
            trace.content_s.append(now)


def separate_arrivals(times_s: list[float], gap_s: float) -> int:
    """How many times content arrived at least `gap_s` after the previous arrival."""
    count, last = 0, None
    for t in times_s:
        if last is None or t - last >= gap_s:
            count += 1
            last = t
    return count


# ------------------------------------------------------------------ the run


def _stack_args(state_dir: Path, upstream_url: str) -> list[str]:
    return [
        *("--api-port", str(free_port()), "--site-port", str(free_port()), "--state-dir", str(state_dir)),
        *("--no-traffic", "--quiet", "--upstream-url", upstream_url, "--upstream-key-env", KEY_ENV),
        # The deployed API throttles at 50 req/s; the benchmark measures streaming, not the throttle.
        *("--parameter-overrides", "ThrottleRatePerSecond=100000", "ThrottleBurst=100000"),
    ]


def _body(chunks: int, interval_ms: float, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt(chunks, interval_ms)}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def run(requests: int, concurrency: int, quick: bool, workdir: Path) -> dict[str, Any]:
    key = "sk-local-" + secrets.token_urlsafe(16)
    env = {**os.environ, KEY_ENV: key}
    upstream = FakeUpstream(key)
    stack = StackProcess(_stack_args(workdir / "state", upstream.base_url), workdir / "stack.log", env=env)
    try:
        info = stack.start(timeout_s=90.0)
        direct = httpx.Client(base_url=upstream.base_url, headers={"Authorization": f"Bearer {key}"})
        routed = httpx.Client(base_url=info.openai_base_url, headers={"Authorization": f"Bearer {info.client_key}"})
        with direct, routed, ThreadPoolExecutor(concurrency) as pool:
            # Warm every execution environment the measured requests will use.
            list(pool.map(lambda _: stream_once(routed, "/chat/completions", _body(2, 10, ROUTER)), range(concurrency)))

            def pair(_: int) -> tuple[Trace, Trace]:
                first = stream_once(direct, "/chat/completions", _body(CHUNKS, INTERVAL_MS, "gpt-4o-mini"))
                return first, stream_once(routed, "/chat/completions", _body(CHUNKS, INTERVAL_MS, ROUTER))

            pairs = list(pool.map(pair, range(requests)))
            client_case = _openai_client_case(info.openai_base_url, info.client_key)
            long_case = (
                None
                if quick
                else stream_once(routed, "/chat/completions", _body(LONG_CHUNKS, LONG_INTERVAL_MS, ROUTER))
            )
    finally:
        stack.stop()
        upstream.stop()
    return _report(pairs, client_case, long_case, requests, concurrency, quick)


def _openai_client_case(base_url: str, api_key: str) -> dict[str, Any]:
    """(d): the official client's streaming API; arrival time of each content chunk it yields."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key, timeout=REQUEST_TIMEOUT_S, max_retries=0)
    sent = time.perf_counter()
    times: list[float] = []
    text = ""
    stream = client.chat.completions.create(
        model=ROUTER,
        messages=[{"role": "user", "content": prompt(CHUNKS, INTERVAL_MS)}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter() - sent)
            text += chunk.choices[0].delta.content
    client.close()
    return {
        "content_chunks": len(times),
        "separate_arrivals": separate_arrivals(times, INTERVAL_MS / 3000.0),
        "whole": text == "".join(piece(i) for i in range(CHUNKS)),
        "usage_reported": usage is not None,
        "elapsed_s": round(times[-1], 3) if times else None,
    }


def _report(
    pairs: list[tuple[Trace, Trace]],
    client_case: dict[str, Any],
    long_case: Trace | None,
    requests: int,
    concurrency: int,
    quick: bool,
) -> dict[str, Any]:
    expected = "".join(piece(i) for i in range(CHUNKS))
    failed = [r for d, r in pairs for t in (d, r) if t.status != 200 or t.error or not t.done or t.text != expected]
    direct = [d for d, _ in pairs]
    routed = [r for _, r in pairs]
    direct_ttfc = percentiles([t.ttfc_ms for t in direct if t.ttfc_ms is not None])
    router_ttfc = percentiles([t.ttfc_ms for t in routed if t.ttfc_ms is not None] or [float("inf")] * 2)
    direct_span = statistics.median(t.span_s for t in direct)
    spreads = sorted(r.span_s / direct_span for r in routed)
    spread_p05 = spreads[int(len(spreads) * (1 - SPREAD_SHARE))]
    head_first = sum(
        1 for r in routed if r.head_s is not None and r.ttfc_ms is not None and r.head_s * 1000 <= r.ttfc_ms
    )
    long = None
    if long_case is not None:
        long_expected = "".join(piece(i) for i in range(LONG_CHUNKS))
        long = {
            "status": long_case.status,
            "content_chunks": len(long_case.content_s),
            "whole": long_case.text == long_expected and long_case.done and long_case.error is None,
            "separate_arrivals": separate_arrivals(long_case.content_s, LONG_INTERVAL_MS / 3000.0),
            "elapsed_s": round(long_case.content_s[-1], 2) if long_case.content_s else None,
            "error": long_case.error,
        }
    targets = [
        _target(
            "(a) router p95 time to first content ≤ upstream p95 + 50 ms",
            f"≤ {direct_ttfc['p95'] + TTFC_SLACK_MS:.1f} ms",
            router_ttfc["p95"],
            router_ttfc["p95"] <= direct_ttfc["p95"] + TTFC_SLACK_MS,
        ),
        _target(
            f"(b) content spread over ≥ {MIN_SPREAD:.0%} of the upstream's duration, {SPREAD_SHARE:.0%} of requests",
            f"p05 ≥ {MIN_SPREAD:.2f}",
            round(spread_p05, 3),
            spread_p05 >= MIN_SPREAD,
        ),
        _target(
            f"(c) a {LONG_CHUNKS * LONG_INTERVAL_MS / 1000:g}-second answer arrives whole",
            f"{LONG_CHUNKS} chunks + [DONE]",
            None if long is None else long["content_chunks"],
            None if long is None else bool(long["whole"]),
        ),
        _target(
            f"(d) openai client sees ≥ {MIN_CLIENT_ARRIVALS} separate chunks of a {CHUNKS}-chunk answer",
            f"≥ {MIN_CLIENT_ARRIVALS}",
            client_case["separate_arrivals"],
            client_case["separate_arrivals"] >= MIN_CLIENT_ARRIVALS and client_case["whole"],
        ),
        _target(
            "every streamed answer complete and exact",
            f"{2 * requests} of {2 * requests}",
            2 * requests - len(failed),
            not failed,
        ),
    ]
    return {
        "settings": {
            "requests_each": requests,
            "concurrency": concurrency,
            "quick": quick,
            "chunks": CHUNKS,
            "interval_ms": INTERVAL_MS,
            "long_answer": None if quick else {"chunks": LONG_CHUNKS, "interval_ms": LONG_INTERVAL_MS},
            "upstream": "fake OpenAI-compatible server in this process (127.0.0.1): first content after one interval",
            "timing": "from the send to the network read that brought the chunk (httpx iter_raw)",
        },
        "time_to_first_content_ms": {"upstream_direct": direct_ttfc, "router": router_ttfc},
        "router_headers_before_first_content": f"{head_first} of {len(routed)}",
        "spread": {
            "upstream_span_s_median": round(direct_span, 3),
            "router_over_upstream": {
                "p05": round(spread_p05, 3),
                "median": round(statistics.median(spreads), 3),
                "min": round(spreads[0], 3),
            },
            "router_reads_median": statistics.median(r.reads for r in routed),
        },
        "long_answer": long,
        "openai_client": client_case,
        "failed": [
            {"status": t.status, "error": t.error, "chunks": len(t.content_s), "done": t.done} for t in failed[:5]
        ],
        "targets": targets,
    }


def _target(name: str, target: str, value: Any, passed: bool | None) -> dict[str, Any]:
    return {
        "name": name,
        "target": target,
        "value": value,
        "result": "SKIP" if passed is None else ("PASS" if passed else "FAIL"),
    }


def render(report: dict[str, Any]) -> str:
    s, ttfc, spread = report["settings"], report["time_to_first_content_ms"], report["spread"]
    lines = [
        f"Streaming, {s['requests_each']} requests each ({s['concurrency']} at a time), "
        f"{s['chunks']} chunks {s['interval_ms']:g} ms apart",
        f"{'time to first content, ms':34} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}",
    ]
    for label, key in (("upstream called directly", "upstream_direct"), ("through the router", "router")):
        p = ttfc[key]
        lines.append(f"{label:34} {p['p50']:8.1f} {p['p95']:8.1f} {p['p99']:8.1f} {p['max']:8.1f}")
    r = spread["router_over_upstream"]
    lines += [
        f"spread through the router / upstream span ({spread['upstream_span_s_median']:.2f} s): "
        f"p05 {r['p05']:.2f}, median {r['median']:.2f}, min {r['min']:.2f}; "
        f"reads per answer {spread['router_reads_median']}",
        f"router headers before the first content: {report['router_headers_before_first_content']}",
        f"openai client: {report['openai_client']}",
        f"long answer: {report['long_answer']}",
        "",
    ]
    width = max(len(t["name"]) for t in report["targets"])
    lines += [
        f"{t['result']:4}  {t['name']:{width}}  {t['target']:>22}  measured {t['value']}" for t in report["targets"]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="streamed requests per path (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    parser.add_argument("--quick", action="store_true", help="40 requests per path, no 60-second answer")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = parser.parse_args(argv)
    requests = 40 if args.quick else args.requests
    if requests < 20 or not 1 <= args.concurrency <= 32:
        parser.error("--requests must be at least 20 and --concurrency within 1..32")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streaming-bench-") as workdir:
        report = run(requests, args.concurrency, args.quick, Path(workdir))
    report["meta"] = run_meta(started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\nwritten: {args.out}")
    return 0 if all(t["result"] != "FAIL" for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
