"""Learning stays honest with agents: tool messages are never the user's feedback, a tool loop
keeps the classification of the user's request, the gate counts what the user exchanged."""

from __future__ import annotations

from typing import Any

import pytest
from router_core.classifier import classify
from router_core.signals import conversation_length, detect_feedback, follow_up_of_previous_answer, gate_passed

pytestmark = pytest.mark.unit

REQUEST = "Write a Python function that parses ISO dates, and run the tests with the tool."


def call(n: int, name: str = "run_tests") -> dict[str, Any]:
    return {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": "{}"}}


def tool_loop(results: list[str]) -> list[dict[str, Any]]:
    """The user's request, then one assistant tool call and its result per entry of `results`."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."}]
    messages.append({"role": "user", "content": REQUEST})
    for n, result in enumerate(results):
        messages.append({"role": "assistant", "content": None, "tool_calls": [call(n)]})
        messages.append({"role": "tool", "tool_call_id": f"call_{n}", "content": result})
    return messages


# Tool outputs that would read as praise, complaints or retries if they were the user's words.
LOUD_RESULTS = [
    "thanks, that works! all tests pass",
    "that's wrong: 3 failed, still failing",
    "no, I meant the other file",
    "try again",
    "perfect",
]


@pytest.mark.parametrize("result", LOUD_RESULTS)
def test_a_tool_result_is_never_a_follow_up(result: str) -> None:
    assert detect_feedback(result) is not None  # the same words from the user would be a signal
    assert follow_up_of_previous_answer(tool_loop([result])) is None


def test_the_users_reply_after_the_final_answer_is_the_follow_up() -> None:
    messages = [
        *tool_loop(LOUD_RESULTS[:2]),
        {"role": "assistant", "content": "Done: parse_iso() is in dates.py and all tests pass."},
        {"role": "user", "content": "that's wrong, it crashes on time zones"},
    ]
    follow_up, previous_user = follow_up_of_previous_answer(messages) or ("", None)
    assert follow_up == "that's wrong, it crashes on time zones"
    assert previous_user == REQUEST
    signal = detect_feedback(follow_up, previous_user)
    assert signal is not None and signal.kind == "dissatisfaction"


def test_no_follow_up_before_any_answer() -> None:
    assert follow_up_of_previous_answer([{"role": "user", "content": "hi"}]) is None


def test_a_user_message_after_tool_results_is_the_follow_up() -> None:
    # The client sent the tool result and a user remark in one request: the remark is the user's.
    messages = [*tool_loop(["ok"]), {"role": "user", "content": [{"type": "text", "text": "thanks, that works"}]}]
    assert follow_up_of_previous_answer(messages) == ("thanks, that works", REQUEST)


@pytest.mark.parametrize("steps", [0, 1, 3, 8])
def test_a_tool_loop_keeps_the_classification_of_the_users_request(steps: int) -> None:
    first = classify(tool_loop([]))
    assert first.request_type == "code_generation"
    later = classify(tool_loop(LOUD_RESULTS[:steps] if steps <= 5 else LOUD_RESULTS * 2))
    assert (later.request_type, later.rule) == (first.request_type, first.rule)


def test_the_gate_counts_what_the_user_and_the_model_exchanged() -> None:
    assert conversation_length(tool_loop([])) == 1
    assert conversation_length(tool_loop(["a", "b", "c"])) == 1  # tool calls and results are not exchanges
    answered = [*tool_loop(["a", "b"]), {"role": "assistant", "content": "Done."}]
    assert conversation_length(answered) == 2
    follow_up = [*answered, {"role": "user", "content": "now add time zones"}]
    assert conversation_length(follow_up) == 3
    assert not gate_passed(conversation_length(tool_loop(["a", "b", "c", "d"])), 4)
    assert gate_passed(conversation_length(follow_up), 4)
    with_text = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call(0)]},
    ]
    assert conversation_length(with_text) == 2  # an assistant message the user read counts
