"""Implicit signals applied a batch at a time: one transaction per SQS batch, exactly once each."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION, sqs_event
from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation
from tests.integration.test_feedback_exactly_once import gated_turn

pytestmark = pytest.mark.integration

PRAISE = "perfect, thanks!"
COMPLAINT = "that's wrong, it still fails on empty lists"


def queued_signals(stack: Stack, follow_ups: list[str]) -> tuple[list[str], list[dict[str, Any]], str]:
    """One gated turn per follow-up, each followed up in its session: (turn ids, the queued
    messages, the queue's ARN)."""
    turns = []
    for text in follow_ups:
        turn_id, _model = gated_turn(stack)
        messages = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
        messages.append({"role": "user", "content": text})
        stack.chat_request({"model": "smart-cheap-router", "messages": messages}, session=turn_id.split(".")[0])
        turns.append(turn_id)
    sqs = boto3.client("sqs", region_name=REGION)
    got: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", []):
        got.extend(batch)
    assert len(got) == len(follow_ups)
    arn = sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return turns, got, arn


def totals(stack: Stack) -> tuple[float, float, int]:
    """(α, β, feedback) summed over the code cells of every model."""
    cells = [c for c in stack.router_state()["cells"] if c["request_type"] == "code_generation"]
    return sum(c["alpha"] for c in cells), sum(c["beta"] for c in cells), sum(c["feedback"] for c in cells)


def count_transactions(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of items of every TransactWriteItems the store sends."""
    from router_core import runtime

    store = runtime.store()
    real_call = store._call
    sizes: list[int] = []

    def counting(op: str, **kwargs: Any) -> Any:
        if op == "TransactWriteItems":
            sizes.append(len(kwargs["TransactItems"]))
        return real_call(op, **kwargs)

    monkeypatch.setattr(store, "_call", counting)
    return sizes


def test_a_batch_is_one_transaction_that_moves_every_cell_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    follow_ups = [PRAISE, COMPLAINT] * 5
    turns, messages, arn = queued_signals(stack, follow_ups)
    alpha0, beta0, feedback0 = totals(stack)
    sizes = count_transactions(stack, monkeypatch)
    assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    # Ten turn marks, one ADD per cell the batch moved (at most one per model here), one activity item.
    assert len(sizes) == 1 and 10 + 1 + 1 <= sizes[0] <= 10 + 2 + 1
    alpha, beta, feedback = totals(stack)
    assert feedback - feedback0 == 10
    assert alpha - alpha0 == pytest.approx(5.0, abs=1e-3)
    assert beta - beta0 == pytest.approx(5.0, abs=1e-3)
    activity = stack.router_state()["activity"]
    assert sorted(a["turn_id"] for a in activity) == sorted(turns)
    assert {a["source"] for a in activity} == {"implicit"}
    rewards = {a["turn_id"]: a["reward"] for a in activity}
    assert [rewards[t] for t in turns] == [1.0, 0.0] * 5
    # Newest first, as a single event's items are: the batch lists its events in order.
    assert [a["turn_id"] for a in activity] == turns[::-1]
    # Delivered again (SQS is at-least-once): nothing moves, nothing fails.
    assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert totals(stack) == (alpha, beta, feedback)
    assert len(stack.router_state()["activity"]) == 10


def test_turns_already_scored_leave_the_batch_and_the_rest_commit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns, messages, arn = queued_signals(stack, [PRAISE, PRAISE, COMPLAINT, PRAISE])
    # The user rated two of the turns before their implicit signals arrived: explicit wins.
    for turn_id in (turns[0], turns[2]):
        assert stack.feedback_request({"turn_id": turn_id, "rating": "down"})["statusCode"] == 200
    _alpha0, _beta0, feedback0 = totals(stack)
    sizes = count_transactions(stack, monkeypatch)
    assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert len(sizes) == 2  # the first was cancelled on the two scored turns; sent again without them
    _alpha, _beta, feedback = totals(stack)
    assert feedback - feedback0 == 2
    activity = stack.router_state()["activity"]
    implicit = sorted(a["turn_id"] for a in activity if a["source"] == "implicit")
    explicit = sorted(a["turn_id"] for a in activity if a["source"] == "explicit")
    assert implicit == sorted([turns[1], turns[3]])
    assert explicit == sorted([turns[0], turns[2]])


def test_a_batch_that_loses_a_race_is_applied_signal_by_signal(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError
    from router_core import runtime

    turns, messages, arn = queued_signals(stack, [PRAISE, COMPLAINT, PRAISE])
    _alpha0, _beta0, feedback0 = totals(stack)
    store = runtime.store()
    real_call = store._call
    cancelled: list[int] = []

    def race_on_batches(op: str, **kwargs: Any) -> Any:
        items = kwargs.get("TransactItems", [])
        if op == "TransactWriteItems" and sum("TURN#" in json.dumps(i) for i in items) > 1:
            cancelled.append(len(items))
            reasons = [{"Code": "None"}] * (len(items) - 1) + [{"Code": "TransactionConflict"}]
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return real_call(op, **kwargs)

    monkeypatch.setattr(store, "_call", race_on_batches)
    assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert len(cancelled) == 1
    _alpha, _beta, feedback = totals(stack)
    assert feedback - feedback0 == 3
    assert sorted(a["turn_id"] for a in stack.router_state()["activity"]) == sorted(turns)


def test_a_throttled_batch_reports_each_failed_signal_and_counts_once_when_redelivered(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from router_core import runtime

    turns, messages, arn = queued_signals(stack, [PRAISE, COMPLAINT, PRAISE])
    _alpha0, _beta0, feedback0 = totals(stack)
    store = runtime.store()
    real_call = store._call

    def throttled(op: str, **kwargs: Any) -> Any:
        if op == "TransactWriteItems":
            raise ClientError(
                {
                    "Error": {
                        "Code": "ThrottlingException",
                        "Message": "Rate of requests exceeds the allowed throughput.",
                    }
                },
                "TransactWriteItems",
            )
        return real_call(op, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(store, "_call", throttled)
        result = stack.call(stack.feedback, sqs_event(messages, arn))
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(m["MessageId"] for m in messages)
    assert totals(stack)[2] == feedback0
    for _ in range(2):
        assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert totals(stack)[2] == feedback0 + 3
    assert sorted(a["turn_id"] for a in stack.router_state()["activity"]) == sorted(turns)


def test_a_poison_message_fails_alone(stack: Stack) -> None:
    turns, messages, arn = queued_signals(stack, [PRAISE, COMPLAINT])
    poison = {**messages[0], "MessageId": "poison-1", "Body": json.dumps({"turn_id": "x", "reward": 3})}
    duplicate = dict(messages[1])
    result = stack.call(stack.feedback, sqs_event([poison, *messages, duplicate], arn))
    assert result == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert sorted(a["turn_id"] for a in stack.router_state()["activity"]) == sorted(turns)
    assert totals(stack)[2] == 2


def test_more_signals_than_one_transaction_holds(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from router_core import feedback

    monkeypatch.setattr(feedback, "SIGNALS_PER_TRANSACTION", 2)
    turns, messages, arn = queued_signals(stack, [PRAISE, COMPLAINT, PRAISE, PRAISE, COMPLAINT])
    sizes = count_transactions(stack, monkeypatch)
    assert stack.call(stack.feedback, sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert len(sizes) == 3
    assert totals(stack)[2] == 5
    assert sorted(a["turn_id"] for a in stack.router_state()["activity"]) == sorted(turns)


def test_a_signal_dynamodb_refuses_fails_alone(stack: Stack) -> None:
    turns, messages, arn = queued_signals(stack, [PRAISE, COMPLAINT])
    body = json.loads(messages[0]["Body"])
    refused = {**messages[0], "MessageId": "refused-1", "Body": json.dumps({**body, "request_type": "code\ud800"})}
    result = stack.call(stack.feedback, sqs_event([*messages[1:], refused], arn))
    assert result == {"batchItemFailures": [{"itemIdentifier": "refused-1"}]}
    assert [a["turn_id"] for a in stack.router_state()["activity"]] == [turns[1]]
