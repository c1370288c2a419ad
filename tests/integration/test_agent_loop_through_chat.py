"""An agent's tool loop through the chat handler on the simulated provider: the loop is one
conversation, its steps keep the user's request type, and only the user's words are feedback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

REQUEST = "Write a Python function that parses ISO dates, then run the tests with the tool."
RUN_TESTS = {
    "type": "function",
    "function": {
        "name": "run_tests",
        "description": "Run the test suite",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


def ask(stack: Stack, messages: list[dict[str, Any]], session: str | None = None) -> dict[str, Any]:
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": messages, "tools": [RUN_TESTS]}, session=session
    )
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def test_a_tool_loop_is_one_conversation_and_tool_results_are_not_feedback(stack: Stack, router_settings: Any) -> None:
    router_settings(signal_gate_min_messages=1)  # every turn could be scored: only honesty holds signals back
    messages: list[dict[str, Any]] = [{"role": "user", "content": REQUEST}]
    first = ask(stack, messages)
    session = first["router"]["session_id"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    call = first["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"])["path"]
    assert first["router"]["request_type"] == "code_generation"

    # The tool's output reads like praise; it is the tool talking, not the user.
    messages += [
        first["choices"][0]["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "thanks, that works! all 12 tests pass"},
    ]
    second = ask(stack, messages, session)
    assert second["choices"][0]["finish_reason"] in ("stop", "length")
    assert second["choices"][0]["message"]["content"].startswith("Using the tool results: ")
    assert second["router"]["request_type"] == "code_generation"
    assert second["router"]["turn_id"].startswith(f"{session}.1.")
    assert "implicit_feedback" not in second["router"]
    assert second["router"]["feedback_gate"]["messages"] == 2  # user request + this answer; tool steps excluded

    messages += [second["choices"][0]["message"], {"role": "user", "content": "that's wrong, it still fails on Z"}]
    third = ask(stack, messages, session)
    assert third["router"]["turn_id"].startswith(f"{session}.2.")
    feedback = third["router"]["implicit_feedback"]
    assert feedback["turn_id"] == second["router"]["turn_id"] and feedback["kind"] == "dissatisfaction"


def test_an_image_reaches_the_simulated_vision_model(stack: Stack) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    response = stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": content}]})
    assert response["statusCode"] == 200, response
    answer = json.loads(response["body"])["choices"][0]["message"]["content"]
    assert answer.startswith("I looked at the 1 image you sent.")
