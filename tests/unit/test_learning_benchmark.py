"""Learning benchmark machinery on a small slice: metrics, streams, policies, aggregation, output."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import pytest
from router_core.policy import decide
from router_core.posterior import cold_start_prior

from benchmarks import _replay as replay_mod
from benchmarks import learning
from benchmarks._replay import (
    REGRET_PRICE,
    SCENARIOS,
    Job,
    RunResult,
    apgr,
    cpt,
    make_stream,
    mmlu_pool,
    mmlu_swapped_tiers_pool,
    recovery,
    replay,
    run_job,
)

pytestmark = pytest.mark.unit

DATA = Path(replay_mod.DATA_DIR)


STRIDE = 8  # every 8th MMLU subject: 8 subjects, about 1,600 requests


def result(share: float, accuracy: float, weak: float = 0.6, strong: float = 0.8) -> RunResult:
    return RunResult(knob=0.0, strong_share=share, accuracy=accuracy, weak_accuracy=weak, strong_accuracy=strong)


def test_the_replay_data_ships_with_the_project_and_its_licence() -> None:
    assert len(list(DATA.glob("mmlu_*.csv"))) == 57
    assert "Apache License" in (DATA / "LICENSE").read_text(encoding="utf-8")
    assert "Apache-2.0" in (DATA.parent / "README.md").read_text(encoding="utf-8")
    pool = mmlu_pool()
    assert len(pool) == 14_042 and len(pool.types) == 57
    assert sum(pool.weak_ok) / len(pool) == pytest.approx(0.6808, abs=5e-4)
    assert sum(pool.strong_ok) / len(pool) == pytest.approx(0.8058, abs=5e-4)


def test_apgr_is_half_for_the_random_line_and_one_at_strong_quality() -> None:
    line = [result(s, 0.6 + 0.2 * s) for s in (0.2, 0.5, 0.8)]
    assert apgr(line) == pytest.approx(0.5)
    assert cpt(line, 0.5) == pytest.approx(0.5)
    perfect = [result(0.01, 0.8), result(0.5, 0.8)]
    assert apgr(perfect) == pytest.approx(1.0, abs=0.01)
    assert cpt(perfect, 0.5) == pytest.approx(0.005, abs=0.01)
    concave = [result(0.25, 0.75), result(0.5, 0.78)]
    assert 0.5 < apgr(concave) < 1.0
    assert cpt(concave, 0.5) == pytest.approx(0.25 * 0.1 / 0.15, abs=1e-9)  # interpolated on the first segment


def test_recovery_counts_requests_until_the_moving_average_stays_low() -> None:
    assert recovery([0.0] * 300) == (0, True)
    # 30 bad requests, then clean: the 200-request mean drops below 0.01 once < 20 bad remain in it
    losses = [0.1] * 30 + [0.0] * 400
    requests, ok = recovery(losses)
    assert ok and requests == 210
    never = [0.1] * 50
    assert recovery(never) == (50, False)


def test_streams_share_order_and_noise_across_policies_and_match_the_regime() -> None:
    pool = mmlu_pool()
    noisy = make_stream(pool, SCENARIOS["sparse_noisy"], seed=4)
    again = make_stream(pool, SCENARIOS["sparse_noisy"], seed=4)
    assert noisy.order == again.order and noisy.rated == again.rated
    assert sorted(noisy.order) == list(range(len(pool)))
    assert sum(noisy.rated) / len(pool) == pytest.approx(0.2, abs=0.015)
    assert sum(noisy.flipped) / len(pool) == pytest.approx(0.15, abs=0.015)
    drift = make_stream(pool, SCENARIOS["drift_regression"], seed=4)
    assert drift.change_at == len(pool) // 2 and len(drift.affected) == 10
    for t in drift.affected:  # only types where the strong model was the right call
        assert pool.acc_strong[t] - REGRET_PRICE > pool.acc_weak[t]


def test_always_strong_calls_the_strong_model_and_its_regret_does_not_depend_on_the_order() -> None:
    pool = mmlu_pool(STRIDE)
    runs = []
    for seed in (0, 1):
        stream = make_stream(pool, SCENARIOS["clean"], seed=seed)
        runs.append(
            replay(
                pool,
                stream,
                SCENARIOS["clean"],
                replay_mod.Fixed(1.0, random.Random(0)),
                knob=REGRET_PRICE,
                regret_price=REGRET_PRICE,
                requests_per_hour=100.0,
            )
        )
    first, second = runs
    assert first.strong_share == 1.0
    assert first.accuracy == pytest.approx(sum(pool.strong_ok) / len(pool))
    # expected regret: the same whichever order the prompts come in, and positive on MMLU, where
    # the weak model is the better call at this price for some subjects
    assert first.regret_final > 0.0
    assert first.regret_final == pytest.approx(second.regret_final)


def test_the_router_policy_runs_the_production_rule_with_config_knobs() -> None:
    pool = mmlu_pool(STRIDE)
    stream = make_stream(pool, SCENARIOS["clean"], seed=1)
    router = replay_mod.demo_router_config()
    policy = replay_mod.RouterPolicy(pool, router, REGRET_PRICE, random.Random(3))
    assert policy.quality_weight + policy.cost_weight == pytest.approx(1.0)
    run = replay(
        pool, stream, SCENARIOS["clean"], policy, knob=REGRET_PRICE, regret_price=REGRET_PRICE, requests_per_hour=84.0
    )
    floor_bound = router.exploration_floor / 2
    assert min(policy.propensities) >= floor_bound - 1e-12
    assert run.mean_propensity is not None and floor_bound < run.mean_propensity <= 1.0
    # it learns: far less regret than always calling the weak model
    weak_only = replay(
        pool,
        stream,
        SCENARIOS["clean"],
        replay_mod.Fixed(0.0, random.Random(0)),
        knob=REGRET_PRICE,
        regret_price=REGRET_PRICE,
        requests_per_hour=84.0,
    )
    assert run.regret_final < weak_only.regret_final / 3


def test_router_arms_carry_their_decayed_evidence_as_the_chat_path_passes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = mmlu_pool(STRIDE)
    router = replay_mod.demo_router_config()
    seen: list[list[Any]] = []

    def spy(router_config: Any, arms: Any, rng: random.Random, **weights: float) -> Any:
        seen.append(list(arms))
        return decide(router_config, arms, rng, **weights)

    monkeypatch.setattr("benchmarks._replay.decide", spy)
    policy = replay_mod.RouterPolicy(pool, router, REGRET_PRICE, random.Random(0))
    policy.choose(0, pool.cost_strong, hour=0.0)
    assert [arm.evidence for arm in seen[-1]] == [0.0, 0.0]  # cold: full posterior width
    for reward in (1.0, 1.0, 0.0, 1.0, 1.0, 0.0):
        policy.learn(0, True, reward, hour=0.0)
    policy.choose(0, pool.cost_strong, hour=0.0)
    weak, strong = seen[-1]
    assert weak.evidence == 0.0 and strong.evidence == pytest.approx(6.0)
    half_life_h = router.forgetting_half_life_hours
    assert half_life_h is not None
    policy.choose(0, pool.cost_strong, hour=half_life_h)
    weak, strong = seen[-1]
    assert strong.evidence == pytest.approx(3.0)  # forgotten as the posterior is
    for arm in (weak, strong):  # the chat path's evidence: α + β beyond the prior's mass
        assert arm.evidence == pytest.approx(max(arm.posterior.mass - router.prior_mass, 0.0))


def test_type_oracle_has_no_regret_even_through_drift() -> None:
    pool = mmlu_pool(STRIDE)
    for name in ("clean", "drift_regression", "drift_price_cut"):
        stream = make_stream(pool, SCENARIOS[name], seed=2)
        oracle = replay_mod.TypeOracle(pool, REGRET_PRICE, stream)
        run = replay(
            pool, stream, SCENARIOS[name], oracle, knob=REGRET_PRICE, regret_price=REGRET_PRICE, requests_per_hour=84.0
        )
        assert run.regret_final == pytest.approx(0.0, abs=1e-9)


def test_swapped_tiers_change_only_what_the_router_is_told() -> None:
    pool, swapped = mmlu_pool(STRIDE), mmlu_swapped_tiers_pool(STRIDE)
    assert (swapped.weak.name, swapped.strong.name) == (pool.weak.name, pool.strong.name)
    assert (swapped.weak.quality_tier, swapped.strong.quality_tier) == (3, 2)
    assert (pool.weak.quality_tier, pool.strong.quality_tier) == (2, 3)
    assert swapped.weak_ok == pool.weak_ok and swapped.strong_ok == pool.strong_ok
    assert (swapped.cost_weak, swapped.cost_strong) == (pool.cost_weak, pool.cost_strong)
    for scenario in ("clean", "sparse_noisy"):  # same order and feedback noise per seed
        a, b = make_stream(pool, SCENARIOS[scenario], 3), make_stream(swapped, SCENARIOS[scenario], 3)
        assert (a.order, a.rated, a.flipped) == (b.order, b.rated, b.flipped)
    # the router's cold start now believes the weak model is the better one
    mass = replay_mod.demo_router_config().prior_mass
    weak_prior = cold_start_prior(swapped.weak.quality_tier, False, mass)
    strong_prior = cold_start_prior(swapped.strong.quality_tier, False, mass)
    assert weak_prior.mean > strong_prior.mean


def test_the_plan_replays_mmlu_fully_and_the_swapped_tiers_for_router_and_plain_ts_only() -> None:
    args = argparse.Namespace(quick=True, seeds=2, requests_per_hour=84.0, mmlu_stride=3)
    jobs = learning.build_jobs(args)
    datasets = {job.dataset for job in jobs}
    assert datasets == {"mmlu", "mmlu_swapped_tiers"}
    mmlu = {(job.scenario, job.policy) for job in jobs if job.dataset == "mmlu"}
    assert mmlu == {(scenario, policy) for scenario in SCENARIOS for policy in replay_mod.POLICIES}
    swapped = [job for job in jobs if job.dataset == "mmlu_swapped_tiers"]
    assert {(job.scenario, job.policy) for job in swapped} == {("clean", "router"), ("clean", "plain_ts")}
    assert all(job.knobs == learning.QUICK_PRICES for job in swapped)  # a sweep: APGR is measured
    assert {job.seed for job in jobs} == {0, 1}


def test_jobs_aggregate_into_the_published_json_shape(tmp_path: Path) -> None:
    sweep = (0.0, REGRET_PRICE, 0.3)
    plan = [
        ("mmlu", "clean", "router", sweep),
        ("mmlu", "clean", "plain_ts", sweep),
        ("mmlu", "clean", "always_weak", (REGRET_PRICE,)),
        ("mmlu", "drift_regression", "router", (REGRET_PRICE,)),
        ("mmlu", "drift_regression", "plain_ts", (REGRET_PRICE,)),
        ("mmlu_swapped_tiers", "clean", "router", sweep),
        ("mmlu_swapped_tiers", "clean", "plain_ts", sweep),
    ]
    jobs = [
        Job(dataset, scenario, policy, seed, knobs, 84.0, mmlu_stride=STRIDE)
        for dataset, scenario, policy, knobs in plan
        for seed in (0, 1)
    ]
    results = learning.aggregate(run_job(job) for job in jobs)
    for dataset in ("mmlu", "mmlu_swapped_tiers"):
        clean = results[dataset]["clean"]
        for policy in ("router", "plain_ts"):
            entry = clean[policy]
            assert 0.0 < entry["apgr"] < 1.2 and 0.0 <= entry["cpt50"] <= 100.0
            assert entry["regret_final"] >= entry["regret_1000"] >= 0.0
            assert entry["apgr_ci95"][0] <= entry["apgr"] <= entry["apgr_ci95"][1]
            assert len(entry["curve"]) == 3 and entry["seeds"] == 2
            assert len(entry["regret_final_per_seed"]) == 2
    mmlu = results["mmlu"]
    assert "apgr" not in mmlu["clean"]["always_weak"]
    drift = mmlu["drift_regression"]["router"]
    assert drift["recovery_requests"] >= 0 and 0.0 <= drift["recovered_share"] <= 1.0
    assert "apgr" not in drift
    # plain Thompson sampling never reads the tiers: with the same order, noise and random
    # numbers it is the same run on both datasets, so the comparison isolates the tiers
    assert results["mmlu_swapped_tiers"]["clean"]["plain_ts"] == mmlu["clean"]["plain_ts"]

    checks = learning.target_checks(results, len(mmlu_pool(STRIDE)))
    assert [c["name"] for c in checks] == ["mmlu_no_regression", "swapped_tiers_regret"]
    for check in checks:
        assert isinstance(check["passed"], bool)
        assert check["line"].startswith("PASS" if check["passed"] else "FAIL")
    out = tmp_path / "learning.json"
    out.write_text(json.dumps({**results, "checks": checks}, default=str), encoding="utf-8")
    loaded = json.loads(out.read_text(encoding="utf-8"))
    assert loaded["mmlu"]["clean"]["router"]["regret_1000"] >= 0.0
    assert [c["passed"] for c in loaded["checks"]] == [c["passed"] for c in checks]


def _entry(regret: float, apgr_value: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"regret_final": regret, "regret_final_per_seed": [regret, regret]}
    if apgr_value is not None:
        entry["apgr"] = apgr_value
    return entry


@pytest.mark.parametrize(
    ("router_apgr", "router_regret", "passed"),
    [
        (0.63, 104.0, True),  # within 5% of plain TS
        (0.63, 106.0, False),  # more than 5% above plain TS
        (0.61, 90.0, False),  # less regret, but APGR below 0.62
    ],
)
def test_no_regression_needs_both_the_apgr_floor_and_regret_within_5_percent_of_plain_ts(
    router_apgr: float, router_regret: float, passed: bool
) -> None:
    results = {"mmlu": {"clean": {"router": _entry(router_regret, router_apgr), "plain_ts": _entry(100.0, 0.62)}}}
    (check,) = learning.target_checks(results, 14_042)
    assert check["name"] == "mmlu_no_regression" and check["passed"] is passed
    assert "14,042" in check["line"]


@pytest.mark.parametrize(("router_regret", "passed"), [(99.0, True), (100.0, True), (101.0, False)])
def test_swapped_tiers_pass_only_at_or_below_plain_ts_regret(router_regret: float, passed: bool) -> None:
    results = {"mmlu_swapped_tiers": {"clean": {"router": _entry(router_regret, 0.6), "plain_ts": _entry(100.0)}}}
    (check,) = learning.target_checks(results, 14_042)
    assert check["name"] == "swapped_tiers_regret" and check["passed"] is passed
    assert check["router_minus_plain_ts_regret"]["mean"] == pytest.approx(router_regret - 100.0)
