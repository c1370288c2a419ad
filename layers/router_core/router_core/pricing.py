"""Pricing: what a turn cost, and what it would have cost on the router's most expensive model."""

from __future__ import annotations

from dataclasses import dataclass

from router_core.config import GatewayConfig


@dataclass(frozen=True, slots=True)
class TurnCost:
    """US dollars for one answered turn, from the upstream's reported token usage."""

    actual_usd: float
    baseline_usd: float
    """The same tokens on the router's most expensive model (the savings baseline)."""
    baseline_model: str

    @property
    def savings_usd(self) -> float:
        return self.baseline_usd - self.actual_usd


def turn_cost(config: GatewayConfig, router: str | None, model: str, input_tokens: int, output_tokens: int) -> TurnCost:
    """Cost of `model` answering with these token counts, and the baseline for `router`.

    Without a router (a model named directly) the baseline is the turn's own cost: no savings.
    """
    actual = config.models[model].cost_usd(input_tokens, output_tokens)
    if router is None:
        return TurnCost(actual, actual, model)
    top = config.most_expensive_model(router, input_tokens, output_tokens)
    return TurnCost(actual, config.models[top].cost_usd(input_tokens, output_tokens), top)
