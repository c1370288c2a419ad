"""GET /v1/state: the snapshot's shape, its cost in DynamoDB round trips, and the IAM guard."""

from __future__ import annotations

import json

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


def test_snapshot_costs_two_dynamodb_round_trips(stack: Stack) -> None:
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
    assert runtime.store().stats.round_trips == 2
    assert state["counts"] == {"turns": 3, "feedback": 3}
    assert len(state["activity"]) == 3
    assert state["spend"]["baseline_usd"] >= state["spend"]["actual_usd"] > 0


def test_router_query_filters_and_unknown_router_is_404(stack: Stack) -> None:
    ok = stack.state_request(query={"router": "smart-cheap-router"})
    assert [r["router"] for r in json.loads(ok["body"])["routers"]] == ["smart-cheap-router"]
    missing = stack.state_request(query={"router": "nope"})
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"] == "router_not_found"


def test_a_call_without_the_iam_context_is_refused(stack: Stack) -> None:
    response = stack.state_request(signed=False)
    assert response["statusCode"] == 403
