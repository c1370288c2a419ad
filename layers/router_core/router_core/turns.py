"""Routing one chat turn, as a short sequence of named steps (the README's diagram):

    authenticate → classify → read state → read implicit feedback → decide → call → price → record

`TurnRouter.route_turn` runs them in order; each step is one method with one job and its own
failure policy, stated in its docstring. The router never fails a request that a model could
have answered: when its own machinery fails (state read, decision, bookkeeping), the request
still goes to a model (the router's default model when no decision could be made).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from router_core import policy
from router_core.api import ChatCompletionRequest, check_session_id
from router_core.bandit import Decision
from router_core.breaker import ModelBreakers
from router_core.capabilities import CapabilityIndex, Requirements, refusal_message, requirements_of
from router_core.classifier import Classification, classify, message_text
from router_core.config import REQUEST_TYPES, GatewayConfig, RouterConfig
from router_core.errors import InvalidRequest, NotFound, UpstreamFailed
from router_core.forgetting import half_life_seconds
from router_core.keys import KeyCache, hash_key, require_active
from router_core.pricing import TurnCost, turn_cost
from router_core.providers import ChatParams, UpstreamError
from router_core.providers.chunks import ChunkAccumulator, usage_of
from router_core.signals import (
    Signal,
    conversation_length,
    detect_feedback,
    follow_up_of_previous_answer,
    gate_passed,
    neutral_signal,
)
from router_core.signals_queue import SignalMessage
from router_core.store import ChatReads, RouterStore, Turn, TurnKey
from router_core.upstream import (
    AllUpstreamsFailed,
    Attempt,
    OpenedStream,
    UpstreamResult,
    call_with_fallback,
    open_stream,
)

logger = logging.getLogger(__name__)

MAX_TURN_INDEX = 999_999
"""Assistant messages one conversation may hold (turn keys carry the index as 6 digits)."""
STREAM_END_MARGIN_S = 2.0
"""A stream is ended this long (plus one upstream read timeout) before the execution
environment's time runs out, so its turn is still recorded."""


@dataclass(frozen=True)
class ImplicitFeedback:
    """A signal read from the new message about the previous turn (queued, applied once)."""

    turn_id: str
    kind: str
    reward: float
    queued: bool = True
    """False when the queue refused it: the signal is lost (the handler counts it), the answer is not."""


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
    outcome: str = "completed"
    """"completed"; for a stream also "stopped" (the client went away) or "failed" (the upstream broke)."""


@dataclass(frozen=True)
class Target:
    """Who answers this request: a router (which then decides) or one model named directly."""

    name: str
    router: RouterConfig | None

    @property
    def router_name(self) -> str | None:
        return self.name if self.router is not None else None


@dataclass(frozen=True)
class Conversation:
    """The request as the steps see it: the caller, the messages and where they sit in a session."""

    key_hash: str
    messages: list[dict[str, Any]]
    session_id: str
    index: int
    """This turn's index in the session: the number of assistant messages before it."""
    temperature: float | None = None
    max_tokens: int | None = None
    """The client's output limit (`max_completion_tokens` or `max_tokens`)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The client's other request fields, as sent (`ChatCompletionRequest.upstream_fields`)."""

    @property
    def previous(self) -> TurnKey | None:
        return TurnKey(self.key_hash, self.session_id, self.index - 1, "*") if self.index > 0 else None


@dataclass
class Choice:
    """The decide step's outcome: the models to try in order, and why the router's own pick was skipped."""

    order: list[str]
    decision: Decision | None = None
    fallback: str | None = None
    """"default_model" when the router could not decide."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Models left out because their circuit breaker is open, with the failure that opened it."""
    excluded: dict[str, str] = field(default_factory=dict)
    """Models left out because they cannot serve the request, and why."""

    def fallback_after(self, answered: str) -> str | None:
        """Why the answer did not come from the router's own pick: the decide step's reason, or
        "next_model" when the pick failed and a later model in the order answered."""
        if self.fallback is None and self.decision is not None and answered != self.decision.model:
            return "next_model"
        return self.fallback


@dataclass
class RecordedTurn:
    """What the record step wrote: the turn id (None when the write failed) and its learning facts."""

    turn_id: str | None
    propensity: float | None
    gate_passed: bool
    conversation_messages: int


@dataclass
class Plan:
    """What the steps before the model call established (`TurnRouter.prepare`)."""

    timer: StepTimer
    target: Target
    conversation: Conversation
    classification: Classification
    reads: ChatReads | None
    implicit: ImplicitFeedback | None
    need: Requirements
    choice: Choice
    params: ChatParams


class StepTimer:
    """Wall time per step, milliseconds (Server-Timing); a step timed twice adds up."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[step] = self.ms.get(step, 0.0) + (time.perf_counter() - started) * 1000


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
        self.breakers = ModelBreakers()
        """Per execution environment (see `breaker` for why not shared)."""
        self.capabilities = CapabilityIndex(config)

    def authenticate(self, api_key: str) -> str:
        """Key hash of a valid key (cache, else one GetItem); 401 otherwise."""
        key_hash = hash_key(api_key)
        if self.keys.get(key_hash) is None:
            self.keys.put(require_active(self.store.get_client_key(key_hash)))
        return key_hash

    def route_turn(self, request: ChatCompletionRequest, api_key: str, session_header: str | None) -> RoutedTurn:
        """Answer one chat request; raises RouterError subclasses for client-visible failures."""
        plan = self.prepare(request, api_key, session_header)
        with plan.timer("upstream"):
            result = self.call(plan.target, plan.choice, self.admitted(plan), plan.params)
        return self.conclude(plan, result, self.new_turn_key(plan.conversation))

    def stream_turn(
        self,
        request: ChatCompletionRequest,
        api_key: str,
        session_header: str | None,
        *,
        time_left_s: float | None = None,
    ) -> TurnStream:
        """Start a streamed answer: every step up to the model's first chunk (retries and
        fallback included: nothing has reached the client yet), then a `TurnStream` that relays
        the rest and records the turn when it ends. `time_left_s` is what the execution
        environment has left; the stream is ended (as failed) before that runs out."""
        plan = self.prepare(request, api_key, session_header)
        with plan.timer("upstream"):
            opened = self.call(plan.target, plan.choice, self.admitted(plan), plan.params, stream=True)
        stop_at = None
        if time_left_s is not None:
            stop_at = time.monotonic() + time_left_s - self.config.upstream_timeout_seconds - STREAM_END_MARGIN_S
        return TurnStream(self, plan, opened, self.new_turn_key(plan.conversation), stop_at=stop_at)

    def prepare(self, request: ChatCompletionRequest, api_key: str, session_header: str | None) -> Plan:
        """The steps before the model is called: target, conversation, classify, read state,
        read implicit feedback, decide."""
        timer = StepTimer()
        target = self.target(request, api_key)
        conversation = self.conversation(request, api_key, session_header)
        with timer("classify"):
            classification = self.classify(conversation, target)
        with timer("dynamodb"):
            reads = self.read_state(conversation, target, classification.request_type)
        implicit = self.read_implicit_feedback(reads, conversation.messages)
        with timer("decide"):
            need = requirements_of(conversation.messages, conversation.options)
            choice = self.decide(conversation, target, classification.request_type, reads, need)
        params = ChatParams(
            messages=conversation.messages,
            temperature=conversation.temperature,
            max_tokens=conversation.max_tokens,
            request_type=classification.request_type,
            seed=self.seed,
            options=conversation.options,
        )
        return Plan(timer, target, conversation, classification, reads, implicit, need, choice, params)

    def conclude(self, plan: Plan, result: UpstreamResult, key: TurnKey, outcome: str = "completed") -> RoutedTurn:
        """The steps after the answer: price, record, compact; the turn as the handler reports it."""
        priced = self.price(plan.target, result)
        with plan.timer("dynamodb"):
            turn = self.record(plan, result, priced, key, outcome)
            self.compact(plan.target, plan.reads)
        return RoutedTurn(
            router=plan.target.router_name,
            model=result.model,
            request_type=plan.classification.request_type,
            classification_rule=plan.classification.rule,
            session_id=plan.conversation.session_id,
            turn_id=turn.turn_id,
            propensity=turn.propensity,
            fallback=plan.choice.fallback_after(result.model),
            result=result,
            cost_usd=priced.actual_usd,
            baseline_usd=priced.baseline_usd,
            gate_messages=turn.conversation_messages,
            gate_required=plan.target.router.signal_gate_min_messages if plan.target.router else 0,
            gate_passed=turn.gate_passed,
            implicit_feedback=plan.implicit,
            timings_ms=plan.timer.ms,
            decision_log=self.decision_log(plan, turn, result),
            outcome=outcome,
        )

    @staticmethod
    def new_turn_key(conversation: Conversation) -> TurnKey:
        """This turn's key; its id is known before the answer (a stream's head carries it)."""
        return TurnKey(conversation.key_hash, conversation.session_id, conversation.index, secrets.token_hex(4))

    def admitted(self, plan: Plan) -> list[str]:
        """The decision's order, less the models whose circuit breaker is open (`breaker`)."""
        return self.breakers.admit(plan.choice.order)

    # ------------------------------------------------------------------ the steps, in order

    def target(self, request: ChatCompletionRequest, api_key: str) -> Target:
        """A router name, or a model named directly (bypass: no decision, no learning).

        Failure policy: an unknown name is a 404, after authenticating (401 first, so a caller
        without a valid key learns nothing about which names exist)."""
        if request.model in self.config.routers:
            return Target(request.model, self.config.routers[request.model])
        if request.model not in self.config.models:
            self.authenticate(api_key)
            raise NotFound(
                f"model {request.model!r} is neither a router nor a model; GET /v1/models lists them",
                param="model",
                code="model_not_found",
            )
        return Target(request.model, None)

    @staticmethod
    def conversation(request: ChatCompletionRequest, api_key: str, session_header: str | None) -> Conversation:
        """The caller's key hash, the messages, the session (header, else metadata, else new) and
        this turn's index. Failure policy: a malformed session id or an absurd length is a 400."""
        session_id = (
            check_session_id(session_header)
            or check_session_id((request.metadata or {}).get("session_id"))
            or uuid.uuid4().hex
        )
        index = sum(1 for m in request.messages if m.role == "assistant")
        if index > MAX_TURN_INDEX:
            raise InvalidRequest("too many assistant messages in one conversation", param="messages")
        return Conversation(
            hash_key(api_key),
            request.plain_messages(),
            session_id,
            index,
            temperature=request.temperature,
            max_tokens=request.output_limit(),
            options=request.upstream_fields(),
        )

    @staticmethod
    def classify(conversation: Conversation, target: Target) -> Classification:
        """The request type, among the router's types (all types for a direct model). Pure; never fails."""
        return classify(conversation.messages, target.router.request_types if target.router else REQUEST_TYPES)

    def read_state(self, conversation: Conversation, target: Target, request_type: str) -> ChatReads | None:
        """One BatchGetItem: the client key (unless cached), the previous turn, the type's cells.

        Failure policy: authentication needs the key, so without a cached key a failed read is
        raised (the handler answers 503); with one, the request goes on without state (None:
        the router's default model answers, nothing is learned from this message)."""
        cached = self.keys.get(conversation.key_hash) is not None
        router = target.router
        try:
            reads = self.store.read_for_chat(
                key_hash=conversation.key_hash,
                need_key=not cached,
                previous=conversation.previous,
                router=target.router_name,
                request_type=request_type,
                models=router.models if router else (),
                shards=router.cell_shards if router else 1,
                half_life_s=half_life_seconds(router) if router else None,
            )
        except Exception:
            if not cached:
                raise
            logger.exception("state read failed; routing to the default model")
            return None
        if not cached:
            self.keys.put(require_active(reads.client_key))
        return reads

    def read_implicit_feedback(
        self, reads: ChatReads | None, messages: list[dict[str, Any]]
    ) -> ImplicitFeedback | None:
        """The new user message read as feedback on the previous turn, queued for the feedback
        function. Failure policy: a failed enqueue drops the signal, never the answer."""
        if reads is None or reads.previous_turn is None:
            return None
        return self._queue_implicit_signal(reads.previous_turn, messages)

    def decide(
        self, conversation: Conversation, target: Target, request_type: str, reads: ChatReads | None, need: Requirements
    ) -> Choice:
        """Thompson-sample the router's models that can serve the request (`capabilities`,
        `policy.decide`).

        Failure policy: no model can serve the request (tools to a model without tools, a
        prompt beyond every context window...) → 400 naming what was asked. Models whose circuit
        breaker is open are left out (`breaker`), unless all that can serve are. Without state,
        or when sampling fails, the router's default model goes first (fallback "default_model")
        if it can serve the request, else the first that can; a direct model is simply called."""
        router = target.router
        able, excluded = self.capabilities.split(router.models if router else [target.name], need)
        if not able:
            message, param = refusal_message(target.name, need, excluded)
            raise InvalidRequest(message, param=param, code="unsupported_by_models")
        if router is None:
            return Choice(order=able)
        skipped = self.breakers.skipped(able)
        if len(skipped) == len(able):
            skipped = {}  # every breaker open: decide as usual (never refuse what a model might answer)
        candidates = [m for m in able if m not in skipped]
        if reads is None:
            return Choice(
                order=policy.fallback_order(router, None, able),
                fallback="default_model",
                excluded=excluded,
                skipped=skipped,
            )
        try:
            # The decision is made among the models whose breaker is not open, so its propensity is exact.
            arms = policy.build_arms(
                self.config, router, request_type, reads.cells, need.prompt_tokens, models=candidates
            )
            decision = policy.decide(router, arms, self.rng)
        except Exception:
            logger.exception("decision failed; routing to the default model")
            return Choice(
                order=policy.fallback_order(router, None, able),
                fallback="default_model",
                excluded=excluded,
                skipped=skipped,
            )
        return Choice(
            order=policy.fallback_order(router, decision, able), decision=decision, excluded=excluded, skipped=skipped
        )

    @overload
    def call(
        self, target: Target, choice: Choice, order: list[str], params: ChatParams, *, stream: Literal[False] = False
    ) -> UpstreamResult: ...

    @overload
    def call(
        self, target: Target, choice: Choice, order: list[str], params: ChatParams, *, stream: Literal[True]
    ) -> OpenedStream: ...

    def call(
        self, target: Target, choice: Choice, order: list[str], params: ChatParams, *, stream: bool = False
    ) -> UpstreamResult | OpenedStream:
        """Call the first model of the order (one retry on 429/5xx, then the next models); for a
        stream, until its first chunk (`upstream.open_stream`).

        Failure policy: every candidate failed → 502 (504 when the deadline ran out); the model
        rejected the request itself as invalid → 400 with its message."""
        attempts: tuple[Attempt, ...] = ()
        max_models = 3 if target.router else 1
        try:
            if stream:
                opened = open_stream(order, params, self.config, max_models=max_models)
                attempts = opened.attempts
                return opened
            result = call_with_fallback(order, params, self.config, max_models=max_models)
            attempts = result.attempts
            return result
        except AllUpstreamsFailed as exc:
            attempts = exc.attempts
            if exc.status == 400:
                raise InvalidRequest(
                    "the conversation is longer than the context window of every model that could answer it; "
                    "shorten the messages",
                    param="messages",
                    code="context_length_exceeded",
                ) from exc
            logger.warning(
                "all upstreams failed",
                extra={
                    "attempts": [{"model": a.model, "outcome": a.outcome, "status": a.status} for a in exc.attempts]
                },
            )
            message = (
                "the model did not answer in time" if exc.status == 504 else "every candidate model failed to answer"
            )
            raise UpstreamFailed(message, status=exc.status) from exc
        except UpstreamError as exc:
            attempts = exc.attempts
            raise InvalidRequest(f"the model rejected the request: {exc.message}", code="upstream_rejected") from exc
        finally:
            self.settle_breakers(order, attempts)

    def settle_breakers(self, admitted: list[str], attempts: tuple[Attempt, ...]) -> None:
        """Feed the attempts to the breakers; report each state change (log, then the table, best effort)."""
        for change in self.breakers.settle(admitted, [(a.model, a.outcome) for a in attempts]):
            logger.warning("circuit breaker %s", change.state, extra={"model": change.model, "reason": change.reason})
            try:
                self.store.put_model_health(
                    change.model,
                    state=change.state,
                    reason=change.reason,
                    at=change.at,
                    retry_at=change.retry_at,
                    failures=change.failures,
                )
            except Exception:
                logger.exception("reporting model health failed (the breaker works regardless)")

    def price(self, target: Target, result: UpstreamResult) -> TurnCost:
        """Dollars from the upstream's reported tokens, and the same tokens on the router's most
        expensive model (the savings baseline). Pure; never fails (prices are validated config)."""
        completion = result.completion
        return turn_cost(
            self.config, target.router_name, result.model, completion.input_tokens, completion.output_tokens
        )

    def record(self, plan: Plan, result: UpstreamResult, priced: TurnCost, key: TurnKey, outcome: str) -> RecordedTurn:
        """Write the turn (with its gate status, propensity and, unless "completed", its
        outcome) and ADD the spend to its cell. A "failed" turn (the stream broke after its
        first byte) never passes the signal gate and refuses explicit ratings: an infrastructure
        failure is not the model's bad answer. A "stopped" one (the client went away) is
        recorded with what it produced and can be rated.

        Failure policy: the answer exists, so a failed write is logged and the client still gets
        the answer, without a turn id (nothing can score it)."""
        conversation, target, choice = plan.conversation, plan.target, plan.choice
        router = target.router
        conversation_messages = conversation_length(conversation.messages) + 1
        passed = (
            router is not None
            and outcome != "failed"
            and gate_passed(conversation_messages - 1, router.signal_gate_min_messages)
        )
        turn = Turn(
            key=key,
            router=target.router_name or "",
            request_type=plan.classification.request_type,
            model=result.model,
            routed=router is not None,
            gate_passed=passed,
            conversation_messages=conversation_messages,
            created_at=time.time(),
            outcome=outcome,
        )
        decision = choice.decision
        propensity = decision.propensity if decision and result.model == decision.model else None
        recorded = RecordedTurn(turn.key.turn_id, propensity, passed, conversation_messages)
        completion = result.completion
        try:
            self.store.record_turn(
                turn,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                cost_usd=priced.actual_usd,
                baseline_usd=priced.baseline_usd,
                propensity=propensity,
                ttl_seconds=self.config.turn_ttl_days * 86400,
                shards=router.cell_shards if router else 1,
                extra=self._stored_text(conversation, result),
            )
        except Exception:
            logger.exception("recording the turn failed; answering without a turn id")
            recorded.turn_id = None
        return recorded

    def compact(self, target: Target, reads: ChatReads | None) -> None:
        """Fold closed forgetting eras of the cells this request read (`forgetting`).

        Failure policy: best effort; a failed compaction is retried by a later request."""
        if reads is None or target.router is None:
            return
        for raw in reads.stale_cells:
            try:
                self.store.compact_cell(raw, half_life_seconds(target.router))
            except Exception:
                logger.exception("cell compaction failed (retried on a later request)")

    @staticmethod
    def decision_log(plan: Plan, turn: RecordedTurn, result: UpstreamResult) -> dict[str, Any] | None:
        """What the handler logs once per routed turn (off-policy evaluation); None without a
        decision. Models left out for what the request needs are listed with the reason."""
        choice, need = plan.choice, plan.need
        if choice.decision is None:
            return None
        log: dict[str, Any] = {
            "router": plan.target.router_name,
            **policy.decision_log(
                plan.classification.request_type, plan.classification.rule, choice.decision, skipped=choice.skipped
            ),
            "session_id": plan.conversation.session_id,
            "turn_id": turn.turn_id,
            "answered_by": result.model,
        }
        if need.features or choice.excluded:
            log["needs"] = need.log()
        if choice.excluded:
            log["excluded"] = dict(choice.excluded)
        return log

    def _stored_text(self, conversation: Conversation, result: UpstreamResult) -> dict[str, Any] | None:
        if not self.config.store_prompts:
            return None
        users = [m for m in conversation.messages if m.get("role") == "user"]
        return {"prompt": message_text(users[-1]) if users else "", "answer": result.completion.text}

    def _queue_implicit_signal(self, previous: Turn, messages: list[dict[str, Any]]) -> ImplicitFeedback | None:
        """Read the new user message as feedback on `previous`; queue it when it counts."""
        if (
            not previous.routed
            or previous.scored_source is not None
            or not previous.gate_passed
            or previous.outcome == "failed"
        ):
            return None
        # The follow-up is compared with the request the previous answer replied to, never with
        # a later, unanswered message (a failed request sent again is a retry, not a verdict).
        replied = follow_up_of_previous_answer(messages)
        if replied is None:
            return None  # tool results (an agent's loop) answer the previous turn, not the user
        follow_up, previous_user = replied
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
            return ImplicitFeedback(previous.key.turn_id, signal.kind, signal.reward, queued=False)
        return ImplicitFeedback(turn_id=previous.key.turn_id, kind=signal.kind, reward=signal.reward)


class TurnStream:
    """A streamed answer: what the response head says now, the chunks as the model produces
    them, the turn recorded when the stream ends, however it ends.

    `chunks()` relays the upstream's chunks in OpenAI format (the router's id, created time and
    model name). The finish chunks are held until the turn is recorded, so the last one carries
    the `router` facts (turn id, cost...) exactly as a buffered answer's does; with
    `include_usage` every chunk has `usage: null` and a last chunk with `choices: []` carries
    the usage. Endings: the upstream finished ("completed"); the client closed the stream
    ("stopped": recorded with the tokens produced so far, the upstream connection closed); the
    upstream failed or time ran out after the first chunk ("failed": an OpenAI-style `error`
    event ends the stream; the turn is recorded with its cost but never scored). `turn` is the
    recorded turn once the stream ended (the handler's metrics and decision log).
    """

    def __init__(
        self, router: TurnRouter, plan: Plan, opened: OpenedStream, key: TurnKey, *, stop_at: float | None
    ) -> None:
        self._router = router
        self._plan = plan
        self._opened = opened
        self._key = key
        self._stop_at = stop_at
        self.turn: RoutedTurn | None = None
        self.model = opened.model
        self.request_type = plan.classification.request_type
        self.session_id = plan.conversation.session_id
        self.turn_id: str | None = key.turn_id
        decision = plan.choice.decision
        self.propensity = decision.propensity if decision and opened.model == decision.model else None
        self.fallback = plan.choice.fallback_after(opened.model)
        self.timings_ms = dict(plan.timer.ms)
        self.implicit_feedback = plan.implicit
        self._accumulated = ChunkAccumulator()

    def chunks(self, *, include_usage: bool = False) -> Iterator[dict[str, Any]]:
        """The client's chunks, then (after the turn is recorded) the held finish chunks with
        the router facts and the usage chunk; or an `error` chunk when the upstream failed."""
        from router_core.openai_format import chunk_id, router_facts

        cid, created = chunk_id(self.turn_id or self.session_id), int(time.time())
        base: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model}
        if include_usage:
            base["usage"] = None
        accumulated = self._accumulated
        held: list[dict[str, Any]] = []
        failure: UpstreamError | None = None
        try:
            for chunk in self._upstream():
                accumulated.add(chunk)
                choices = [c for c in chunk.get("choices") or () if isinstance(c, dict)]
                if not choices:
                    continue  # the upstream's usage chunk: the router sends its own at the end
                out = {**base, **_passed_on(chunk), "choices": choices}
                if any(c.get("finish_reason") for c in choices):
                    held.append(out)
                else:
                    yield out
        except GeneratorExit:
            self._end_quietly("stopped")
            raise
        except UpstreamError as exc:
            failure = exc
        except Exception as exc:  # a provider's defect mid-stream ends this stream, not the function
            logger.exception("the upstream stream raised unexpectedly")
            failure = UpstreamError("unavailable", type(exc).__name__)
        finally:
            self._opened.close()
        turn = self._end(accumulated, "failed" if failure else "completed", failure)
        if failure is not None:
            yield {
                "error": {
                    "message": f"the model's stream broke after it started: {failure.message}",
                    "type": "server_error",
                    "param": None,
                    "code": "upstream_stream_failed",
                },
                "router": router_facts(turn),
            }
            return
        if not held:  # an upstream that never said why it stopped
            held.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        held[-1]["router"] = router_facts(turn)
        yield from held
        if include_usage:
            yield {**base, "choices": [], "usage": usage_of(turn.result.completion)}

    def close(self) -> None:
        """End the stream now if `chunks()` did not (the client went away before reading it, or
        mid-way): the turn is recorded as "stopped" with what was produced, the upstream closed."""
        if self.turn is None and not self._accumulated.chunks:
            self._accumulated.add(self._opened.first)  # produced (and billed) before the head went out
        try:
            self._end_quietly("stopped")
        finally:
            self._opened.close()

    def _end_quietly(self, outcome: str) -> None:
        """`_end` while the stream is being closed: a failure is logged, never raised over the close."""
        try:
            self._end(self._accumulated, outcome, None)
        except Exception:
            logger.exception("recording a stopped stream failed")

    def _upstream(self) -> Iterator[dict[str, Any]]:
        """The first chunk, then the rest; past `stop_at` the stream is cut (UpstreamError timeout)."""
        yield self._opened.first
        for chunk in self._opened.rest:
            if self._stop_at is not None and time.monotonic() > self._stop_at:
                raise UpstreamError("timeout", "the answer ran past the time the function has left")
            yield chunk

    def _end(self, accumulated: ChunkAccumulator, outcome: str, failure: UpstreamError | None) -> RoutedTurn:
        """Price and record the turn from what was produced (once)."""
        if self.turn is not None:
            return self.turn
        opened = self._opened
        config = self._router.config
        completion = accumulated.completion(
            messages=self._plan.conversation.messages,
            upstream_model=config.models[opened.model].upstream_model,
            latency_ms=(time.perf_counter() - opened.started) * 1000.0,
            unfinished="stop" if outcome == "completed" else outcome,
        )
        attempts = opened.attempts
        if failure is not None:
            attempts += (Attempt(opened.model, failure.kind, failure.status),)
            self._router.settle_breakers([opened.model], (attempts[-1],))
        result = UpstreamResult(model=opened.model, completion=completion, attempts=attempts)
        self.turn = self._router.conclude(self._plan, result, self._key, outcome)
        self.turn_id = self.turn.turn_id
        return self.turn


def _passed_on(chunk: dict[str, Any]) -> dict[str, Any]:
    """The upstream chunk's fields a client may read besides the choices."""
    return {k: chunk[k] for k in ("system_fingerprint", "service_tier") if isinstance(chunk.get(k), str)}
