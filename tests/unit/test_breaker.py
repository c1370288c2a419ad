"""The circuit breaker per model: opens on repeated timeouts or 5xx, skips, probes, closes."""

from __future__ import annotations

import pytest
from router_core import breaker
from router_core.breaker import COOL_DOWN_S, FAILURE_THRESHOLD, MAX_COOL_DOWN_S, ModelBreakers, health_view

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def tripped(kind: str = "timeout") -> tuple[ModelBreakers, Clock]:
    clock = Clock()
    breakers = ModelBreakers(clock)
    for _ in range(FAILURE_THRESHOLD):
        breakers.record("slow", kind)
    return breakers, clock


@pytest.mark.parametrize("kind", sorted(breaker.COUNTED))
def test_repeated_timeouts_or_5xx_open_the_breaker_and_the_model_is_skipped(kind: str) -> None:
    breakers = ModelBreakers(Clock())
    for _ in range(FAILURE_THRESHOLD - 1):
        assert breakers.record("slow", kind) is None
    change = breakers.record("slow", kind)
    assert change is not None and (change.state, change.reason) == ("open", kind)
    assert breakers.usable(["slow", "fast"]) == ["fast"]
    assert breakers.skipped(["slow", "fast"]) == {"slow": kind}


@pytest.mark.parametrize("kind", ["client_error", "context_length", "rate_limited", "bad_response"])
def test_client_errors_and_context_length_never_count(kind: str) -> None:
    breakers = ModelBreakers(Clock())
    for _ in range(10 * FAILURE_THRESHOLD):
        assert breakers.record("m", kind) is None
    assert breakers.state("m") == "closed"


def test_an_answer_resets_the_run_of_failures() -> None:
    breakers = ModelBreakers(Clock())
    for _ in range(5):
        for _ in range(FAILURE_THRESHOLD - 1):
            breakers.record("m", "server_error")
        breakers.record("m", "ok")
    assert breakers.state("m") == "closed"


def test_after_the_cool_down_one_request_probes_and_an_answer_closes_it() -> None:
    breakers, clock = tripped()
    clock.now += COOL_DOWN_S - 0.001
    assert breakers.state("slow") == "open"
    clock.now += 0.002
    assert breakers.state("slow") == "half_open"
    probe = breakers.admit(["slow", "fast"])
    assert probe == ["slow", "fast"]
    # While the probe is out, other requests skip the model.
    assert breakers.usable(["slow", "fast"]) == ["fast"]
    changes = breakers.settle(probe, [("slow", "ok")])
    assert [(c.model, c.state) for c in changes] == [("slow", "closed")]
    assert breakers.usable(["slow", "fast"]) == ["slow", "fast"]


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum() -> None:
    breakers, clock = tripped()
    cool_down = COOL_DOWN_S
    for _ in range(8):
        clock.now += cool_down
        admitted = breakers.admit(["slow"])
        (change,) = breakers.settle(admitted, [("slow", "timeout")])
        cool_down = min(cool_down * 2, MAX_COOL_DOWN_S)
        assert change.state == "open"
        assert change.retry_at == pytest.approx(clock.now + cool_down)
    assert cool_down == MAX_COOL_DOWN_S


def test_a_probe_slot_not_used_is_freed() -> None:
    breakers, clock = tripped()
    clock.now += COOL_DOWN_S
    admitted = breakers.admit(["fast", "slow"])
    breakers.settle(admitted, [("fast", "ok")])  # answered by "fast": "slow" was never tried
    assert breakers.state("slow") == "half_open"


def test_when_every_model_is_open_the_request_is_still_sent() -> None:
    clock = Clock()
    breakers = ModelBreakers(clock)
    for model in ("a", "b"):
        for _ in range(FAILURE_THRESHOLD):
            breakers.record(model, "timeout")
    assert breakers.usable(["a", "b"]) == ["a", "b"]


def test_health_view_reads_reports_and_an_expired_open_report_as_half_open() -> None:
    reports = {
        "a": {"state": "open", "reason": "timeout", "at": 100.0, "retry_at": 130.0, "failures": 3},
        "b": {"state": "closed", "reason": "ok", "at": 140.0, "failures": 0},
    }
    assert health_view(reports, ["a", "b", "c"], now=120.0)["a"]["state"] == "open"
    view = health_view(reports, ["a", "b", "c"], now=131.0)
    assert view["a"] == {
        "state": "half_open",
        "reason": "timeout",
        "since": "1970-01-01T00:01:40Z",
        "retry_at": "1970-01-01T00:02:10Z",
    }
    assert view["b"]["state"] == "closed"
    assert view["c"] == {"state": "closed"}
