"""Routing one chat turn: classify, read state, pick, call the model, record.

`route_turn` is the whole chat flow; the handler only translates HTTP to it and back.
Any failure of the router's own machinery (state read, sampling) falls back to the router's
default model: the router never fails a request that a model could have answered.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from router_core import bandit
from router_core.api import ChatCompletionRequest, check_session_id
from router_core.classifier import Classification, classify, message_text
from router_core.config import REQUEST_TYPES, GatewayConfig, RouterConfig
from router_core.errors import InvalidRequest, NotFound, UpstreamFailed
from router_core.forgetting import half_life_seconds
from router_core.keys import KeyCache, hash_key, require_active
from router_core.posterior import Posterior, cold_start_prior, posterior_from_evidence
from router_core.pricing import turn_cost
from router_core.providers import ChatParams, UpstreamError
from router_core.signals import Signal, conversation_length, detect_feedback, gate_passed, neutral_signal
from router_core.signals_queue import SignalMessage
from router_core.store import CellCounters, ChatReads, RouterStore, Turn, TurnKey
from router_core.upstream import AllUpstreamsFailed, UpstreamResult, call_with_fallback

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0
"""Prompt size estimate used only for the *expected* cost of a decision; spend uses real usage."""


@dataclass(frozen=True)
class ImplicitFeedback:
    """A signal read from the new message about the previous turn (queued, applied once)."""

    turn_id: str
    kind: str
    reward: float


@dataclass
class RoutedTurn:
    """Everything the handler needs to answer."""

    router: str | None
    model: str
    request_type: str
    classification_rule: str
    session_id: str
    turn_id: str | None
    propensity: float | None
    fallback: str | None
    result: UpstreamResult
    cost_usd: float
    baseline_usd: float
    gate_messages: int
    gate_required: int
    gate_passed: bool
    implicit_feedback: ImplicitFeedback | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    decision_log: dict[str, Any] | None = None
    """Candidates, sampled values, scores and propensity: logged once per turn for off-policy evaluation."""


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Rough token count of a conversation (≈ 4 characters per token, at least 1)."""
    chars = sum(len(message_text(m)) for m in messages)
    return max(1, int(chars / CHARS_PER_TOKEN))


def cell_prior(config: GatewayConfig, router: RouterConfig, request_type: str, model_name: str) -> Posterior:
    """The cold-start prior of one (type, model) cell: the model's tier, raised for its strengths."""
    model = config.models[model_name]
    return cold_start_prior(model.quality_tier, request_type in model.strengths, router.prior_mass)


def decide(
    router: RouterConfig,
    arms: Sequence[bandit.Arm],
    rng: random.Random,
    *,
    quality_weight: float | None = None,
    cost_weight: float | None = None,
) -> bandit.Decision:
    """The router's decision rule: Thompson sampling with every knob taken from its config.

    The weights can be overridden (the learning benchmark sweeps them); nothing else can, so
    production, the state's pick shares and the benchmarks always run the same rule.
    """
    return bandit.pick_model(
        arms,
        quality_weight=router.weights.quality if quality_weight is None else quality_weight,
        cost_weight=router.weights.cost if cost_weight is None else cost_weight,
        rng=rng,
        exploration_floor=router.exploration_floor,
        posterior_temper=router.posterior_temper,
    )


def decision_shares(
    router: RouterConfig, arms: Sequence[bandit.Arm], rng: random.Random, draws: int
) -> dict[str, float]:
    """Probability each model wins under `decide`'s rule (for the dashboard and benchmarks)."""
    return bandit.pick_shares(
        arms,
        quality_weight=router.weights.quality,
        cost_weight=router.weights.cost,
        rng=rng,
        exploration_floor=router.exploration_floor,
        posterior_temper=router.posterior_temper,
        draws=draws,
    )


def build_arms(
    config: GatewayConfig, router: RouterConfig, request_type: str, cells: dict[str, CellCounters], prompt_tokens: int
) -> list[bandit.Arm]:
    """One arm per model: the cell's posterior and this request's expected cost in cost units."""
    arms = []
    for name in router.models:
        model = config.models[name]
        cell = cells.get(name)
        prior = cell_prior(config, router, request_type, name)
        if cell is None:
            posterior = prior
            out_tokens = float(model.expected_output_tokens)
        else:
            posterior = posterior_from_evidence(prior, cell.alpha_evidence, cell.beta_evidence)
            out_tokens = cell.average_output_tokens(model.expected_output_tokens)
        expected_usd = (prompt_tokens * model.input_usd_per_mtok + out_tokens * model.output_usd_per_mtok) / 1e6
        arms.append(
            bandit.Arm(
                model=name,
                posterior=posterior,
                cost_units=expected_usd / router.cost_reference_usd,
                evidence=max(posterior.mass - prior.mass, 0.0),
            )
        )
    return arms


class TurnRouter:
    """The chat flow, bound to a config and a store (one per execution environment)."""

    def __init__(
        self, config: GatewayConfig, store: RouterStore, *, rng: random.Random | None = None, seed: int | None = None
    ) -> None:
        """`seed` makes the decisions and the simulated provider's answers reproducible (local stack,
        tests, benchmarks); without it (deployed) both are drawn from the OS's entropy."""
        self.config = config
        self.store = store
        self.seed = seed
        self.rng = rng or random.Random(secrets.randbits(64) if seed is None else seed)
        self.keys = KeyCache()

    def authenticate(self, api_key: str) -> str:
        """Key hash of a valid key (cache, else one GetItem); 401 otherwise."""
        key_hash = hash_key(api_key)
        if self.keys.get(key_hash) is None:
            self.keys.put(require_active(self.store.get_client_key(key_hash)))
        return key_hash

    def route_turn(self, request: ChatCompletionRequest, api_key: str, session_header: str | None) -> RoutedTurn:
        """Answer one chat request; raises RouterError subclasses for client-visible failures."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        messages = request.plain_messages()
        key_hash = hash_key(api_key)
        router_name = request.model if request.model in self.config.routers else None
        if router_name is None and request.model not in self.config.models:
            self.authenticate(api_key)  # 401 before revealing which names exist
            raise NotFound(
                f"model {request.model!r} is neither a router nor a model; GET /v1/models lists them",
                param="model",
                code="model_not_found",
            )
        router = self.config.routers[router_name] if router_name else None
        request_types = router.request_types if router else REQUEST_TYPES
        classification: Classification = classify(messages, request_types)
        timings["classify"] = (time.perf_counter() - t0) * 1000

        session_id = (
            check_session_id(session_header)
            or check_session_id((request.metadata or {}).get("session_id"))
            or uuid.uuid4().hex
        )
        index = sum(1 for m in request.messages if m.role == "assistant")
        if index > 999_999:
            raise InvalidRequest("too many assistant messages in one conversation", param="messages")
        previous = TurnKey(key_hash, session_id, index - 1, "*") if index > 0 else None
        cached_key = self.keys.get(key_hash)

        # ---- one BatchGetItem: key, previous turn, cells of (router, type)
        reads: ChatReads | None = None
        fallback: str | None = None
        t_db = time.perf_counter()
        try:
            reads = self.store.read_for_chat(
                key_hash=key_hash,
                need_key=cached_key is None,
                previous=previous,
                router=router_name,
                request_type=classification.request_type,
                models=router.models if router else (),
                shards=router.cell_shards if router else 1,
                half_life_s=half_life_seconds(router) if router else None,
            )
        except Exception:
            if cached_key is None:
                raise  # cannot authenticate: let the handler answer 503
            logger.exception("state read failed; routing to the default model")
            fallback = "default_model"
        timings["dynamodb"] = (time.perf_counter() - t_db) * 1000
        if reads is not None and cached_key is None:
            self.keys.put(require_active(reads.client_key))

        # ---- implicit feedback on the previous turn
        implicit: ImplicitFeedback | None = None
        if reads is not None and reads.previous_turn is not None:
            implicit = self._queue_implicit_signal(reads.previous_turn, messages)

        # ---- decide
        t_decide = time.perf_counter()
        prompt_tokens = estimate_prompt_tokens(messages)
        decision: bandit.Decision | None = None
        if router is not None and router_name is not None:
            if reads is not None and fallback is None:
                try:
                    arms = build_arms(self.config, router, classification.request_type, reads.cells, prompt_tokens)
                    decision = decide(router, arms, self.rng)
                except Exception:
                    logger.exception("decision failed; routing to the default model")
                    fallback = "default_model"
            order = (
                # The pick first (an exploration pick need not have the best score), then by score.
                [decision.model, *(m for m in decision.ranking if m != decision.model)]
                if decision
                else [router.default_model] + [m for m in router.models if m != router.default_model]
            )
        else:
            order = [request.model]
        timings["decide"] = (time.perf_counter() - t_decide) * 1000
        decision_log = (
            {
                "router": router_name,
                "request_type": classification.request_type,
                "classifier_rule": classification.rule,
                "candidates": list(decision.scores),
                "sampled": {m: round(v, 5) for m, v in decision.sampled.items()},
                "scores": {m: round(v, 5) for m, v in decision.scores.items()},
                "chosen": decision.model,
                "propensity": round(decision.propensity, 6),
                "explored": decision.explored,
                "session_id": session_id,
            }
            if decision is not None
            else None
        )

        # ---- call the model (retry once, then the next-best model)
        t_up = time.perf_counter()
        params = ChatParams(
            messages=messages,
            temperature=request.temperature,
            max_tokens=request.output_limit(),
            request_type=classification.request_type,
            seed=self.seed,
        )
        try:
            result = call_with_fallback(order, params, self.config, max_models=3 if router else 1)
        except AllUpstreamsFailed as exc:
            logger.warning(
                "all upstreams failed",
                extra={
                    "attempts": [{"model": a.model, "outcome": a.outcome, "status": a.status} for a in exc.attempts]
                },
            )
            raise UpstreamFailed(
                "the model did not answer in time" if exc.status == 504 else "every candidate model failed to answer",
                status=exc.status,
            ) from exc
        except UpstreamError as exc:
            raise InvalidRequest(f"the model rejected the request: {exc.message}", code="upstream_rejected") from exc
        timings["upstream"] = (time.perf_counter() - t_up) * 1000
        answered = result.model
        if fallback is None and decision is not None and answered != decision.model:
            fallback = "next_model"

        # ---- record the turn and the spend
        completion = result.completion
        priced = turn_cost(self.config, router_name, answered, completion.input_tokens, completion.output_tokens)
        cost, baseline = priced.actual_usd, priced.baseline_usd
        conversation = conversation_length(messages) + 1
        gate_min = router.signal_gate_min_messages if router else 0
        passed = router is not None and gate_passed(conversation - 1, gate_min)
        turn = Turn(
            key=TurnKey(key_hash, session_id, index, secrets.token_hex(4)),
            router=router_name or "",
            request_type=classification.request_type,
            model=answered,
            routed=router is not None,
            gate_passed=passed,
            conversation_messages=conversation,
            created_at=time.time(),
        )
        propensity = decision.propensity if decision and answered == decision.model else None
        turn_id: str | None = turn.key.turn_id
        t_rec = time.perf_counter()
        try:
            self.store.record_turn(
                turn,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                cost_usd=cost,
                baseline_usd=baseline,
                propensity=propensity,
                ttl_seconds=self.config.turn_ttl_days * 86400,
                shards=router.cell_shards if router else 1,
                extra=(
                    {"prompt": messages[-1].get("content", ""), "answer": completion.text}
                    if self.config.store_prompts
                    else None
                ),
            )
        except Exception:
            # The answer exists: give it to the client even if bookkeeping failed.
            logger.exception("recording the turn failed; answering without a turn id")
            turn_id = None
        if reads is not None and router is not None:
            for raw in reads.stale_cells:
                try:
                    self.store.compact_cell(raw, half_life_seconds(router))
                except Exception:
                    logger.exception("cell compaction failed (retried on a later request)")
        timings["dynamodb"] += (time.perf_counter() - t_rec) * 1000

        return RoutedTurn(
            router=router_name,
            model=answered,
            request_type=classification.request_type,
            classification_rule=classification.rule,
            session_id=session_id,
            turn_id=turn_id,
            propensity=propensity,
            fallback=fallback,
            result=result,
            cost_usd=cost,
            baseline_usd=baseline,
            gate_messages=conversation,
            gate_required=gate_min,
            gate_passed=passed,
            implicit_feedback=implicit,
            timings_ms=timings,
            decision_log=None
            if decision_log is None
            else {**decision_log, "turn_id": turn_id, "answered_by": answered},
        )

    def _queue_implicit_signal(self, previous: Turn, messages: list[dict[str, Any]]) -> ImplicitFeedback | None:
        """Read the new user message as feedback on `previous`; queue it when it counts."""
        if not previous.routed or previous.scored_source is not None or not previous.gate_passed:
            return None
        user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
        follow_up = user_texts[-1] if user_texts else ""
        previous_user = user_texts[-2] if len(user_texts) > 1 else None
        signal: Signal | None = detect_feedback(follow_up, previous_user)
        if signal is None:
            settings = self.config.routers.get(previous.router)
            neutral = settings.neutral_follow_up_reward if settings else None
            if neutral is None:
                return None
            signal = neutral_signal(neutral)
        try:
            self.store.enqueue_signal(
                SignalMessage(
                    turn_id=previous.key.turn_id,
                    key_hash=previous.key.key_hash,
                    router=previous.router,
                    request_type=previous.request_type,
                    model=previous.model,
                    reward=signal.reward,
                    kind=signal.kind,
                    rule=signal.rule,
                    at=time.time(),
                ).model_dump()
            )
        except Exception:
            logger.exception("queueing an implicit signal failed (signal dropped, answer unaffected)")
            return None
        return ImplicitFeedback(turn_id=previous.key.turn_id, kind=signal.kind, reward=signal.reward)
