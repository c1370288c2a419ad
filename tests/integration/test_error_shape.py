"""The three functions answer failures alike: an OpenAI error body with the error's status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws_env import http_event
from tests.integration.conftest import Stack
from tests.integration.test_bad_input import assert_openai_error

pytestmark = pytest.mark.integration


def _broken(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("table unavailable")


@pytest.mark.parametrize(
    ("function", "broken", "message"),
    [
        ("chat", "route_turn", "the router is temporarily unavailable"),
        ("feedback", "get_turn", "feedback store unavailable"),
        ("state", "query_cells", "state store unavailable"),
    ],
)
def test_an_unexpected_failure_is_a_503_in_openai_shape(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, function: str, broken: str, message: str
) -> None:
    from router_core import runtime

    target = runtime.turn_router() if broken == "route_turn" else runtime.store()
    monkeypatch.setattr(target, broken, _broken)
    if function == "chat":
        response = stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": "hi"}]})
    elif function == "feedback":
        response = stack.feedback_request({"turn_id": "abc.0.deadbeef", "rating": "up"})
    else:
        response = stack.state_request()
    error = assert_openai_error(response, 503, "service_unavailable", message)
    assert "table unavailable" not in error["message"]  # the cause is logged, not shown


def test_a_path_no_route_serves_is_a_404_in_openai_shape(stack: Stack) -> None:
    event = http_event("GET", "/v1/models", headers={"authorization": f"Bearer {stack.api_key}"})
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/engines"
    event["routeKey"] = "$default"
    response = stack.call(stack.chat, event)
    assert_openai_error(response, 404, "unknown_route", "/v1/engines")
    assert json.loads(response["body"])["error"]["type"] == "invalid_request_error"
