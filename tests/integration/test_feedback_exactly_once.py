"""apply_feedback: exactly once under replays, duplicate deliveries, races and concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION, sqs_event
from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration


def gated_turn(stack: Stack, prompt: str = CODE_PROMPT, key: str | None = None) -> tuple[str, str]:
    """A turn whose conversation passes the signal gate: (turn id, model)."""
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": five_message_conversation(prompt)}, key=key
    )
    assert response["statusCode"] == 200, response
    return response["headers"]["x-router-turn-id"], response["headers"]["x-router-model"]


def cell(stack: Stack, model: str, request_type: str = "code_generation") -> dict:
    return next(c for c in stack.router_state()["cells"] if c["request_type"] == request_type and c["model"] == model)


def test_explicit_feedback_moves_the_cell_once_and_a_replay_is_409(stack: Stack) -> None:
    turn_id, model = gated_turn(stack)
    before = cell(stack, model)
    first = stack.feedback_request({"turn_id": turn_id, "rating": "down"})
    assert first["statusCode"] == 200, first
    assert json.loads(first["body"])["applied"] is True
    replay = stack.feedback_request({"turn_id": turn_id, "rating": "down"})
    assert replay["statusCode"] == 409
    assert json.loads(replay["body"])["error"]["code"] == "already_scored"
    after = cell(stack, model)
    assert after["alpha"] == pytest.approx(before["alpha"], abs=1e-3)
    assert after["beta"] == pytest.approx(before["beta"] + 1.0, abs=1e-3)
    assert after["feedback"] == 1
    activity = stack.router_state()["activity"]
    assert [a["turn_id"] for a in activity] == [turn_id]
    assert activity[0]["source"] == "explicit"


def test_fractional_reward_moves_alpha_and_beta_by_r_and_one_minus_r(stack: Stack) -> None:
    turn_id, model = gated_turn(stack)
    before = cell(stack, model)
    assert stack.feedback_request({"turn_id": turn_id, "reward": 0.25})["statusCode"] == 200
    after = cell(stack, model)
    assert after["alpha"] - before["alpha"] == pytest.approx(0.25, abs=1e-3)
    assert after["beta"] - before["beta"] == pytest.approx(0.75, abs=1e-3)


def test_another_keys_turn_is_404(stack: Stack) -> None:
    from router_core import runtime
    from router_core.keys import create_client_key

    other = create_client_key(runtime.store(), "other-tenant")
    turn_id, model = gated_turn(stack, key=other)
    response = stack.feedback_request({"turn_id": turn_id, "rating": "down"})
    assert response["statusCode"] == 404
    assert cell(stack, model)["feedback"] == 0


def test_feedback_below_the_gate_is_recorded_not_applied(stack: Stack) -> None:
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    )
    turn_id, model = response["headers"]["x-router-turn-id"], response["headers"]["x-router-model"]
    feedback = stack.feedback_request({"turn_id": turn_id, "rating": "up"})
    assert feedback["statusCode"] == 202
    body = json.loads(feedback["body"])
    assert body["applied"] is False and body["reason"] == "signal_gate"
    assert "signal gate" in body["message"]
    assert cell(stack, model)["feedback"] == 0


def test_duplicate_sqs_delivery_is_counted_once(stack: Stack) -> None:
    turn_id, model = gated_turn(stack)
    messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
    messages.append({"role": "user", "content": "that's wrong, it still fails on empty lists"})
    follow = stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=turn_id.split(".")[0])
    assert json.loads(follow["body"])["router"]["implicit_feedback"]["reward"] == 0.0
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])[
        "Messages"
    ]
    assert len(got) == 1
    arn = sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # The same message delivered twice (at-least-once delivery), in two batches and within one.
    for event in (sqs_event(got, arn), sqs_event(got, arn), sqs_event(got + got, arn)):
        assert stack.call(stack.feedback, event) == {"batchItemFailures": []}
    assert cell(stack, model)["feedback"] == 1


def test_explicit_rating_overrides_an_implicit_signal(stack: Stack) -> None:
    turn_id, model = gated_turn(stack)
    before = cell(stack, model)
    messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
    messages.append({"role": "user", "content": "perfect, thanks!"})
    stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=turn_id.split(".")[0])
    stack.drain_signals()
    implicit = cell(stack, model)
    assert implicit["alpha"] - before["alpha"] == pytest.approx(1.0, abs=1e-3)
    response = stack.feedback_request({"turn_id": turn_id, "rating": "down"})
    assert response["statusCode"] == 200
    after = cell(stack, model)
    assert after["alpha"] == pytest.approx(before["alpha"], abs=1e-3)
    assert after["beta"] == pytest.approx(before["beta"] + 1.0, abs=1e-3)
    assert after["feedback"] == 1
    assert stack.feedback_request({"turn_id": turn_id, "rating": "up"})["statusCode"] == 409


def test_poison_message_is_reported_failed_and_the_rest_applied(stack: Stack) -> None:
    turn_id, model = gated_turn(stack)
    from router_core.keys import hash_key

    good = {
        "MessageId": "good",
        "ReceiptHandle": "rh-good",
        "Body": json.dumps(
            {
                "turn_id": turn_id,
                "key_hash": hash_key(stack.api_key),
                "router": "smart-cheap-router",
                "request_type": "code_generation",
                "model": model,
                "reward": 1.0,
                "kind": "satisfaction",
            }
        ),
    }
    poison = {"MessageId": "poison", "ReceiptHandle": "rh-poison", "Body": "{not json"}
    result = stack.call(stack.feedback, sqs_event([poison, good], "arn:aws:sqs:us-east-1:123456789012:signals"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    assert cell(stack, model)["feedback"] == 1


def test_eight_threads_times_one_hundred_feedbacks_grow_the_cell_by_exactly_800(
    stack: Stack, router_settings: Any
) -> None:
    from router_core import runtime
    from router_core.feedback import apply_feedback
    from router_core.keys import hash_key
    from router_core.store import Turn, TurnKey

    # Feedback rate limits are per key per minute: lifted for this load test only.
    # Forgetting off: the assertion is exact, and decay would shave evidence while the test runs.
    router_settings(feedback_per_minute_per_key=10_000, forgetting_half_life_hours=None)
    config = runtime.config()
    store = runtime.store()
    key_hash = hash_key(stack.api_key)
    # 800 distinct turns of one cell, written through the store as the chat path writes them.
    turns = []
    for i in range(800):
        turn = Turn(
            key=TurnKey(key_hash, f"load{i}", 2, f"n{i}"),
            router="smart-cheap-router",
            request_type="writing",
            model="fast",
            routed=True,
            gate_passed=True,
            conversation_messages=6,
            created_at=0.0,
        )
        store.record_turn(
            turn,
            input_tokens=10,
            output_tokens=10,
            cost_usd=0.0,
            baseline_usd=0.0,
            propensity=0.5,
            ttl_seconds=3600,
            shards=1,
        )
        turns.append(turn)
    before = cell(stack, "fast", "writing")

    def score(chunk: list[Turn]) -> int:
        applied = 0
        for t in chunk:
            outcome = apply_feedback(
                store,
                config,
                t.key,
                1.0 if len(t.key.session_id) % 2 else 0.0,
                source="implicit",
                kind="satisfaction",
                turn=t,
            )
            applied += outcome.applied
        return applied

    with ThreadPoolExecutor(max_workers=8) as pool:
        applied = sum(pool.map(score, [turns[i::8] for i in range(8)]))
    after = cell(stack, "fast", "writing")
    assert applied == 800
    assert (after["alpha"] + after["beta"]) - (before["alpha"] + before["beta"]) == pytest.approx(800.0, abs=1e-6)
    assert after["feedback"] - before["feedback"] == 800


def test_feedback_rate_limit_per_key_is_429(stack: Stack, router_settings: Any) -> None:
    router_settings(feedback_per_minute_per_key=2)
    turns = [gated_turn(stack)[0] for _ in range(3)]
    statuses = [stack.feedback_request({"turn_id": t, "rating": "up"})["statusCode"] for t in turns]
    assert statuses == [200, 200, 429]


def test_implicit_signals_are_never_dropped_by_the_explicit_rate_limit(stack: Stack, router_settings: Any) -> None:
    router_settings(feedback_per_minute_per_key=1)
    for _ in range(4):  # four sessions, each a gated turn and a complaint about it
        turn_id, _ = gated_turn(stack)
        messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
        messages.append({"role": "user", "content": "that's wrong, it still fails on empty lists"})
        stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=turn_id.split(".")[0])
    assert stack.drain_signals() == {"batchItemFailures": []}
    assert stack.router_state()["counts"]["feedback"] == 4
    # The limit still holds for explicit ratings from the same key.
    turns = [gated_turn(stack)[0] for _ in range(2)]
    assert [stack.feedback_request({"turn_id": t, "rating": "up"})["statusCode"] for t in turns] == [200, 429]


def throttled_transaction(*args: object, **kwargs: object) -> None:
    from botocore.exceptions import ClientError

    raise ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed throughput."}},
        "TransactWriteItems",
    )


def test_throttled_explicit_feedback_is_503_and_a_retry_counts_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router_core import runtime

    turn_id, model = gated_turn(stack)
    with monkeypatch.context() as patched:
        patched.setattr(runtime.store(), "apply_reward", throttled_transaction)
        response = stack.feedback_request({"turn_id": turn_id, "rating": "up"})
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"]["code"] == "service_unavailable"
    assert cell(stack, model)["feedback"] == 0
    assert stack.feedback_request({"turn_id": turn_id, "rating": "up"})["statusCode"] == 200
    assert stack.feedback_request({"turn_id": turn_id, "rating": "up"})["statusCode"] == 409
    assert cell(stack, model)["feedback"] == 1


def test_throttled_implicit_signal_is_retried_by_sqs_and_counts_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router_core import runtime

    def signal_for(turn_id: str) -> list[dict[str, Any]]:
        messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
        messages.append({"role": "user", "content": "perfect, thanks!"})
        stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=turn_id.split(".")[0])
        got: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )["Messages"]
        return got

    sqs = boto3.client("sqs", region_name=REGION)
    arn = sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    throttled_turn, _ = gated_turn(stack)
    healthy_turn, _ = gated_turn(stack)
    throttled, healthy = signal_for(throttled_turn), signal_for(healthy_turn)
    store = runtime.store()
    real_call = store._call
    throttled_session = throttled_turn.split(".")[0]

    def throttle_one_turn(op: str, **kwargs: Any) -> Any:
        # DynamoDB throttles every transaction that writes the throttled turn's item: the batch's
        # one transaction, then that signal's own (the others' own transactions go through).
        if op == "TransactWriteItems" and throttled_session in json.dumps(kwargs):
            throttled_transaction()
        return real_call(op, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(store, "_call", throttle_one_turn)
        # A batch where every record failed reports each record failed (never an invocation error).
        assert stack.call(stack.feedback, sqs_event(throttled, arn)) == {
            "batchItemFailures": [{"itemIdentifier": throttled[0]["MessageId"]}]
        }
        # In a mixed batch only the throttled record is reported failed; the other one is applied.
        mixed = stack.call(stack.feedback, sqs_event([*throttled, *healthy], arn))
    assert mixed == {"batchItemFailures": [{"itemIdentifier": throttled[0]["MessageId"]}]}
    after_mixed = stack.router_state()
    assert after_mixed["counts"]["feedback"] == 1
    assert [a["turn_id"] for a in after_mixed["activity"]] == [healthy_turn]
    # Redelivered once the table has capacity again: applied once, however often it comes back.
    assert stack.call(stack.feedback, sqs_event(throttled, arn)) == {"batchItemFailures": []}
    assert stack.call(stack.feedback, sqs_event(throttled, arn)) == {"batchItemFailures": []}
    state = stack.router_state()
    assert state["counts"]["feedback"] == 2
    assert {a["turn_id"] for a in state["activity"]} == {throttled_turn, healthy_turn}
