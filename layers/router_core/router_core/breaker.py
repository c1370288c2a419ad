"""A circuit breaker per model: a model that keeps timing out or failing is skipped for a while.

States, per model:

* closed — the model is used. Each attempt that fails with a timeout, a 5xx or no answer at all
  (`UpstreamError` kinds in `COUNTED`) adds one to a run of consecutive failures; an answer
  resets it. Client errors (4xx, 429 included) and a context window too small are not the
  model's fault and never count.
* open — after `FAILURE_THRESHOLD` consecutive failures the model is skipped: the decision is
  made among the other models (so propensities stay exact) and the fallback order leaves it
  out. A skipped model costs a request nothing, where a hanging one costs a full upstream timeout.
* half-open — once the cool-down has passed, the next request may use the model again as a
  probe (one at a time). An answer closes the breaker; a counted failure opens it again for
  twice the previous cool-down (at most `MAX_COOL_DOWN_S`).

When every candidate of a request is open the request is still sent, in the usual order: the
router never refuses a request that a model might answer.

**Per warm container, not shared through the table.** Each execution environment keeps its own
breakers (module state held by `TurnRouter`), because

1. the hot path stays as it is: no extra read per chat request (a shared breaker would add an
   item per model to every request's BatchGetItem) and no write per failure (a shared failure
   counter is one hot item written by every failing request, throttled exactly when a model is
   down);
2. the cost of learning is small and bounded: a container pays at most `FAILURE_THRESHOLD`
   failed attempts before its breaker opens, and a Lambda container serves one request at a
   time, so what it has seen is what its next request would see;
3. it keeps working when DynamoDB does not.

The table is used only to *report* health: a container writes a model's health item when its
breaker opens or closes (rare, best effort), and GET /v1/state shows the last report per model
(`snapshot`), so the dashboard can show which models are being skipped.

Pure apart from the lock; time comes from `clock` (wall-clock seconds, so reports are comparable
across containers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]

COUNTED: frozenset[str] = frozenset({"timeout", "server_error", "unavailable"})
"""Failure kinds that count against a model: it timed out, answered 5xx, or could not be reached."""
FAILURE_THRESHOLD = 3
"""Consecutive counted failures that open the breaker."""
COOL_DOWN_S = 30.0
"""Seconds a newly opened breaker skips its model before a probe."""
MAX_COOL_DOWN_S = 300.0
"""Longest cool-down after repeated failed probes, seconds."""


@dataclass(frozen=True)
class Transition:
    """A breaker changed state: what the store reports and the logs record."""

    model: str
    state: State
    reason: str
    """The failure kind that opened it, or "ok" when an answer closed it."""
    at: float
    retry_at: float | None
    """When an open breaker lets a probe through (None when closed)."""
    failures: int


@dataclass
class _Breaker:
    failures: int = 0
    opened_at: float | None = None
    retry_at: float | None = None
    cool_down: float = COOL_DOWN_S
    reason: str = ""
    probing: bool = False


class ModelBreakers:
    """The breakers of every model, for one execution environment (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _Breaker] = {}

    def state(self, model: str) -> State:
        """closed, open (skipped) or half_open (cool-down over: the next request probes it)."""
        with self._lock:
            return self._state(self._models.get(model), self.clock())

    @staticmethod
    def _state(breaker: _Breaker | None, now: float) -> State:
        if breaker is None or breaker.retry_at is None:
            return "closed"
        if now < breaker.retry_at or breaker.probing:
            return "open"
        return "half_open"

    def usable(self, models: Iterable[str]) -> list[str]:
        """The models a request may use, in the given order: all but the open ones; every model
        when all are open (never refuse a request a model might answer)."""
        names = list(models)
        with self._lock:
            now = self.clock()
            kept = [m for m in names if self._state(self._models.get(m), now) != "open"]
        return kept or names

    def skipped(self, models: Iterable[str]) -> dict[str, str]:
        """The open models among `models`, each with the failure kind that opened it."""
        with self._lock:
            now = self.clock()
            return {
                m: b.reason for m in models if (b := self._models.get(m)) is not None and self._state(b, now) == "open"
            }

    def admit(self, models: Iterable[str]) -> list[str]:
        """`usable(models)`, with every half-open model among them taken as this request's probe
        (other requests skip it until `settle`)."""
        kept = self.usable(models)
        with self._lock:
            now = self.clock()
            for m in kept:
                breaker = self._models.get(m)
                if breaker is not None and self._state(breaker, now) == "half_open":
                    breaker.probing = True
        return kept

    def settle(self, admitted: Iterable[str], outcomes: Iterable[tuple[str, str]]) -> list[Transition]:
        """Record a request's attempts ((model, outcome) in order) and free the probe slots of
        admitted models it did not try; the state changes this caused."""
        transitions = [t for model, outcome in outcomes if (t := self.record(model, outcome)) is not None]
        with self._lock:
            for m in admitted:
                if (breaker := self._models.get(m)) is not None:
                    breaker.probing = False
        return transitions

    def record(self, model: str, outcome: str) -> Transition | None:
        """One attempt's outcome ("ok" or an UpstreamError kind); the state change it caused, if any."""
        with self._lock:
            now = self.clock()
            breaker = self._models.setdefault(model, _Breaker())
            if outcome == "ok":
                was_open = breaker.retry_at is not None
                self._models[model] = _Breaker()
                if was_open:
                    return Transition(model, "closed", "ok", now, None, 0)
                return None
            if outcome not in COUNTED:
                breaker.probing = False
                return None
            breaker.failures += 1
            if breaker.retry_at is not None:  # a probe (or a request sent while all were open) failed
                breaker.cool_down = min(breaker.cool_down * 2, MAX_COOL_DOWN_S)
            elif breaker.failures < FAILURE_THRESHOLD:
                return None
            breaker.opened_at = now
            breaker.retry_at = now + breaker.cool_down
            breaker.reason = outcome
            breaker.probing = False
            return Transition(model, "open", outcome, now, breaker.retry_at, breaker.failures)

    def health(self, models: Iterable[str]) -> dict[str, State]:
        """Each model's state (for logs)."""
        with self._lock:
            now = self.clock()
            return {m: self._state(self._models.get(m), now) for m in models}


def health_view(
    reports: Mapping[str, Mapping[str, Any]], models: Iterable[str], now: float
) -> dict[str, dict[str, Any]]:
    """What GET /v1/state shows per model from the stored reports (wall-clock seconds):
    `{"state": "closed"}` without a report; else the state, the failure kind that opened it,
    when (`since`, ISO 8601) and when a probe is allowed (`retry_at`). An "open" report whose
    retry time has passed reads "half_open" (the next request in that container probes it)."""
    view: dict[str, dict[str, Any]] = {}
    for model in models:
        report = reports.get(model)
        if report is None:
            view[model] = {"state": "closed"}
            continue
        state = str(report.get("state", "closed"))
        retry_at = report.get("retry_at")
        if state == "open" and isinstance(retry_at, int | float) and retry_at <= now:
            state = "half_open"
        entry: dict[str, Any] = {"state": state, "reason": str(report.get("reason", ""))}
        if isinstance(report.get("at"), int | float):
            entry["since"] = _iso(float(report["at"]))
        if state != "closed" and isinstance(retry_at, int | float):
            entry["retry_at"] = _iso(float(retry_at))
        view[model] = entry
    return view


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
