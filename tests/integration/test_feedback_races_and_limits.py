"""Explicit ratings that lose a race are retried server-side; a rate-limited rating is a counted 429."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_feedback_exactly_once import cell, gated_turn

pytestmark = pytest.mark.integration


def implicit_signal(turn_id: str, model: str, key: str, reward: float = 0.0) -> Any:
    """Score `turn_id` implicitly through the store, as the SQS consumer would."""
    from router_core import runtime
    from router_core.feedback import apply_feedback
    from router_core.keys import hash_key
    from router_core.store import Turn, TurnKey

    key_hash = hash_key(key)
    turn_key = TurnKey.parse(turn_id, key_hash)
    assert turn_key is not None
    turn = Turn(turn_key, "smart-cheap-router", "code_generation", model, True, True, 6, 0.0)
    return apply_feedback(
        runtime.store(), runtime.config(), turn_key, reward, source="implicit", kind="dissatisfaction", turn=turn
    )


def test_a_rating_that_races_an_implicit_signal_is_retried_and_replaces_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router_core import runtime

    turn_id, model = gated_turn(stack)
    store = runtime.store()
    real_apply = store.apply_reward
    calls: list[tuple[str, float | None]] = []

    def implicit_lands_first(key: Any, **kwargs: Any) -> Any:
        calls.append((kwargs["source"], kwargs["replaces"]))
        if len(calls) == 1:  # between the rating's read of the turn and its transaction
            assert implicit_signal(turn_id, model, stack.api_key).applied
        return real_apply(key, **kwargs)

    monkeypatch.setattr(store, "apply_reward", implicit_lands_first)
    response = stack.feedback_request({"turn_id": turn_id, "rating": "up"})
    assert response["statusCode"] == 200, response
    # First as a first score; the implicit signal lands; then again, replacing the reward it lost to.
    assert calls == [("explicit", None), ("implicit", None), ("explicit", 0.0)]
    after = cell(stack, model)
    assert after["feedback"] == 1
    assert after["alpha"] == pytest.approx(after["prior_alpha"] + 1.0, abs=1e-3)
    assert after["beta"] == pytest.approx(after["prior_beta"], abs=1e-3)


def test_a_rating_that_keeps_losing_is_409_concurrent_update_after_three_tries(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router_core import feedback, runtime
    from router_core.store import TransactionConflict

    turn_id, _ = gated_turn(stack)
    tries = []

    def always_raced(key: Any, **kwargs: Any) -> Any:
        tries.append(1)
        raise TransactionConflict(["ConditionalCheckFailed", "None", "None", "None"], [{"scored_source": "implicit"}])

    monkeypatch.setattr(runtime.store(), "apply_reward", always_raced)
    response = stack.feedback_request({"turn_id": turn_id, "rating": "up"})
    assert response["statusCode"] == 409
    assert json.loads(response["body"])["error"]["code"] == "concurrent_update"
    assert len(tries) == feedback.RACE_ATTEMPTS


def test_a_transaction_cancelled_for_a_concurrent_one_is_retried(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from router_core import runtime
    from router_core.store import TransactionConflict

    turn_id, model = gated_turn(stack)
    store = runtime.store()
    real_apply = store.apply_reward
    tries = []

    def conflict_once(key: Any, **kwargs: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise TransactionConflict(["None", "TransactionConflict", "None", "None"], [None] * 4)
        return real_apply(key, **kwargs)

    monkeypatch.setattr(store, "apply_reward", conflict_once)
    assert stack.feedback_request({"turn_id": turn_id, "rating": "down"})["statusCode"] == 200
    assert len(tries) == 2 and cell(stack, model)["feedback"] == 1


@pytest.mark.parametrize("seed", range(3))
def test_ratings_racing_implicit_signals_on_many_threads_all_land_exactly_once(stack: Stack, seed: int) -> None:
    """Each turn gets an implicit signal and an explicit rating at the same time: the rating is
    never refused for the race, and each turn counts once with the explicit reward."""
    turns = [gated_turn(stack) for _ in range(12)]
    rng = random.Random(seed)
    start = threading.Barrier(len(turns) * 2)

    def rate(turn: tuple[str, str]) -> int:
        start.wait()
        status: int = stack.feedback_request({"turn_id": turn[0], "rating": "up"})["statusCode"]
        return status

    def signal(turn: tuple[str, str]) -> int:
        start.wait()
        implicit_signal(turn[0], turn[1], stack.api_key)
        return 0

    jobs = [(rate, t) for t in turns] + [(signal, t) for t in turns]
    rng.shuffle(jobs)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda job: job[0](job[1]), jobs))
    assert sorted(r for r in results if r) == [200] * len(turns)
    state = stack.router_state()
    assert state["counts"]["feedback"] == len(turns)
    explicit = [a for a in state["activity"] if a["source"] == "explicit"]
    assert len(explicit) == len(turns)


def test_a_rate_limited_rating_is_a_counted_429(
    stack: Stack, router_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    router_settings(feedback_per_minute_per_key=1)
    turns = [gated_turn(stack)[0] for _ in range(2)]
    capsys.readouterr()
    assert stack.feedback_request({"turn_id": turns[0], "rating": "up"})["statusCode"] == 200
    limited = stack.feedback_request({"turn_id": turns[1], "rating": "up"})
    assert limited["statusCode"] == 429
    error = json.loads(limited["body"])["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "feedback_rate_limited")
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["ExplicitFeedbackRateLimited"] for m in metrics if "ExplicitFeedbackRateLimited" in m] == [[1.0]]
