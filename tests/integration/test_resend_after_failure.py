"""A message re-sent after its request failed is not a retry of the earlier, delivered answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration

UNANSWERED = "Now write the same function for linked lists."


def fail_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next upstream call fails on every model (the client gets a 502)."""
    from router_core import turns
    from router_core.upstream import AllUpstreamsFailed, Attempt

    real = turns.call_with_fallback

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(turns, "call_with_fallback", real)
        raise AllUpstreamsFailed((Attempt("fast", "server_error", 500),), 502, "every model failed")

    monkeypatch.setattr(turns, "call_with_fallback", fail_once)


@pytest.mark.parametrize("neutral", [None, 0.25], ids=["silence-is-no-signal", "silence-is-neutral"])
def test_resending_an_unanswered_message_never_penalizes_the_earlier_answer(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch, neutral: float | None
) -> None:
    router_settings(neutral_follow_up_reward=neutral)
    first = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    assert first["statusCode"] == 200
    session, turn_id = first["headers"]["x-router-session-id"], first["headers"]["x-router-turn-id"]
    history = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(a, b): ..."}]

    fail_the_next_call(monkeypatch)
    asked = [*history, {"role": "user", "content": UNANSWERED}]
    assert stack.chat_request({"model": "smart-cheap-router", "messages": asked}, session=session)["statusCode"] == 502

    # The client keeps the unanswered message in its history and sends it again.
    resent = [*asked, {"role": "user", "content": UNANSWERED}]
    again = stack.chat_request({"model": "smart-cheap-router", "messages": resent}, session=session)
    assert again["statusCode"] == 200
    implicit = json.loads(again["body"])["router"].get("implicit_feedback")
    assert implicit is None or implicit["kind"] != "retry"
    assert stack.drain_signals() == {"batchItemFailures": []}
    kinds = [a["kind"] for a in stack.router_state()["activity"] if a["turn_id"] == turn_id]
    assert "retry" not in kinds
    assert kinds == ([] if neutral is None else ["neutral"])


def test_re_asking_the_answered_request_is_still_a_retry(stack: Stack) -> None:
    first = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    session, turn_id = first["headers"]["x-router-session-id"], first["headers"]["x-router-turn-id"]
    history = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(a, b): ..."}]
    again = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [*history, {"role": "user", "content": CODE_PROMPT}]},
        session=session,
    )
    implicit = json.loads(again["body"])["router"]["implicit_feedback"]
    assert implicit == {"turn_id": turn_id, "kind": "retry", "reward": 0.0}
