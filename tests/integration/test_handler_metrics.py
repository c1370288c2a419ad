"""The chat function's EMF line (what the stack's alarms and dashboard read), and no Powertools
"No application metrics to publish" warning on requests that publish no metric."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.aws_env import http_event
from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration


def test_a_routed_turn_publishes_the_metrics_the_alarms_read_with_the_service_dimension_only(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    assert response["statusCode"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (emf,) = lines
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service"]]
    assert {m["Name"] for m in directive["Metrics"]} == {"RoutedTurns", "CostUSD", "SavingsUSD"}
    assert emf["RoutedTurns"] == [1.0]
    assert emf["decision"]["router"] == "smart-cheap-router"  # the decision rides on the same line
    assert emf["SavingsUSD"][0] == round(emf["SavingsUSD"][0], 9)


def test_a_request_without_metrics_does_not_warn(stack: Stack) -> None:
    headers = {"authorization": f"Bearer {stack.api_key}"}
    with warnings.catch_warnings(record=True) as seen:  # the filters in force, as in Lambda
        assert stack.call(stack.chat, http_event("GET", "/v1/models", headers=headers))["statusCode"] == 200
        assert (
            stack.feedback_request({"turn_id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.1.deadbeef", "rating": "up"})[
                "statusCode"
            ]
            == 404
        )
    assert not [w for w in seen if "No application metrics" in str(w.message)]


def test_a_signal_the_queue_refused_is_counted_never_dropped_silently(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from router_core.store import RouterStore

    first = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(a, b): ..."}]
    messages.append({"role": "user", "content": "thanks, that works! now the inverse, please"})

    def refuse(self: RouterStore, message: object) -> None:
        raise RuntimeError("the queue is unavailable")

    monkeypatch.setattr(RouterStore, "enqueue_signal", refuse)
    capsys.readouterr()
    second = stack.chat_request(
        {"model": "smart-cheap-router", "messages": messages}, session=first["headers"]["x-router-session-id"]
    )
    assert second["statusCode"] == 200  # the answer is unaffected
    assert "implicit_feedback" not in json.loads(second["body"])["router"]  # not reported as queued
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf["ImplicitSignalsDropped"] == [1.0]
