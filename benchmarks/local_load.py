"""The embedded default under load, faults and restarts: is it a real single-machine server?

    .venv/bin/python -m benchmarks.local_load [--quick] [--only load,hang,connect,crash,restart]

Every phase starts the local stack (`python -m tools.local_stack --no-traffic`) on free ports
of 127.0.0.1 with a config whose simulated models answer after `--latency-ms` (1,000 ms), and
stops it by itself:

* load: 32 clients send chats for 30 s (after 10 s of warm-up, while environments start):
  requests per second, p50/p95/p99, errors.
* connect: 64 clients connect at once and send 3 chats each: connection errors/resets.
* hang: 16 clients for 10 s, then again while one request waits on a model that hangs for
  25 s (a third model in the config, named directly): the others' p99, before and during.
* crash: 7 client threads (models answering in 50 ms) send multi-turn chats and explicit ratings while the stack is
  stopped 5 times with SIGTERM and 5 times with SIGKILL and restarted on the same state dir;
  after each restart every acknowledged turn must still exist (a rating is not 404) and every
  acknowledged rating must still be there (rating the turn again is 409 already_scored). At
  the end the saved state is checked: every scored turn has its activity item and the cells'
  feedback counters equal the scored turns (the transaction was all or nothing).
* restart: a state dir holding 100,000 stored turns (written directly as a snapshot): ready
  time and memory (RSS) of the restarted stack; then 8 clients at zero model latency while
  the journal is compacted every few seconds: requests per second in 1-second windows with a
  compaction running vs without.

Writes `benchmarks/results/local_load.json` with the settings and a PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tools.local_stack.banner import StackInfo
from tools.local_stack.launcher import REPO_ROOT, StackProcess, free_port

RESULTS = REPO_ROOT / "benchmarks" / "results" / "local_load.json"
ROUTER = "smart-cheap-router"
HANG_MODEL = "stuck"
PROMPTS = (
    "Write a Python function that merges two sorted lists.",
    "What is the capital of Australia?",
    "Draft a short email telling the team the release moved to Friday.",
    "Explain what this code does: for i in range(3): print(i * i)",
    "Write a SQL query that returns the ten newest orders.",
    "Who wrote the novel Middlemarch?",
)


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": values[0] if values else 0.0, "p95": 0.0, "p99": 0.0, "n": len(values)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1), "n": len(values)}


def write_config(path: Path, latency_ms: float, hang_url: str | None) -> Path:
    """The shipped config with the simulated models' latency set (and a hanging third model)."""
    config = yaml.safe_load((REPO_ROOT / "layers" / "router_core" / "router_core" / "routers.yaml").read_text())
    config["providers"]["simulated"]["latency_ms"] = latency_ms
    if hang_url is not None:
        config["providers"]["hanging"] = {"type": "openai_compatible", "base_url": hang_url}
        config["models"][HANG_MODEL] = {
            "provider": "hanging",
            "upstream_model": HANG_MODEL,
            "input_usd_per_mtok": 0.1,
            "output_usd_per_mtok": 0.1,
            "quality_tier": 1,
        }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Stack:
    """One local stack process on free ports, on `state_dir`."""

    def __init__(self, workdir: Path, state_dir: Path, config: Path, *extra: str, label: str = "stack") -> None:
        self.args = [
            "--no-traffic",
            "--quiet",
            "--api-port",
            str(free_port()),
            "--site-port",
            str(free_port()),
            "--state-dir",
            str(state_dir),
            "--config",
            str(config),
            "--seed",
            "7",
            # The deployed API throttles at 50 req/s; this measures the server, not the throttle.
            "--parameter-overrides",
            "ThrottleRatePerSecond=100000",
            "ThrottleBurst=100000",
            *extra,
        ]
        self.process = StackProcess(self.args, workdir / f"{label}-{secrets.token_hex(3)}.log")
        self.info: StackInfo | None = None

    def start(self) -> StackInfo:
        self.info = self.process.start(timeout_s=120.0)
        return self.info

    @property
    def url(self) -> str:
        assert self.info is not None
        return self.info.api_url.rstrip("/")

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        assert self.info is not None
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.info.client_key}"}, timeout=timeout_s
        )

    def rss_mb(self) -> float:
        pid = self.process.pid
        if pid is None:
            return 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def signal(self, signum: int) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, signum)

    def stop(self) -> None:
        self.process.stop(timeout_s=60.0)


def chat_body(rng: random.Random, *, model: str = ROUTER, history: bool = False) -> dict[str, Any]:
    prompt = rng.choice(PROMPTS)
    messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
    if history:  # a conversation long enough to pass the signal gate: the turn can be rated
        messages = [
            {"role": "user", "content": rng.choice(PROMPTS)},
            {"role": "assistant", "content": "Here is a first answer."},
            {"role": "user", "content": prompt},
        ]
    return {"model": model, "messages": messages}


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    connection_errors: int = 0
    finished_at: list[float] = field(default_factory=list)
    ok_at: list[float] = field(default_factory=list)
    window_end: float = 0.0
    """When the clients stopped starting requests (those still running finish after it)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str, elapsed_ms: float | None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if elapsed_ms is not None:
                self.latencies_ms.append(elapsed_ms)
                self.finished_at.append(time.monotonic())
                if status == "200":
                    self.ok_at.append(time.monotonic())

    def summary(self, seconds: float) -> dict[str, Any]:
        """Counts and latency percentiles; rps = answers completed within the window / its length."""
        errors = sum(n for s, n in self.statuses.items() if s != "200")
        ok = self.statuses.get("200", 0)
        ok_in_window = sum(1 for at in self.ok_at if at <= self.window_end)
        return {
            "requests": sum(self.statuses.values()),
            "ok": ok,
            "errors": errors,
            "statuses": dict(sorted(self.statuses.items())),
            "connection_errors": self.connection_errors,
            "rps": round(ok_in_window / seconds, 2),
            "latency_ms": percentiles(self.latencies_ms),
        }


def run_clients(stack: Stack, clients: int, seconds: float, seed: int, *, per_client: int | None = None) -> LoadResult:
    """`clients` threads, each with its own keep-alive connection, sending chats."""
    result = LoadResult()
    barrier = threading.Barrier(clients, action=lambda: setattr(result, "window_end", time.monotonic() + seconds))

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        sent = 0
        with stack.client() as client:
            barrier.wait()
            while time.monotonic() < result.window_end and (per_client is None or sent < per_client):
                sent += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/chat/completions", json=chat_body(rng))
                except httpx.TransportError as exc:
                    with result.lock:
                        result.connection_errors += 1
                    result.add(type(exc).__name__, None)
                    continue
                result.add(str(response.status_code), (time.perf_counter() - started) * 1000.0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


# -- phases


def phase_load(workdir: Path, config: Path, clients: int, seconds: float, warmup_s: float) -> dict[str, Any]:
    stack = Stack(workdir, workdir / "load-state", config, label="load")
    stack.start()
    try:
        run_clients(stack, clients, warmup_s, seed=1)  # warm-up, not measured: environments started
        result = run_clients(stack, clients, seconds, seed=2)
        summary = result.summary(seconds)
        summary["clients"] = clients
        summary["seconds"] = seconds
        summary["warmup_s"] = warmup_s
        summary["rss_mb"] = stack.rss_mb()
    finally:
        stack.stop()
    return summary


def phase_connect(workdir: Path, config: Path, clients: int) -> dict[str, Any]:
    stack = Stack(workdir, workdir / "connect-state", config, label="connect")
    stack.start()
    try:
        result = run_clients(stack, clients, 120.0, seed=3, per_client=3)
        summary = result.summary(1.0)
        summary["clients"] = clients
    finally:
        stack.stop()
    return {k: summary[k] for k in ("clients", "requests", "ok", "errors", "statuses", "connection_errors")}


def phase_hang(workdir: Path, config: Path, clients: int, seconds: float) -> dict[str, Any]:
    stack = Stack(workdir, workdir / "hang-state", config, label="hang")
    stack.start()
    try:
        run_clients(stack, clients, 5.0, seed=4)  # warm-up, not measured
        before = run_clients(stack, clients, seconds, seed=5)
        hung: dict[str, Any] = {}

        def hang() -> None:
            started = time.perf_counter()
            with stack.client(timeout_s=60.0) as client:
                response = client.post("/v1/chat/completions", json=chat_body(random.Random(0), model=HANG_MODEL))
            hung.update(status=response.status_code, seconds=round(time.perf_counter() - started, 1))

        thread = threading.Thread(target=hang)
        thread.start()
        time.sleep(0.5)
        during = run_clients(stack, clients, seconds, seed=5)
        thread.join()
    finally:
        stack.stop()
    p99_before = before.summary(seconds)["latency_ms"]["p99"]
    p99_during = during.summary(seconds)["latency_ms"]["p99"]
    return {
        "clients": clients,
        "before": before.summary(seconds),
        "during_hang": during.summary(seconds),
        "hung_request": hung,
        "p99_added_ms": round(p99_during - p99_before, 1),
    }


@dataclass
class Ledger:
    """What the stack acknowledged: turns (200 with a turn id) and ratings (200 applied)."""

    turns: set[str] = field(default_factory=set)
    rated: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def crash_traffic(
    stack: Stack, ledger: Ledger, threads: int, stop: threading.Event, seed: int
) -> list[threading.Thread]:
    """Client threads sending rateable chats and rating them until `stop` or the stack goes away."""

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        with stack.client(timeout_s=10.0) as client:
            while not stop.is_set():
                try:
                    chat = client.post("/v1/chat/completions", json=chat_body(rng, history=True))
                except httpx.TransportError:
                    ledger.error("chat connection")
                    time.sleep(0.05)
                    continue
                turn_id = chat.headers.get("x-router-turn-id")
                if chat.status_code != 200 or not turn_id:
                    ledger.error(f"chat {chat.status_code}")
                    continue
                with ledger.lock:
                    ledger.turns.add(turn_id)
                if rng.random() < 0.5:
                    continue
                try:
                    vote = rng.choice(["up", "down"])
                    rating = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": vote})
                except httpx.TransportError:
                    ledger.error("feedback connection")
                    continue
                if rating.status_code == 200 and rating.json().get("applied"):
                    with ledger.lock:
                        ledger.rated.add(turn_id)
                else:
                    ledger.error(f"feedback {rating.status_code}")

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    return workers


def verify_ledger(stack: Stack, ledger: Ledger) -> dict[str, int]:
    """Every acknowledged turn still exists; every acknowledged rating is still recorded."""
    lost_turns = lost_ratings = 0
    with stack.client(timeout_s=30.0) as client:
        for turn_id in sorted(ledger.turns):
            response = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
            code = (response.json().get("error") or {}).get("code") if response.status_code >= 400 else None
            if response.status_code == 404:
                lost_turns += 1
            elif turn_id in ledger.rated and code != "already_scored":
                lost_ratings += 1
            elif turn_id not in ledger.rated and response.status_code == 200 and response.json().get("applied"):
                ledger.rated.add(turn_id)  # rated now: checked again after the next crash
    return {"turns_checked": len(ledger.turns), "lost_turns": lost_turns, "lost_ratings": lost_ratings}


def saved_state(state_dir: Path, workdir: Path) -> dict[str, Any]:
    """The state a restart would load: snapshot + journal folded by the stack's own compactor."""
    from tools.local_stack.journal import segment_numbers

    copy = workdir / f"check-{secrets.token_hex(3)}"
    shutil.copytree(state_dir, copy)
    numbers = segment_numbers(copy / "journal")
    if numbers:
        subprocess.run(
            [sys.executable, "-m", "tools.local_stack.compact", str(copy), str(numbers[-1])],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    document: dict[str, Any] = json.loads((copy / "state.json").read_text())
    shutil.rmtree(copy, ignore_errors=True)
    return document


def check_consistency(document: dict[str, Any]) -> dict[str, int]:
    """Every scored turn has its activity item and its cell's feedback count (one transaction)."""
    items = [item for table in document["tables"].values() for item in table]

    def text(item: dict[str, Any], name: str) -> str:
        value = item.get(name) or {}
        return str(value.get("S", value.get("N", "")))

    scored: dict[tuple[str, str, str], int] = {}
    scored_ids: set[str] = set()
    activity: set[str] = set()
    feedback: dict[tuple[str, str, str], float] = {}
    for item in items:
        pk, sk = text(item, "pk"), text(item, "sk")
        if pk.startswith("TURN#") and "scored_source" in item:
            cell = (text(item, "router"), text(item, "request_type"), text(item, "model"))
            scored[cell] = scored.get(cell, 0) + 1
            session = pk.split("#")[2] if pk.count("#") >= 2 else ""
            scored_ids.add(f"{session}.{int(sk.split('#')[0])}.{text(item, 'nonce')}")
        elif pk == "ACTIVITY" and "events" in item:  # a batch of implicit signals
            activity.update(str(row[0]) for row in json.loads(text(item, "events")))
        elif pk == "ACTIVITY":
            activity.add(text(item, "turn_id"))
        elif pk == "CELLS" and "feedback" in item:
            router, request_type, model, _shard = sk.split("#")
            key = (router, request_type, model)
            feedback[key] = feedback.get(key, 0.0) + float(text(item, "feedback"))
    cells_off = sum(1 for cell in set(scored) | set(feedback) if round(feedback.get(cell, 0.0)) != scored.get(cell, 0))
    return {
        "scored_turns": len(scored_ids),
        "scored_without_activity": len(scored_ids - activity),
        "cells_with_wrong_feedback_count": cells_off,
    }


def phase_crash(
    workdir: Path,
    config: Path,
    cycles: list[str],
    threads: int,
    run_s: float,
    *,
    min_turns_per_cycle: int = 10,
    max_wait_s: float = 60.0,
) -> dict[str, Any]:
    """Crash/restart cycles; each runs `run_s` and until `min_turns_per_cycle` new turns and a
    new rating were acknowledged (at most `max_wait_s`), so a slow machine still crashes mid-work."""
    state_dir = workdir / "crash-state"
    ledger = Ledger()
    per_cycle: list[dict[str, Any]] = []
    inconsistent = 0
    for number, how in enumerate(cycles):
        stack = Stack(workdir, state_dir, config, label=f"crash-{number}")
        stack.start()
        stop = threading.Event()
        turns_before, rated_before = len(ledger.turns), len(ledger.rated)
        workers = crash_traffic(stack, ledger, threads, stop, seed=number)
        started = time.monotonic()
        time.sleep(run_s)
        while time.monotonic() - started < max_wait_s and (
            len(ledger.turns) - turns_before < min_turns_per_cycle or len(ledger.rated) == rated_before
        ):
            time.sleep(0.1)
        signalled = time.monotonic()
        stack.signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        stack.process.wait(60.0)
        stop.set()
        for thread in workers:
            thread.join(15.0)
        exit_s = time.monotonic() - signalled
        consistency = check_consistency(saved_state(state_dir, workdir))
        bad = consistency["scored_without_activity"] + consistency["cells_with_wrong_feedback_count"]
        inconsistent += 1 if bad else 0
        restarted = Stack(workdir, state_dir, config, label=f"crash-{number}-check")
        info = restarted.start()
        try:
            verified = verify_ledger(restarted, ledger)
        finally:
            restarted.stop()
        per_cycle.append(
            {
                "signal": how,
                "exit_s": round(exit_s, 2),
                "restart_ready_s": round(info.ready_s, 2),
                **verified,
                **consistency,
            }
        )
    return {
        "cycles": per_cycle,
        "turns_acknowledged": len(ledger.turns),
        "ratings_acknowledged": len(ledger.rated),
        "lost_turns": sum(c["lost_turns"] for c in per_cycle),
        "lost_ratings": sum(c["lost_ratings"] for c in per_cycle),
        "inconsistent_states": inconsistent,
        "client_errors": dict(sorted(ledger.errors.items())),
    }


def synthetic_state(state_dir: Path, turns: int, seed: int) -> None:
    """A snapshot of `turns` stored turns (the shape the chat function writes), plus a client key."""
    from router_core.keys import hash_key

    rng = random.Random(seed)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = "rk-" + secrets.token_urlsafe(32)
    key_hash = hash_key(key)
    (state_dir / "client-key.json").write_text(json.dumps({"key": key, "name": "local"}))
    now = time.time()
    items: list[dict[str, Any]] = [
        {"pk": {"S": f"KEY#{key_hash}"}, "sk": {"S": "KEY"}, "name": {"S": "local"}, "created_at": {"N": str(int(now))}}
    ]
    session = ""
    for index in range(turns):
        if index % 3 == 0:  # three turns per session
            session = secrets.token_hex(16)
        cost_n = rng.randint(10_000, 9_000_000)
        items.append(
            {
                "pk": {"S": f"TURN#{key_hash[:32]}#{session}"},
                "sk": {"S": f"{index % 3:06d}"},
                "nonce": {"S": secrets.token_hex(4)},
                "router": {"S": ROUTER},
                "request_type": {"S": rng.choice(["code_generation", "factual_lookup", "writing"])},
                "model": {"S": rng.choice(["fast", "smart"])},
                "routed": {"BOOL": True},
                "gate_passed": {"BOOL": index % 3 != 0},
                "messages": {"N": str(2 * (index % 3) + 2)},
                "created_at": {"N": str(round(now - rng.random() * 86400, 3))},
                "expires_at": {"N": str(int(now + 7 * 86400))},
                "in_tok": {"N": str(rng.randint(20, 400))},
                "out_tok": {"N": str(rng.randint(50, 600))},
                "cost_n": {"N": str(cost_n)},
                "base_n": {"N": str(cost_n * 4)},
                "propensity": {"N": str(round(rng.random(), 6))},
            }
        )
    (state_dir / "state.json").write_text(json.dumps({"version": 2, "tables": {"RouterTable": items}, "queues": {}}))


def rps_windows(result: LoadResult, start: float, end: float) -> list[tuple[float, int]]:
    counts: dict[int, int] = {}
    for at in result.finished_at:
        if start <= at < end:
            counts[int(at - start)] = counts.get(int(at - start), 0) + 1
    return [(start + second, counts.get(second, 0)) for second in range(int(end - start))]


def phase_restart(workdir: Path, turns: int, seconds: float) -> dict[str, Any]:
    state_dir = workdir / "restart-state"
    synthetic_state(state_dir, turns, seed=11)
    config = write_config(workdir / "zero-latency.yaml", 0.0, None)
    stack = Stack(workdir, state_dir, config, "--compact-every-mb", "0.5", label="restart")
    info = stack.start()
    ready_s = stack.process.ready_after_s or info.ready_s
    rss = stack.rss_mb()
    try:
        started = time.monotonic()
        result = run_clients(stack, 8, seconds, seed=12)
        ended = time.monotonic()
    finally:
        stack.stop()
    compactions = _compaction_windows(state_dir / "logs" / "compactions.jsonl")
    windows = rps_windows(result, started + 1.0, ended - 1.0)
    during = [n for at, n in windows if any(a <= at + 1.0 and at <= b for a, b in compactions)]
    outside = [n for at, n in windows if not any(a <= at + 1.0 and at <= b for a, b in compactions)]
    mean_during = statistics.fmean(during) if during else None
    mean_outside = statistics.fmean(outside) if outside else None
    drop = None
    if mean_during is not None and mean_outside:
        drop = round(1.0 - mean_during / mean_outside, 3)
    return {
        "stored_turns": turns,
        "ready_s": round(ready_s, 2),
        "rss_mb_after_restart": rss,
        "rps_windows_during_compaction": len(during),
        "rps_during_compaction": None if mean_during is None else round(mean_during, 1),
        "rps_without_compaction": None if mean_outside is None else round(mean_outside, 1),
        "throughput_drop": drop,
        "compactions": len(compactions),
        "load": result.summary(seconds),
    }


def _compaction_windows(log: Path) -> list[tuple[float, float]]:
    """(start, end) monotonic times of the stack's compactions, from its compaction log."""
    if not log.is_file():
        return []
    windows = []
    for line in log.read_text().splitlines():
        data = json.loads(line)
        windows.append((float(data["started_monotonic"]), float(data["ended_monotonic"])))
    return windows


# -- report

TARGETS: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], bool], str]] = [
    ("load: rps at 32 clients, 1 s model", lambda r: r["load"]["rps"], lambda v: v >= 25, "≥ 25"),
    ("load: p99 ms", lambda r: r["load"]["latency_ms"]["p99"], lambda v: v <= 1500, "≤ 1500"),
    ("load: errors", lambda r: r["load"]["errors"], lambda v: v == 0, "0"),
    ("connect: connection resets (64 clients)", lambda r: r["connect"]["connection_errors"], lambda v: v == 0, "0"),
    ("hang: others' p99 added ms", lambda r: r["hang"]["p99_added_ms"], lambda v: v <= 100, "≤ +100"),
    ("crash: acknowledged turns lost", lambda r: r["crash"]["lost_turns"], lambda v: v == 0, "0"),
    ("crash: acknowledged ratings lost", lambda r: r["crash"]["lost_ratings"], lambda v: v == 0, "0"),
    ("crash: inconsistent saved states", lambda r: r["crash"]["inconsistent_states"], lambda v: v == 0, "0"),
    ("restart: ready s (100,000 turns)", lambda r: r["restart"]["ready_s"], lambda v: v <= 10, "≤ 10"),
    (
        "restart: throughput drop while compacting",
        lambda r: r["restart"]["throughput_drop"],
        lambda v: v is not None and v <= 0.2,
        "≤ 20%",
    ),
]


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, get, ok, goal in TARGETS:
        try:
            value = get(report)
        except (KeyError, TypeError):
            continue
        rows.append({"target": name, "value": value, "goal": goal, "pass": bool(ok(value))})
    return rows


def render(report: dict[str, Any]) -> str:
    lines = [f"{'target':<46} {'value':>10}  {'goal':<8} result", "-" * 76]
    for row in report["targets"]:
        lines.append(f"{row['target']:<46} {row['value']!s:>10}  {row['goal']:<8} {'PASS' if row['pass'] else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_load", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases, 1 crash cycle of each kind, 20,000 turns")
    parser.add_argument("--only", default="load,connect,hang,crash,restart", help="comma-separated phases")
    parser.add_argument("--latency-ms", type=float, default=1000.0, help="simulated model latency (default 1000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(phases) - {"load", "connect", "hang", "crash", "restart"}
    if unknown:
        parser.error(f"unknown phases: {sorted(unknown)}")
    settings = {
        "latency_ms": args.latency_ms,
        "load_clients": 32,
        "load_seconds": 10.0 if args.quick else 30.0,
        "load_warmup_s": 10.0,
        "connect_clients": 64,
        "hang_clients": 16,
        "hang_seconds": 5.0 if args.quick else 10.0,
        "crash_cycles": ["SIGTERM", "SIGKILL"] if args.quick else ["SIGTERM", "SIGKILL"] * 5,
        "crash_threads": 7,
        "crash_run_s": 4.0,
        "crash_latency_ms": 50.0,
        "restart_turns": 20_000 if args.quick else 100_000,
        "restart_seconds": 20.0 if args.quick else 40.0,
    }
    report: dict[str, Any] = {
        "benchmark": "local_load",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": settings,
    }
    with tempfile.TemporaryDirectory(prefix="local-load-") as tmp:
        workdir = Path(tmp)
        hang_server = _HangingUpstream()
        try:
            config = write_config(workdir / "config.yaml", args.latency_ms, hang_server.url)
            for phase in phases:
                print(f"… {phase}", flush=True)
                if phase == "load":
                    report["load"] = phase_load(
                        workdir, config, 32, settings["load_seconds"], settings["load_warmup_s"]
                    )
                elif phase == "connect":
                    report["connect"] = phase_connect(workdir, config, 64)
                elif phase == "hang":
                    report["hang"] = phase_hang(workdir, config, 16, settings["hang_seconds"])
                elif phase == "crash":
                    fast = write_config(workdir / "crash.yaml", settings["crash_latency_ms"], None)
                    report["crash"] = phase_crash(
                        workdir, fast, settings["crash_cycles"], settings["crash_threads"], settings["crash_run_s"]
                    )
                elif phase == "restart":
                    report["restart"] = phase_restart(workdir, settings["restart_turns"], settings["restart_seconds"])
        finally:
            hang_server.stop()
    report["targets"] = evaluate(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\nwritten: {args.out}")
    return 0


class _HangingUpstream:
    """An OpenAI-compatible upstream that answers nothing for 25 s (then a 504)."""

    def __init__(self, hang_s: float = 25.0) -> None:
        from tools.local_stack.apigw import HttpRequest, HttpResponse
        from tools.local_stack.server import LocalHttpServer

        stopping = threading.Event()

        def handle(_request: HttpRequest) -> HttpResponse:
            stopping.wait(hang_s)
            return HttpResponse(504, [("Content-Type", "application/json")], b'{"error": {"message": "hung"}}')

        self._stopping = stopping
        self._server = LocalHttpServer(0, handle, "hanging-upstream")
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/v1"

    def stop(self) -> None:
        self._stopping.set()
        self._server.stop()


if __name__ == "__main__":
    sys.exit(main())
