"""Malformed requests on every route are a clear 4xx with an OpenAI-style body, never a 5xx.

Hypothesis draws 2,000 requests per route (the same ones on every run: the suite is
derandomized) from `tests.malformed`: raw bytes, JSON nested thousands of levels deep, Unicode
(lone surrogates included) in every field, header, query parameter and id, and SQS records of
any shape. Each becomes the real API Gateway v2.0 (or SQS) event and goes to the handler
in-process on moto. `make bench-fuzz` runs many more with fresh seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Stack
from tests.malformed import ROUTES, STRATEGIES, Driver, Probe, summary_rows

pytestmark = pytest.mark.integration

REQUESTS_PER_ROUTE = 2000
PER_EXAMPLE = 4
"""Requests drawn per hypothesis example (the engine's own cost per example is larger than a
handler call's, so four per example keep the suite fast; a failure still shrinks to one)."""


@pytest.fixture
def driver(stack: Stack) -> Iterator[Driver]:
    logging.disable(logging.ERROR)  # thousands of expected 4xx; an unexpected error still fails the test
    try:
        yield Driver(stack.chat, stack.feedback, stack.state, stack.api_key)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("route", ROUTES)
def test_no_malformed_request_is_answered_with_a_5xx(driver: Driver, route: str) -> None:
    @settings(
        max_examples=REQUESTS_PER_ROUTE // PER_EXAMPLE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(STRATEGIES[route], min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def send(probes: list[Probe]) -> None:
        for probe in probes:
            problem = driver.run(probe)
            assert problem is None, f"{probe.family} probe on {route}: {problem}\n{probe!r:.2000}"

    send()
    (row,) = [r for r in summary_rows(driver) if r["route"] == route]
    assert row["probes"] >= REQUESTS_PER_ROUTE
    assert row["responses_5xx"] == 0
    if route != "sqs":
        assert any(int(status) >= 400 for status in row["statuses"]), row
