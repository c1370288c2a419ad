"""Propensity: the probability that Thompson sampling picks arm i, integrated numerically.

Pure and standard-library only (it ships in the Lambda layer). `bandit.pick_model` logs
P(model i is picked) = floor/K + (1 − floor) · P_i with every decision, and `bandit.pick_shares`
shows every P_i on the dashboard; this module computes

    P_i = P(score_i > score_j for all j ≠ i) = ∫ f_i(q) Π_j F_j(q + d_ij) dq,

d_ij = (cost_weight / quality_weight)(c_j − c_i), f and F the (tempered) Beta density and CDF.
The integral is computed, not sampled (no noise between two dashboard polls):

* every Beta is handled in logit space (`beta_distribution.LogitBeta`): a smooth, log-concave
  density, end point masses kept exactly, and each rival's CDF read from a table;
* the outer integral is a `_GAUSS_HERMITE_POINTS`-point Gauss–Hermite rule centred on the picked
  arm's logit mean when every rival's CDF step is at least `_GH_MIN_RATIO` of that arm's width
  and the rule integrates the arm's own density to within `_GH_MASS_TOLERANCE` (with two arms,
  the rule may run over the narrower one: P_i = 1 − P_j); otherwise composite 4-point
  Gauss–Legendre panels over the picked arm's support, as narrow as the narrowest rival that
  overlaps them (`_nodes`). Rivals that cannot overlap the picked arm (beyond its 1e-10 density
  tails) are skipped.

Accuracy: `tests/unit/test_bandit.py` pins two-arm values to 3e-5 against direct Simpson
integration and many-arm values against Monte Carlo; a wider check against SciPy's incomplete
beta over 250 random arm sets (2 to 10 arms, shapes 0.5 to 10⁶, costs 0 to 1) found at most
4.1e-5 absolute error. Cost, 10 models on a shared 2-core machine (`benchmarks/decision_overhead.py`):
pick_model p50 ≈ 0.25 ms with all arms cold, ≈ 0.4 ms with learned arms (p99 ≈ 0.3 / 0.85 ms);
about 0.06 ms for two models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise

from router_core.beta_distribution import HALF_TAIL_Q, LogitBeta, digamma, logit, sigmoid, trigamma

__all__ = ["win_probability"]


Rival = tuple[LogitBeta, float]
"""A rival arm's distribution and its shift d: it scores below the picked arm iff q_rival < q + d."""

_PANEL_WIDTHS = 2.0
"""Gauss–Legendre panel width, in Laplace widths of the narrowest overlapping arm (widths above 1
logit unit count as 1): narrower panels cost nodes on every decision, wider ones accuracy; the
accuracy above was measured at 2."""
_PANEL_CORE_WIDTHS = 5.0
"""Panels keep that width within this many Laplace widths of an arm's mode ..."""
_TAIL_GROWTH = 1.4
"""... and beyond, widen by (this − 1) × the extra distance: log-concave tails are close to
exponential, so the density changes more slowly the farther out it is."""
_MAX_PANELS = 200
"""Panel budget of one integral (800 nodes). An input that needs more (a very wide arm against very
narrow rivals) is integrated on this many resampled panels, less accurately; `pick_shares` then
estimates by sampling instead (`strict`)."""
_CUT_SEARCH_FACTOR = 4
"""Laying panels stops at this many times the budget: such an input is resampled to the budget anyway."""
_MIN_PANEL_WIDTH = 1e-9
"""No panel is narrower than this (logit units), so laying panels always advances."""
_NEGLIGIBLE = 1e-16
"""A node whose weighted product is below this adds nothing to a total of order 1 (double precision
ends at ~1e-16), so later rivals' CDFs are not read there."""

_GAUSS_HERMITE_POINTS = 24
"""Nodes of the Gauss–Hermite rule: exact for polynomials of degree 47 times the Gaussian weight;
enough for a logit density close to Gaussian times rivals' smooth CDF steps."""
_GH_MIN_RATIO = 0.7
"""Gauss–Hermite only when every rival's CDF step is at least this many sd of the picked arm wide:
a sharper step falls between the rule's nodes."""
_GH_MASS_TOLERANCE = 1e-7
"""... and only when the rule integrates the picked arm's own density to its mass within this: the
check that the density is close enough to a Gaussian in logit (strongly skewed shapes are not)."""
_NEWTON_MAX_STEPS = 100
"""Newton steps per Gauss–Hermite root at most (a handful suffice from the starting guesses)."""
_NEWTON_STOP = 1e-15
"""A Newton step shorter than this ends the search for one root."""
_HERMITE_P0 = math.pi**-0.25
"""The orthonormal Hermite polynomial of degree 0 under the weight e^{-x²}: π^(−1/4)."""

_GL_X = (-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526)
"""Nodes of the 4-point Gauss–Legendre rule on [−1, 1]: ±√(3/7 + 2/7·√(6/5)), ±√(3/7 − 2/7·√(6/5))."""
_GL_W = (0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538)
"""Its weights, (18 − √30)/36 outside and (18 + √30)/36 inside: exact for polynomials of degree 7."""


def _gauss_hermite(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights of the n-point Gauss-Hermite rule (weight e^{-x²}), by Newton's method
    on the orthonormal Hermite recurrence (n even); weights are returned multiplied by e^{x²}.

    The starting guesses for the largest roots are Numerical Recipes' (`gauher`): empirical
    asymptotic fits (1.85575, 1.14·n^0.426, 1.86 / 0.86, 1.91 / 0.91), each later root
    extrapolated from the two before it. Only starting points: Newton's method sets the digits.
    """
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
        for _ in range(_NEWTON_MAX_STEPS):
            p1, p2 = _HERMITE_P0, 0.0
            for j in range(1, n + 1):
                p1, p2 = z * math.sqrt(2.0 / j) * p1 - math.sqrt((j - 1.0) / j) * p2, p1
            dp = math.sqrt(2.0 * n) * p2
            step = p1 / dp
            z -= step
            if abs(step) < _NEWTON_STOP:
                break
        xs.append(z)
        ws.append(2.0 / (dp * dp))
    nodes = [-x for x in xs] + xs[::-1]  # n is even: the roots come in ± pairs
    weights = ws + ws[::-1]
    return tuple(nodes), tuple(w * math.exp(x * x) for x, w in zip(nodes, weights, strict=True))


_GH_X, _GH_W_EXP = _gauss_hermite(_GAUSS_HERMITE_POINTS)


# --------------------------------------------------------------------------- the win probability


def win_probability(
    shapes: Sequence[tuple[float, float]],
    costs: Sequence[float],
    i: int,
    quality_weight: float,
    cost_weight: float,
    cache: dict[tuple[float, float], LogitBeta],
    *,
    strict: bool = False,
) -> float | None:
    """P_i: probability that arm i has the highest score in the Thompson step (ties → first arm).

    `shapes` are the Beta shapes each arm is sampled from, `costs` its cost units. P_i = ∫ f_i(z) Π_j F_j(σ(z) + d_j) dz
    over arm i's logit z, by Gauss-Hermite quadrature when it is accurate (see the module
    docstring), else by Gauss-Legendre panels (`_nodes`); each rival's CDF is read from its
    table. Arms with identical shapes share one table (`cache` is keyed by shapes). With
    `strict`, returns None instead of a less accurate value when the panel budget is hit.
    """
    k = len(shapes)
    if k == 1:
        return 1.0
    if quality_weight == 0.0:
        return _cheapest_wins(costs, i, cost_weight)
    me = _logit_beta(shapes[i], cache)
    competitors = _overlapping_rivals(shapes, costs, i, cost_weight / quality_weight, me, cache)
    if competitors is None:
        return 0.0  # some rival always scores above arm i
    if not competitors:
        return 1.0
    sd = _logit_sd(me)
    if len(competitors) == 1 and k == 2:
        flipped = _via_narrower_rival(me, sd, *competitors[0])
        if flipped is not None:
            return flipped
    if all(_feature_width(o, sh, me) >= _GH_MIN_RATIO * sd for o, sh in competitors):
        fast = _gauss_hermite_probability(me, competitors)
        if fast is not None:
            return fast
    zs, ws, resolved = _nodes(me, competitors)
    if strict and not resolved:
        return None
    return _integrate(me, zs, ws, competitors)


def _cheapest_wins(costs: Sequence[float], i: int, cost_weight: float) -> float:
    """With quality_weight 0, scores are deterministic (−cost_weight·cost): the first best arm always wins."""
    best = max(range(len(costs)), key=lambda j: (-cost_weight * costs[j], -j))
    return 1.0 if best == i else 0.0


def _logit_beta(shape: tuple[float, float], cache: dict[tuple[float, float], LogitBeta]) -> LogitBeta:
    """The `LogitBeta` of these shapes, made once per cache."""
    d = cache.get(shape)
    if d is None:
        d = LogitBeta(*shape)
        cache[shape] = d
    return d


def _overlapping_rivals(
    shapes: Sequence[tuple[float, float]],
    costs: Sequence[float],
    i: int,
    ratio: float,
    me: LogitBeta,
    cache: dict[tuple[float, float], LogitBeta],
) -> list[Rival] | None:
    """The rivals whose score can fall on either side of arm i's, with their shifts; None as soon
    as one always scores above arm i. Rivals always below it are left out (their CDF is 1)."""
    competitors: list[Rival] = []
    for j in range(len(shapes)):
        if j == i:
            continue
        other = _logit_beta(shapes[j], cache)
        shift = ratio * (costs[j] - costs[i])  # j scores below i iff q_j < q_i + shift
        if me.q_lo + shift >= other.q_hi and me.lump_lo == 0.0 and other.lump_hi == 0.0:
            continue  # j is always below i
        if me.q_hi + shift <= other.q_lo and me.lump_hi == 0.0 and other.lump_lo == 0.0:
            return None  # j is always above i
        competitors.append((other, shift))
    return competitors


def _via_narrower_rival(me: LogitBeta, sd: float, other: LogitBeta, shift: float) -> float | None:
    """Two arms, the rival narrower than arm i (sd = arm i's logit sd): integrate over the rival
    instead, P_i = 1 − P(rival wins). None when that does not apply or is not accurate."""
    if _feature_width(other, shift, me) < _GH_MIN_RATIO * sd:
        flipped = _gauss_hermite_probability(other, [(me, -shift)])
        if flipped is not None:
            return min(max(1.0 - flipped, 0.0), 1.0)
    return None


def _logit_sd(d: LogitBeta) -> float:
    """Standard deviation of logit(q) for q ~ Beta(a, b): sqrt(ψ'(a) + ψ'(b))."""
    return math.sqrt(trigamma(d.a) + trigamma(d.b))


def _feature_width(other: LogitBeta, shift: float, me: LogitBeta) -> float:
    """Width (one sd) of `other`'s CDF step in `me`'s logit coordinate, at `other`'s mode; inf if
    the step falls outside (0, 1) there (the CDF is then flat over `me`'s range)."""
    q_other = sigmoid(other.mode_z)
    q = q_other - shift
    if not (0.0 < q < 1.0):
        return math.inf
    return _logit_sd(other) * q_other * (1.0 - q_other) / (q * (1.0 - q))


def _gauss_hermite_probability(me: LogitBeta, competitors: Sequence[Rival]) -> float | None:
    """P(me beats every competitor) by Gauss-Hermite quadrature centred on me's logit mean
    ψ(a) − ψ(b), scaled by √2 · its logit sd (the rule's weight is e^{−x²}).

    Returns None when the rule does not integrate me's own density to its mass within
    `_GH_MASS_TOLERANCE` (strongly skewed or heavy-tailed shapes), or me has end point masses:
    the caller then uses Gauss-Legendre panels.
    """
    mu = digamma(me.a) - digamma(me.b)
    scale = math.sqrt(2.0) * _logit_sd(me)
    zs = [mu + scale * x for x in _GH_X]
    ws = [w * scale for w in _GH_W_EXP]
    total, mass = _weighted_product(me, zs, ws, competitors)
    inner = 1.0 - me.lump_lo - me.lump_hi
    if abs(mass - inner) > _GH_MASS_TOLERANCE or me.lump_lo or me.lump_hi:
        return None
    return min(max(total / mass * inner, 0.0), 1.0)


def _integrate(me: LogitBeta, zs: Sequence[float], ws: Sequence[float], competitors: Sequence[Rival]) -> float:
    """P(me beats every competitor) on the given nodes, plus me's end point masses."""
    total, mass = _weighted_product(me, zs, ws, competitors)
    inner = 1.0 - me.lump_lo - me.lump_hi
    prob = total / mass * inner if mass > 0.0 else 0.0
    if me.lump_lo:
        prob += me.lump_lo * _product_of_cdfs(competitors, HALF_TAIL_Q)
    if me.lump_hi:
        prob += me.lump_hi * _product_of_cdfs(competitors, 1.0 - HALF_TAIL_Q)
    return min(max(prob, 0.0), 1.0)


def _weighted_product(
    me: LogitBeta, zs: Sequence[float], ws: Sequence[float], competitors: Sequence[Rival]
) -> tuple[float, float]:
    """(Σ w·f_me(z)·Π_j F_j(σ(z) + shift_j), Σ w·f_me(z)) over the nodes z with weights w."""
    qs, weight = _density_weights(me, zs, ws)
    n = len(zs)
    product = weight[:]  # f_i(z)·w, multiplied by each competitor's CDF in turn
    # Likeliest winners first: their CDFs zero out the nodes where this arm surely loses, and
    # later rivals are then read only at the nodes still alive.
    for other, shift in sorted(competitors, key=lambda c: c[1] - c[0].a / c[0].ab):
        live = [idx for idx in range(n) if product[idx] > _NEGLIGIBLE]
        if not live:
            break
        other.multiply_by_cdf(product, live, qs, shift)
    return math.fsum(product), math.fsum(weight)


def _density_weights(me: LogitBeta, zs: Sequence[float], ws: Sequence[float]) -> tuple[list[float], list[float]]:
    """(σ(z), w·f_me(z)) at every node z with weight w (the log-density of `LogitBeta`, inlined)."""
    exp, log1p = math.exp, math.log1p
    n = len(zs)
    qs = [0.0] * n
    weight = [0.0] * n
    a, ab, norm = me.a, me.ab, me.log_norm
    for idx in range(n):
        z = zs[idx]
        e = exp(-z if z > 0.0 else z)
        weight[idx] = ws[idx] * exp(a * z - ab * ((z if z > 0.0 else 0.0) + log1p(e)) + norm)
        qs[idx] = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
    return qs, weight


def _product_of_cdfs(competitors: Iterable[Rival], q: float) -> float:
    p = 1.0
    for other, shift in competitors:
        p *= other.cdf(q + shift)
    return p


# --------------------------------------------------------------------------- Gauss-Legendre panels


def _nodes(me: LogitBeta, competitors: Iterable[Rival]) -> tuple[list[float], list[float], bool]:
    """Gauss-Legendre nodes and weights over the picked arm's logit support, in increasing order.

    Panels are as wide as the narrowest feature at each point (`_panel_width`), with cuts where
    each rival's support begins and ends and at its end point masses.
    Returns nodes, weights and whether the panel budget sufficed.
    """
    forced, rivals = _forced_cuts(me, competitors)
    cuts = _panel_cuts(me, forced, rivals)
    resolved = len(cuts) - 1 <= _MAX_PANELS
    if not resolved:
        stride = (len(cuts) - 1) / _MAX_PANELS
        cuts = [cuts[min(len(cuts) - 1, round(s * stride))] for s in range(_MAX_PANELS + 1)]
    zs, ws = _gauss_legendre(cuts)
    return zs, ws, resolved


def _forced_cuts(
    me: LogitBeta, competitors: Iterable[Rival]
) -> tuple[list[float], list[tuple[float, float, float, LogitBeta]]]:
    """Sorted logit points a panel must end at (where a rival's support or end mass begins or
    ends), and each overlapping rival as (z_start, z_end, shift, dist) in me's logit."""
    z_lo, z_hi = me.z_lo, me.z_hi
    q_lo, q_hi = me.q_lo, me.q_hi
    forced: list[float] = []
    rivals: list[tuple[float, float, float, LogitBeta]] = []
    for other, shift in competitors:
        for x in (HALF_TAIL_Q - shift, 1.0 - HALF_TAIL_Q - shift):  # end masses are steps: cut there
            if q_lo < x < q_hi:
                forced.append(logit(x))
        start = max(other.q_lo - shift, q_lo)
        end = min(other.q_hi - shift, q_hi)
        if end <= start:
            continue
        z_start, z_end = logit(start), logit(end)
        forced += [z_start, z_end]
        rivals.append((z_start, z_end, shift, other))
    return sorted(f for f in forced if z_lo < f < z_hi), rivals


def _panel_width(
    z: float, me: LogitBeta, rivals: Sequence[tuple[float, float, float, LogitBeta]], core: float, reach: float
) -> float:
    """Width of the panel starting at z: this arm's own `_PANEL_WIDTHS` Laplace widths (`core`,
    growing linearly beyond `reach` from the mode, where its exponential tails change slowly),
    or a rival's panel width (same rule in its own logit) mapped into this arm's coordinate
    wherever that rival's CDF is not flat (dz_me = dq / q(1−q), dq = q_o(1−q_o) dz_o)."""
    distance = abs(z - me.mode_z) - reach
    width = core + (_TAIL_GROWTH - 1.0) * distance if distance > 0.0 else core
    q = sigmoid(z)
    q_hi = me.q_hi
    for z_start, z_end, shift, other in rivals:
        if z_start <= z < z_end:
            # one panel of the rival, taken in its own logit and mapped back exactly
            z_other = logit(min(max(q + shift, other.q_lo), other.q_hi))
            far = abs(z_other - other.mode_z) - _PANEL_CORE_WIDTHS * other.width
            step = _PANEL_WIDTHS * min(other.width, 1.0) + (_TAIL_GROWTH - 1.0) * max(far, 0.0)
            landing = sigmoid(z_other + step) - shift
            if landing < q_hi:
                width = min(width, logit(landing) - z)
    return max(width, _MIN_PANEL_WIDTH)


def _panel_cuts(
    me: LogitBeta, forced: Sequence[float], rivals: Sequence[tuple[float, float, float, LogitBeta]]
) -> list[float]:
    """Panel boundaries from z_lo to z_hi, each panel `_panel_width` wide or ending at the next
    forced cut; the walk gives up at `_CUT_SEARCH_FACTOR` × `_MAX_PANELS` cuts."""
    z_lo, z_hi = me.z_lo, me.z_hi
    core = _PANEL_WIDTHS * min(me.width, 1.0)
    reach = _PANEL_CORE_WIDTHS * me.width
    cuts = [z_lo]
    z = z_lo
    k = 0
    while z < z_hi and len(cuts) <= _CUT_SEARCH_FACTOR * _MAX_PANELS:
        nxt = z + _panel_width(z, me, rivals, core, reach)
        while k < len(forced) and forced[k] <= z:
            k += 1
        if k < len(forced) and forced[k] < nxt:
            nxt = forced[k]
        z = min(nxt, z_hi)
        cuts.append(z)
    if cuts[-1] < z_hi:
        cuts.append(z_hi)
    return cuts


def _gauss_legendre(cuts: Sequence[float]) -> tuple[list[float], list[float]]:
    """The 4-point Gauss-Legendre rule on every panel between consecutive cuts (empty ones skipped)."""
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
    return zs, ws
