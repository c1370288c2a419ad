"""The router's decision rule bound to its configuration: priors, arms, picks and pick shares.

One place turns a router's settings and its cells into the bandit's inputs, so the chat flow,
the state snapshot and the benchmarks always run the same rule (`decide`, `decision_shares`).
Pure: no I/O; randomness comes from the caller's `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from router_core import bandit
from router_core.classifier import message_text
from router_core.config import GatewayConfig, RouterConfig
from router_core.posterior import Posterior, cold_start_prior, posterior_from_evidence
from router_core.store import CellCounters

CHARS_PER_TOKEN = 4.0
"""Prompt size estimate used only for the *expected* cost of a decision; spend uses real usage."""


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Rough token count of a conversation (≈ 4 characters per token, at least 1)."""
    return max(1, int(sum(len(message_text(m)) for m in messages) / CHARS_PER_TOKEN))


def cell_prior(config: GatewayConfig, router: RouterConfig, request_type: str, model_name: str) -> Posterior:
    """The cold-start prior of one (type, model) cell: the model's tier, raised for its strengths."""
    model = config.models[model_name]
    return cold_start_prior(model.quality_tier, request_type in model.strengths, router.prior_mass)


def build_arms(
    config: GatewayConfig,
    router: RouterConfig,
    request_type: str,
    cells: Mapping[str, CellCounters],
    prompt_tokens: int,
    *,
    models: Sequence[str] | None = None,
) -> list[bandit.Arm]:
    """One arm per model (the router's, or the subset `models` that can serve the request): the
    cell's posterior, its evidence and this request's expected cost.

    Cost units = (prompt tokens × input price + the cell's mean output tokens × output price)
    / `cost_reference_usd`; a cell nobody routed to yet assumes the model's `expected_output_tokens`.
    """
    arms = []
    for name in router.models if models is None else models:
        model = config.models[name]
        cell = cells.get(name)
        prior = cell_prior(config, router, request_type, name)
        if cell is None:
            posterior = prior
            out_tokens = float(model.expected_output_tokens)
        else:
            posterior = posterior_from_evidence(prior, cell.alpha_evidence, cell.beta_evidence)
            out_tokens = cell.average_output_tokens(model.expected_output_tokens)
        expected_usd = (prompt_tokens * model.input_usd_per_mtok + out_tokens * model.output_usd_per_mtok) / 1e6
        arms.append(
            bandit.Arm(
                model=name,
                posterior=posterior,
                cost_units=expected_usd / router.cost_reference_usd,
                evidence=max(posterior.mass - prior.mass, 0.0),
            )
        )
    return arms


def decide(
    router: RouterConfig,
    arms: Sequence[bandit.Arm],
    rng: random.Random,
    *,
    quality_weight: float | None = None,
    cost_weight: float | None = None,
) -> bandit.Decision:
    """The router's decision rule: Thompson sampling with every knob taken from its config.

    The weights can be overridden (the learning benchmark sweeps them); nothing else can, so
    production, the state's pick shares and the benchmarks always run the same rule.
    """
    return bandit.pick_model(
        arms,
        quality_weight=router.weights.quality if quality_weight is None else quality_weight,
        cost_weight=router.weights.cost if cost_weight is None else cost_weight,
        rng=rng,
        exploration_floor=router.exploration_floor,
        posterior_temper=router.posterior_temper,
    )


def decision_shares(
    router: RouterConfig, arms: Sequence[bandit.Arm], rng: random.Random, draws: int
) -> dict[str, float]:
    """Probability each model wins under `decide`'s rule (for the dashboard and benchmarks)."""
    return bandit.pick_shares(
        arms,
        quality_weight=router.weights.quality,
        cost_weight=router.weights.cost,
        rng=rng,
        exploration_floor=router.exploration_floor,
        posterior_temper=router.posterior_temper,
        draws=draws,
    )


def fallback_order(
    router: RouterConfig, decision: bandit.Decision | None, candidates: Sequence[str] | None = None
) -> list[str]:
    """Models to try, in order: the pick first (an exploration pick need not have the best score),
    then the rest by score; without a decision, the router's default model first. Only
    `candidates` (default: all the router's models) are tried."""
    allowed = router.models if candidates is None else candidates
    if decision is None:
        first = [router.default_model] if router.default_model in allowed else []
        return [*first, *(m for m in allowed if m != router.default_model)]
    return [decision.model, *(m for m in decision.ranking if m != decision.model and m in allowed)]


def decision_log(
    request_type: str, rule: str, decision: bandit.Decision, *, skipped: Mapping[str, str] | None = None
) -> dict[str, object]:
    """The decision as logged once per turn for off-policy evaluation (no prompt text); `skipped`
    names the models left out because their circuit breaker was open (with the failure kind)."""
    log: dict[str, object] = {
        "request_type": request_type,
        "classifier_rule": rule,
        "candidates": list(decision.scores),
        "sampled": {m: round(v, 5) for m, v in decision.sampled.items()},
        "scores": {m: round(v, 5) for m, v in decision.scores.items()},
        "chosen": decision.model,
        "propensity": round(decision.propensity, 6),
        "explored": decision.explored,
    }
    if skipped:
        log["skipped_unhealthy"] = dict(skipped)
    return log
