"""POST /v1/chat/completions and GET /v1/models on real API Gateway v2.0 events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION, http_event
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

CODE_PROMPT = "Write a Python function that merges two sorted lists into one sorted list."


def five_message_conversation(prompt: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "Sure, here is a first version."},
        {"role": "user", "content": "Please also add type hints."},
        {"role": "assistant", "content": "Done, with type hints."},
        {"role": "user", "content": prompt},
    ]


def test_chat_answers_in_openai_format_with_router_headers(stack: Stack) -> None:
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    assert response["statusCode"] == 200, response
    headers = response["headers"]
    body = json.loads(response["body"])
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert headers["x-router-model"] in {"fast", "smart"}
    assert headers["x-router-request-type"] == "code_generation"
    assert headers["x-router-turn-id"] == body["router"]["turn_id"]
    assert headers["x-router-session-id"] == body["router"]["session_id"]
    assert 0.0 < float(headers["x-router-propensity"]) <= 1.0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert "dynamodb;dur=" in headers["server-timing"]
    assert body["router"]["cost_usd"] > 0
    assert body["router"]["baseline_cost_usd"] >= body["router"]["cost_usd"]


def test_turn_and_spend_are_recorded_in_the_cell(stack: Stack) -> None:
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    model = response["headers"]["x-router-model"]
    state = stack.router_state()
    cell = next(c for c in state["cells"] if c["request_type"] == "code_generation" and c["model"] == model)
    assert cell["routed"] == 1
    assert state["counts"]["turns"] == 1
    assert state["spend"]["actual_usd"] == pytest.approx(json.loads(response["body"])["router"]["cost_usd"], rel=1e-6)


def test_session_continues_with_the_returned_session_id(stack: Stack) -> None:
    first = stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]})
    session = first["headers"]["x-router-session-id"]
    answer = json.loads(first["body"])["choices"][0]["message"]["content"]
    second = stack.chat_request(
        {
            "model": "smart-cheap-router",
            "messages": [
                {"role": "user", "content": CODE_PROMPT},
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "Now make it handle lists of dicts sorted by a key."},
            ],
        },
        session=session,
    )
    assert second["statusCode"] == 200
    assert second["headers"]["x-router-session-id"] == session
    assert second["headers"]["x-router-turn-id"].startswith(f"{session}.1.")


def test_satisfied_follow_up_queues_one_signal_for_the_previous_turn(stack: Stack) -> None:
    first = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    session = first["headers"]["x-router-session-id"]
    turn_id = first["headers"]["x-router-turn-id"]
    model = first["headers"]["x-router-model"]
    messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(a, b): ..."}]
    messages.append(
        {"role": "user", "content": "thanks, that works! now write me a python function that does the inverse"}
    )
    second = stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=session)
    implicit = json.loads(second["body"])["router"]["implicit_feedback"]
    assert implicit == {"turn_id": turn_id, "kind": "satisfaction", "reward": 1.0}
    result = stack.drain_signals()
    assert result == {"batchItemFailures": []}
    cell = next(
        c for c in stack.router_state()["cells"] if c["request_type"] == "code_generation" and c["model"] == model
    )
    assert cell["feedback"] == 1
    assert cell["alpha"] == pytest.approx(cell["prior_alpha"] + 1.0, abs=1e-3)
    assert cell["beta"] == pytest.approx(cell["prior_beta"], abs=1e-3)


def _ordinary_follow_up(stack: Stack) -> tuple[str, str, dict[str, Any] | None]:
    first = stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    session = first["headers"]["x-router-session-id"]
    messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(a, b): ..."}]
    messages.append({"role": "user", "content": "Now a version that merges three lists."})
    second = stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=session)
    implicit: dict[str, Any] | None = json.loads(second["body"])["router"].get("implicit_feedback")
    return first["headers"]["x-router-turn-id"], first["headers"]["x-router-model"], implicit


def test_an_ordinary_follow_up_is_a_weak_neutral_observation(stack: Stack) -> None:
    turn_id, model, implicit = _ordinary_follow_up(stack)
    assert implicit == {"turn_id": turn_id, "kind": "neutral", "reward": 0.25}
    assert stack.drain_signals() == {"batchItemFailures": []}
    cell = next(
        c for c in stack.router_state()["cells"] if c["request_type"] == "code_generation" and c["model"] == model
    )
    assert cell["feedback"] == 1
    assert cell["alpha"] == pytest.approx(cell["prior_alpha"] + 0.25, abs=1e-3)
    assert cell["beta"] == pytest.approx(cell["prior_beta"] + 0.75, abs=1e-3)


def test_a_router_can_read_silence_as_no_signal(stack: Stack, router_settings: Any) -> None:
    router_settings(neutral_follow_up_reward=None)
    _, _, implicit = _ordinary_follow_up(stack)
    assert implicit is None
    assert stack.drain_signals() == {"batchItemFailures": []}
    assert stack.router_state()["counts"]["feedback"] == 0


def test_stream_true_is_answered_as_server_sent_events(stack: Stack) -> None:
    response = stack.chat_request(
        {
            "model": "smart-cheap-router",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": CODE_PROMPT}],
        }
    )
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/event-stream"
    events = [line[len("data: ") :] for line in response["body"].split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["router"]["turn_id"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


def test_naming_a_model_bypasses_learning(stack: Stack) -> None:
    response = stack.chat_request({"model": "smart", "messages": [{"role": "user", "content": CODE_PROMPT}]})
    assert response["statusCode"] == 200
    assert response["headers"]["x-router-model"] == "smart"
    assert "x-router-propensity" not in response["headers"]
    turn_id = response["headers"]["x-router-turn-id"]
    assert stack.router_state()["counts"]["turns"] == 0
    feedback = stack.feedback_request({"turn_id": turn_id, "rating": "up"})
    assert feedback["statusCode"] == 409
    assert json.loads(feedback["body"])["error"]["code"] == "not_routed"


def test_models_lists_routers_and_models(stack: Stack) -> None:
    response = stack.call(
        stack.chat, http_event("GET", "/v1/models", headers={"authorization": f"Bearer {stack.api_key}"})
    )
    assert response["statusCode"] == 200
    ids = {m["id"]: m["owned_by"] for m in json.loads(response["body"])["data"]}
    assert ids["smart-cheap-router"] == "router"
    assert {"fast", "smart"} <= set(ids)


def test_state_read_failure_falls_back_to_the_default_model(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from router_core import runtime

    # Warm the key cache, then make every state read fail (e.g. DynamoDB throttling).
    assert (
        stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": "hi"}]})[
            "statusCode"
        ]
        == 200
    )

    def throttled(*args: object, **kwargs: object) -> None:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "BatchGetItem"
        )

    monkeypatch.setattr(runtime.store(), "read_for_chat", throttled)
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    assert response["statusCode"] == 200
    assert response["headers"]["x-router-model"] == "fast"
    assert response["headers"]["x-router-fallback"] == "default_model"


def test_turn_write_failure_still_answers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from router_core import runtime

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(runtime.store(), "record_turn", broken)
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    assert response["statusCode"] == 200
    assert "x-router-turn-id" not in response["headers"]


def test_prompt_text_is_not_stored_by_default(stack: Stack) -> None:
    stack.chat_request({"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]})
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.resources.table_name)["Items"]
    assert items
    assert all(CODE_PROMPT not in json.dumps(item) for item in items)


def test_an_exploration_pick_is_the_model_called_first(stack: Stack, router_settings: Any) -> None:
    """With exploration on every request, the header, the first attempt and the cell agree."""
    router_settings(exploration_floor=0.5)
    for _ in range(30):
        response = stack.chat_request(
            {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
        )
        body = json.loads(response["body"])
        assert body["router"]["attempts"][0]["model"] == response["headers"]["x-router-model"]
        assert "x-router-fallback" not in response["headers"]


def test_a_throttled_table_still_answers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Provisioned capacity exceeded on every write (a burst faster than auto scaling): the model's
    answer still reaches the client, without a turn id since its turn could not be written."""
    from botocore.exceptions import ClientError
    from router_core import runtime

    store = runtime.store()
    real_call = store._call

    def throttled_writes(op: str, **kwargs: object) -> object:
        if op in ("PutItem", "UpdateItem", "TransactWriteItems"):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throughput exceeded"}}, op
            )
        return real_call(op, **kwargs)

    monkeypatch.setattr(store, "_call", throttled_writes)
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["choices"][0]["message"]["content"]
    assert "x-router-turn-id" not in response["headers"]
    assert response["headers"]["x-router-model"]
