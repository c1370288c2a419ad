"""Learning benchmark machinery on a small slice: metrics, streams, policies, aggregation, output."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

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
    recovery,
    replay,
    run_job,
    seed_oracle_pool,
)

pytestmark = pytest.mark.unit

DATA = Path(replay_mod.DATA_DIR)


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


def test_always_strong_regret_is_the_sum_of_its_per_type_gaps() -> None:
    pool = seed_oracle_pool(seed=0, size=600)
    stream = make_stream(pool, SCENARIOS["clean"], seed=0)
    run = replay(
        pool,
        stream,
        SCENARIOS["clean"],
        replay_mod.Fixed(1.0, random.Random(0)),
        knob=REGRET_PRICE,
        regret_price=REGRET_PRICE,
        requests_per_hour=100.0,
    )
    expected = sum(
        max(pool.acc_weak[pool.type_idx[r]], pool.acc_strong[pool.type_idx[r]] - REGRET_PRICE)
        - (pool.acc_strong[pool.type_idx[r]] - REGRET_PRICE)
        for r in stream.order
    )
    assert run.regret_final == pytest.approx(expected)
    assert run.strong_share == 1.0
    assert run.accuracy == pytest.approx(sum(pool.strong_ok) / len(pool))


def test_the_router_policy_runs_the_production_rule_with_config_knobs() -> None:
    pool = seed_oracle_pool(seed=1, size=400)
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
    # it learns: far less regret than always calling the wrong model
    wrong = replay(
        pool,
        stream,
        SCENARIOS["clean"],
        replay_mod.Fixed(0.0, random.Random(0)),
        knob=REGRET_PRICE,
        regret_price=REGRET_PRICE,
        requests_per_hour=84.0,
    )
    assert run.regret_final < wrong.regret_final / 3


def test_type_oracle_has_no_regret_even_through_drift() -> None:
    pool = seed_oracle_pool(seed=2, size=600)
    for name in ("clean", "drift_regression", "drift_price_cut"):
        stream = make_stream(pool, SCENARIOS[name], seed=2)
        oracle = replay_mod.TypeOracle(pool, REGRET_PRICE, stream)
        run = replay(
            pool, stream, SCENARIOS[name], oracle, knob=REGRET_PRICE, regret_price=REGRET_PRICE, requests_per_hour=84.0
        )
        assert run.regret_final == pytest.approx(0.0, abs=1e-9)


def test_jobs_aggregate_into_the_published_json_shape(tmp_path: Path) -> None:
    sweep = (0.0, REGRET_PRICE, 0.3)
    plan = [
        ("clean", "router", sweep),
        ("clean", "plain_ts", sweep),
        ("clean", "always_weak", (REGRET_PRICE,)),
        ("drift_regression", "router", (REGRET_PRICE,)),
        ("drift_regression", "plain_ts", (REGRET_PRICE,)),
    ]
    jobs = [
        Job(dataset, scenario, policy, seed, knobs, 84.0, mmlu_stride=8, oracle_size=1200)
        for dataset in ("mmlu", "seed_oracle")
        for scenario, policy, knobs in plan
        for seed in (0, 1)
    ]
    results = learning.aggregate(run_job(job) for job in jobs)
    for dataset in ("mmlu", "seed_oracle"):
        clean = results[dataset]["clean"]
        for policy in ("router", "plain_ts"):
            entry = clean[policy]
            assert 0.0 < entry["apgr"] < 1.2 and 0.0 <= entry["cpt50"] <= 100.0
            assert entry["regret_final"] >= entry["regret_1000"] >= 0.0
            assert entry["apgr_ci95"][0] <= entry["apgr"] <= entry["apgr_ci95"][1]
            assert len(entry["curve"]) == 3 and entry["seeds"] == 2
        assert "apgr" not in clean["always_weak"]
        drift = results[dataset]["drift_regression"]["router"]
        assert drift["recovery_requests"] >= 0 and 0.0 <= drift["recovered_share"] <= 1.0
        assert "apgr" not in drift
    out = tmp_path / "learning.json"
    out.write_text(json.dumps(results, default=str), encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8"))["mmlu"]["clean"]["router"]["regret_1000"] >= 0.0


def test_the_demo_check_reports_pick_shares_that_sum_to_one() -> None:
    check = replay_mod.demo_check(seed=0, sessions=20)
    for request_type in replay_mod.DEMO_ORACLE:
        smart, fast = check["smart_share"][request_type], check["fast_share"][request_type]
        assert smart + fast == pytest.approx(1.0)
        assert min(smart, fast) >= replay_mod.demo_router_config().exploration_floor / 2 - 1e-12
