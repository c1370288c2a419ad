"""A hanging model through the chat handler: after its breaker opens, other requests lose ≤ 100 ms."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.conftest import Stack
from tests.integration.test_upstream_faults_through_chat import PROMPT, upstream  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

ADDED_LATENCY_BUDGET_S = 0.100
UPSTREAM_TIMEOUT_S = 0.5
"""`upstream_timeout_seconds` of the fixture's config."""


def timed(stack: Stack) -> tuple[dict, float]:  # type: ignore[type-arg]
    started = time.perf_counter()
    response = stack.chat_request(PROMPT)
    return response, time.perf_counter() - started


def test_a_hanging_model_is_skipped_once_its_breaker_opens(
    stack: Stack,
    upstream: FakeUpstream,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from router_core import breaker, runtime

    upstream.set_behaviour(Behaviour.ok())
    healthy = statistics.median(timed(stack)[1] for _ in range(15))

    asked_healthy = upstream.count("m-smart")
    upstream.set_behaviour(Behaviour.slow(30.0), model="m-smart")  # hangs far past the 0.5 s timeout
    breakers = runtime.turn_router().breakers
    warm_up = 0
    while breakers.state("smart") != "open":
        response, _ = timed(stack)
        assert response["statusCode"] == 200 and response["headers"]["x-router-model"] == "fast"
        warm_up += 1
        assert warm_up <= 60, "the breaker never opened"
    # One timeout per request (no retry while another model remains), then skipped.
    assert upstream.count("m-smart") - asked_healthy == breaker.FAILURE_THRESHOLD
    asked_before = upstream.count("m-smart")

    capsys.readouterr()
    added = []
    for _ in range(20):
        response, elapsed = timed(stack)
        assert response["statusCode"] == 200
        assert response["headers"]["x-router-model"] == "fast"
        # Decided among the healthy models: a real pick with an exact propensity, not a fallback.
        assert "x-router-fallback" not in response["headers"]
        assert float(response["headers"]["x-router-propensity"]) == pytest.approx(1.0)
        added.append(elapsed - healthy)
    assert upstream.count("m-smart") == asked_before  # never called while open
    # No request waits for the hanging model (a single wait would cost the 0.5 s timeout), and the
    # typical request costs what it cost before the model hung.
    assert max(added) < UPSTREAM_TIMEOUT_S, added
    assert statistics.median(added) <= ADDED_LATENCY_BUDGET_S, added
    # Each decision logs the model it left out, and why.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"decision"' in line]
    assert len(lines) == 20
    assert all(line["decision"]["skipped_unhealthy"] == {"smart": "timeout"} for line in lines)

    health = {m["name"]: m["health"] for m in stack.router_state()["models"]}
    assert health["smart"]["state"] == "open" and health["smart"]["reason"] == "timeout"
    assert health["fast"] == {"state": "closed"}


def test_the_breaker_probes_after_the_cool_down_and_closes_when_the_model_answers(
    stack: Stack,
    upstream: FakeUpstream,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from router_core import runtime

    upstream.set_behaviour(Behaviour.server_error(503), model="m-smart")
    upstream.set_behaviour(Behaviour.ok(), model="m-fast")
    breakers = runtime.turn_router().breakers
    for _ in range(60):
        if breakers.state("smart") == "open":
            break
        assert stack.chat_request(PROMPT)["statusCode"] == 200
    assert breakers.state("smart") == "open"
    assert stack.router_state()["models"][1]["health"]["reason"] == "server_error"

    upstream.set_behaviour(Behaviour.ok(), model="m-smart")
    now = time.time() + 10 * 60  # past any cool-down
    monkeypatch.setattr(breakers, "clock", lambda: now)
    for _ in range(60):
        if stack.chat_request(PROMPT)["headers"]["x-router-model"] == "smart":
            break
    assert breakers.state("smart") == "closed"
    health = {m["name"]: m["health"] for m in stack.router_state()["models"]}
    assert health["smart"]["state"] == "closed"
