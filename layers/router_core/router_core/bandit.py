"""The bandit's decision rule: which model answers this request, and how likely that pick was.

Pure and standard-library only (it ships in the Lambda layer): no I/O, and every random
choice comes from the `random.Random` the caller passes in. The beliefs it samples from are
`posterior.Posterior`s; the propensity it logs is integrated by `propensity`.

The rule (`pick_model`)
-----------------------
1. With probability `exploration_floor` the request explores: the model is drawn uniformly at
   random. Every model therefore keeps a propensity of at least `exploration_floor / K`.
2. Otherwise, Thompson sampling on cost-aware scores: for every arm a quality value
   q ~ Beta(τ·α, τ·β) is drawn (τ earned per arm up to `posterior_temper`, see below) and scored
   `quality_weight · q − cost_weight · cost_units`; the highest score wins (ties: first arm).
   Quality draws are made for every arm on every request, so they can be logged.

`posterior_temper` τ ≥ 1 samples from a Beta with the posterior's mean and τ times its
concentration. Thompson sampling over-explores well-observed cells (it keeps paying for arms
whose posteriors overlap only in the tails); τ = 3 removed part of that cost on the MMLU replay
(`benchmarks/learning.py`). Tempering a cell that has little evidence, though, shrinks a prior
guess into a confident one: a cheaper model whose cold-start prior sits below a well-observed
rival is then almost never tried again, so its posterior cannot move (a prior trap). The
temper is therefore earned per arm (`effective_temper`): an arm with no evidence is sampled
from its full posterior (τ_arm = 1), and τ_arm rises towards τ as decayed evidence accumulates
(half-way at `TEMPER_RAMP_EVIDENCE` observations). Wide posteriors keep their full width, and
with it a real chance to win whenever their score could. The posterior itself (shown on the
dashboard, `Posterior.interval`) is never tempered.

Propensity: P(model i is picked) = floor/K + (1 − floor) · P_i, with P_i the probability that
arm i wins the Thompson step, computed numerically (`propensity.win_probability`; method and
accuracy there). `pick_shares` gives every model's P(picked) by the same integral.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from router_core.beta_distribution import LogitBeta
from router_core.errors import BanditError
from router_core.posterior import Posterior
from router_core.propensity import win_probability

__all__ = [
    "DEFAULT_POSTERIOR_TEMPER",
    "DEFAULT_SHARE_DRAWS",
    "MAX_POSTERIOR_TEMPER",
    "MIN_LOGGED_PROPENSITY",
    "MIN_SAMPLING_SHAPE",
    "TEMPER_RAMP_EVIDENCE",
    "Arm",
    "Decision",
    "effective_temper",
    "pick_model",
    "pick_shares",
]

DEFAULT_POSTERIOR_TEMPER = 3.0
"""Default τ of the pick rule (same as `RouterConfig.posterior_temper`)."""
MAX_POSTERIOR_TEMPER = 1e6
"""Largest τ the rule accepts: a sanity bound only (`RouterConfig` allows 1 to 10); at 1e6 a
tempered Beta is already a point at the posterior mean."""
TEMPER_RAMP_EVIDENCE = 8.0
"""Observations (decayed evidence, α + β beyond the prior) at which an arm's temper is half-way
from 1 to `posterior_temper`. Small enough that a cell with a few dozen ratings samples almost
fully tempered (the MMLU replay's figures hold), large enough that a cell with a handful keeps
its full posterior width (the live benchmark's cheap-model discovery, `benchmarks/live.py`)."""
MIN_SAMPLING_SHAPE = 0.5
"""Tempered shapes below this are raised to it for sampling. A Beta(0.05, b) puts a third of its
mass within 1e-9 of zero, which only very small prior masses produce; the floor (Jeffreys'
shape) keeps such a cell explorable and the propensity integral exact."""
MIN_LOGGED_PROPENSITY = 1e-12
"""A picked model's Thompson probability is logged as at least this: it happened, so it was
possible, and off-policy estimators divide by the propensity."""
DEFAULT_SHARE_DRAWS = 4000
"""Simulated decisions behind `pick_shares` when the integral gives up: standard error ≤ 0.008 per share."""


# --------------------------------------------------------------------------- arms and decisions


@dataclass(frozen=True, slots=True)
class Arm:
    """One candidate model for this request.

    `cost_units` = expected dollars of this request on this model / `cost_reference_usd` (≥ 0):
    real units, so one arm's score never depends on which other arms are present.
    """

    model: str
    posterior: Posterior
    cost_units: float
    evidence: float = 0.0
    """Decayed observations behind the posterior (its α + β beyond the prior's mass), ≥ 0: how
    much of `posterior_temper` the arm has earned (`effective_temper`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.posterior, Posterior):
            raise BanditError(f"arm {self.model!r}: posterior must be a Posterior")
        c = self.cost_units
        if not (isinstance(c, int | float) and math.isfinite(c) and c >= 0.0):
            raise BanditError(f"arm {self.model!r}: cost_units must be a finite number >= 0, got {c!r}")
        e = self.evidence
        if not (isinstance(e, int | float) and e == e and e >= 0.0):
            raise BanditError(f"arm {self.model!r}: evidence must be a number >= 0, got {e!r}")


@dataclass(frozen=True)
class Decision:
    """The outcome of `pick_model`, with everything needed for off-policy evaluation."""

    model: str
    """The model picked."""
    propensity: float
    """P(this model is picked) under the full rule, exploration floor included."""
    explored: bool
    """True when the exploration floor chose the model uniformly at random."""
    sampled: dict[str, float]
    """The (tempered) quality value drawn for each model."""
    scores: dict[str, float]
    """quality_weight · sampled − cost_weight · cost_units, per model."""
    ranking: tuple[str, ...]
    """Models by score, best first (the fallback order)."""


def _check_rule(arms: Sequence[Arm], quality_weight: float, cost_weight: float, floor: float, temper: float) -> None:
    """Raise `BanditError` unless the rule can run on these arms and knobs."""
    if not arms:
        raise BanditError("no arms to choose from")
    names = [a.model for a in arms]
    if len(set(names)) != len(names):
        raise BanditError(f"arms repeat a model: {names}")
    for name, value in (("quality_weight", quality_weight), ("cost_weight", cost_weight)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
            raise BanditError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (isinstance(floor, int | float) and 0.0 <= floor <= 1.0):
        raise BanditError(f"exploration_floor must be in [0, 1], got {floor!r}")
    if not (isinstance(temper, int | float) and math.isfinite(temper) and 0.0 < temper <= MAX_POSTERIOR_TEMPER):
        raise BanditError(f"posterior_temper must be a finite number in (0, 1e6], got {temper!r}")


def effective_temper(evidence: float, temper: float) -> float:
    """The temper an arm with `evidence` observations is sampled with: 1 + (τ − 1)·e / (e + E½),
    E½ = `TEMPER_RAMP_EVIDENCE`; 1 with no evidence, → τ as evidence grows, never above τ."""
    if temper <= 1.0 or evidence <= 0.0:
        return temper if temper < 1.0 else 1.0
    if math.isinf(evidence):
        return temper
    return 1.0 + (temper - 1.0) * evidence / (evidence + TEMPER_RAMP_EVIDENCE)


def _sampling_shapes(arm: Arm, temper: float) -> tuple[float, float]:
    """The Beta shapes this arm is sampled from: its posterior's, times its earned temper, floored."""
    tau = effective_temper(arm.evidence, temper)
    a = max(arm.posterior.alpha * tau, MIN_SAMPLING_SHAPE)
    b = max(arm.posterior.beta * tau, MIN_SAMPLING_SHAPE)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise BanditError(f"arm {arm.model!r}: tempered posterior shapes overflow")
    return a, b


def pick_model(
    arms: Sequence[Arm],
    *,
    quality_weight: float,
    cost_weight: float,
    rng: random.Random,
    exploration_floor: float = 0.0,
    posterior_temper: float = DEFAULT_POSTERIOR_TEMPER,
) -> Decision:
    """Pick one model for this request (see the module docstring for the rule and the propensity).

    Raises `BanditError` on unusable input (no arms, repeated models, negative or non-finite
    weights or costs, a floor outside [0, 1], overflowing shapes); the caller then falls back
    to its default model. Randomness comes only from `rng` (one coin for the floor, one draw
    per arm, one more when exploring), so the same seed and arms give the same decisions.
    `ranking` orders models by score even when the floor picked another one.
    """
    _check_rule(arms, quality_weight, cost_weight, exploration_floor, posterior_temper)
    k = len(arms)
    explored = rng.random() < exploration_floor
    shapes = [_sampling_shapes(arm, posterior_temper) for arm in arms]
    sampled: dict[str, float] = {}
    scores: dict[str, float] = {}
    for arm, (a, b) in zip(arms, shapes, strict=True):
        q = rng.betavariate(a, b)
        sampled[arm.model] = q
        scores[arm.model] = quality_weight * q - cost_weight * arm.cost_units
    order = sorted(range(k), key=lambda i: -scores[arms[i].model])  # stable: ties keep arm order
    ranking = tuple(arms[i].model for i in order)
    chosen = rng.randrange(k) if explored else order[0]
    costs = [arm.cost_units for arm in arms]
    p_ts = win_probability(shapes, costs, chosen, quality_weight, cost_weight, {})
    if p_ts is None or not (0.0 <= p_ts <= 1.0):
        raise BanditError(f"win probability {p_ts!r} out of range")
    if not explored:
        p_ts = max(p_ts, MIN_LOGGED_PROPENSITY)  # it happened, so it was possible: never log a zero propensity
    propensity = exploration_floor / k + (1.0 - exploration_floor) * p_ts
    return Decision(
        model=arms[chosen].model,
        propensity=min(propensity, 1.0),
        explored=explored,
        sampled=sampled,
        scores=scores,
        ranking=ranking,
    )


def pick_shares(
    arms: Sequence[Arm],
    *,
    quality_weight: float,
    cost_weight: float,
    rng: random.Random,
    exploration_floor: float = 0.0,
    draws: int = DEFAULT_SHARE_DRAWS,
    posterior_temper: float = DEFAULT_POSTERIOR_TEMPER,
) -> dict[str, float]:
    """P(each model is picked) under exactly `pick_model`'s rule (cost and floor included); sums to 1.

    Computed by the same numerical integration as the propensity (no sampling noise between two
    dashboard polls). If an input is so extreme that the integration would need more panels than
    it allows, the shares are estimated instead from `draws` simulated decisions using `rng`
    (standard error ≤ 0.5 / √draws); `draws` must be ≥ 1.
    """
    _check_rule(arms, quality_weight, cost_weight, exploration_floor, posterior_temper)
    if not (isinstance(draws, int) and draws >= 1):
        raise BanditError(f"draws must be an int >= 1, got {draws!r}")
    k = len(arms)
    shapes = [_sampling_shapes(arm, posterior_temper) for arm in arms]
    costs = [arm.cost_units for arm in arms]
    cache: dict[tuple[float, float], LogitBeta] = {}
    exact = [win_probability(shapes, costs, i, quality_weight, cost_weight, cache, strict=True) for i in range(k)]
    if any(p is None for p in exact):
        p_ts = _simulated_win_shares(shapes, costs, quality_weight, cost_weight, rng, draws)
    else:
        p_ts = _renormalised([p for p in exact if p is not None])
    return {arm.model: exploration_floor / k + (1.0 - exploration_floor) * p for arm, p in zip(arms, p_ts, strict=True)}


def _simulated_win_shares(
    shapes: Sequence[tuple[float, float]],
    costs: Sequence[float],
    quality_weight: float,
    cost_weight: float,
    rng: random.Random,
    draws: int,
) -> list[float]:
    """Each arm's share of wins over `draws` simulated Thompson steps (ties → first arm)."""
    wins = [0] * len(shapes)
    for _ in range(draws):
        best_i, best_s = 0, -math.inf
        for i, ((a, b), cost) in enumerate(zip(shapes, costs, strict=True)):
            s = quality_weight * rng.betavariate(a, b) - cost_weight * cost
            if s > best_s:
                best_i, best_s = i, s
        wins[best_i] += 1
    return [w / draws for w in wins]


def _renormalised(win_probabilities: list[float]) -> list[float]:
    """Integrated win probabilities scaled to sum to 1 (removes the ~1e-5 integration residue)."""
    total = sum(win_probabilities)
    if total <= 0.0:
        raise BanditError("win probabilities vanished")
    return [p / total for p in win_probabilities]
