"""Forgetting: how a cell's evidence decays, read, written and compacted. The only home of it.

Units
-----
Evidence is counted in pseudo-observations: a reward r in [0, 1] given at time t₀ is worth r on
the α side and 1 − r on the β side *at t₀*, and w(t − t₀) of that at a later time t, where
w(e) = `posterior.decay_factor`(e, half_life) = 0.5 ** (e / half_life) (1 without forgetting).
Times are Unix seconds (the store's clock); half-lives are seconds (`half_life_seconds`).

Stored form (attributes of one cell shard item; the store adds them, this module names them)
-------------------------------------------------------------------------------------------
* ``a_<ref>`` / ``b_<ref>``: α / β evidence of one *era*, in "value as of ref" units, where
  ``<ref>`` is the era's start (integer Unix seconds): an amount v there counts
  v · w(t − ref) at time t. Eras tile time in steps of `era_seconds` (1/24 of the half-life).
* A write at time t ADDs to the era holding t (ref = `era_start`(t)) the delta scaled up by
  1 / w(t − ref), a factor in [1, 2^(1/24)] (capped at 2 for sub-second half-lives): evidence
  added at t counts in full at t, however old the cell is. The writer needs nothing read, the
  ADD is atomic, so any number of concurrent writers (chat, feedback, shards) compose.
* Legacy ``a`` / ``b`` / ``decayed_at`` (items written before eras): evidence as of
  ``decayed_at``. Still read; the next compaction folds it into an era and removes it.

Invariants
----------
* Reading (`shard_evidence`, `cell_evidence`) is exact: Σ over shards and eras of
  v · w(t − ref); a cell's sides are then clamped to [0, MAX_CELL_EVIDENCE] and NaN → 0, so a
  posterior built on them is never improper. Shards are summed *before* clamping: a correction
  that lands on another shard than the reward it corrects still counts in full.
* A reader whose clock runs behind a writer's sees that write's weight as at most
  2 ** (skew / half_life) (w of a negative age is 1), never more than the era factor above.
* Compaction (`plan_compaction`) never changes what is read (up to the 1e-12 quantum): it
  converts every era older than the current one (and legacy attributes) into the current era's
  units, ADDs the sum there and REMOVEs them, conditional on every removed attribute still
  holding the exact value read. Writers ADD to the current era, which compaction also only
  ADDs to: they commute. A writer whose clock lags into a closed era, or a concurrent
  compaction, changes or removes an attribute the compaction read, so its condition fails and
  it is skipped (retried on a later read): nothing is lost or counted twice, with no
  read-modify-write anywhere. It exists only to bound an item's size, so it runs when an item
  holds two or more eras (one of them closed) or legacy attributes.
* Every stored amount is a decimal with at most 12 fractional digits and magnitude below
  `MAX_STORED`, so DynamoDB's exact decimal ADD never exceeds its 38 digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from router_core.posterior import decay_factor

if TYPE_CHECKING:
    from router_core.config import RouterConfig

__all__ = [
    "DEFAULT_HALF_LIFE_SECONDS",
    "ERAS_PER_HALF_LIFE",
    "LEGACY_ATTRIBUTES",
    "MAX_CELL_EVIDENCE",
    "QUANTUM",
    "Compaction",
    "cell_evidence",
    "era_seconds",
    "era_start",
    "evidence_add",
    "half_life_seconds",
    "plan_compaction",
    "replacement_delta",
    "shard_evidence",
]

DEFAULT_HALF_LIFE_SECONDS = 168 * 3600.0
"""The shipped half-life (`RouterConfig.forgetting_half_life_hours` = 168)."""
ERAS_PER_HALF_LIFE = 24
"""Eras per half-life: the write scale 1 / w(t − ref) stays below 2 ** (1 / 24) ≈ 1.029."""
MAX_WRITE_HALVINGS = 1.0
"""Cap on log2 of the write scale (reached only with half-lives under a few seconds)."""
QUANTUM = Decimal("1e-12")
"""Stored amounts are rounded to this many pseudo-observations; smaller ones are dropped."""
MAX_STORED = 1e12
"""Stored amounts are clamped to ±this (evidence beyond 1e9 is clamped by the bandit anyway)."""
MAX_CELL_EVIDENCE = 1e9
"""A cell side never reads above this (same bound as `posterior.MAX_EVIDENCE`)."""
LEGACY_ATTRIBUTES = ("a", "b", "decayed_at")
"""Pre-era attributes: evidence `a`, `b` as of `decayed_at`; read, then folded by compaction."""

_ERA_ATTRIBUTE = re.compile(r"([ab])_(\d+)")


def half_life_seconds(router: RouterConfig) -> float | None:
    """The router's half-life in seconds (None: forgetting is off)."""
    h = router.forgetting_half_life_hours
    return None if h is None else h * 3600.0


def era_seconds(half_life_s: float | None) -> int:
    """Length of one era: 1/24 of the half-life (of the shipped one without forgetting), ≥ 1 s."""
    h = DEFAULT_HALF_LIFE_SECONDS if half_life_s is None else half_life_s
    return max(1, int(h / ERAS_PER_HALF_LIFE))


def era_start(t: float, half_life_s: float | None) -> int:
    """Start (integer Unix seconds) of the era that holds time `t`."""
    length = era_seconds(half_life_s)
    return math.floor(t / length) * length


def alpha_attribute(ref: int) -> str:
    return f"a_{ref}"


def beta_attribute(ref: int) -> str:
    return f"b_{ref}"


def _rescale(value: float, from_ref: float, to_ref: float, half_life_s: float | None) -> float:
    """`value` in "as of from_ref" units expressed in "as of to_ref" units (same evidence).

    Moving to a later reference decays the value; moving to an earlier one inflates it, by at
    most 2 ** MAX_WRITE_HALVINGS (it happens only within an era, for writes and legacy items).
    """
    if to_ref >= from_ref:
        return value * decay_factor(to_ref - from_ref, half_life_s)
    if half_life_s is None:
        return value
    halvings = min((from_ref - to_ref) / half_life_s, MAX_WRITE_HALVINGS)
    return value * math.pow(2.0, halvings)


def _stored(value: float) -> Decimal:
    """An amount as stored: finite, within ±MAX_STORED, rounded to QUANTUM (-0 becomes 0)."""
    if not math.isfinite(value):
        value = 0.0 if value != value else math.copysign(MAX_STORED, value)
    value = max(-MAX_STORED, min(MAX_STORED, value))
    q = Decimal(repr(value)).quantize(QUANTUM)
    return q if q != 0 else Decimal(0)


def evidence_add(d_alpha: float, d_beta: float, *, now: float, half_life_s: float | None) -> dict[str, Decimal]:
    """What a write at `now` ADDs so that (d_alpha, d_beta) counts in full at `now`.

    Attribute name → amount (the current era's attributes, scaled by 1 / w(now − era start)).
    Sides that round to zero are left out, so a write never creates an empty era.
    """
    ref = era_start(now, half_life_s)
    out: dict[str, Decimal] = {}
    for name, delta in ((alpha_attribute(ref), d_alpha), (beta_attribute(ref), d_beta)):
        amount = _stored(_rescale(float(delta), now, ref, half_life_s))
        if amount != 0:
            out[name] = amount
    return out


def replacement_delta(
    reward: float, replaces: float, replaced_at: float | None, *, now: float, half_life_s: float | None
) -> tuple[float, float]:
    """(Δα, Δβ) at `now` that turns a reward `replaces` given at `replaced_at` into `reward` now.

    The replaced reward has decayed to w(now − replaced_at) of itself; exactly that is taken
    out and the new reward counts in full, so the cell reads as if only `reward` had been
    given, at `now`. Unknown `replaced_at` (older turns) assumes no decay.
    """
    kept = 1.0 if replaced_at is None else decay_factor(now - replaced_at, half_life_s)
    return reward - replaces * kept, (1.0 - reward) - (1.0 - replaces) * kept


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _eras(item: Mapping[str, Any]) -> dict[int, dict[str, float]]:
    """Era start → {"a": stored α, "b": stored β} of one shard item (sides present only)."""
    eras: dict[int, dict[str, float]] = {}
    for name, value in item.items():
        match = _ERA_ATTRIBUTE.fullmatch(name)
        if match:
            eras.setdefault(int(match.group(2)), {})[match.group(1)] = _number(value)
    return eras


def _legacy_reference(item: Mapping[str, Any], now: float) -> float:
    """When legacy evidence was last decayed; never after `now` (a skewed writer's clock)."""
    return min(_number(item["decayed_at"]), now) if "decayed_at" in item else now


def shard_evidence(item: Mapping[str, Any], *, now: float, half_life_s: float | None) -> tuple[float, float]:
    """(α, β) evidence one shard item holds at `now`: signed (a correction may be negative)."""
    alpha = beta = 0.0
    for ref, sides in _eras(item).items():
        f = decay_factor(now - ref, half_life_s)
        alpha += sides.get("a", 0.0) * f
        beta += sides.get("b", 0.0) * f
    if "a" in item or "b" in item:
        f = decay_factor(now - _legacy_reference(item, now), half_life_s)
        alpha += _number(item.get("a", 0.0)) * f
        beta += _number(item.get("b", 0.0)) * f
    return alpha, beta


def _clamp(value: float) -> float:
    if not math.isfinite(value):
        return MAX_CELL_EVIDENCE if value > 0 else 0.0
    return min(max(value, 0.0), MAX_CELL_EVIDENCE)


def cell_evidence(
    shard_items: Iterable[Mapping[str, Any]], *, now: float, half_life_s: float | None
) -> tuple[float, float]:
    """(α, β) decayed evidence of one cell at `now`: its shards summed, then clamped ≥ 0."""
    alpha = beta = 0.0
    for item in shard_items:
        a, b = shard_evidence(item, now=now, half_life_s=half_life_s)
        alpha += a
        beta += b
    return _clamp(alpha), _clamp(beta)


@dataclass(frozen=True, slots=True)
class Compaction:
    """One conditional UpdateItem on a shard item: ADD `add`, REMOVE `remove`.

    The write must be conditional on every attribute in `remove` still holding the value read
    (its exact stored number), or be skipped.
    """

    add: dict[str, Decimal]
    remove: tuple[str, ...]


def plan_compaction(item: Mapping[str, Any], *, now: float, half_life_s: float | None) -> Compaction | None:
    """Fold a shard item's closed eras (and legacy attributes) into the current era, or None.

    None when there is nothing to bound: at most one era and no legacy attributes. A single
    old era is left as it is: reading it is exact, folding it would only cost a write.
    """
    eras = _eras(item)
    current = era_start(now, half_life_s)
    closed = sorted(ref for ref in eras if ref < current)
    legacy = tuple(name for name in LEGACY_ATTRIBUTES if name in item)
    if not legacy and (not closed or len(eras) < 2):
        return None
    alpha = beta = 0.0
    remove: list[str] = []
    for ref in closed:
        sides = eras[ref]
        alpha += _rescale(sides.get("a", 0.0), ref, current, half_life_s)
        beta += _rescale(sides.get("b", 0.0), ref, current, half_life_s)
        remove.extend(name for side, name in (("a", alpha_attribute(ref)), ("b", beta_attribute(ref))) if side in sides)
    if legacy:
        at = _legacy_reference(item, now)
        alpha += _rescale(_number(item.get("a", 0.0)), at, current, half_life_s)
        beta += _rescale(_number(item.get("b", 0.0)), at, current, half_life_s)
        remove.extend(legacy)
    add = {
        name: amount
        for name, amount in (
            (alpha_attribute(current), _stored(alpha)),
            (beta_attribute(current), _stored(beta)),
        )
        if amount != 0
    }
    return Compaction(add=add, remove=tuple(remove))
