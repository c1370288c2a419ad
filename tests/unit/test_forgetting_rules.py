"""Forgetting, pure: what a write adds, how a cell is read at time t, what compaction folds.

Items here are plain dicts of attribute → number, updated the way DynamoDB's ADD and REMOVE
do (exact decimals); the same paths on the real store are in tests/integration/test_forgetting_on_the_store.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from router_core.config import RouterConfig
from router_core.forgetting import (
    DEFAULT_HALF_LIFE_SECONDS,
    MAX_CELL_EVIDENCE,
    Compaction,
    cell_evidence,
    era_seconds,
    era_start,
    evidence_add,
    half_life_seconds,
    plan_compaction,
    replacement_delta,
    shard_evidence,
)
from router_core.posterior import Posterior, posterior_from_evidence

pytestmark = pytest.mark.unit

WEEK = 168 * 3600.0
NOW = 1_800_000_000.0

half_lives = st.one_of(st.none(), st.floats(60.0, 1e8), st.sampled_from([3600.0, WEEK]))
times = st.floats(1e9, 3e9)


def weight(elapsed: float, half_life: float | None) -> float:
    """The half-life curve written out independently: 0.5 ** (elapsed / half-life), 1 if none."""
    return 1.0 if half_life is None else 0.5 ** (max(elapsed, 0.0) / half_life)


def add(item: dict[str, Any], amounts: Mapping[str, Decimal]) -> None:
    """DynamoDB's ADD: exact decimal addition, creating missing attributes."""
    for name, amount in amounts.items():
        item[name] = Decimal(item.get(name, 0)) + amount


def compact(item: dict[str, Any], plan: Compaction) -> None:
    for name in plan.remove:
        del item[name]
    add(item, plan.add)


def test_the_shipped_half_life_is_one_week() -> None:
    assert half_life_seconds(RouterConfig(models=("m",), default_model="m")) == WEEK == DEFAULT_HALF_LIFE_SECONDS
    assert half_life_seconds(RouterConfig(models=("m",), default_model="m", forgetting_half_life_hours=None)) is None
    assert era_seconds(WEEK) == 7 * 3600 and era_seconds(None) == 7 * 3600


@given(now=times, idle=st.floats(0, 1e8), old=st.floats(0, 1e3), reward=st.floats(0, 1), half_life=half_lives)
def test_a_write_counts_in_full_when_written_however_long_the_cell_was_idle(
    now: float, idle: float, old: float, reward: float, half_life: float | None
) -> None:
    old_ref = era_start(now - idle, half_life)
    item: dict[str, Any] = {f"a_{old_ref}": Decimal(repr(old))}
    before, _ = shard_evidence(item, now=now, half_life_s=half_life)
    add(item, evidence_add(reward, 1 - reward, now=now, half_life_s=half_life))
    alpha, beta = shard_evidence(item, now=now, half_life_s=half_life)
    assert alpha - before == pytest.approx(reward, rel=1e-9, abs=1e-11)
    assert beta == pytest.approx(1 - reward, rel=1e-9, abs=1e-11)


def test_four_weeks_of_idle_cell_then_one_rating_counts_at_least_97_percent() -> None:
    """The reported defect: the first pick's timestamp made a rating 28 days later count 0.0625."""
    item: dict[str, Any] = {"picks": 84}  # picks only: no evidence, no decay state
    add(item, evidence_add(1.0, 0.0, now=NOW + 28 * 86400, half_life_s=WEEK))
    alpha, beta = cell_evidence([item], now=NOW + 28 * 86400, half_life_s=WEEK)
    assert alpha >= 0.97 and alpha == pytest.approx(1.0, abs=1e-11) and beta == 0.0


@given(now=times, half_life=st.floats(60.0, 1e8))
def test_the_write_scale_is_bounded(now: float, half_life: float) -> None:
    ((name, amount),) = evidence_add(1.0, 0.0, now=now, half_life_s=half_life).items()
    assert name == f"a_{era_start(now, half_life)}"
    assert 1.0 - 1e-12 <= float(amount) <= 2 ** (1 / 24) + 1e-12


@given(delta=st.floats(-1e15, 1e15) | st.sampled_from([math.nan, math.inf, -math.inf, 5e-13, -1e-300]), now=times)
def test_stored_amounts_are_fixed_point_decimals_dynamodb_adds_exactly(delta: float, now: float) -> None:
    for amount in evidence_add(delta, delta, now=now, half_life_s=WEEK).values():
        assert amount.is_finite() and amount != 0
        assert amount.as_tuple().exponent >= -12  # type: ignore[operator]
        assert len(amount.as_tuple().digits) <= 26  # far below DynamoDB's 38 digits, even summed
        assert "E" not in format(amount, "f")


@pytest.mark.parametrize("half_lives_elapsed", [0, 1, 2, 4, 10])
def test_evidence_decays_as_the_half_life_says(half_lives_elapsed: int) -> None:
    item: dict[str, Any] = {}
    written = NOW + 5000.0
    add(item, evidence_add(1.0, 0.0, now=written, half_life_s=WEEK))
    alpha, _ = cell_evidence([item], now=written + half_lives_elapsed * WEEK, half_life_s=WEEK)
    assert alpha == pytest.approx(0.5**half_lives_elapsed, rel=1e-12)


def test_without_forgetting_evidence_never_decays_and_is_not_scaled() -> None:
    item: dict[str, Any] = {}
    add(item, evidence_add(0.25, 0.75, now=NOW + 123.0, half_life_s=None))
    assert set(item.values()) == {Decimal("0.25"), Decimal("0.75")}
    add(item, evidence_add(1.0, 0.0, now=NOW + 30 * 86400, half_life_s=None))
    plan = plan_compaction(item, now=NOW + 60 * 86400, half_life_s=None)
    assert plan is not None
    compact(item, plan)
    assert cell_evidence([item], now=NOW + 1e8, half_life_s=None) == (1.25, 0.75)


era_values = st.floats(-5.0, 50.0)


@settings(max_examples=300)
@given(
    now=times,
    half_life=half_lives,
    writes=st.lists(st.tuples(st.floats(0, 3e7), era_values, era_values), max_size=8),
    legacy=st.none() | st.tuples(era_values, era_values, st.floats(0, 3e7) | st.none()),
)
def test_compaction_never_changes_what_is_read(
    now: float,
    half_life: float | None,
    writes: list[tuple[float, float, float]],
    legacy: tuple[float, float, float | None] | None,
) -> None:
    item: dict[str, Any] = {"picks": 3}
    for age, a, b in writes:
        add(item, evidence_add(a, b, now=now - age, half_life_s=half_life))
    if legacy is not None:
        item["a"], item["b"] = Decimal(repr(legacy[0])), Decimal(repr(legacy[1]))
        if legacy[2] is not None:
            item["decayed_at"] = int(now - legacy[2])
    before = shard_evidence(item, now=now, half_life_s=half_life)
    plan = plan_compaction(item, now=now, half_life_s=half_life)
    if plan is None:
        return
    compact(item, plan)
    after = shard_evidence(item, now=now, half_life_s=half_life)
    scale = 1 + sum(abs(a) + abs(b) for _, a, b in writes) + (abs(legacy[0]) + abs(legacy[1]) if legacy else 0)
    assert after == pytest.approx(before, rel=1e-9, abs=1e-11 * scale)
    assert not {"a", "b", "decayed_at"} & set(item) and item["picks"] == 3
    assert plan_compaction(item, now=now, half_life_s=half_life) is None  # one era left at most
    later = now + 12345.0
    assert shard_evidence(item, now=later, half_life_s=half_life) == pytest.approx(
        (before[0] * weight(12345.0, half_life), before[1] * weight(12345.0, half_life)),
        rel=1e-9,
        abs=1e-11 * scale,
    )


def test_a_legacy_timestamp_from_a_clock_ahead_is_read_and_folded_as_now() -> None:
    item: dict[str, Any] = {"a": Decimal(2), "b": Decimal(1), "decayed_at": int(NOW) + 30}
    assert shard_evidence(item, now=NOW, half_life_s=WEEK) == (2.0, 1.0)
    plan = plan_compaction(item, now=NOW, half_life_s=WEEK)
    assert plan is not None
    compact(item, plan)
    assert shard_evidence(item, now=NOW, half_life_s=WEEK) == pytest.approx((2.0, 1.0), rel=1e-12)


def test_compaction_runs_only_when_it_bounds_something() -> None:
    assert plan_compaction({"picks": 9}, now=NOW, half_life_s=WEEK) is None
    one_old_era: dict[str, Any] = {}
    add(one_old_era, evidence_add(1.0, 0.0, now=NOW - 30 * 86400, half_life_s=WEEK))
    assert plan_compaction(one_old_era, now=NOW, half_life_s=WEEK) is None  # reading it is exact already
    current_only: dict[str, Any] = {}
    add(current_only, evidence_add(1.0, 1.0, now=NOW, half_life_s=WEEK))
    add(current_only, evidence_add(1.0, 1.0, now=NOW, half_life_s=WEEK))
    assert plan_compaction(current_only, now=NOW, half_life_s=WEEK) is None
    # A picks-only item left by the previous version: its stale timestamp is removed, nothing added.
    assert plan_compaction({"picks": 9, "decayed_at": int(NOW - 86400)}, now=NOW, half_life_s=WEEK) == Compaction(
        add={}, remove=("decayed_at",)
    )


def test_a_write_during_compaction_lands_in_the_current_era_which_compaction_only_adds_to() -> None:
    """Concurrency by construction: compaction conditions only on attributes nobody writes now."""
    item: dict[str, Any] = {}
    add(item, evidence_add(1.0, 0.0, now=NOW - 86400, half_life_s=WEEK))
    add(item, evidence_add(0.0, 1.0, now=NOW - 3 * 86400, half_life_s=WEEK))
    plan = plan_compaction(item, now=NOW, half_life_s=WEEK)
    assert plan is not None
    current = f"_{era_start(NOW, WEEK)}"
    assert all(not name.endswith(current) for name in plan.remove)
    assert set(plan.add) == {"a" + current, "b" + current}
    concurrent = evidence_add(1.0, 0.0, now=NOW, half_life_s=WEEK)
    assert set(concurrent) == {"a" + current}
    before = cell_evidence([item], now=NOW, half_life_s=WEEK)
    add(item, concurrent)  # lands between the compaction's read and its write: both are ADDs
    compact(item, plan)
    after = cell_evidence([item], now=NOW, half_life_s=WEEK)
    assert after == pytest.approx((before[0] + 1.0, before[1]), rel=1e-12)


@given(
    reward=st.floats(0, 1),
    replaces=st.floats(0, 1),
    gap=st.floats(0, 30 * 86400),
    read_after=st.floats(0, 1e7),
    same_shard=st.booleans(),
)
def test_a_replacement_reads_as_if_only_the_new_reward_was_given(
    reward: float, replaces: float, gap: float, read_after: float, same_shard: bool
) -> None:
    shards: list[dict[str, Any]] = [{}, {}]
    add(shards[0], evidence_add(replaces, 1 - replaces, now=NOW, half_life_s=WEEK))
    d_alpha, d_beta = replacement_delta(reward, replaces, NOW, now=NOW + gap, half_life_s=WEEK)
    add(shards[0 if same_shard else 1], evidence_add(d_alpha, d_beta, now=NOW + gap, half_life_s=WEEK))
    alpha, beta = cell_evidence(shards, now=NOW + gap + read_after, half_life_s=WEEK)
    w = weight(read_after, WEEK)
    assert alpha == pytest.approx(reward * w, abs=1e-9)
    assert beta == pytest.approx((1 - reward) * w, abs=1e-9)


def test_shards_are_summed_before_clamping() -> None:
    """The reported defect: each shard clamped at 0 lost the part of a correction on another shard."""
    implicit = {"a": 1.0, "b": 0.0, "decayed_at": NOW}  # +1 on shard 0
    override = {"a": -1.0, "b": 1.0, "decayed_at": NOW}  # −1 / +1 on shard 1
    assert cell_evidence([implicit, override], now=NOW, half_life_s=WEEK) == (0.0, 1.0)


garbage = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**40, -(10**40), Decimal("1e30"), Decimal("-1e-30"), "x", "", None, int(NOW) + 10**6]),
)


@given(
    items=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "decayed_at", "a_0", "b_0", f"a_{int(NOW)}", "b_7"]), garbage),
        max_size=4,
    ),
    now=times,
    half_life=half_lives,
)
def test_a_cell_never_reads_as_an_improper_posterior(
    items: list[dict[str, Any]], now: float, half_life: float | None
) -> None:
    alpha, beta = cell_evidence(items, now=now, half_life_s=half_life)
    for side in (alpha, beta):
        assert math.isfinite(side) and 0.0 <= side <= MAX_CELL_EVIDENCE
    posterior = posterior_from_evidence(Posterior(0.6, 0.4), alpha, beta)
    assert posterior.alpha > 0 and posterior.beta > 0 and 0.0 < posterior.mean < 1.0
