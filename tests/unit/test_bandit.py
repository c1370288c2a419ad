"""The bandit: proper posteriors, the pick rule, exact propensities, cost in real units."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from router_core import bandit, beta_distribution, posterior, propensity
from router_core.bandit import DEFAULT_POSTERIOR_TEMPER, Arm, pick_model, pick_shares
from router_core.config import RouterConfig
from router_core.errors import BanditError
from router_core.posterior import Posterior, cold_start_prior, decay_factor, posterior_from_evidence

pytestmark = pytest.mark.unit

shapes = st.floats(min_value=0.05, max_value=5_000.0, allow_nan=False, allow_infinity=False)
costs = st.floats(min_value=0.0, max_value=3.0, allow_nan=False, allow_infinity=False)
weights = st.floats(min_value=0.05, max_value=1.0)
floors = st.floats(min_value=0.0, max_value=0.5)
any_float = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def arm_sets(draw: st.DrawFn, min_size: int = 1, max_size: int = 5) -> list[Arm]:
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    evidence = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e4), st.just(math.inf))
    return [Arm(f"m{i}", Posterior(draw(shapes), draw(shapes)), draw(costs), draw(evidence)) for i in range(n)]


def exact_two_arm(pick: tuple[float, float], other: tuple[float, float], shift: float) -> float:
    """P(q_pick + shift > q_other) for independent Betas, Simpson's rule on 20,001 points (shapes ≥ 2)."""
    n = 20_000
    a, b = pick
    log_norm = beta_distribution.log_beta(a, b)
    total = 0.0
    for k in range(n + 1):
        q = k / n
        if q in (0.0, 1.0):
            continue
        density = math.exp((a - 1) * math.log(q) + (b - 1) * math.log1p(-q) - log_norm)
        x = q + shift
        cdf = 0.0 if x <= 0 else 1.0 if x >= 1 else beta_distribution.betainc(other[0], other[1], x)
        total += (4 if k % 2 else 2) * density * cdf
    return total / (3 * n)


# --------------------------------------------------------------------------- posteriors


@given(alpha=shapes, beta=shapes, a=st.floats(0, 1e6), b=st.floats(0, 1e6), reward=st.floats(0, 1))
def test_a_posterior_moves_only_by_the_reward_it_was_given(
    alpha: float, beta: float, a: float, b: float, reward: float
) -> None:
    prior = Posterior(alpha, beta)
    before = posterior_from_evidence(prior, a, b)
    after = posterior_from_evidence(prior, a + reward, b + 1.0 - reward)
    assert after.alpha - before.alpha == pytest.approx(reward, abs=1e-9 * max(1.0, a))
    assert after.beta - before.beta == pytest.approx(1.0 - reward, abs=1e-9 * max(1.0, b))


@given(a=any_float, b=any_float)
def test_negative_or_nan_evidence_never_yields_an_improper_posterior(a: float, b: float) -> None:
    post = posterior_from_evidence(Posterior(2.0, 3.0), a, b)
    assert math.isfinite(post.alpha) and post.alpha >= 2.0
    assert math.isfinite(post.beta) and post.beta >= 3.0
    assert 0.0 < post.mean < 1.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_a_posterior_refuses_an_improper_shape(bad: float) -> None:
    with pytest.raises(BanditError, match="alpha"):
        Posterior(bad, 1.0)
    with pytest.raises(BanditError, match="beta"):
        Posterior(1.0, bad)


@given(
    a=st.floats(0, 1e6),
    b=st.floats(0, 1e6),
    elapsed=st.floats(min_value=-1e9, max_value=1e12, allow_nan=False),
    half_life=st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e9)),
)
def test_forgetting_keeps_posteriors_proper(a: float, b: float, elapsed: float, half_life: float | None) -> None:
    f = decay_factor(elapsed, half_life)
    assert 0.0 <= f <= 1.0
    post = posterior_from_evidence(cold_start_prior(2, False, 4.0), a * f, b * f)
    assert post.alpha >= 4.0 * 0.6 - 1e-12 and post.beta >= 4.0 * 0.4 - 1e-12
    assert math.isfinite(post.alpha + post.beta)


def test_decay_halves_evidence_each_half_life_and_never_inflates_it() -> None:
    assert decay_factor(3600.0, 3600.0) == pytest.approx(0.5)
    assert decay_factor(7200.0, 3600.0) == pytest.approx(0.25)
    assert decay_factor(10.0, None) == 1.0
    assert decay_factor(-50.0, 3600.0) == 1.0  # clock skew keeps evidence as is
    assert decay_factor(math.nan, 3600.0) == 1.0
    with pytest.raises(BanditError):
        decay_factor(1.0, 0.0)


def test_cold_start_prior_orders_tiers_and_keeps_the_mass() -> None:
    means = [cold_start_prior(tier, False, 4.0).mean for tier in (1, 2, 3, 4)]
    assert means == sorted(means) and len(set(means)) == 4
    for tier in (1, 2, 3, 4):
        for strong in (False, True):
            prior = cold_start_prior(tier, strong, 7.5)
            assert prior.alpha + prior.beta == pytest.approx(7.5)
            assert prior.mean <= posterior.MAX_PRIOR_MEAN
    assert cold_start_prior(2, True, 4.0).mean > cold_start_prior(2, False, 4.0).mean
    for bad_tier in (0, 5):
        with pytest.raises(BanditError, match="quality_tier"):
            cold_start_prior(bad_tier, False, 4.0)
    with pytest.raises(BanditError, match="mass"):
        cold_start_prior(2, False, 0.0)


def test_interval_is_equal_tailed() -> None:
    lo, hi = Posterior(1.0, 1.0).interval(0.95)
    assert (lo, hi) == (pytest.approx(0.025, abs=1e-9), pytest.approx(0.975, abs=1e-9))
    for a, b in [(3.0, 7.0), (0.6, 0.8), (250.0, 40.0), (2e5, 3e5)]:
        lo, hi = Posterior(a, b).interval(0.9)
        assert beta_distribution.betainc(a, b, lo) == pytest.approx(0.05, abs=1e-7)
        assert beta_distribution.betainc(a, b, hi) == pytest.approx(0.95, abs=1e-7)


def test_default_temper_is_the_router_config_default() -> None:
    router = RouterConfig(models=("a",), default_model="a")
    assert router.posterior_temper == DEFAULT_POSTERIOR_TEMPER


# --------------------------------------------------------------------------- the pick rule


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arms=arm_sets(), qw=weights, cw=weights, floor=floors)
def test_pick_shares_sum_to_one_and_respect_the_floor(arms: list[Arm], qw: float, cw: float, floor: float) -> None:
    shares = pick_shares(arms, quality_weight=qw, cost_weight=cw, rng=random.Random(0), exploration_floor=floor)
    assert set(shares) == {a.model for a in arms}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    for value in shares.values():
        assert floor / len(arms) - 1e-12 <= value <= 1.0 + 1e-12


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arms=arm_sets(min_size=2), qw=weights, cw=weights, floor=floors, seed=st.integers(0, 10_000))
def test_decision_propensity_is_the_pick_share_of_the_picked_model(
    arms: list[Arm], qw: float, cw: float, floor: float, seed: int
) -> None:
    decision = pick_model(arms, quality_weight=qw, cost_weight=cw, rng=random.Random(seed), exploration_floor=floor)
    shares = pick_shares(arms, quality_weight=qw, cost_weight=cw, rng=random.Random(0), exploration_floor=floor)
    # Shares are renormalised, and an arm without evidence is sampled at its own (possibly < 1,
    # end-singular) shapes: the two integrals agree to 1e-4.
    assert decision.propensity == pytest.approx(shares[decision.model], abs=1e-4)
    assert decision.propensity >= floor / len(arms) - 1e-12
    assert list(decision.ranking) == sorted(decision.scores, key=lambda m: -decision.scores[m])
    for arm in arms:
        q = decision.sampled[arm.model]
        assert 0.0 <= q <= 1.0
        assert decision.scores[arm.model] == pytest.approx(qw * q - cw * arm.cost_units)
    if not decision.explored:
        assert decision.model == decision.ranking[0]


def test_same_seed_gives_the_same_picks() -> None:
    arms = [Arm("fast", Posterior(3.0, 2.0), 0.03), Arm("smart", Posterior(4.0, 1.5), 0.45)]

    def run(seed: int) -> list[tuple[str, float, bool]]:
        rng = random.Random(seed)
        out = []
        for _ in range(200):
            d = pick_model(arms, quality_weight=0.7, cost_weight=0.3, rng=rng, exploration_floor=0.1)
            out.append((d.model, d.propensity, d.explored))
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


@pytest.mark.parametrize(
    ("arms", "floor"),
    [
        ([Arm("fast", Posterior(6.0, 4.0), 0.03), Arm("smart", Posterior(9.0, 2.0), 0.45)], 0.02),
        (
            [
                Arm("a", Posterior(2.4, 1.6), 0.0),
                Arm("b", Posterior(2.8, 1.2), 0.1),
                Arm("c", Posterior(1.0, 1.0), 0.0),
            ],
            0.2,
        ),
        ([Arm(f"m{i}", Posterior(20.0 + 6 * i, 30.0 - 2 * i), 0.02 * i) for i in range(6)], 0.05),
        (  # earned tempers differ: a wide, unobserved cheap arm against well-observed ones
            [
                Arm("cheap", Posterior(2.4, 1.6), 0.0, evidence=0.0),
                Arm("mid", Posterior(30.0, 10.0), 0.05, evidence=36.0),
                Arm("big", Posterior(92.0, 8.0), 0.15, evidence=96.0),
            ],
            0.02,
        ),
    ],
)
def test_propensity_matches_the_empirical_pick_frequency(arms: list[Arm], floor: float) -> None:
    rng = random.Random(7)
    n = 3000
    counts = dict.fromkeys((a.model for a in arms), 0)
    propensity: dict[str, float] = {}
    for _ in range(n):
        d = pick_model(arms, quality_weight=0.7, cost_weight=0.3, rng=rng, exploration_floor=floor)
        counts[d.model] += 1
        propensity.setdefault(d.model, d.propensity)
        assert d.propensity == pytest.approx(propensity[d.model], abs=1e-12)  # a function of the state only
    for model, count in counts.items():
        p = propensity.get(model, floor / len(arms))
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(count / n - p) <= 4.5 * sd + 1e-9, (model, count / n, p)


def test_the_exploration_floor_bounds_every_propensity_below() -> None:
    # one arm is hopeless: only the floor can pick it, and its propensity is exactly floor/K
    arms = [Arm("good", Posterior(900.0, 100.0), 0.0), Arm("hopeless", Posterior(10.0, 990.0), 1.0)]
    rng = random.Random(1)
    seen = set()
    for _ in range(3000):
        d = pick_model(arms, quality_weight=0.7, cost_weight=0.3, rng=rng, exploration_floor=0.1)
        if d.model == "hopeless":
            assert d.explored
            assert d.propensity == pytest.approx(0.05, abs=1e-9)
            seen.add(d.model)
        else:
            assert d.propensity == pytest.approx(0.95, abs=1e-9)
    assert seen == {"hopeless"}


def test_a_third_model_does_not_change_the_first_two_models_scores() -> None:
    # near-certain posteriors: each sampled quality is its mean to 1e-5, so scores are comparable
    a = Arm("a", Posterior(8e9, 2e9), 0.2)
    b = Arm("b", Posterior(7e9, 3e9), 0.05)
    c = Arm("c", Posterior(9.9e9, 1e8), 5.0)  # great but very expensive
    two = pick_model([a, b], quality_weight=0.7, cost_weight=0.3, rng=random.Random(3))
    three = pick_model([a, b, c], quality_weight=0.7, cost_weight=0.3, rng=random.Random(3))
    for model in ("a", "b"):
        assert three.scores[model] == pytest.approx(two.scores[model], abs=1e-4)
        assert two.scores[model] == pytest.approx(
            0.7 * {"a": 0.8, "b": 0.7}[model] - 0.3 * {"a": 0.2, "b": 0.05}[model], abs=1e-4
        )
    assert [m for m in three.ranking if m != "c"] == list(two.ranking)
    shares_two = pick_shares([a, b], quality_weight=0.7, cost_weight=0.3, rng=random.Random(0))
    shares_three = pick_shares([a, b, c], quality_weight=0.7, cost_weight=0.3, rng=random.Random(0))
    assert shares_three["a"] == pytest.approx(shares_two["a"], abs=1e-9)
    assert shares_three["c"] == pytest.approx(0.0, abs=1e-9)


def test_a_cheaper_model_wins_when_qualities_tie() -> None:
    arms = [Arm("pricey", Posterior(6e4, 4e4), 0.5), Arm("cheap", Posterior(6e4, 4e4), 0.1)]
    for seed in range(50):
        decision = pick_model(arms, quality_weight=0.7, cost_weight=0.3, rng=random.Random(seed))
        assert decision.model == "cheap"
    shares = pick_shares(arms, quality_weight=0.7, cost_weight=0.3, rng=random.Random(0))
    assert shares["cheap"] > 0.999
    # with uncertain but equal posteriors the cheaper one still wins more often
    loose = [Arm("pricey", Posterior(3.0, 2.0), 0.5), Arm("cheap", Posterior(3.0, 2.0), 0.1)]
    assert pick_shares(loose, quality_weight=0.7, cost_weight=0.3, rng=random.Random(0))["cheap"] > 0.6


def test_zero_quality_weight_picks_the_cheapest_deterministically() -> None:
    arms = [Arm("a", Posterior(9.0, 1.0), 0.3), Arm("b", Posterior(1.0, 9.0), 0.1), Arm("c", Posterior(5.0, 5.0), 0.1)]
    decision = pick_model(arms, quality_weight=0.0, cost_weight=1.0, rng=random.Random(0))
    assert decision.model == "b"  # ties keep arm order
    assert decision.propensity == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("pick", "other", "shift"),
    [
        ((5.6, 2.4), (4.8, 3.2), 0.1),
        ((160.0, 40.0), (120.0, 60.0), 0.05),
        ((3.0, 9.0), (30.0, 70.0), -0.02),
        ((2.0, 2.0), (2.0, 2.0), 0.0),
    ],
)
def test_numerical_win_probability_matches_direct_integration(
    pick: tuple[float, float], other: tuple[float, float], shift: float
) -> None:
    arms = [Arm("pick", Posterior(*pick), max(0.0, -shift)), Arm("other", Posterior(*other), max(0.0, shift))]
    # cost_weight / quality_weight = 1, so the other arm's score is lowered by `shift`
    got = propensity.win_probability([pick, other], [a.cost_units for a in arms], 0, 1.0, 1.0, {})
    assert got == pytest.approx(exact_two_arm(pick, other, shift), abs=3e-5)


def test_numerical_win_probabilities_match_monte_carlo_for_many_arms() -> None:
    arms = [Arm(f"m{i}", Posterior(3.0 + 4 * i, 12.0 - i), 0.03 * (i % 3)) for i in range(8)]
    shares = pick_shares(arms, quality_weight=0.6, cost_weight=0.4, rng=random.Random(0), posterior_temper=1.0)
    rng = random.Random(5)
    n = 40_000
    wins = dict.fromkeys(shares, 0)
    for _ in range(n):
        best = max(arms, key=lambda a: 0.6 * rng.betavariate(a.posterior.alpha, a.posterior.beta) - 0.4 * a.cost_units)
        wins[best.model] += 1
    for model, p in shares.items():
        assert wins[model] / n == pytest.approx(p, abs=4.5 * math.sqrt(p * (1 - p) / n) + 1e-4)


def test_tempering_samples_a_narrower_beta_with_the_same_mean() -> None:
    arms = [Arm("a", Posterior(3.0, 2.0), 0.0, evidence=math.inf)]  # fully earned temper
    draws = {
        t: [
            pick_model(arms, quality_weight=1, cost_weight=0, rng=random.Random(s), posterior_temper=t).sampled["a"]
            for s in range(4000)
        ]
        for t in (1.0, 4.0)
    }
    mean1, mean4 = (sum(v) / len(v) for v in draws.values())
    var1, var4 = (sum((x - m) ** 2 for x in v) / len(v) for v, m in zip(draws.values(), (mean1, mean4), strict=True))
    assert mean1 == pytest.approx(0.6, abs=0.015) and mean4 == pytest.approx(0.6, abs=0.015)
    assert var4 < var1 / 2.5  # Beta(12, 8) vs Beta(3, 2): variance 0.0114 vs 0.04


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": []}, "no arms"),
        ({"arms": [Arm("a", Posterior(1, 1), 0), Arm("a", Posterior(1, 1), 0)]}, "repeat"),
        ({"quality_weight": math.nan}, "quality_weight"),
        ({"cost_weight": -0.1}, "cost_weight"),
        ({"exploration_floor": 1.5}, "exploration_floor"),
        ({"posterior_temper": 0.0}, "posterior_temper"),
    ],
)
def test_unusable_input_raises_a_clear_error(kwargs: dict, message: str) -> None:
    call = {
        "arms": [Arm("a", Posterior(1, 1), 0.0)],
        "quality_weight": 0.7,
        "cost_weight": 0.3,
        "rng": random.Random(0),
    }
    call.update(kwargs)
    with pytest.raises(BanditError, match=message):
        pick_model(**call)


@pytest.mark.parametrize("bad_cost", [-0.01, math.nan, math.inf])
def test_an_arm_refuses_a_bad_cost(bad_cost: float) -> None:
    with pytest.raises(BanditError, match="cost_units"):
        Arm("a", Posterior(1.0, 1.0), bad_cost)


def test_a_tempered_shape_that_overflows_raises_instead_of_picking() -> None:
    arms = [Arm("a", Posterior(1e308, 1.0), 0.0, evidence=math.inf), Arm("b", Posterior(1.0, 1.0), 0.0)]
    with pytest.raises(BanditError, match="overflow"):
        pick_model(arms, quality_weight=0.7, cost_weight=0.3, rng=random.Random(0), posterior_temper=10.0)


def test_shares_fall_back_to_monte_carlo_when_integration_would_exceed_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a wide arm against a narrow one (no Gauss-Hermite shortcut): panels are needed
    arms = [
        Arm("wide", Posterior(2.0, 2.0), 0.0),
        Arm("narrow", Posterior(4000.0, 2000.0), 0.0),
        Arm("c", Posterior(3.0, 5.0), 0.0),
    ]
    exact = pick_shares(arms, quality_weight=1.0, cost_weight=0.0, rng=random.Random(0), posterior_temper=1.0)
    monkeypatch.setattr(propensity, "_MAX_PANELS", 1)
    n = 20_000
    sampled = pick_shares(
        arms, quality_weight=1.0, cost_weight=0.0, rng=random.Random(1), draws=n, posterior_temper=1.0
    )
    assert sampled != exact
    assert sum(sampled.values()) == pytest.approx(1.0)
    for model, p in exact.items():
        assert sampled[model] == pytest.approx(p, abs=4.5 * math.sqrt(p * (1 - p) / n) + 1e-3)


def test_the_temper_is_earned_with_evidence() -> None:
    temper = DEFAULT_POSTERIOR_TEMPER
    ramp = [bandit.effective_temper(e, temper) for e in (0.0, 1.0, 4.0, 16.0, 64.0, 1e6)]
    assert ramp[0] == 1.0  # no evidence: the full posterior width
    assert ramp == sorted(ramp) and all(1.0 <= t < temper for t in ramp)
    assert bandit.effective_temper(bandit.TEMPER_RAMP_EVIDENCE, temper) == pytest.approx((1.0 + temper) / 2)
    assert ramp[-1] == pytest.approx(temper, abs=1e-3)
    assert bandit.effective_temper(math.inf, temper) == temper
    assert bandit.effective_temper(50.0, 1.0) == 1.0  # plain Thompson sampling stays plain


def test_a_cheap_arm_with_a_wide_posterior_keeps_a_real_pick_probability() -> None:
    # A cheaper model that was hardly tried, against a well-observed expensive one it could beat:
    # sampled at its full width it keeps a real chance (no prior trap); shrunk by the full temper
    # it would almost never be tried again.
    observed = Arm("smart", Posterior(90.0, 10.0), 0.15, evidence=96.0)

    def cheap_share(evidence: float) -> float:
        arms = [Arm("fast", Posterior(2.4, 1.6), 0.005, evidence=evidence), observed]
        return pick_shares(arms, quality_weight=0.7, cost_weight=0.3, rng=random.Random(0), exploration_floor=0.02)[
            "fast"
        ]

    assert cheap_share(0.0) > 0.12
    assert cheap_share(math.inf) < 0.05


@given(arms=arm_sets(min_size=2, max_size=4), floor=floors)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_earned_tempers_keep_propensities_a_distribution(arms: list[Arm], floor: float) -> None:
    shares = pick_shares(arms, quality_weight=0.7, cost_weight=0.3, rng=random.Random(0), exploration_floor=floor)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(floor / len(arms) - 1e-12 <= p <= 1.0 + 1e-12 for p in shares.values())


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_an_arm_refuses_bad_evidence(bad: float) -> None:
    with pytest.raises(BanditError, match="evidence"):
        Arm("a", Posterior(1.0, 1.0), 0.0, evidence=bad)
