"""Ctrl-C during tools.traffic: sessions in flight finish their request (no connection is cut
mid-response, which the server would log as a reset), and a second SIGINT cannot cut the summary."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tools import traffic

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_an_interrupt_lets_requests_in_flight_finish_and_ignores_a_second_one(
    monkeypatch: pytest.MonkeyPatch, restored_signals: None
) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started: list[int] = []
    ended: list[int] = []

    def slow_session(api: Any, plan: Any, index: int) -> traffic.SessionResult:
        started.append(index)
        time.sleep(0.6)  # a request the server is answering
        ended.append(index)
        return traffic.SessionResult(index=index, labelled_type="general")

    monkeypatch.setattr(traffic, "run_session", slow_session)
    api = SimpleNamespace(timeout_s=5.0, retry=SimpleNamespace(attempts=2))
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    outcome = traffic.drive(api, None, rounds=50, rate_s=0.05, concurrency=4, max_duration_s=30)  # type: ignore[arg-type]

    assert outcome.interrupted
    assert started and sorted(ended) == sorted(started)  # nothing cut mid-request
    assert len(outcome.results) == len(started)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the supervisor's SIGINT cannot cut the summary


def test_interval_is_the_flag_and_rate_its_older_name() -> None:
    parser = traffic.build_parser()
    assert parser.parse_args(["--interval", "2"]).interval == 2.0
    assert parser.parse_args(["--rate", "0.25"]).interval == 0.25
    assert parser.parse_args([]).interval == 0.5
