"""The Beta distribution, numerically: special functions and Beta(a, b) seen in logit space.

Pure and standard-library only (it ships in the Lambda layer). Two users: `posterior` (credible
intervals, `beta_quantile`) and `propensity` (rivals' CDFs inside the win-probability integral).

Why logit space: the density of z = logit(q) = log(q / (1 − q)) for q ~ Beta(a, b) is
σ(z)^a (1 − σ(z))^b / B(a, b), smooth and log-concave for every a, b > 0, without the end-point
singularities the density of q has when a or b < 1. `LogitBeta` holds, for one (a, b):

* an effective support [z_lo, z_hi] that ends where the density has dropped `_DENSITY_DROP` below
  its peak, or at logit(`_TAIL_Q`);
* the mass closer than `_TAIL_Q` to 0 or 1, kept exactly (regularized incomplete beta) as a point
  mass at `HALF_TAIL_Q` or 1 − `HALF_TAIL_Q`, so no probability is lost;
* a CDF table on a logit grid (0.4 of a Laplace width apart within 3.5 widths of the mode, 0.8
  beyond), built on first use by integrating the density with the end-corrected trapezoid rule
  and read back by cubic Hermite interpolation (the density is the CDF's exact derivative).
"""

from __future__ import annotations

import math

from router_core.errors import BanditError

__all__ = [
    "HALF_TAIL_Q",
    "LogitBeta",
    "beta_quantile",
    "betainc",
    "digamma",
    "log_beta",
    "logit",
    "sigmoid",
    "softplus",
    "trigamma",
]

_TAIL_Q = 1e-15
"""Mass this close to 0 or 1 is kept as a point mass at that end: only about nine doubles below 1
(their spacing there is 1.1e-16), so finer q values next to 1 could not be told apart anyway."""
_Z_EDGE = math.log(_TAIL_Q / (1.0 - _TAIL_Q))
"""logit(`_TAIL_Q`) ≈ −34.5: no support reaches beyond ±this."""
HALF_TAIL_Q = 0.5 * _TAIL_Q
"""Where an end point mass sits (q = this, or 1 − this): inside the end band, beyond every support."""
_DENSITY_DROP = 23.0
"""Supports end where the log-density is this far below its peak (e^-23 ≈ 1e-10): the log-concave
tail beyond holds far less mass than the integral's ~1e-5 accuracy."""
_MIN_SUPPORT_WIDTH = 1e-9
"""A support narrower than this (logit units; all the mass is within `_TAIL_Q` of one end) is
widened to it, so the CDF table still has an interval."""
_REACH_GROWTH = 1.5
"""The walk out from the mode to the support's end lengthens its step by this factor each time ..."""
_REACH_MAX_STEPS = 80
"""... for at most this many steps (1.5^80 ≈ 1e14 times the first step: past `_Z_EDGE` for any width)."""
_TABLE_RESOLUTION = 2.5
"""CDF table nodes per Laplace width near the mode (widths above 1 logit unit count as 1): finer
tables cost build time on every decision (tables live for one decision), coarser ones accuracy;
the accuracy quoted in `propensity` was measured at 2.5."""
_TABLE_CORE_WIDTHS = 3.5
"""The table keeps that resolution within this many Laplace widths of the mode, where the CDF
rises fastest ..."""
_TABLE_TAIL_FACTOR = 2.0
"""... and is this many times sparser beyond (log-concave tails change slowly)."""
_EMPTY_SEGMENT = 1e-12
"""A table segment shorter than this, relative to max(1, |its start|), is empty: only rounding made it."""

_ASYMPTOTIC_FROM = 6.0
"""digamma / trigamma shift x up to here by their recurrences: from 6 on, their truncated asymptotic
series are accurate to ~1e-10, far below the integral's ~1e-5."""
_LENTZ_TINY = 1e-300
"""Modified Lentz method: a denominator that reaches zero is replaced by this."""
_CONTINUED_FRACTION_TOLERANCE = 1e-15
"""The continued fraction stops when a step changes the value by less than this (relative)."""
_CONTINUED_FRACTION_MAX_TERMS = 100_000
"""It needs about √(max(a, b)) terms; beyond this many it has failed and `betainc` raises."""
_QUANTILE_MAX_BISECTIONS = 200
"""Upper bound on `beta_quantile`'s bisection steps (the width test below ends it long before)."""
_QUANTILE_BISECTION_WIDTHS = 1e-6
"""Bisection stops once the bracket is this many Laplace widths wide: below the table's own error."""
_QUANTILE_NEWTON_MAX_MASS = 1e6
"""Newton polishing runs only for a + b up to this: beyond, the incomplete beta's continued fraction
needs about √(a + b) terms per step and the table's ~1e-4 in p is kept."""
_QUANTILE_NEWTON_STEPS = 4
"""Newton converges quadratically from the bisection's answer: 4 steps reach double precision."""
_QUANTILE_NEWTON_STOP = 1e-15
"""A Newton step shorter than this ends the polish."""


# --------------------------------------------------------------------------- special functions


def log_beta(a: float, b: float) -> float:
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b)."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz).

    The fraction converges fast for x below the mean-like point (a + 1) / (a + b + 2); above it,
    the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) is used instead.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - log_beta(a, b)
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b
    return math.exp(log_front) * _betacf(a, b, x) / a


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes `betacf`), two terms per step."""
    tiny = _LENTZ_TINY
    tolerance = _CONTINUED_FRACTION_TOLERANCE
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, _CONTINUED_FRACTION_MAX_TERMS):
        m2 = 2 * m
        num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))  # even term
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))  # odd term
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        result *= step
        if abs(step - 1.0) < tolerance:
            return result
    raise BanditError(f"incomplete beta did not converge for a={a!r}, b={b!r}, x={x!r}")


def digamma(x: float) -> float:
    """ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to `_ASYMPTOTIC_FROM`, then
    ψ(x) ≈ ln x − 1/(2x) − Σₖ B₂ₖ / (2k·x²ᵏ), k = 1..5 (Bernoulli numbers: B₂ₖ / 2k = 1/12, −1/120,
    1/252, −1/240, 1/132)."""
    r = 0.0
    while x < _ASYMPTOTIC_FROM:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))


def trigamma(x: float) -> float:
    """ψ'(x) for x > 0: the recurrence ψ'(x) = ψ'(x + 1) + 1/x² up to `_ASYMPTOTIC_FROM`, then
    ψ'(x) ≈ 1/x + 1/(2x²) + Σₖ B₂ₖ / x²ᵏ⁺¹, k = 1..4 (B₂ₖ = 1/6, −1/30, 1/42, −1/30)."""
    r = 0.0
    while x < _ASYMPTOTIC_FROM:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return r + 1.0 / x + f / 2.0 + f / x * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f / 30)))


def softplus(z: float) -> float:
    """log(1 + e^z), without overflow."""
    return (z if z > 0.0 else 0.0) + math.log1p(math.exp(-abs(z)))


def sigmoid(z: float) -> float:
    """σ(z) = 1 / (1 + e^−z), without overflow."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logit(q: float) -> float:
    """log(q / (1 − q)) for q in (0, 1)."""
    return math.log(q) - math.log1p(-q)


# --------------------------------------------------------------------------- Beta in logit space


class LogitBeta:
    """Beta(a, b) seen in logit space: effective support, end point masses and a CDF table.

    The density of z = logit(q) is σ(z)^a (1 − σ(z))^b / B(a, b): smooth and log-concave.
    The support [z_lo, z_hi] ends where the density has dropped by `_DENSITY_DROP` from its peak,
    or at logit(`_TAIL_Q`); the mass beyond `_TAIL_Q` of an end (`lump_lo`, `lump_hi`, exact) is
    treated as a point mass at `HALF_TAIL_Q` or 1 − `HALF_TAIL_Q`.
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
        self.log_norm = -log_beta(a, b)
        self.mode_z = math.log(a) - math.log(b)
        self.width = math.sqrt(1.0 / a + 1.0 / b)  # Laplace width of the logit density
        peak = self.log_density(self.mode_z)
        self.z_lo = max(self._reach(-1.0, peak), _Z_EDGE)
        self.z_hi = min(self._reach(1.0, peak), -_Z_EDGE)
        if self.z_hi - self.z_lo < _MIN_SUPPORT_WIDTH:
            self.z_hi = self.z_lo + _MIN_SUPPORT_WIDTH
        self.lump_lo = betainc(a, b, _TAIL_Q) if self.z_lo <= _Z_EDGE else 0.0
        self.lump_hi = betainc(b, a, _TAIL_Q) if self.z_hi >= -_Z_EDGE else 0.0
        self.q_lo = sigmoid(self.z_lo)
        self.q_hi = sigmoid(self.z_hi)
        self.n = 0  # table nodes; 0 until `build_table`
        self.c_lo = self.c_hi = 0.0  # where the table's dense core begins and ends (logit)
        self.segs: list[tuple[float, float, float, int, int]] = []
        self.tab_F: list[float] = []
        self.tab_f: list[float] = []

    def log_density(self, z: float) -> float:
        """Normalised log-density of z = logit(q): a·z − (a + b)·softplus(z) − log B(a, b)."""
        return self.a * z - self.ab * softplus(z) + self.log_norm

    def _reach(self, direction: float, peak: float) -> float:
        """Walk out from the mode until the log-density has dropped by `_DENSITY_DROP`. The first
        step is where a Gaussian of this width would have dropped that much: √(2·drop) widths."""
        step = math.sqrt(2.0 * _DENSITY_DROP) * self.width
        for _ in range(_REACH_MAX_STEPS):
            z = self.mode_z + direction * step
            if peak - self.log_density(z) >= _DENSITY_DROP or abs(z) >= -_Z_EDGE:
                return z
            step *= _REACH_GROWTH
        return self.mode_z + direction * step

    def build_table(self) -> None:
        """Tabulate the CDF on a logit grid: spacing width / `_TABLE_RESOLUTION` within
        `_TABLE_CORE_WIDTHS` widths of the mode, `_TABLE_TAIL_FACTOR` times that in the tails;
        end-corrected trapezoid rule between nodes, total made exact."""
        if self.n:
            return
        c_lo, c_hi, segments = self._table_segments()
        zs, segments = self._table_nodes(segments)
        density, slope = self._density_and_slope(zs)
        cum = _cumulative_integral(zs, density, slope)
        total = cum[-1]
        inner = 1.0 - self.lump_lo - self.lump_hi
        scale = inner / total if total > 0.0 else 0.0
        lump = self.lump_lo
        self.tab_F = [lump + x * scale for x in cum]
        self.tab_f = [x * scale for x in density]
        self.segs = _segment_lookup(segments)
        self.c_lo, self.c_hi = c_lo, c_hi
        self.n = len(zs)

    def _table_segments(self) -> tuple[float, float, list[tuple[float, float, int] | None]]:
        """The table's dense core [c_lo, c_hi] and its three segments (low tail, core, high tail),
        each (start, spacing, intervals) or None when empty."""
        core = min(self.width, 1.0) / _TABLE_RESOLUTION
        reach = _TABLE_CORE_WIDTHS * self.width
        c_lo = min(max(self.mode_z - reach, self.z_lo), self.z_hi)
        c_hi = max(min(self.mode_z + reach, self.z_hi), c_lo)
        segments: list[tuple[float, float, int] | None] = []
        tail = _TABLE_TAIL_FACTOR * core
        for start, end, spacing in ((self.z_lo, c_lo, tail), (c_lo, c_hi, core), (c_hi, self.z_hi, tail)):
            if end - start <= _EMPTY_SEGMENT * max(1.0, abs(start)):
                segments.append(None)
                continue
            count = math.ceil((end - start) / spacing)
            segments.append((start, (end - start) / count, count))
        return c_lo, c_hi, segments

    def _table_nodes(
        self, segments: list[tuple[float, float, int] | None]
    ) -> tuple[list[float], list[tuple[float, float, int] | None]]:
        """The grid's nodes from z_lo; a support too narrow for any segment gets one interval."""
        zs = [self.z_lo]
        for seg in segments:
            if seg is not None:
                start, h, count = seg
                zs.extend(start + k * h for k in range(1, count + 1))
        if len(zs) < 2:
            zs.append(self.z_hi)
            segments = [None, (self.z_lo, self.z_hi - self.z_lo, 1), None]
        return zs, segments

    def _density_and_slope(self, zs: list[float]) -> tuple[list[float], list[float]]:
        """The logit density g and its derivative g' = g·(a − (a + b)·σ(z)) at each node."""
        a, ab, norm = self.a, self.ab, self.log_norm
        exp, log1p = math.exp, math.log1p
        n = len(zs)
        g = [0.0] * n
        dg = [0.0] * n
        for k in range(n):
            z = zs[k]
            e = exp(-z if z > 0.0 else z)
            d = exp(a * z - ab * ((z if z > 0.0 else 0.0) + log1p(e)) + norm)
            g[k] = d
            dg[k] = d * (a - ab * (1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)))
        return g, dg

    def cdf(self, q: float) -> float:
        """P(draw ≤ q) from the table (built on first use); `multiply_by_cdf` inlines the same formula."""
        if q <= self.q_lo:
            return self.lump_lo if q >= HALF_TAIL_Q else 0.0
        if q >= self.q_hi:
            return 1.0 - self.lump_hi if q < 1.0 - HALF_TAIL_Q else 1.0
        self.build_table()
        z = logit(q)
        start, inv_h, h, first, last = self.segs[0 if z < self.c_lo else (1 if z < self.c_hi else 2)]
        u = (z - start) * inv_h
        k = int(u)
        t = u - k
        k += first
        if k > last:
            k, t = last, 1.0
        # cubic Hermite basis on [node k, node k + 1], t in [0, 1]: values F and slopes h·f
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

    def multiply_by_cdf(self, values: list[float], indices: list[int], qs: list[float], shift: float) -> None:
        """values[i] *= cdf(qs[i] + shift) for every i in `indices` (increasing, so qs[i] too).

        The propensity integral's innermost loop: `cdf` inlined, the table read through locals.
        A value at an end point mass's band is multiplied by that mass's share exactly as `cdf` does.
        """
        if qs[indices[-1]] + shift <= self.q_lo or qs[indices[0]] + shift >= self.q_hi:
            # every point falls beyond the support (qs are sorted): no table needed
            for i in indices:
                values[i] *= self.cdf(qs[i] + shift)
            return
        self.build_table()
        log, log1p = math.log, math.log1p
        q_lo, q_hi, c_lo, c_hi = self.q_lo, self.q_hi, self.c_lo, self.c_hi
        seg_lo, seg_core, seg_hi = self.segs
        below, above = self.lump_lo, 1.0 - self.lump_hi
        big_f, f = self.tab_F, self.tab_f
        for i in indices:
            p = values[i]
            x = qs[i] + shift
            if x <= q_lo:
                values[i] = p * below if x >= HALF_TAIL_Q else 0.0
            elif x >= q_hi:
                if x < 1.0 - HALF_TAIL_Q:
                    values[i] = p * above
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
                values[i] = p * (0.0 if v < 0.0 else (1.0 if v > 1.0 else v))


def _cumulative_integral(zs: list[float], g: list[float], dg: list[float]) -> list[float]:
    """∫ g from zs[0] to each node: trapezoid rule with the Euler–Maclaurin end correction
    h²/12·(g'(left) − g'(right)), exact for cubics."""
    n = len(zs)
    cum = [0.0] * n
    c = 0.0
    for k in range(n - 1):
        h = zs[k + 1] - zs[k]
        c += 0.5 * h * (g[k] + g[k + 1]) + h * h / 12.0 * (dg[k] - dg[k + 1])
        cum[k + 1] = c
    return cum


def _segment_lookup(
    segments: list[tuple[float, float, int] | None],
) -> list[tuple[float, float, float, int, int]]:
    """Per segment (low tail, core, high tail): (start, 1 / spacing, spacing, first node index,
    last usable index). An empty tail or core borrows its neighbour (only rounding can send a
    lookup there)."""
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
    return [
        built[0] or present[0],
        built[1] or (built[0] or present[-1]),
        built[2] or present[-1],
    ]


def beta_quantile(a: float, b: float, p: float) -> float:
    """q with I_q(a, b) = p: bisection on the tabulated CDF (error ≲ 1e-4 in p), then Newton
    steps on the exact incomplete beta when it is cheap (a + b ≤ `_QUANTILE_NEWTON_MAX_MASS`)."""
    dist = LogitBeta(a, b)
    if p <= dist.lump_lo:
        return HALF_TAIL_Q
    if p >= 1.0 - dist.lump_hi:
        return 1.0 - HALF_TAIL_Q
    lo, hi = dist.z_lo, dist.z_hi
    for _ in range(_QUANTILE_MAX_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if dist.cdf(sigmoid(mid)) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < _QUANTILE_BISECTION_WIDTHS * dist.width:
            break
    q = sigmoid(0.5 * (lo + hi))
    if a + b > _QUANTILE_NEWTON_MAX_MASS:
        return q
    return _newton_quantile(a, b, p, q)


def _newton_quantile(a: float, b: float, p: float, q: float) -> float:
    """Polish q towards I_q(a, b) = p with Newton steps (the Beta density is the derivative)."""
    log_norm = log_beta(a, b)
    for _ in range(_QUANTILE_NEWTON_STEPS):
        density = math.exp((a - 1.0) * math.log(q) + (b - 1.0) * math.log1p(-q) - log_norm)
        if not (density > 0.0 and math.isfinite(density)):
            break
        nxt = q - (betainc(a, b, q) - p) / density
        if not (0.0 < nxt < 1.0) or abs(nxt - q) < _QUANTILE_NEWTON_STOP:
            break
        q = nxt
    return q
