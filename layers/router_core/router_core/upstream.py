"""The fault-tolerant upstream call: retry once, fall back down the bandit's ranking, keep the deadline.

Rules, in order of precedence:

* Models are tried in the order given (best first), at most `max_models` distinct ones.
* No attempt starts with less than `min(MIN_ATTEMPT_S, upstream_timeout_seconds)` left before
  the overall deadline; each attempt's timeout is `min(upstream_timeout_seconds, time left)`.
* A retryable failure (timeout, rate_limited, server_error, bad_response, unavailable) gets ONE
  retry on the same model after a pause: the upstream's Retry-After when it is at most
  `MAX_RETRY_AFTER_S`, else a jittered backoff of at most `MAX_BACKOFF_S`. Two exceptions, both
  in favour of answering at all: a model that timed out, or asked us to wait longer than
  `MAX_RETRY_AFTER_S`, is not retried while another model remains, because its retry would
  spend the deadline on the model least likely to answer in time.
* A client error that describes the request itself (`UpstreamError.invalid_request`, e.g. 400)
  would fail the same on every model: it is re-raised at once, with `attempts` attached, so the
  caller answers 400 with the upstream's message. Other client errors (401, 403, 404, context
  window) move on to the next model without a retry.
* When nothing answered, `AllUpstreamsFailed` carries every attempt and the HTTP status for the
  client: 504 when the last failure was a timeout or the deadline ran out, else 502.

Infrastructure failures are never quality feedback; this module only reports attempts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from router_core.config import GatewayConfig, ModelConfig
from router_core.providers import provider_for
from router_core.providers.base import ChatParams, Completion, Provider, UpstreamError

logger = logging.getLogger(__name__)

MIN_ATTEMPT_S = 1.0
"""An attempt needs at least this many seconds before the deadline to be worth starting."""
MAX_RETRY_AFTER_S = 1.0
"""Longest Retry-After honoured before retrying the same model, seconds."""
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 0.25
"""Bounds of the jittered pause before a retry when the upstream sent no Retry-After, seconds."""

ProviderLookup = Callable[[str, GatewayConfig], Provider]
T = TypeVar("T")
Call = Callable[[Provider, ModelConfig, ChatParams, float], T]
"""One attempt: (provider, model, params, timeout s) → what the caller keeps (an answer, an open stream)."""


@dataclass(frozen=True)
class Attempt:
    """One upstream call: the router's model name, "ok" or an UpstreamError kind, its HTTP
    status when the upstream answered with one, and its duration in milliseconds."""

    model: str
    outcome: str
    status: int | None = None
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class UpstreamResult:
    """The answer, the model that gave it (may differ from the first choice) and every attempt."""

    model: str
    completion: Completion
    attempts: tuple[Attempt, ...]


@dataclass
class OpenedStream:
    """A stream that produced its first chunk: the model, that chunk, the rest, every attempt."""

    model: str
    first: dict[str, Any]
    rest: Iterator[dict[str, Any]]
    attempts: tuple[Attempt, ...]
    started: float
    """`time.perf_counter()` when the answering attempt started."""

    def close(self) -> None:
        """Release the upstream connection (the model stops generating)."""
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()


class AllUpstreamsFailed(Exception):
    """No model answered; `status` is 504 (timeout / deadline), 400 (the conversation fits no
    candidate's context window) or 502 for the client."""

    def __init__(self, attempts: tuple[Attempt, ...], status: int, reason: str) -> None:
        super().__init__(reason)
        self.attempts = attempts
        self.status = status


def call_with_fallback(
    order: Sequence[str],
    params: ChatParams,
    config: GatewayConfig,
    *,
    deadline_s: float | None = None,
    max_models: int = 3,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    providers: ProviderLookup = provider_for,
    jitter: Callable[[], float] = random.random,
) -> UpstreamResult:
    """Answer `params` with the first model in `order` that can, within `deadline_s` seconds.

    `deadline_s` defaults to `config.request_deadline_seconds`; `clock` returns seconds and
    `sleep` takes seconds (both injectable for tests), `jitter` returns a number in [0, 1).
    Raises UpstreamError (client_error, invalid_request) for a request every model would
    refuse, AllUpstreamsFailed when no model answered, ValueError for an empty or unknown order.
    """
    run = _Attempts.start(config, params, deadline_s, clock, sleep, providers, jitter, _complete)
    name, completion = run.first_answer(order, max_models)
    return UpstreamResult(model=name, completion=completion, attempts=tuple(run.attempts))


def open_stream(
    order: Sequence[str],
    params: ChatParams,
    config: GatewayConfig,
    *,
    deadline_s: float | None = None,
    max_models: int = 3,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    providers: ProviderLookup = provider_for,
    jitter: Callable[[], float] = random.random,
) -> OpenedStream:
    """`call_with_fallback` for a streamed answer: the same rules, up to the first chunk.

    An attempt succeeds when the model's stream produced its first chunk; until then a failure
    is retried or falls back exactly like a whole answer (nothing has reached the client yet).
    The deadline bounds the time to that first chunk only; the caller reads the rest."""
    run = _Attempts.start(config, params, deadline_s, clock, sleep, providers, jitter, _first_chunk)
    name, (first, rest, started) = run.first_answer(order, max_models)
    return OpenedStream(model=name, first=first, rest=rest, attempts=tuple(run.attempts), started=started)


def _complete(provider: Provider, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
    return provider.complete(model, params, timeout_s)


def _first_chunk(
    provider: Provider, model: ModelConfig, params: ChatParams, timeout_s: float
) -> tuple[dict[str, Any], Iterator[dict[str, Any]], float]:
    """Open the model's stream and read its first chunk (the stream is closed if that fails)."""
    started = time.perf_counter()
    chunks = provider.stream(model, params, timeout_s)
    try:
        first = next(chunks)
    except StopIteration:
        raise UpstreamError("bad_response", "the stream ended before its first chunk") from None
    except BaseException:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        raise
    return first, chunks, started


@dataclass
class _Attempts(Generic[T]):
    """The attempts of one request, against one deadline (seconds on `clock`); `call` makes one."""

    config: GatewayConfig
    params: ChatParams
    deadline: float
    min_attempt: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    providers: ProviderLookup
    jitter: Callable[[], float]
    call: Call[T]
    attempts: list[Attempt] = field(default_factory=list)
    last_kind: str | None = None
    out_of_time: bool = False

    @classmethod
    def start(
        cls,
        config: GatewayConfig,
        params: ChatParams,
        deadline_s: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        providers: ProviderLookup,
        jitter: Callable[[], float],
        call: Call[T],
    ) -> _Attempts[T]:
        """The attempts of a request starting now: its deadline `deadline_s` seconds away
        (default `config.request_deadline_seconds`)."""
        return cls(
            config=config,
            params=params,
            deadline=clock() + (config.request_deadline_seconds if deadline_s is None else deadline_s),
            min_attempt=min(MIN_ATTEMPT_S, config.upstream_timeout_seconds),
            clock=clock,
            sleep=sleep,
            providers=providers,
            jitter=jitter,
            call=call,
        )

    def first_answer(self, order: Sequence[str], max_models: int) -> tuple[str, T]:
        """(model, answer) of the first model in `order` that answers; raises AllUpstreamsFailed,
        the UpstreamError of a request every model would refuse, or ValueError for a bad order."""
        names = list(dict.fromkeys(order))[: max(1, max_models)]
        if not names:
            raise ValueError("no model to call")
        unknown = [n for n in names if n not in self.config.models]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}")
        for index, name in enumerate(names):
            answer = self.model(name, has_next=index + 1 < len(names))
            if answer is not None:
                return name, answer
            if self.out_of_time:
                break
        raise self.failure()

    def model(self, name: str, *, has_next: bool) -> T | None:
        """Up to two attempts on one model (the second only after a retryable failure, and only
        if it still fits the deadline after the pause); None when the model did not answer."""
        for retry in (False, True):
            left = self.deadline - self.clock()
            if left < self.min_attempt:
                self.out_of_time = True
                return None
            answer, err = self._attempt(name, left, retry)
            if answer is not None:
                return answer
            wait = None if (err is None or retry) else _retry_wait(err, has_next, self.jitter)
            if wait is None or self.deadline - self.clock() - wait < self.min_attempt:
                return None
            self.sleep(wait)
        return None

    def _attempt(self, name: str, left: float, retry: bool) -> tuple[T | None, UpstreamError | None]:
        """One call. Raises the UpstreamError of a request every model would refuse; a provider's
        unexpected exception is an "unavailable" attempt (a defect in one provider must not stop
        the others from answering)."""
        model = self.config.models[name]
        started = self.clock()
        try:
            provider = self.providers(model.provider, self.config)
            answer = self.call(provider, model, self.params, min(self.config.upstream_timeout_seconds, left))
        except UpstreamError as err:
            self._record(name, err.kind, err.status, started)
            logger.warning(
                "upstream attempt failed",
                extra={"model": name, "outcome": err.kind, "status": err.status, "retry": retry},
            )
            if err.invalid_request:
                err.attempts = tuple(self.attempts)
                raise
            return None, err
        except Exception as exc:
            self._record(name, "unavailable", None, started)
            logger.error(
                "upstream provider raised unexpectedly",
                extra={"model": name, "error_type": type(exc).__name__},
                exc_info=True,
            )
            return None, None
        self._record(name, "ok", None, started)
        return answer, None

    def _record(self, name: str, outcome: str, status: int | None, started: float) -> None:
        self.attempts.append(Attempt(name, outcome, status, _ms(self.clock() - started)))
        if outcome != "ok":
            self.last_kind = outcome

    def failure(self) -> AllUpstreamsFailed:
        """No model answered: 400 when every attempt was refused for the context length (the
        conversation fits no candidate), 504 when time ran out (deadline or a timeout last),
        else 502."""
        if self.attempts and all(a.outcome == "context_length" for a in self.attempts):
            return AllUpstreamsFailed(
                tuple(self.attempts), 400, "the conversation exceeds every model's context window"
            )
        timed_out = self.out_of_time or self.last_kind == "timeout"
        summary = ", ".join(f"{a.model} {a.outcome}" + (f" {a.status}" if a.status else "") for a in self.attempts)
        reason = f"no upstream model answered ({summary or 'no attempt fitted the deadline'})"
        if self.out_of_time:
            reason += "; request deadline reached"
        return AllUpstreamsFailed(tuple(self.attempts), 504 if timed_out else 502, reason)


def _retry_wait(err: UpstreamError, has_next: bool, jitter: Callable[[], float]) -> float | None:
    """Seconds to pause before retrying the same model, or None to move on to the next one."""
    if not err.retryable:
        return None
    if err.kind == "timeout" and has_next:
        return None
    if err.retry_after_s is not None:
        if err.retry_after_s > MAX_RETRY_AFTER_S and has_next:
            return None
        return min(err.retry_after_s, MAX_RETRY_AFTER_S)
    return MIN_BACKOFF_S + (MAX_BACKOFF_S - MIN_BACKOFF_S) * jitter()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
