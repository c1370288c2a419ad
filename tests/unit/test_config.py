"""RouterConfig: the shipped example loads; a bad file fails with one message naming the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml
from router_core.config import REQUEST_TYPES, ConfigError, load_config, parse_config

pytestmark = pytest.mark.unit


def shipped() -> dict:
    return yaml.safe_load(resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8"))


def test_shipped_example_has_the_demo_router() -> None:
    config = load_config()
    router = config.routers["smart-cheap-router"]
    assert router.models == ("fast", "smart")
    assert router.default_model == "fast"
    assert router.signal_gate_min_messages == 4
    assert set(router.request_types) == set(REQUEST_TYPES)
    assert config.models["smart"].output_usd_per_mtok > config.models["fast"].output_usd_per_mtok


def test_cost_is_computed_from_input_and_output_prices() -> None:
    smart = load_config().models["smart"]
    assert smart.cost_usd(1_000_000, 0) == pytest.approx(smart.input_usd_per_mtok)
    assert smart.cost_usd(0, 1_000_000) == pytest.approx(smart.output_usd_per_mtok)


def test_baseline_is_the_most_expensive_model_for_the_tokens() -> None:
    assert load_config().most_expensive_model("smart-cheap-router", 100, 100) == "smart"


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda c: c["models"]["fast"].pop("output_usd_per_mtok"), "models.fast.output_usd_per_mtok", "Field required"),
        (lambda c: c["models"]["fast"].update(input_usd_per_mtok=-1), "models.fast.input_usd_per_mtok", "greater than"),
        (
            lambda c: c["routers"]["smart-cheap-router"].update(weights={"quality": 0.9, "cost": 0.3}),
            "weights",
            "must be 1",
        ),
        (
            lambda c: c["routers"]["smart-cheap-router"].update(default_model="huge"),
            "default_model",
            "not one of models",
        ),
        (lambda c: c["routers"]["smart-cheap-router"].update(models=["fast", "nope"]), "'nope'", "not one of models"),
        (lambda c: c["models"]["smart"].update(provider="azure"), "models.smart.provider", "not one of providers"),
        (lambda c: c["models"]["smart"].update(strengths=["poetry"]), "models.smart.strengths", "unknown request type"),
        (
            lambda c: c["routers"]["smart-cheap-router"].update(signal_gate_min_messages=0),
            "signal_gate_min_messages",
            "greater than or equal to 1",
        ),
        (
            lambda c: c["routers"]["smart-cheap-router"].update(exploration_floor=0.9),
            "exploration_floor",
            "less than or equal to 0.5",
        ),
        (lambda c: c["routers"]["smart-cheap-router"].update(prior_mass=0), "prior_mass", "greater than 0"),
        (lambda c: c["routers"]["smart-cheap-router"].update(typo_field=1), "typo_field", "Extra inputs"),
        (lambda c: c["routers"]["smart-cheap-router"].update(request_types=["writing"]), "request_types", "general"),
        (
            lambda c: c["routers"].update({"bad#name": c["routers"]["smart-cheap-router"]}),
            "routers.bad#name",
            "letters",
        ),
    ],
    ids=[
        "missing-price",
        "negative-price",
        "weights-sum",
        "default-not-a-model",
        "unknown-model",
        "unknown-provider",
        "unknown-strength",
        "gate-zero",
        "exploration-too-high",
        "prior-mass-zero",
        "unknown-field",
        "no-general-type",
        "hash-in-name",
    ],
)
def test_bad_config_names_the_field_and_the_reason(mutate, field: str, reason: str) -> None:
    raw = shipped()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), "routers.yaml")
    message = str(info.value)
    assert field in message
    assert reason in message
    assert message.startswith("routers.yaml: ")


def test_unreadable_and_non_yaml_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routers: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = shipped()
    raw["routers"]["smart-cheap-router"]["signal_gate_min_messages"] = 6
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("ROUTER_CONFIG_PATH", str(path))
    assert load_config().routers["smart-cheap-router"].signal_gate_min_messages == 6
