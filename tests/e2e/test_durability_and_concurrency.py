"""The embedded default as a server: crashes and restarts lose nothing acknowledged, a stop is
graceful, a hanging model delays no one else, concurrent writes never answer 5xx.

Bounded: each test starts its own stack on free ports of 127.0.0.1 and stops it itself.
`make bench-local` runs the same scenarios longer and measures them.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.local_load import (
    HANG_MODEL,
    Stack,
    _HangingUpstream,
    chat_body,
    phase_crash,
    run_clients,
    write_config,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def hanging_upstream() -> Iterator[_HangingUpstream]:
    server = _HangingUpstream(hang_s=20.0)
    yield server
    server.stop()


def test_sigterm_and_sigkill_lose_no_acknowledged_turn_or_rating_and_never_tear_the_state(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", 30.0, None)
    result = phase_crash(tmp_path, config, ["SIGTERM", "SIGKILL", "SIGKILL"], threads=5, run_s=2.5)
    assert result["turns_acknowledged"] >= 30 and result["ratings_acknowledged"] >= 3  # crashed mid-work
    assert result["lost_turns"] == 0
    assert result["lost_ratings"] == 0
    assert result["inconsistent_states"] == 0
    assert all(cycle["scored_turns"] > 0 for cycle in result["cycles"][1:])


def test_a_request_waiting_on_a_hanging_model_does_not_slow_the_others(
    tmp_path: Path, hanging_upstream: _HangingUpstream
) -> None:
    config = write_config(tmp_path / "config.yaml", 200.0, hanging_upstream.url)
    stack = Stack(tmp_path, tmp_path / "state", config)
    stack.start()
    try:
        run_clients(stack, 4, 2.0, seed=1)  # environments warm
        before = run_clients(stack, 6, 3.0, seed=2)
        hung: list[float] = []

        def hang() -> None:
            started = time.monotonic()
            with stack.client(timeout_s=60.0) as client:
                client.post("/v1/chat/completions", json=chat_body(random.Random(0), model=HANG_MODEL))
            hung.append(time.monotonic() - started)

        thread = threading.Thread(target=hang)
        thread.start()
        time.sleep(0.3)
        during = run_clients(stack, 6, 3.0, seed=2)
        assert thread.is_alive()  # the hanging request was in flight the whole time
        hanging_upstream.stop()
        thread.join(30.0)
    finally:
        stack.stop()
    before_p99 = before.summary(3.0)["latency_ms"]["p99"]
    during_summary = during.summary(3.0)
    assert during_summary["errors"] == 0 and during_summary["ok"] > 20
    assert during_summary["latency_ms"]["p99"] < before_p99 + 500.0  # unchanged (the benchmark bounds it at +100 ms)


def test_a_stop_finishes_in_flight_requests_refuses_new_ones_and_keeps_what_it_answered(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", 3000.0, None)
    state_dir = tmp_path / "state"
    stack = Stack(tmp_path, state_dir, config)
    stack.start()
    idle = stack.client()
    assert idle.get("/v1/models").status_code == 200  # a keep-alive connection, open before the stop
    outcome: dict[str, httpx.Response] = {}

    def in_flight() -> None:
        with stack.client() as client:
            outcome["answer"] = client.post("/v1/chat/completions", json=chat_body(random.Random(1), history=True))

    thread = threading.Thread(target=in_flight)
    thread.start()
    time.sleep(0.8)
    stack.signal(signal.SIGTERM)
    time.sleep(1.0)
    refused = idle.get("/v1/models")
    thread.join(30.0)
    idle.close()
    assert stack.process.wait(60.0) == 0
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down" and refused.headers["connection"] == "close"
    answer = outcome["answer"]
    assert answer.status_code == 200, answer.text
    turn_id = answer.headers["x-router-turn-id"]

    again = Stack(tmp_path, state_dir, config)
    again.start()
    try:
        with again.client() as client:
            rated = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
    finally:
        again.stop()
    assert rated.status_code == 200 and rated.json()["applied"] is True


def test_twenty_rounds_of_concurrent_chats_and_ratings_never_answer_5xx(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", 20.0, None)
    stack = Stack(tmp_path, tmp_path / "state", config)
    stack.start()
    statuses: list[int] = []
    lock = threading.Lock()

    def pair(seed: int) -> None:
        rng = random.Random(seed)
        with stack.client() as client:
            chat = client.post("/v1/chat/completions", json=chat_body(rng, history=True))
            codes = [chat.status_code]
            if chat.status_code == 200:
                turn_id = chat.headers["x-router-turn-id"]
                codes.append(client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"}).status_code)
        with lock:
            statuses.extend(codes)

    try:
        for round_number in range(20):
            threads = [threading.Thread(target=pair, args=(round_number * 10 + i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        stack.stop()
    assert len(statuses) == 20 * 8 * 2
    assert [s for s in statuses if s >= 500] == []
