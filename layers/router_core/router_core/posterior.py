"""Posteriors: the Beta belief about P(an answer satisfies) of one (router, request type, model) cell.

Pure and standard-library only (it ships in the Lambda layer). A cell's posterior is its
cold-start prior (`cold_start_prior`: the model's quality tier and declared strengths) plus its
decayed evidence (`posterior_from_evidence`, weighted by `decay_factor`; `forgetting` owns how
evidence is stored and decays). `bandit` samples from these posteriors to pick a model.

Posteriors are never improper: `Posterior` rejects non-positive or non-finite shapes, and
`posterior_from_evidence` clamps bad evidence before it can produce one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from router_core.beta_distribution import beta_quantile
from router_core.errors import BanditError

__all__ = [
    "MAX_EVIDENCE",
    "MAX_PRIOR_MEAN",
    "STRENGTH_BONUS",
    "TIER_PRIOR_MEAN",
    "Posterior",
    "cold_start_prior",
    "decay_factor",
    "posterior_from_evidence",
]

TIER_PRIOR_MEAN: dict[int, float] = {1: 0.45, 2: 0.6, 3: 0.7, 4: 0.75}
"""Cold-start P(answer satisfies) by quality tier (1 small, 2 mid, 3 frontier, 4 reasoning):
weak on purpose, ordered, never decisive against a few real ratings."""
STRENGTH_BONUS = 0.1
"""Added to the prior mean for a request type the model declares as a strength."""
MAX_PRIOR_MEAN = 0.9
"""Prior means are capped here so a declared strength never looks certain."""
MAX_EVIDENCE = 1e9
"""Largest accepted evidence count per side; larger (or infinite) values are clamped."""


@dataclass(frozen=True, slots=True)
class Posterior:
    """Beta(alpha, beta) belief about P(an answer satisfies the user); both shapes > 0 and finite."""

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        for name, value in (("alpha", self.alpha), ("beta", self.beta)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
                raise BanditError(f"Posterior.{name} must be a finite number > 0, got {value!r}")

    @property
    def mean(self) -> float:
        """Posterior mean α / (α + β), in (0, 1)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def mass(self) -> float:
        """α + β: prior pseudo-observations plus (decayed) evidence."""
        return self.alpha + self.beta

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval holding `level` of the posterior mass (0 < level < 1)."""
        if not (0.0 < level < 1.0):
            raise BanditError(f"interval level must be in (0, 1), got {level!r}")
        tail = (1.0 - level) / 2.0
        return (beta_quantile(self.alpha, self.beta, tail), beta_quantile(self.alpha, self.beta, 1.0 - tail))

    def sample(self, rng: random.Random) -> float:
        """One draw from Beta(α, β) using `rng`."""
        return rng.betavariate(self.alpha, self.beta)


def cold_start_prior(quality_tier: int, strong_for_type: bool, mass: float) -> Posterior:
    """Prior for a cell nobody has rated yet.

    The mean comes from the model's quality tier (`TIER_PRIOR_MEAN`), plus `STRENGTH_BONUS` when
    the request type is one of the model's declared strengths, capped at `MAX_PRIOR_MEAN`;
    α + β == `mass` (pseudo-observations, > 0).
    """
    if quality_tier not in TIER_PRIOR_MEAN:
        raise BanditError(f"quality_tier must be one of {sorted(TIER_PRIOR_MEAN)}, got {quality_tier!r}")
    if not (math.isfinite(mass) and mass > 0.0):
        raise BanditError(f"prior mass must be a finite number > 0, got {mass!r}")
    mean = TIER_PRIOR_MEAN[quality_tier] + (STRENGTH_BONUS if strong_for_type else 0.0)
    mean = min(mean, MAX_PRIOR_MEAN)
    return Posterior(mean * mass, (1.0 - mean) * mass)


def _clean_evidence(value: float) -> float:
    """Evidence that can enter a posterior: NaN, negative or zero → 0; above `MAX_EVIDENCE` → it."""
    if value != value or value <= 0.0:  # NaN, negative, zero
        return 0.0
    return min(float(value), MAX_EVIDENCE)


def posterior_from_evidence(prior: Posterior, alpha_evidence: float, beta_evidence: float) -> Posterior:
    """Prior plus (decayed) evidence: Beta(α₀ + a, β₀ + b).

    Evidence that is NaN or negative counts as 0 and evidence above `MAX_EVIDENCE` (or +inf) is
    clamped, so the result is always a proper Beta. A reward r in [0, 1] adds r to a and 1 − r to b.
    """
    return Posterior(prior.alpha + _clean_evidence(alpha_evidence), prior.beta + _clean_evidence(beta_evidence))


def decay_factor(elapsed_seconds: float, half_life_seconds: float | None) -> float:
    """Weight that evidence keeps after `elapsed_seconds`: 0.5 ** (elapsed / half_life), in (0, 1].

    `None` means no forgetting (1.0). A negative or NaN elapsed time (clock skew) keeps full
    weight rather than inflating evidence. The result never reaches 0 for finite inputs, except
    by float underflow after more than ~1,000 half-lives.
    """
    if half_life_seconds is None:
        return 1.0
    if not (math.isfinite(half_life_seconds) and half_life_seconds > 0.0):
        raise BanditError(f"half_life_seconds must be a finite number > 0 or None, got {half_life_seconds!r}")
    if elapsed_seconds != elapsed_seconds or elapsed_seconds <= 0.0:
        return 1.0
    return math.pow(0.5, elapsed_seconds / half_life_seconds)
