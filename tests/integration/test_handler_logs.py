"""router_core's log records, written inside a handler, carry Powertools' keys and no secrets."""

from __future__ import annotations

import io
import json
from types import ModuleType
from typing import Any

import pytest

from tests.aws_env import http_event, lambda_context
from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration


def capture_logs(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the function's Powertools Logger writes (stdout in Lambda), from now on."""
    out = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", out)
    return out


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_a_router_core_record_carries_the_service_cold_start_and_request_id(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    turn_id = chat["headers"]["x-router-turn-id"]
    out = capture_logs(stack.feedback, monkeypatch)
    context = lambda_context("feedback")
    headers = {"authorization": f"Bearer {stack.api_key}", "content-type": "application/json"}
    event = http_event("POST", "/v1/feedback", body=json.dumps({"turn_id": turn_id, "rating": "up"}), headers=headers)
    assert stack.feedback.lambda_handler(event, context)["statusCode"] == 200

    applied = next(r for r in records(out) if r["message"] == "feedback applied")  # logged by router_core.feedback
    assert applied["service"] == "adaptive-router"
    assert applied["function_request_id"] == context.aws_request_id
    assert applied["function_name"] == context.function_name
    assert isinstance(applied["cold_start"], bool)
    assert applied["turn_id"] == turn_id


def test_chat_failures_are_logged_with_the_request_id_and_never_the_prompt_or_the_key(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from router_core import runtime

    assert (
        stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": "hi"}]})[
            "statusCode"
        ]
        == 200
    )  # warms the key cache, so only the state read fails below

    def throttled(*args: object, **kwargs: object) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(runtime.store(), "read_for_chat", throttled)
    out = capture_logs(stack.chat, monkeypatch)
    context = lambda_context("chat")
    headers = {"authorization": f"Bearer {stack.api_key}", "content-type": "application/json"}
    body = json.dumps({"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]})
    event = http_event("POST", "/v1/chat/completions", body=body, headers=headers)
    assert stack.chat.lambda_handler(event, context)["statusCode"] == 200  # answered by the default model

    logged = records(out)
    assert any(r["level"] == "ERROR" for r in logged)  # the failed state read, from router_core
    assert all(r["function_request_id"] == context.aws_request_id for r in logged)
    everything = out.getvalue() + capsys.readouterr().out  # log records and the metrics line
    assert CODE_PROMPT not in everything
    assert stack.api_key not in everything
