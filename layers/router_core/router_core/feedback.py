"""Applying feedback: one function for explicit ratings and implicit signals.

`apply_feedback` moves a turn's cell by α += r, β += 1 − r only if the turn exists, the caller
owns it, its conversation passed the signal gate and it was never scored before — all checked
by the conditions of ONE DynamoDB transaction, so a duplicate delivery, a replay or a race never
counts twice and a crash never counts half. Explicit ratings beat implicit signals: an explicit
rating on an implicitly scored turn replaces that reward (the cell moves by the difference).

`apply_implicit_batch` does the same for a batch of implicit signals (an SQS batch) in one
transaction; when that transaction cannot commit for a reason other than turns already scored
(throttling, a race), each signal of the batch goes through `apply_feedback` on its own, so one
bad turn never holds back the others.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from router_core.api import FeedbackRequest
from router_core.config import GatewayConfig
from router_core.errors import Conflict, InvalidRequest, NotFound, RateLimited
from router_core.forgetting import half_life_seconds
from router_core.store import ActivityEvent, ImplicitReward, RouterStore, TransactionConflict, Turn, TurnKey

logger = logging.getLogger(__name__)

Source = Literal["explicit", "implicit"]

RACE_ATTEMPTS = 3
"""Tries of an explicit rating whose transaction lost a race to another write of the same items."""
RACE_BACKOFF_S = 0.02
"""Base pause before a retry, seconds: the n-th retry waits a uniformly jittered 0..2^n × base."""
SIGNALS_PER_TRANSACTION = 40
"""Implicit signals scored per transaction: 40 marks, at most 40 cells and one activity item stay
under DynamoDB's 100 items per transaction (an SQS batch is 10)."""


@dataclass(frozen=True)
class FeedbackOutcome:
    """What happened to one piece of feedback."""

    applied: bool
    turn_id: str
    reward: float
    reason: str | None = None
    """Why it was not applied: signal_gate, duplicate, unknown_router."""
    event: ActivityEvent | None = None
    turn: Turn | None = None


def apply_feedback(
    store: RouterStore,
    config: GatewayConfig,
    key: TurnKey,
    reward: float,
    *,
    source: Source,
    kind: str,
    turn: Turn | None = None,
) -> FeedbackOutcome:
    """Score one turn exactly once (see module doc).

    Explicit feedback (`turn` None) reads the turn first and raises NotFound (404), Conflict
    (409) or RateLimited (429). Implicit feedback passes the `turn` facts carried by its queue
    message and never raises for a duplicate: a second delivery is reported as not applied.
    """
    if not 0.0 <= reward <= 1.0:
        raise InvalidRequest("reward must be between 0 and 1", param="reward")
    replaces: float | None = None
    if source == "explicit":
        turn = store.get_turn(key)
        if turn is None:
            raise NotFound(
                "no such turn for this key (unknown, expired or another key's)", param="turn_id", code="turn_not_found"
            )
        if not turn.routed:
            raise Conflict("this turn named a model directly, so the router did not choose it", code="not_routed")
        if turn.outcome == "failed":
            raise Conflict(
                "this answer's stream broke before it ended (an upstream failure, not the model's answer), "
                "so it cannot be rated",
                code="turn_failed",
            )
        if turn.scored_source == "explicit":
            raise Conflict("this turn already has explicit feedback", code="already_scored")
        if not turn.gate_passed:
            return FeedbackOutcome(False, turn.key.turn_id, reward, reason="signal_gate", turn=turn)
        if turn.scored_source == "implicit":
            replaces = turn.reward
        key = turn.key
    if turn is None:
        raise ValueError("implicit feedback needs the turn facts from its signal message")
    router = config.routers.get(turn.router)
    if router is None or turn.model not in config.models:
        # The router or model was removed from the config since the turn: nothing to learn.
        return FeedbackOutcome(False, key.turn_id, reward, reason="unknown_router")
    try:
        event = store.apply_reward(
            key,
            router=turn.router,
            request_type=turn.request_type,
            model=turn.model,
            reward=reward,
            source=source,
            kind=kind,
            replaces=replaces,
            # Implicit signals are bounded by the chat traffic (one per routed turn, scored once):
            # a rate limit there would only drop real evidence from busy keys.
            rate_limit_per_minute=router.feedback_per_minute_per_key if source == "explicit" else None,
            shards=router.cell_shards,
            activity_ttl_seconds=config.activity_ttl_hours * 3600,
            half_life_s=half_life_seconds(router),
            replaced_at=turn.scored_at,
            replaced_shard=turn.scored_shard,
        )
    except TransactionConflict as conflict:
        return _explain_conflict(conflict, key, reward, source)
    logger.info(
        "feedback applied",
        extra={"turn_id": key.turn_id, "source": source, "kind": kind, "reward": reward, "replaced": replaces},
    )
    return FeedbackOutcome(True, key.turn_id, reward, event=event, turn=turn)


@dataclass(frozen=True)
class Signal:
    """One implicit signal as its queue message carries it."""

    key: TurnKey
    turn: Turn
    reward: float
    kind: str


def apply_implicit_batch(
    store: RouterStore, config: GatewayConfig, signals: Sequence[Signal]
) -> list[FeedbackOutcome | Exception]:
    """Score a batch of implicit signals exactly once each: one outcome (or the exception that
    failed it, so its message is retried) per signal, in order.

    A turn that is already scored (a duplicate delivery, an explicit rating first), or appears
    twice in the batch, is a `duplicate`; its router or model gone from the config,
    `unknown_router`. The others are scored in one transaction; when that transaction fails on
    scored turns only, it is sent again without them; on anything else (throttling, a race with
    another writer, a signal DynamoDB refuses) every remaining signal is applied on its own by
    `apply_feedback`, so only the signals that fail there are reported failed.
    """
    results: list[FeedbackOutcome | Exception | None] = [None] * len(signals)
    pending: list[int] = []
    seen: set[TurnKey] = set()
    for i, signal in enumerate(signals):
        router = config.routers.get(signal.turn.router)
        if router is None or signal.turn.model not in config.models:
            results[i] = FeedbackOutcome(False, signal.key.turn_id, signal.reward, reason="unknown_router")
        elif signal.key in seen:
            results[i] = FeedbackOutcome(False, signal.key.turn_id, signal.reward, reason="duplicate")
        else:
            seen.add(signal.key)
            pending.append(i)
    for start in range(0, len(pending), SIGNALS_PER_TRANSACTION):
        _apply_in_one_transaction(store, config, signals, pending[start : start + SIGNALS_PER_TRANSACTION], results)
    done = [r for r in results if r is not None]
    assert len(done) == len(signals)
    logger.info(
        "implicit feedback batch",
        extra={
            "signals": len(signals),
            "applied": sum(1 for r in done if isinstance(r, FeedbackOutcome) and r.applied),
            "failed": sum(1 for r in done if isinstance(r, Exception)),
        },
    )
    return done


def _apply_in_one_transaction(
    store: RouterStore,
    config: GatewayConfig,
    signals: Sequence[Signal],
    pending: list[int],
    results: list[FeedbackOutcome | Exception | None],
) -> None:
    while pending:
        rewards = [_implicit_reward(config, signals[i]) for i in pending]
        try:
            events = store.apply_implicit_rewards(rewards, activity_ttl_seconds=config.activity_ttl_hours * 3600)
        except TransactionConflict as conflict:
            codes = conflict.reasons[: len(pending)]
            scored = {pending[n] for n, code in enumerate(codes) if code == "ConditionalCheckFailed"}
            if scored and all(code in ("None", "ConditionalCheckFailed") for code in conflict.reasons):
                for i in scored:
                    results[i] = FeedbackOutcome(False, signals[i].key.turn_id, signals[i].reward, reason="duplicate")
                pending = [i for i in pending if i not in scored]
                continue
            _apply_one_by_one(store, config, signals, pending, results)
            return
        except Exception:  # throttling, or one signal DynamoDB refuses: each on its own, failures stay per signal
            _apply_one_by_one(store, config, signals, pending, results)
            return
        for i, event in zip(pending, events, strict=True):
            signal = signals[i]
            results[i] = FeedbackOutcome(True, signal.key.turn_id, signal.reward, event=event, turn=signal.turn)
        return


def _implicit_reward(config: GatewayConfig, signal: Signal) -> ImplicitReward:
    router = config.routers[signal.turn.router]
    return ImplicitReward(
        key=signal.key,
        router=signal.turn.router,
        request_type=signal.turn.request_type,
        model=signal.turn.model,
        reward=signal.reward,
        kind=signal.kind,
        shards=router.cell_shards,
        half_life_s=half_life_seconds(router),
    )


def _apply_one_by_one(
    store: RouterStore,
    config: GatewayConfig,
    signals: Sequence[Signal],
    pending: Sequence[int],
    results: list[FeedbackOutcome | Exception | None],
) -> None:
    for i in pending:
        signal = signals[i]
        try:
            results[i] = apply_feedback(
                store, config, signal.key, signal.reward, source="implicit", kind=signal.kind, turn=signal.turn
            )
        except Exception as exc:  # reported per signal: its message is retried, then the DLQ
            results[i] = exc


def apply_explicit_feedback(
    store: RouterStore,
    config: GatewayConfig,
    key_hash: str,
    request: FeedbackRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> FeedbackOutcome:
    """POST /v1/feedback for the caller's key: `apply_feedback` on the turn it names, whose id
    must parse as one of this key's turns (NotFound otherwise).

    A rating that lost a race is tried again, up to `RACE_ATTEMPTS` times with jittered
    backoff: when the turn changed between its read and the transaction (an implicit signal
    scored it: 409 `concurrent_update`) or DynamoDB cancelled the transaction for a concurrent
    one on the same items. Safe because a cancelled transaction wrote nothing and each try
    reads the turn afresh (so a replay still counts once). Past the last try the 409 (or the
    503) reaches the client, who may send the rating again.
    """
    key = TurnKey.parse(request.turn_id, key_hash)
    if key is None:
        raise NotFound("no such turn for this key", param="turn_id", code="turn_not_found")
    kind = f"rating_{request.rating or 'reward'}"
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return apply_feedback(store, config, key, request.value(), source="explicit", kind=kind)
        except Conflict as exc:
            if exc.code != "concurrent_update" or attempt == RACE_ATTEMPTS:
                raise
        except TransactionConflict as exc:
            if not lost_a_race(exc) or attempt == RACE_ATTEMPTS:
                raise
        logger.info("explicit feedback lost a race; trying again", extra={"turn_id": key.turn_id, "try": attempt})
        sleep(RACE_BACKOFF_S * 2**attempt * jitter())
    raise AssertionError("unreachable")  # pragma: no cover


def lost_a_race(conflict: TransactionConflict) -> bool:
    """True when DynamoDB cancelled the transaction only because another one held its items."""
    return "TransactionConflict" in conflict.reasons and set(conflict.reasons) <= {"TransactionConflict", "None"}


def _explain_conflict(conflict: TransactionConflict, key: TurnKey, reward: float, source: Source) -> FeedbackOutcome:
    turn_reason = conflict.reasons[0] if conflict.reasons else "Unknown"
    rate_reason = conflict.reasons[3] if len(conflict.reasons) > 3 else "None"
    if rate_reason == "ConditionalCheckFailed":  # only explicit feedback carries the rate item
        raise RateLimited("too much feedback from this key; try again in a minute", code="feedback_rate_limited")
    if turn_reason == "ConditionalCheckFailed":
        old: Mapping[str, Any] | None = conflict.items[0] if conflict.items else None
        if source == "explicit":
            if old is not None and old.get("scored_source") == "explicit":
                raise Conflict("this turn already has explicit feedback", code="already_scored")
            raise Conflict("the turn changed while scoring it; send the feedback again", code="concurrent_update")
        return FeedbackOutcome(False, key.turn_id, reward, reason="duplicate")
    raise conflict  # throttling or a transaction conflict: the caller retries (SQS) or answers 503


def outcome_body(outcome: FeedbackOutcome) -> dict[str, Any]:
    """The JSON answer of POST /v1/feedback."""
    body: dict[str, Any] = {"applied": outcome.applied, "turn_id": outcome.turn_id, "reward": outcome.reward}
    if outcome.reason:
        body["reason"] = outcome.reason
    if outcome.turn is not None:
        body["cell"] = {
            "router": outcome.turn.router,
            "request_type": outcome.turn.request_type,
            "model": outcome.turn.model,
        }
    if outcome.reason == "signal_gate" and outcome.turn is not None:
        body["message"] = (
            f"not applied: the conversation had {outcome.turn.conversation_messages} messages "
            "when this turn was answered, below the router's signal gate"
        )
    return body
