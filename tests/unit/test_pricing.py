"""Turn cost from real usage and prices; the baseline is the most expensive model on the same tokens."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from router_core.config import load_config, parse_config
from router_core.pricing import turn_cost

pytestmark = pytest.mark.unit


def test_cost_uses_input_and_output_prices() -> None:
    config = load_config()
    cost = turn_cost(config, "smart-cheap-router", "fast", 1000, 500)
    assert cost.actual_usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert cost.baseline_model == "smart"
    assert cost.baseline_usd == pytest.approx((1000 * 2.50 + 500 * 10.0) / 1e6)
    assert cost.savings_usd == pytest.approx(cost.baseline_usd - cost.actual_usd)


def test_the_most_expensive_model_answering_saves_nothing() -> None:
    cost = turn_cost(load_config(), "smart-cheap-router", "smart", 700, 300)
    assert cost.savings_usd == 0.0


def test_a_model_named_directly_has_no_baseline_savings() -> None:
    cost = turn_cost(load_config(), None, "fast", 100, 100)
    assert cost.baseline_usd == cost.actual_usd and cost.baseline_model == "fast"


def test_baseline_depends_on_the_token_mix() -> None:
    """A model cheap on input but dear on output is the baseline only for output-heavy turns."""
    raw = yaml.safe_load(resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8"))
    raw["models"]["fast"].update(input_usd_per_mtok=0.1, output_usd_per_mtok=20.0)
    raw["models"]["smart"].update(input_usd_per_mtok=5.0, output_usd_per_mtok=5.0)
    config = parse_config(yaml.safe_dump(raw))
    assert turn_cost(config, "smart-cheap-router", "fast", 10_000, 10).baseline_model == "smart"
    assert turn_cost(config, "smart-cheap-router", "fast", 10, 10_000).baseline_model == "fast"


@given(st.integers(0, 2_000_000), st.integers(0, 2_000_000), st.sampled_from(["fast", "smart"]))
def test_savings_are_never_negative_for_a_routed_turn(inp: int, out: int, model: str) -> None:
    assert turn_cost(load_config(), "smart-cheap-router", model, inp, out).savings_usd >= 0.0
