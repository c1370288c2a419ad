"""GET /v1/state: the snapshot's shape, its cost in DynamoDB round trips, and the IAM guard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration


def test_snapshot_has_every_cell_with_posterior_interval_and_pick_share(stack: Stack) -> None:
    from router_core import runtime

    state = stack.router_state()
    router = runtime.config().routers["smart-cheap-router"]
    assert len(state["cells"]) == len(router.request_types) * len(router.models)
    for cell in state["cells"]:
        lo, hi = cell["interval"]
        assert 0.0 <= lo <= cell["mean"] <= hi <= 1.0
        assert cell["alpha"] > 0 and cell["beta"] > 0
    for request_type in router.request_types:
        shares = [c["pick_share"] for c in state["cells"] if c["request_type"] == request_type]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert state["spend"] == {"actual_usd": 0.0, "baseline_usd": 0.0, "savings_usd": 0.0, "savings_ratio": 0.0}


def test_snapshot_costs_three_queries_and_at_most_one_history_write_per_step(stack: Stack) -> None:
    from router_core import runtime

    for _ in range(3):
        response = stack.chat_request(
            {"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)}
        )
        assert (
            stack.feedback_request({"turn_id": response["headers"]["x-router-turn-id"], "rating": "up"})["statusCode"]
            == 200
        )
    runtime.store().stats.calls.clear()
    state = stack.router_state()
    # cells, activity, history; and this step's history point, written by the first caller
    assert runtime.store().stats.calls == {"Query": 3, "PutItem": 1}
    assert state["counts"] == {"turns": 3, "feedback": 3}
    assert len(state["activity"]) == 3
    assert state["spend"]["baseline_usd"] >= state["spend"]["actual_usd"] > 0
    (point,) = state["history"]
    assert point["turns"] == 3 and point["savings_ratio"] == state["spend"]["savings_ratio"]

    runtime.store().stats.calls.clear()
    again = polled(stack, since=point["t"])
    assert runtime.store().stats.calls == {"Query": 3}  # same step: nothing new to read or write
    assert again["history"] == []


def polled(stack: Stack, *, since: int | None = None, router: str = "smart-cheap-router") -> dict[str, Any]:
    query = {} if since is None else {"history_since": str(since)}
    response = stack.state_request(query=query)
    assert response["statusCode"] == 200, response
    return next(r for r in json.loads(response["body"])["routers"] if r["router"] == router)


def test_history_is_kept_by_the_server_one_point_per_step(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from router_core import runtime
    from router_core.snapshot import HISTORY_STEP_S

    now = [1_800_000_000.0]
    monkeypatch.setattr(runtime.store(), "clock", lambda: now[0])
    first = polled(stack)["history"]
    assert [p["t"] for p in first] == [1_800_000_000]
    assert first[0]["savings_ratio"] is None and first[0]["turns"] == 0
    router = runtime.config().routers["smart-cheap-router"]
    assert set(first[0]["shares"]) == set(router.request_types)

    stack.chat_request({"model": "smart-cheap-router", "messages": five_message_conversation(CODE_PROMPT)})
    now[0] += 3
    assert polled(stack, since=first[-1]["t"])["history"] == []  # same step
    now[0] += HISTORY_STEP_S
    newer = polled(stack, since=first[-1]["t"])["history"]
    assert [p["t"] for p in newer] == [1_800_000_010] and newer[0]["turns"] == 1

    # A new tab (or the same one after a restart) reads every point kept, oldest first.
    assert [p["t"] for p in polled(stack)["history"]] == [1_800_000_000, 1_800_000_010]
    # A router filter reads the history but never writes it.
    now[0] += 5 * HISTORY_STEP_S
    runtime.store().stats.calls.clear()
    filtered = stack.state_request(query={"router": "smart-cheap-router"})
    assert runtime.store().stats.calls == {"Query": 3}
    assert len(json.loads(filtered["body"])["routers"][0]["history"]) == 2


def test_history_since_must_be_a_non_negative_integer(stack: Stack) -> None:
    for bad in ("-1", "soon"):
        response = stack.state_request(query={"history_since": bad})
        assert response["statusCode"] == 400, response
        assert json.loads(response["body"])["error"]["type"] == "invalid_request_error"


def test_router_query_filters_and_unknown_router_is_404(stack: Stack) -> None:
    ok = stack.state_request(query={"router": "smart-cheap-router"})
    assert [r["router"] for r in json.loads(ok["body"])["routers"]] == ["smart-cheap-router"]
    missing = stack.state_request(query={"router": "nope"})
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"] == "router_not_found"


def test_a_call_without_the_iam_context_is_refused(stack: Stack) -> None:
    response = stack.state_request(signed=False)
    assert response["statusCode"] == 403
