"""The bandit: Beta posteriors per (router, request type, model) cell and the pick rule.

Pure and standard-library only (it ships in the Lambda layer): no I/O, and every random
choice comes from the `random.Random` the caller passes in.

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

Propensity
----------
P(model i is picked) = floor/K + (1 − floor) · P_i, with
P_i = P(score_i > score_j for all j ≠ i) = ∫ f_i(q) Π_j F_j(q + d_ij) dq,
d_ij = (cost_weight / quality_weight)(c_j − c_i), f and F the tempered Beta density and CDF.
The integral is computed numerically, not sampled:

* each Beta is handled in logit space z = log(q / (1 − q)), where its density
  ∝ σ(z)^a (1 − σ(z))^b is smooth and log-concave for every a, b > 0 (no end-point
  singularities). Mass closer than 1e-15 to 0 or 1 is kept as an exact point mass (its value
  comes from the regularized incomplete beta function), so no probability is lost;
* a rival's CDF is tabulated on a logit grid (0.4 of a Laplace width apart within 3.5 widths
  of the mode, 0.8 beyond) by integrating its density with the end-corrected trapezoid rule,
  and read back by cubic Hermite interpolation (the density is its exact derivative);
* the outer integral is a 24-point Gauss–Hermite rule centred on the picked arm's logit mean
  when every rival's CDF step is at least 0.7 of that arm's width and the rule integrates the
  arm's own density to within 1e-7 (with two arms, the rule may run over the narrower one,
  P_i = 1 − P_j); otherwise composite 4-point Gauss–Legendre panels over the picked arm's
  support, as narrow as the narrowest rival that overlaps them. Rivals that cannot overlap the
  picked arm (beyond its 1e-10 density tails) are skipped.
Accuracy: `tests/unit/test_bandit.py` pins two-arm values to 3e-5 against direct Simpson
integration and many-arm values against Monte Carlo; a wider check against SciPy's incomplete
beta over 250 random arm sets (2 to 10 arms, shapes 0.5 to 10⁶, costs 0 to 1) found at most
4.1e-5 absolute error. Cost, 10 models on a shared 2-core machine (`benchmarks/decision_overhead.py`):
pick_model p50 ≈ 0.25 ms with all arms cold, ≈ 0.4 ms with learned arms (p99 ≈ 0.3 / 0.85 ms);
about 0.06 ms for two models.

Posteriors are never improper: `Posterior` rejects non-positive or non-finite shapes, and
`posterior_from_evidence` clamps bad evidence before it can produce one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "DEFAULT_POSTERIOR_TEMPER",
    "MAX_EVIDENCE",
    "STRENGTH_BONUS",
    "TEMPER_RAMP_EVIDENCE",
    "TIER_PRIOR_MEAN",
    "Arm",
    "BanditError",
    "Decision",
    "Posterior",
    "cold_start_prior",
    "decay_factor",
    "effective_temper",
    "pick_model",
    "pick_shares",
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
DEFAULT_POSTERIOR_TEMPER = 3.0
"""Default τ of the pick rule (same as `RouterConfig.posterior_temper`)."""
TEMPER_RAMP_EVIDENCE = 8.0
"""Observations (decayed evidence, α + β beyond the prior) at which an arm's temper is half-way
from 1 to `posterior_temper`. Small enough that a cell with a few dozen ratings samples almost
fully tempered (the MMLU replay's figures hold), large enough that a cell with a handful keeps
its full posterior width (the live benchmark's cheap-model discovery, `benchmarks/live.py`)."""
MIN_SAMPLING_SHAPE = 0.5
"""Tempered shapes below this are raised to it for sampling. A Beta(0.05, b) puts a third of its
mass within 1e-9 of zero, which only very small prior masses produce; the floor (Jeffreys'
shape) keeps such a cell explorable and the propensity integral exact."""

_TAIL_Q = 1e-15  # mass this close to 0 or 1 is kept as a point mass at the end
_Z_EDGE = math.log(_TAIL_Q / (1.0 - _TAIL_Q))  # logit of _TAIL_Q (about -34.5)
_HALF_TAIL_Q = 0.5 * _TAIL_Q
_DENSITY_DROP = 23.0  # grids end where the density is e^-23 (1e-10) of its peak
_TABLE_RESOLUTION = 2.5  # CDF table nodes per Laplace width (widths above 1 logit unit count as 1) ...
_TABLE_CORE_WIDTHS = 3.5  # ... within this many widths of the mode ...
_TABLE_TAIL_FACTOR = 2.0  # ... and this many times sparser beyond
_PANEL_WIDTHS = 2.0  # Gauss-Legendre panel width, in Laplace widths of the narrowest overlapping arm
_CORE_WIDTHS = 3.0  # beyond this many Laplace widths (+2) from the mode, panels widen ...
_TAIL_GROWTH = 1.4  # ... by (this − 1) × the extra distance
_MAX_PANELS = 200
_NEGLIGIBLE = 1e-16  # a node whose weighted product is below this contributes nothing

_GH_MIN_RATIO = 0.7  # Gauss-Hermite only when every rival's CDF step is at least 0.7 sd of this arm wide
_GH_MASS_TOLERANCE = 1e-7

# 4-point Gauss-Legendre rule on [-1, 1]
_GL_X = (-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526)
_GL_W = (0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538)


def _gauss_hermite(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights of the n-point Gauss-Hermite rule (weight e^{-x²}), by Newton's method
    on the orthonormal Hermite recurrence (n even); weights are returned multiplied by e^{x²}."""
    if n % 2:
        raise ValueError("n must be even")
    xs: list[float] = []
    ws: list[float] = []
    z = 0.0
    for i in range(n // 2):
        if i == 0:
            z = math.sqrt(2.0 * n + 1.0) - 1.85575 * (2.0 * n + 1.0) ** (-1.0 / 6.0)
        elif i == 1:
            z -= 1.14 * n**0.426 / z
        elif i == 2:
            z = 1.86 * z - 0.86 * xs[0]
        elif i == 3:
            z = 1.91 * z - 0.91 * xs[1]
        else:
            z = 2.0 * z - xs[i - 2]
        dp = 0.0
        for _ in range(100):
            p1, p2 = math.pi**-0.25, 0.0
            for j in range(1, n + 1):
                p1, p2 = z * math.sqrt(2.0 / j) * p1 - math.sqrt((j - 1.0) / j) * p2, p1
            dp = math.sqrt(2.0 * n) * p2
            step = p1 / dp
            z -= step
            if abs(step) < 1e-15:
                break
        xs.append(z)
        ws.append(2.0 / (dp * dp))
    nodes = [-x for x in xs] + xs[::-1]  # n is even: the roots come in ± pairs
    weights = ws + ws[::-1]
    return tuple(nodes), tuple(w * math.exp(x * x) for x, w in zip(nodes, weights, strict=True))


def _digamma(x: float) -> float:
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))


def _trigamma(x: float) -> float:
    r = 0.0
    while x < 6.0:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return r + 1.0 / x + f / 2.0 + f / x * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f / 30)))


_GH_X, _GH_W_EXP = _gauss_hermite(24)


class BanditError(ValueError):
    """The bandit was given inputs it cannot decide on; the caller falls back to its default model."""


# --------------------------------------------------------------------------- posteriors


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
        return (_beta_quantile(self.alpha, self.beta, tail), _beta_quantile(self.alpha, self.beta, 1.0 - tail))

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
    if not (isinstance(temper, int | float) and math.isfinite(temper) and 0.0 < temper <= 1e6):
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
    p_ts = _win_probability(arms, shapes, chosen, quality_weight, cost_weight, {})
    if p_ts is None or not (0.0 <= p_ts <= 1.0):
        raise BanditError(f"win probability {p_ts!r} out of range")
    if not explored:
        p_ts = max(p_ts, 1e-12)  # it happened, so it was possible: never log a zero propensity
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
    draws: int = 4000,
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
    cache: dict[tuple[float, float], _LogitBeta] = {}
    exact = [_win_probability(arms, shapes, i, quality_weight, cost_weight, cache, strict=True) for i in range(k)]
    if any(p is None for p in exact):
        wins = [0] * k
        for _ in range(draws):
            best_i, best_s = 0, -math.inf
            for i, (arm, (a, b)) in enumerate(zip(arms, shapes, strict=True)):
                s = quality_weight * rng.betavariate(a, b) - cost_weight * arm.cost_units
                if s > best_s:
                    best_i, best_s = i, s
            wins[best_i] += 1
        p_ts = [w / draws for w in wins]
    else:
        p_ts = [p for p in exact if p is not None]
        total = sum(p_ts)
        if total <= 0.0:
            raise BanditError("win probabilities vanished")
        p_ts = [p / total for p in p_ts]  # removes the ~1e-5 integration residue so shares sum to 1
    return {arm.model: exploration_floor / k + (1.0 - exploration_floor) * p for arm, p in zip(arms, p_ts, strict=True)}


# --------------------------------------------------------------------------- numerical integration


def _softplus(z: float) -> float:
    return (z if z > 0.0 else 0.0) + math.log1p(math.exp(-abs(z)))


def _sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _logit(q: float) -> float:
    return math.log(q) - math.log1p(-q)


class _LogitBeta:
    """Beta(a, b) seen in logit space: effective support, end point masses and a CDF table.

    The density of z = logit(q) is σ(z)^a (1 − σ(z))^b / B(a, b): smooth and log-concave.
    The support [z_lo, z_hi] ends where the density has dropped by `_DENSITY_DROP` from its peak,
    or at logit(1e-15); the mass beyond 1e-15 of an end (`lump_lo`, `lump_hi`, exact) is treated
    as a point mass at _TAIL_Q / 2 or 1 − _TAIL_Q / 2.
    """

    __slots__ = (
        "a",
        "ab",
        "b",
        "c_hi",
        "c_lo",
        "log_norm",
        "lump_hi",
        "lump_lo",
        "mode_z",
        "n",
        "q_hi",
        "q_lo",
        "segs",
        "tab_F",
        "tab_f",
        "width",
        "z_hi",
        "z_lo",
    )

    def __init__(self, a: float, b: float) -> None:
        self.a = a
        self.b = b
        self.ab = a + b
        self.log_norm = -_log_beta(a, b)
        self.mode_z = math.log(a) - math.log(b)
        self.width = math.sqrt(1.0 / a + 1.0 / b)  # Laplace width of the logit density
        peak = self.log_density(self.mode_z)
        self.z_lo = max(self._reach(-1.0, peak), _Z_EDGE)
        self.z_hi = min(self._reach(1.0, peak), -_Z_EDGE)
        if self.z_hi - self.z_lo < 1e-9:  # all mass within 1e-15 of one end
            self.z_hi = self.z_lo + 1e-9
        self.lump_lo = _betainc(a, b, _TAIL_Q) if self.z_lo <= _Z_EDGE else 0.0
        self.lump_hi = _betainc(b, a, _TAIL_Q) if self.z_hi >= -_Z_EDGE else 0.0
        self.q_lo = _sigmoid(self.z_lo)
        self.q_hi = _sigmoid(self.z_hi)
        self.n = 0
        self.c_lo = self.c_hi = 0.0
        self.segs: list[tuple[float, float, float, int, int]] = []
        self.tab_F: list[float] = []
        self.tab_f: list[float] = []

    def log_density(self, z: float) -> float:
        """Normalised log-density of z = logit(q): a·z − (a + b)·softplus(z) − log B(a, b)."""
        return self.a * z - self.ab * _softplus(z) + self.log_norm

    def _reach(self, direction: float, peak: float) -> float:
        # walk out from the mode until the log-density has dropped by _DENSITY_DROP
        step = math.sqrt(2.0 * _DENSITY_DROP) * self.width
        for _ in range(80):
            z = self.mode_z + direction * step
            if peak - self.log_density(z) >= _DENSITY_DROP or abs(z) >= -_Z_EDGE:
                return z
            step *= 1.5
        return self.mode_z + direction * step

    def build_table(self) -> None:
        """Tabulate the CDF on a logit grid: spacing `width / _TABLE_RESOLUTION` within
        `_CORE_WIDTHS` + 1 widths of the mode, twice that in the tails; end-corrected trapezoid
        rule between nodes, total made exact."""
        if self.n:
            return
        core = min(self.width, 1.0) / _TABLE_RESOLUTION
        reach = _TABLE_CORE_WIDTHS * self.width
        c_lo = min(max(self.mode_z - reach, self.z_lo), self.z_hi)
        c_hi = max(min(self.mode_z + reach, self.z_hi), c_lo)
        segments: list[tuple[float, float, int] | None] = []  # (start, spacing, intervals); None if empty
        tail = _TABLE_TAIL_FACTOR * core
        for start, end, spacing in ((self.z_lo, c_lo, tail), (c_lo, c_hi, core), (c_hi, self.z_hi, tail)):
            if end - start <= 1e-12 * max(1.0, abs(start)):
                segments.append(None)
                continue
            count = math.ceil((end - start) / spacing)
            segments.append((start, (end - start) / count, count))
        a, ab, norm = self.a, self.ab, self.log_norm
        exp, log1p = math.exp, math.log1p
        zs = [self.z_lo]
        for seg in segments:
            if seg is not None:
                start, h, count = seg
                zs.extend(start + k * h for k in range(1, count + 1))
        if len(zs) < 2:  # support narrower than 1e-12: one interval
            zs.append(self.z_hi)
            segments = [None, (self.z_lo, self.z_hi - self.z_lo, 1), None]
        n = len(zs)
        g = [0.0] * n
        dg = [0.0] * n
        for k in range(n):
            z = zs[k]
            e = exp(-z if z > 0.0 else z)
            d = exp(a * z - ab * ((z if z > 0.0 else 0.0) + log1p(e)) + norm)
            g[k] = d
            dg[k] = d * (a - ab * (1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)))
        cum = [0.0] * n
        c = 0.0
        for k in range(n - 1):
            h = zs[k + 1] - zs[k]
            c += 0.5 * h * (g[k] + g[k + 1]) + h * h / 12.0 * (dg[k] - dg[k + 1])
            cum[k + 1] = c
        inner = 1.0 - self.lump_lo - self.lump_hi
        scale = inner / c if c > 0.0 else 0.0
        lump = self.lump_lo
        self.tab_F = [lump + x * scale for x in cum]
        self.tab_f = [x * scale for x in g]
        # lookup: (segment start, 1 / spacing, spacing, first node index, last usable index);
        # an empty tail or core borrows its neighbour (only rounding can send a lookup there)
        first = 0
        built: list[tuple[float, float, float, int, int] | None] = []
        for seg in segments:
            if seg is None:
                built.append(None)
                continue
            start, h, count = seg
            built.append((start, 1.0 / h, h, first, first + count - 1))
            first += count
        present = [b for b in built if b is not None]
        self.segs = [
            built[0] or present[0],
            built[1] or (built[0] or present[-1]),
            built[2] or present[-1],
        ]
        self.c_lo, self.c_hi = c_lo, c_hi
        self.n = n

    def cdf(self, q: float) -> float:
        """P(draw ≤ q) from the table (built on first use); the same formula is inlined below."""
        if q <= self.q_lo:
            return self.lump_lo if q >= _HALF_TAIL_Q else 0.0
        if q >= self.q_hi:
            return 1.0 - self.lump_hi if q < 1.0 - _HALF_TAIL_Q else 1.0
        self.build_table()
        z = _logit(q)
        start, inv_h, h, first, last = self.segs[0 if z < self.c_lo else (1 if z < self.c_hi else 2)]
        u = (z - start) * inv_h
        k = int(u)
        t = u - k
        k += first
        if k > last:
            k, t = last, 1.0
        t2 = t * t
        t3 = t2 * t
        big_f, f = self.tab_F, self.tab_f
        v = (
            (2.0 * t3 - 3.0 * t2 + 1.0) * big_f[k]
            + (t3 - 2.0 * t2 + t) * h * f[k]
            + (3.0 * t2 - 2.0 * t3) * big_f[k + 1]
            + (t3 - t2) * h * f[k + 1]
        )
        return 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


def _win_probability(
    arms: Sequence[Arm],
    shapes: Sequence[tuple[float, float]],
    i: int,
    quality_weight: float,
    cost_weight: float,
    cache: dict[tuple[float, float], _LogitBeta],
    *,
    strict: bool = False,
) -> float | None:
    """P_i: probability that arm i has the highest score in the Thompson step (ties → first arm).

    P_i = ∫ f_i(z) Π_j F_j(σ(z) + d_j) dz over arm i's logit z, by Gauss-Hermite quadrature when
    it is accurate (see the module docstring), else by Gauss-Legendre panels (`_nodes`); each
    rival's CDF is read from its table. Arms with identical shapes share one table (`cache` is
    keyed by shapes). With `strict`, returns None instead of a less accurate value when the
    panel budget is hit.
    """
    k = len(arms)
    if k == 1:
        return 1.0
    if quality_weight == 0.0:
        # scores are deterministic (−cost_weight·cost); the first best arm always wins
        best = max(range(k), key=lambda j: (-cost_weight * arms[j].cost_units, -j))
        return 1.0 if best == i else 0.0

    def dist(j: int) -> _LogitBeta:
        d = cache.get(shapes[j])
        if d is None:
            d = _LogitBeta(*shapes[j])
            cache[shapes[j]] = d
        return d

    me = dist(i)
    ratio = cost_weight / quality_weight
    competitors: list[tuple[_LogitBeta, float]] = []
    for j in range(k):
        if j == i:
            continue
        other = dist(j)
        shift = ratio * (arms[j].cost_units - arms[i].cost_units)  # j scores below i iff q_j < q_i + shift
        if me.q_lo + shift >= other.q_hi and me.lump_lo == 0.0 and other.lump_hi == 0.0:
            continue  # j is always below i
        if me.q_hi + shift <= other.q_lo and me.lump_hi == 0.0 and other.lump_lo == 0.0:
            return 0.0  # j is always above i
        competitors.append((other, shift))
    if not competitors:
        return 1.0
    if len(competitors) == 1 and k == 2:
        other, shift = competitors[0]
        if _feature_width(other, shift, me) < _GH_MIN_RATIO * _logit_sd(me):
            # a narrower rival: integrate over it instead, P_i = 1 − P(rival wins)
            flipped = _gauss_hermite_probability(other, [(me, -shift)])
            if flipped is not None:
                return min(max(1.0 - flipped, 0.0), 1.0)
    if all(_feature_width(o, sh, me) >= _GH_MIN_RATIO * _logit_sd(me) for o, sh in competitors):
        fast = _gauss_hermite_probability(me, competitors)
        if fast is not None:
            return fast
    zs, ws, resolved = _nodes(me, competitors)
    if strict and not resolved:
        return None
    return _integrate(me, zs, ws, competitors)


def _logit_sd(d: _LogitBeta) -> float:
    """Standard deviation of logit(q) for q ~ Beta(a, b): sqrt(ψ'(a) + ψ'(b))."""
    return math.sqrt(_trigamma(d.a) + _trigamma(d.b))


def _feature_width(other: _LogitBeta, shift: float, me: _LogitBeta) -> float:
    """Width (one sd) of `other`'s CDF step in `me`'s logit coordinate, at `other`'s mode; inf if
    the step falls outside (0, 1) there (the CDF is then flat over `me`'s range)."""
    q_other = _sigmoid(other.mode_z)
    q = q_other - shift
    if not (0.0 < q < 1.0):
        return math.inf
    return _logit_sd(other) * q_other * (1.0 - q_other) / (q * (1.0 - q))


def _gauss_hermite_probability(me: _LogitBeta, competitors: Sequence[tuple[_LogitBeta, float]]) -> float | None:
    """P(me beats every competitor) by Gauss-Hermite quadrature centred on me's logit mean.

    Returns None when the rule does not integrate me's own density to its mass within 1e-7
    (strongly skewed or heavy-tailed shapes): the caller then uses Gauss-Legendre panels.
    """
    mu = _digamma(me.a) - _digamma(me.b)
    scale = math.sqrt(2.0) * _logit_sd(me)
    zs = [mu + scale * x for x in _GH_X]
    ws = [w * scale for w in _GH_W_EXP]
    total, mass = _weighted_product(me, zs, ws, competitors)
    inner = 1.0 - me.lump_lo - me.lump_hi
    if abs(mass - inner) > _GH_MASS_TOLERANCE or me.lump_lo or me.lump_hi:
        return None
    return min(max(total / mass * inner, 0.0), 1.0)


def _integrate(
    me: _LogitBeta, zs: Sequence[float], ws: Sequence[float], competitors: Sequence[tuple[_LogitBeta, float]]
) -> float:
    total, mass = _weighted_product(me, zs, ws, competitors)
    inner = 1.0 - me.lump_lo - me.lump_hi
    prob = total / mass * inner if mass > 0.0 else 0.0
    if me.lump_lo:
        prob += me.lump_lo * _product_of_cdfs(competitors, _HALF_TAIL_Q)
    if me.lump_hi:
        prob += me.lump_hi * _product_of_cdfs(competitors, 1.0 - _HALF_TAIL_Q)
    return min(max(prob, 0.0), 1.0)


def _weighted_product(
    me: _LogitBeta, zs: Sequence[float], ws: Sequence[float], competitors: Sequence[tuple[_LogitBeta, float]]
) -> tuple[float, float]:
    """(Σ w·f_me(z)·Π_j F_j(σ(z) + shift_j), Σ w·f_me(z)) over the nodes z with weights w."""
    exp, log, log1p = math.exp, math.log, math.log1p
    n = len(zs)
    qs = [0.0] * n
    weight = [0.0] * n
    a, ab, norm = me.a, me.ab, me.log_norm
    for idx in range(n):
        z = zs[idx]
        e = exp(-z if z > 0.0 else z)
        weight[idx] = ws[idx] * exp(a * z - ab * ((z if z > 0.0 else 0.0) + log1p(e)) + norm)
        qs[idx] = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
    product = weight[:]  # f_i(z)·w, multiplied by each competitor's CDF in turn
    # Likeliest winners first: their CDFs zero out the nodes where this arm surely loses, and
    # later rivals are then read only at the nodes still alive.
    for other, shift in sorted(competitors, key=lambda c: c[1] - c[0].a / c[0].ab):
        live = [idx for idx in range(n) if product[idx] > _NEGLIGIBLE]
        if not live:
            break
        if qs[live[-1]] + shift <= other.q_lo or qs[live[0]] + shift >= other.q_hi:
            # every live node falls beyond this rival's support (nodes are sorted): no table needed
            for idx in live:
                product[idx] *= other.cdf(qs[idx] + shift)
            continue
        other.build_table()
        q_lo, q_hi, c_lo, c_hi = other.q_lo, other.q_hi, other.c_lo, other.c_hi
        seg_lo, seg_core, seg_hi = other.segs
        below, above = other.lump_lo, 1.0 - other.lump_hi
        big_f, f = other.tab_F, other.tab_f
        for idx in live:
            p = product[idx]
            x = qs[idx] + shift
            if x <= q_lo:
                product[idx] = p * below if x >= _HALF_TAIL_Q else 0.0
            elif x >= q_hi:
                if x < 1.0 - _HALF_TAIL_Q:
                    product[idx] = p * above
            else:
                z = log(x) - log1p(-x)
                start, inv_h, h, first, last = seg_lo if z < c_lo else (seg_core if z < c_hi else seg_hi)
                u = (z - start) * inv_h
                kk = int(u)
                t = u - kk
                kk += first
                if kk > last:
                    kk, t = last, 1.0
                t2 = t * t
                t3 = t2 * t
                v = (
                    (2.0 * t3 - 3.0 * t2 + 1.0) * big_f[kk]
                    + (t3 - 2.0 * t2 + t) * h * f[kk]
                    + (3.0 * t2 - 2.0 * t3) * big_f[kk + 1]
                    + (t3 - t2) * h * f[kk + 1]
                )
                product[idx] = p * (0.0 if v < 0.0 else (1.0 if v > 1.0 else v))
    return math.fsum(product), math.fsum(weight)


def _product_of_cdfs(competitors: Iterable[tuple[_LogitBeta, float]], q: float) -> float:
    p = 1.0
    for other, shift in competitors:
        p *= other.cdf(q + shift)
    return p


def _nodes(me: _LogitBeta, competitors: Iterable[tuple[_LogitBeta, float]]) -> tuple[list[float], list[float], bool]:
    """Gauss-Legendre nodes and weights over the picked arm's logit support, in increasing order.

    Panels are as wide as the narrowest feature at each point: this arm's own `_PANEL_WIDTHS`
    Laplace widths (growing linearly with the distance beyond `_CORE_WIDTHS` + 2 widths, where
    its exponential tails change slowly), or a rival's panel width (same rule in its own logit)
    mapped into this arm's coordinate wherever that rival's CDF is not flat
    (dz_me = dq / q(1−q), dq = q_o(1−q_o) dz_o), with cuts where each rival's support begins and
    ends and at its end point masses.
    Returns nodes, weights and whether the panel budget sufficed.
    """
    z_lo, z_hi = me.z_lo, me.z_hi
    q_lo, q_hi = me.q_lo, me.q_hi
    core = _PANEL_WIDTHS * min(me.width, 1.0)
    reach = (_CORE_WIDTHS + 2.0) * me.width
    forced: list[float] = []
    rivals: list[tuple[float, float, float, _LogitBeta]] = []
    for other, shift in competitors:
        for x in (_HALF_TAIL_Q - shift, 1.0 - _HALF_TAIL_Q - shift):  # end masses are steps: cut there
            if q_lo < x < q_hi:
                forced.append(_logit(x))
        start = max(other.q_lo - shift, q_lo)
        end = min(other.q_hi - shift, q_hi)
        if end <= start:
            continue
        z_start, z_end = _logit(start), _logit(end)
        forced += [z_start, z_end]
        rivals.append((z_start, z_end, shift, other))
    forced = sorted(f for f in forced if z_lo < f < z_hi)

    def panel_width(z: float) -> float:
        distance = abs(z - me.mode_z) - reach
        width = core + (_TAIL_GROWTH - 1.0) * distance if distance > 0.0 else core
        q = _sigmoid(z)
        for z_start, z_end, shift, other in rivals:
            if z_start <= z < z_end:
                # one panel of the rival, taken in its own logit and mapped back exactly
                z_other = _logit(min(max(q + shift, other.q_lo), other.q_hi))
                far = abs(z_other - other.mode_z) - (_CORE_WIDTHS + 2.0) * other.width
                step = _PANEL_WIDTHS * min(other.width, 1.0) + (_TAIL_GROWTH - 1.0) * max(far, 0.0)
                landing = _sigmoid(z_other + step) - shift
                if landing < q_hi:
                    width = min(width, _logit(landing) - z)
        return max(width, 1e-9)

    cuts = [z_lo]
    z = z_lo
    k = 0
    while z < z_hi and len(cuts) <= 4 * _MAX_PANELS:
        nxt = z + panel_width(z)
        while k < len(forced) and forced[k] <= z:
            k += 1
        if k < len(forced) and forced[k] < nxt:
            nxt = forced[k]
        z = min(nxt, z_hi)
        cuts.append(z)
    if cuts[-1] < z_hi:
        cuts.append(z_hi)
    resolved = len(cuts) - 1 <= _MAX_PANELS
    if not resolved:
        stride = (len(cuts) - 1) / _MAX_PANELS
        cuts = [cuts[min(len(cuts) - 1, round(s * stride))] for s in range(_MAX_PANELS + 1)]
    zs: list[float] = []
    ws: list[float] = []
    for lo, hi in pairwise(cuts):
        if hi <= lo:
            continue
        half = 0.5 * (hi - lo)
        mid = lo + half
        for x, w in zip(_GL_X, _GL_W, strict=True):
            zs.append(mid + half * x)
            ws.append(half * w)
    return zs, ws, resolved


# --------------------------------------------------------------------------- Beta special functions


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b
    return math.exp(log_front) * _betacf(a, b, x) / a


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 100_000):
        m2 = 2 * m
        num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        result *= step
        if abs(step - 1.0) < 1e-15:
            return result
    raise BanditError(f"incomplete beta did not converge for a={a!r}, b={b!r}, x={x!r}")


def _beta_quantile(a: float, b: float, p: float) -> float:
    """q with I_q(a, b) = p: bisection on the tabulated CDF (error ≲ 1e-4 in p), then Newton
    steps on the exact incomplete beta when it is cheap (a + b ≤ 1e6)."""
    dist = _LogitBeta(a, b)
    if p <= dist.lump_lo:
        return _HALF_TAIL_Q
    if p >= 1.0 - dist.lump_hi:
        return 1.0 - _HALF_TAIL_Q
    lo, hi = dist.z_lo, dist.z_hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if dist.cdf(_sigmoid(mid)) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-6 * dist.width:
            break
    q = _sigmoid(0.5 * (lo + hi))
    if a + b > 1e6:
        return q
    log_norm = _log_beta(a, b)
    for _ in range(4):
        density = math.exp((a - 1.0) * math.log(q) + (b - 1.0) * math.log1p(-q) - log_norm)
        if not (density > 0.0 and math.isfinite(density)):
            break
        nxt = q - (_betainc(a, b, q) - p) / density
        if not (0.0 < nxt < 1.0) or abs(nxt - q) < 1e-15:
            break
        q = nxt
    return q
