"""Upstream faults seen through the chat handler: retry, fallback, clear 502/504, no feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.conftest import Stack, router_config, two_models_on

pytestmark = pytest.mark.integration

PROMPT = {"model": "smart-cheap-router", "messages": [{"role": "user", "content": "Write a Python function to sort."}]}


@pytest.fixture
def upstream(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    """The handlers on a config whose two models live on a real HTTP upstream on 127.0.0.1."""
    with FakeUpstream() as fake:
        config = two_models_on(fake.base_url, upstream_timeout_seconds=0.5, request_deadline_seconds=2.0)
        with router_config(config, tmp_path, monkeypatch):
            yield fake


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])["error"]


def test_every_model_failing_with_500_is_a_clear_502(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(500))
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 502
    error = error_of(response)
    assert error["type"] == "upstream_error" and error["code"] == "upstream_failed"
    # One attempt plus one retry on each model.
    assert upstream.count("m-fast") == 2 and upstream.count("m-smart") == 2
    state = stack.router_state()
    assert state["counts"] == {"turns": 0, "feedback": 0}


def test_malformed_upstream_json_everywhere_is_502(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.malformed())
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 502
    assert error_of(response)["code"] == "upstream_failed"


def test_a_timeout_everywhere_is_a_clear_504_before_the_gateway_cuts_off(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.slow(5.0))
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 504
    assert error_of(response)["code"] == "upstream_timeout"


def test_a_429_is_retried_once_and_then_answers(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.script(Behaviour.rate_limited("0"), model="m-fast")
    upstream.script(Behaviour.rate_limited("0"), model="m-smart")
    upstream.set_behaviour(Behaviour.ok("fine"))
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    attempts = body["router"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["rate_limited", "ok"]
    assert attempts[0]["model"] == attempts[1]["model"] == response["headers"]["x-router-model"]
    assert "x-router-fallback" not in response["headers"]


def test_a_broken_model_falls_back_to_the_next_one_and_is_never_scored(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(503), model="m-smart")
    upstream.set_behaviour(Behaviour.ok(), model="m-fast")
    fallbacks = 0
    for _ in range(25):
        response = stack.chat_request(PROMPT)
        assert response["statusCode"] == 200
        assert response["headers"]["x-router-model"] == "fast"
        if response["headers"].get("x-router-fallback") == "next_model":
            fallbacks += 1
            assert "x-router-propensity" not in response["headers"]
    assert fallbacks >= 1
    state = stack.router_state()
    cells = {(c["request_type"], c["model"]): c for c in state["cells"]}
    assert cells[("code_generation", "smart")]["routed"] == 0
    assert cells[("code_generation", "fast")]["routed"] == 25
    assert state["counts"]["feedback"] == 0
    assert all(c["alpha"] == c["prior_alpha"] and c["beta"] == c["prior_beta"] for c in state["cells"])


def test_a_request_the_model_rejects_as_invalid_is_400_with_its_message(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(400, "max_tokens is too large for this model", code="invalid_value"))
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 400
    error = error_of(response)
    assert error["code"] == "upstream_rejected"
    assert "max_tokens is too large" in error["message"]
    # Not retried and not sent to another model: it would fail the same way everywhere.
    assert upstream.count() == 1


CONTEXT_LENGTH = Behaviour.error(
    400,
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
    code="context_length_exceeded",
)


def test_a_conversation_longer_than_every_context_window_is_400_context_length_exceeded(
    stack: Stack, upstream: FakeUpstream
) -> None:
    upstream.set_behaviour(CONTEXT_LENGTH)
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 400  # not 502, which clients retry
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    # Each model was asked once (another model may have had a larger window); none was retried.
    assert upstream.count("m-fast") == 1 and upstream.count("m-smart") == 1
    assert stack.router_state()["counts"]["turns"] == 0


def test_a_model_whose_window_is_too_small_falls_back_to_one_that_fits(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(CONTEXT_LENGTH, model="m-fast")
    upstream.set_behaviour(Behaviour.ok("fits"), model="m-smart")
    response = stack.chat_request(PROMPT)
    assert response["statusCode"] == 200, response
    assert response["headers"]["x-router-model"] == "smart"
