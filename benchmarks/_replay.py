"""Replay machinery of the learning benchmark: request pools, feedback regimes, policies, metrics.

A *pool* is a list of requests, each with a request type and whether the weak and the strong
model answer it correctly, and what the router is told about the two models (quality tiers). A
*run* replays one shuffled pool through one policy at one price of a strong call (λ, in accuracy
units), feeding back the chosen model's correctness as the thumbs signal (possibly sparse and
noisy), and records what was picked and what it earned.

Conventions (RouteLLM's `evals/evaluate.py`): cost = share of strong-model calls; the price λ is
swept to trace accuracy against that share; APGR is the area under the curve normalised between
the weak (0) and the strong (1) model; CPT(50%) is the share of strong calls at which half the
quality gap is closed. The curve includes the two trivial end points (0%, weak accuracy) and
(100%, strong accuracy), which any router reaches by always calling one model.

Regret is expected regret per request against the best model of the request's type with
hindsight (per-type accuracies over the whole pool), at utility correct − λ·[strong called]: it
does not depend on which prompts happened to be answered.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from router_core.bandit import Arm
from router_core.config import RouterConfig, load_config
from router_core.policy import decide
from router_core.posterior import cold_start_prior, decay_factor, posterior_from_evidence

DATA_DIR = Path(__file__).resolve().parent / "data" / "routellm_mmlu"
WEAK_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_COLUMN = "gpt-4-1106-preview"
DEMO_ROUTER = "smart-cheap-router"
"""The shipped router whose bandit knobs (`RouterConfig` defaults) the replayed router runs with."""
DATASETS = ("mmlu", "mmlu_swapped_tiers")
REGRET_PRICE = 0.1
"""Price of one strong call in accuracy units for regret (and the drift scenarios)."""
RECOVERY_WINDOW = 200
RECOVERY_LEVEL = 0.01
DRIFT_TYPES = 10
"""Types whose strong model silently degrades in `drift_regression`."""
PRICE_CUT = 10.0


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class ModelSpec:
    """What the router knows about a model before any feedback: its name, tier and strengths."""

    name: str
    quality_tier: int
    strengths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pool:
    """The requests of one replay and the hindsight accuracy of each model per request type."""

    name: str
    types: tuple[str, ...]
    type_idx: tuple[int, ...]
    weak_ok: tuple[bool, ...]
    strong_ok: tuple[bool, ...]
    acc_weak: tuple[float, ...]
    acc_strong: tuple[float, ...]
    weak: ModelSpec
    strong: ModelSpec
    cost_weak: float
    """Expected cost units of one weak call (0 for MMLU: cost is the share of strong calls)."""
    cost_strong: float
    data: str
    """The labelled requests behind the pool. Pools over the same data (MMLU with true or swapped
    tiers) replay the same request order, feedback noise and policy random numbers per seed, so
    they differ only in what the router is told about the models."""

    def __len__(self) -> int:
        return len(self.type_idx)


def _accuracies(type_idx: Sequence[int], ok: Sequence[bool], n_types: int) -> tuple[float, ...]:
    hits = [0] * n_types
    seen = [0] * n_types
    for t, good in zip(type_idx, ok, strict=True):
        seen[t] += 1
        hits[t] += good
    return tuple(h / s if s else 0.0 for h, s in zip(hits, seen, strict=True))


@cache
def mmlu_pool(subject_stride: int = 1) -> Pool:
    """The 57 MMLU subject files (every `subject_stride`-th subject, for quick runs)."""
    files = sorted(DATA_DIR.glob("mmlu_*.csv"))[::subject_stride]
    if not files:
        raise FileNotFoundError(f"no MMLU files under {DATA_DIR}")
    types: list[str] = []
    type_idx: list[int] = []
    weak_ok: list[bool] = []
    strong_ok: list[bool] = []
    for path in files:
        types.append(path.stem.removeprefix("mmlu_"))
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                type_idx.append(len(types) - 1)
                weak_ok.append(row[WEAK_COLUMN] == "True")
                strong_ok.append(row[STRONG_COLUMN] == "True")
    return Pool(
        name="mmlu",
        types=tuple(types),
        type_idx=tuple(type_idx),
        weak_ok=tuple(weak_ok),
        strong_ok=tuple(strong_ok),
        acc_weak=_accuracies(type_idx, weak_ok, len(types)),
        acc_strong=_accuracies(type_idx, strong_ok, len(types)),
        # Mixtral-8x7B: a mid-tier model; GPT-4-1106: frontier. No declared strengths on subjects.
        weak=ModelSpec("mixtral-8x7b", 2),
        strong=ModelSpec("gpt-4-1106", 3),
        cost_weak=0.0,
        cost_strong=1.0,
        data="mmlu",
    )


@cache
def mmlu_swapped_tiers_pool(subject_stride: int = 1) -> Pool:
    """MMLU with the two models' declared quality tiers swapped (weak declared 3, strong 2): what
    a wrong `quality_tier` in the config costs. Same prompts, labels and costs as `mmlu_pool`."""
    pool = mmlu_pool(subject_stride)
    return dataclasses.replace(
        pool,
        name="mmlu_swapped_tiers",
        weak=ModelSpec(pool.weak.name, pool.strong.quality_tier, pool.weak.strengths),
        strong=ModelSpec(pool.strong.name, pool.weak.quality_tier, pool.strong.strengths),
    )


def _stable_seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A feedback regime and, optionally, a change half-way through the stream."""

    name: str
    rated_share: float = 1.0
    flip_share: float = 0.0
    drift: str | None = None  # "regression" | "price_cut"


SCENARIOS: dict[str, Scenario] = {
    "clean": Scenario("clean"),
    "sparse_noisy": Scenario("sparse_noisy", rated_share=0.2, flip_share=0.15),
    "drift_regression": Scenario("drift_regression", drift="regression"),
    "drift_price_cut": Scenario("drift_price_cut", drift="price_cut"),
}


def regression_types(pool: Pool, price: float = REGRET_PRICE) -> frozenset[int]:
    """The `DRIFT_TYPES` busiest types whose best model (at `price`) is the strong one.

    Busiest, so that each has enough traffic after the change to measure recovery.
    """
    counts = [0] * len(pool.types)
    for t in pool.type_idx:
        counts[t] += 1
    candidates = [t for t in range(len(pool.types)) if pool.acc_strong[t] - price > pool.acc_weak[t]]
    candidates.sort(key=lambda t: (-counts[t], t))
    return frozenset(candidates[:DRIFT_TYPES])


@dataclass
class Stream:
    """One seed's realisation: request order and which turns are rated or flipped."""

    order: list[int]
    rated: list[bool]
    flipped: list[bool]
    change_at: int | None
    affected: frozenset[int]
    """Types whose strong model degrades at `change_at` (regression scenario)."""

    def affected_by(self, pool: Pool, scenario: Scenario) -> frozenset[int]:
        """Types whose best model changes at `change_at`: the regressed ones, or those a price cut flips."""
        if scenario.drift == "regression":
            return self.affected
        if scenario.drift == "price_cut":
            return price_cut_types(pool)
        return frozenset()


def make_stream(pool: Pool, scenario: Scenario, seed: int) -> Stream:
    """Same order and same feedback noise for every policy and price of one seed (common random numbers)."""
    rng = random.Random(_stable_seed("stream", pool.data, len(pool), seed))
    order = list(range(len(pool)))
    rng.shuffle(order)
    noise = random.Random(_stable_seed("noise", pool.data, scenario.name, seed))
    rated = [noise.random() < scenario.rated_share for _ in order]
    flipped = [noise.random() < scenario.flip_share for _ in order]
    change_at = len(order) // 2 if scenario.drift else None
    affected: frozenset[int] = frozenset()
    if scenario.drift == "regression":
        affected = regression_types(pool)
    return Stream(order, rated, flipped, change_at, affected)


# --------------------------------------------------------------------------- policies


class Policy(Protocol):
    """Chooses weak (False) or strong (True) for a request and learns from its rating."""

    def choose(self, type_idx: int, cost_strong: float, hour: float) -> bool: ...

    def learn(self, type_idx: int, strong: bool, reward: float, hour: float) -> None: ...


@dataclass
class _DecayedEvidence:
    """Exponentially forgotten (α, β) evidence of one cell, as the state store keeps it."""

    a: float = 0.0
    b: float = 0.0
    at_hour: float = 0.0

    def read(self, hour: float, half_life_s: float | None) -> tuple[float, float]:
        f = decay_factor((hour - self.at_hour) * 3600.0, half_life_s)
        return self.a * f, self.b * f

    def add(self, reward: float, hour: float, half_life_s: float | None) -> None:
        self.a, self.b = self.read(hour, half_life_s)
        self.a += reward
        self.b += 1.0 - reward
        self.at_hour = hour


class RouterPolicy:
    """Production: `cold_start_prior` + decayed evidence → `Arm`s with real cost units → `pick_model`.

    Every knob comes from `RouterConfig` (defaults unless overridden), exactly as the chat path
    passes them; only the weights change across the price sweep (they still sum to 1). Each arm
    carries its decayed evidence (α + β beyond the prior), as `policy.build_arms` does, so its
    posterior temper is earned the same way.
    """

    def __init__(self, pool: Pool, router: RouterConfig, price: float, rng: random.Random) -> None:
        gap = pool.cost_strong - pool.cost_weak
        ratio = price / gap  # cost weight / quality weight: a strong call costs `price` accuracy units more
        self.quality_weight = 1.0 / (1.0 + ratio)
        self.cost_weight = ratio / (1.0 + ratio)
        self.router = router
        self.rng = rng
        self.half_life_s = (
            None if router.forgetting_half_life_hours is None else router.forgetting_half_life_hours * 3600
        )
        self.models = (pool.weak, pool.strong)
        self.cost_weak = pool.cost_weak
        self.priors = [
            [cold_start_prior(m.quality_tier, t in m.strengths, router.prior_mass) for m in self.models]
            for t in pool.types
        ]
        self.cells = [[_DecayedEvidence(), _DecayedEvidence()] for _ in pool.types]
        self.propensities: list[float] = []

    def choose(self, type_idx: int, cost_strong: float, hour: float) -> bool:
        arms = []
        for m, cost in ((0, self.cost_weak), (1, cost_strong)):
            a, b = self.cells[type_idx][m].read(hour, self.half_life_s)
            posterior = posterior_from_evidence(self.priors[type_idx][m], a, b)
            arms.append(Arm(self.models[m].name, posterior, cost, evidence=a + b))
        decision = decide(self.router, arms, self.rng, quality_weight=self.quality_weight, cost_weight=self.cost_weight)
        self.propensities.append(decision.propensity)
        return decision.model == self.models[1].name

    def learn(self, type_idx: int, strong: bool, reward: float, hour: float) -> None:
        self.cells[type_idx][int(strong)].add(reward, hour, self.half_life_s)


class PlainThompson:
    """Beta(1, 1) Thompson sampling per (type, model); no prior, no floor, no forgetting."""

    def __init__(self, pool: Pool, price: float, rng: random.Random) -> None:
        self.ratio = price / (pool.cost_strong - pool.cost_weak)
        self.cost_weak = pool.cost_weak
        self.counts = [[[1.0, 1.0], [1.0, 1.0]] for _ in pool.types]
        self.rng = rng

    def choose(self, type_idx: int, cost_strong: float, hour: float) -> bool:
        (aw, bw), (as_, bs) = self.counts[type_idx]
        weak = self.rng.betavariate(aw, bw) - self.ratio * self.cost_weak
        strong = self.rng.betavariate(as_, bs) - self.ratio * cost_strong
        return strong > weak

    def learn(self, type_idx: int, strong: bool, reward: float, hour: float) -> None:
        cell = self.counts[type_idx][int(strong)]
        cell[0] += reward
        cell[1] += 1.0 - reward


class Fixed:
    """Always the same model, or a coin with a fixed P(strong) (the `random` router)."""

    def __init__(self, p_strong: float, rng: random.Random) -> None:
        self.p_strong = p_strong
        self.rng = rng

    def choose(self, type_idx: int, cost_strong: float, hour: float) -> bool:
        if self.p_strong in (0.0, 1.0):
            return self.p_strong == 1.0
        return self.rng.random() < self.p_strong

    def learn(self, type_idx: int, strong: bool, reward: float, hour: float) -> None:
        return None


class TypeOracle:
    """Reference only (reads the labels): the best model per type with hindsight at the current price."""

    def __init__(self, pool: Pool, price: float, stream: Stream) -> None:
        self.pool = pool
        self.ratio = price / (pool.cost_strong - pool.cost_weak)
        self.stream = stream
        self.t = 0

    def choose(self, type_idx: int, cost_strong: float, hour: float) -> bool:
        acc_s = self.pool.acc_strong[type_idx]
        if type_idx in self.stream.affected and self.stream.change_at is not None and self.t >= self.stream.change_at:
            acc_s = self.pool.acc_weak[type_idx]
        self.t += 1
        return acc_s - self.ratio * cost_strong > self.pool.acc_weak[type_idx] - self.ratio * self.pool.cost_weak

    def learn(self, type_idx: int, strong: bool, reward: float, hour: float) -> None:
        return None


POLICIES = ("always_strong", "always_weak", "random", "plain_ts", "router", "type_oracle")
SWEEPS_PRICE = ("plain_ts", "router", "type_oracle")


def make_policy(name: str, pool: Pool, knob: float, stream: Stream, rng: random.Random, router: RouterConfig) -> Policy:
    """`knob` is the price of a strong call (λ) or, for `random`, P(strong)."""
    if name == "router":
        return RouterPolicy(pool, router, knob, rng)
    if name == "plain_ts":
        return PlainThompson(pool, knob, rng)
    if name == "type_oracle":
        return TypeOracle(pool, knob, stream)
    if name == "random":
        return Fixed(knob, rng)
    if name == "always_strong":
        return Fixed(1.0, rng)
    if name == "always_weak":
        return Fixed(0.0, rng)
    raise ValueError(f"unknown policy {name!r}")


# --------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    """What one replay of one stream by one policy at one knob value produced."""

    knob: float
    strong_share: float
    accuracy: float
    weak_accuracy: float
    strong_accuracy: float
    regret_at: dict[int, float] = field(default_factory=dict)
    regret_final: float = 0.0
    post_change: dict[int, list[float]] = field(default_factory=dict)
    mean_propensity: float | None = None


def replay(
    pool: Pool,
    stream: Stream,
    scenario: Scenario,
    policy: Policy,
    *,
    knob: float,
    regret_price: float,
    requests_per_hour: float,
    checkpoints: Sequence[int] = (1000,),
) -> RunResult:
    """Replay `stream` through `policy`; regret uses the price `regret_price` (λ, accuracy units)."""
    gap = pool.cost_strong - pool.cost_weak
    strong_hits = weak_hits = strong_calls = hits = 0
    regret = 0.0
    regret_at: dict[int, float] = {}
    post_change: dict[int, list[float]] = {t: [] for t in range(len(pool.types))}
    for step, req in enumerate(stream.order):
        t = pool.type_idx[req]
        changed = stream.change_at is not None and step >= stream.change_at
        cost_strong = pool.cost_strong
        price_now = regret_price
        if changed and scenario.drift == "price_cut":
            cost_strong = pool.cost_strong / PRICE_CUT
            price_now = regret_price * (cost_strong - pool.cost_weak) / gap
        strong_ok = pool.strong_ok[req]
        acc_s = pool.acc_strong[t]
        if changed and t in stream.affected:  # silent regression: strong answers like weak
            strong_ok = pool.weak_ok[req]
            acc_s = pool.acc_weak[t]
        hour = step / requests_per_hour
        strong = policy.choose(t, cost_strong, hour)
        ok = strong_ok if strong else pool.weak_ok[req]
        strong_calls += strong
        hits += ok
        strong_hits += strong_ok
        weak_hits += pool.weak_ok[req]
        u_weak, u_strong = pool.acc_weak[t], acc_s - price_now
        loss = max(u_weak, u_strong) - (u_strong if strong else u_weak)
        regret += loss
        if changed:
            post_change[t].append(loss)
        if step + 1 in checkpoints:
            regret_at[step + 1] = regret
        if stream.rated[step]:
            reward = float(ok) if not stream.flipped[step] else 1.0 - float(ok)
            policy.learn(t, strong, reward, hour)
    n = len(stream.order)
    props = getattr(policy, "propensities", None)
    return RunResult(
        knob=knob,
        strong_share=strong_calls / n,
        accuracy=hits / n,
        weak_accuracy=weak_hits / n,
        strong_accuracy=strong_hits / n,
        regret_at=regret_at,
        regret_final=regret,
        post_change={t: v for t, v in post_change.items() if v},
        mean_propensity=statistics.fmean(props) if props else None,
    )


# --------------------------------------------------------------------------- metrics


def quality_curve(results: Sequence[RunResult]) -> tuple[list[float], list[float], float, float]:
    """(strong shares, accuracies) sorted by share, with the (0, weak) and (1, strong) end points."""
    weak = statistics.fmean(r.weak_accuracy for r in results)
    strong = statistics.fmean(r.strong_accuracy for r in results)
    points = sorted([(0.0, weak), (1.0, strong)] + [(r.strong_share, r.accuracy) for r in results])
    return [p[0] for p in points], [p[1] for p in points], weak, strong


def apgr(results: Sequence[RunResult]) -> float:
    """Area under accuracy vs share of strong calls, normalised: weak = 0, strong = 1 (random ≈ 0.5)."""
    xs, ys, weak, strong = quality_curve(results)
    area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2.0 for i in range(len(xs) - 1))
    return (area - weak) / (strong - weak)


def cpt(results: Sequence[RunResult], fraction: float = 0.5) -> float:
    """Share of strong calls (0..1) at which the curve first closes `fraction` of the quality gap."""
    xs, ys, weak, strong = quality_curve(results)
    target = weak + fraction * (strong - weak)
    for i in range(1, len(xs)):
        if ys[i] >= target:
            if ys[i - 1] >= target or ys[i] == ys[i - 1]:
                return xs[i - 1] if ys[i - 1] >= target else xs[i]
            return xs[i - 1] + (target - ys[i - 1]) / (ys[i] - ys[i - 1]) * (xs[i] - xs[i - 1])
    return 1.0


def recovery(losses: Sequence[float], window: int = RECOVERY_WINDOW, level: float = RECOVERY_LEVEL) -> tuple[int, bool]:
    """Requests after the change until the trailing `window`-request mean of per-request regret
    stays below `level` to the end (the mean is over the requests so far while fewer than
    `window`). Returns (requests, recovered); not recovered → (len(losses), False)."""
    last_bad = -1
    running = 0.0
    for i, loss in enumerate(losses):
        running += loss
        if i >= window:
            running -= losses[i - window]
        if running / min(i + 1, window) >= level:
            last_bad = i
    recovered = last_bad < len(losses) - 1
    return (last_bad + 1, recovered)


_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% confidence interval (Student t over seeds) of per-seed values."""
    vals = [float(v) for v in values]
    n = len(vals)
    mean = statistics.fmean(vals)
    if n < 2:
        return {"mean": mean, "ci95": [mean, mean], "n": n}
    df = n - 1
    t = _T975.get(df) or (_T975[max(k for k in _T975 if k <= df)] if df < 30 else 1.96)
    half = t * statistics.stdev(vals) / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


# --------------------------------------------------------------------------- a unit of work


@dataclass(frozen=True)
class Job:
    """One (dataset, scenario, policy, seed): every knob value of the sweep is replayed in it."""

    dataset: str
    scenario: str
    policy: str
    seed: int
    knobs: tuple[float, ...]
    requests_per_hour: float
    mmlu_stride: int = 1
    router_overrides: tuple[tuple[str, Any], ...] = ()


def pool_for(job: Job) -> Pool:
    """The pool a job replays (loaded once per process)."""
    if job.dataset == "mmlu":
        return mmlu_pool(job.mmlu_stride)
    if job.dataset == "mmlu_swapped_tiers":
        return mmlu_swapped_tiers_pool(job.mmlu_stride)
    raise ValueError(f"unknown dataset {job.dataset!r}")


def demo_router_config(overrides: Sequence[tuple[str, Any]] = ()) -> RouterConfig:
    """The shipped demo router's config (defaults for every bandit knob), optionally overridden."""
    router = load_config().routers[DEMO_ROUTER]
    return router.model_copy(update=dict(overrides)) if overrides else router


def run_job(job: Job) -> dict[str, Any]:
    """Replay every knob of `job`; plain data out (it crosses process boundaries)."""
    pool = pool_for(job)
    scenario = SCENARIOS[job.scenario]
    stream = make_stream(pool, scenario, job.seed)
    router = demo_router_config(job.router_overrides)
    out: list[dict[str, Any]] = []
    for knob in job.knobs:
        rng = random.Random(_stable_seed(pool.data, job.scenario, job.policy, job.seed, knob))
        policy = make_policy(job.policy, pool, knob, stream, rng, router)
        regret_price = knob if job.policy in SWEEPS_PRICE else REGRET_PRICE
        result = replay(
            pool,
            stream,
            scenario,
            policy,
            knob=knob,
            regret_price=regret_price,
            requests_per_hour=job.requests_per_hour,
        )
        recoveries = [recovery(result.post_change[t]) for t in sorted(stream.affected_by(pool, scenario))]
        out.append(
            {
                "knob": knob,
                "strong_share": result.strong_share,
                "accuracy": result.accuracy,
                "weak_accuracy": result.weak_accuracy,
                "strong_accuracy": result.strong_accuracy,
                "regret_1000": result.regret_at.get(1000),
                "regret_final": result.regret_final,
                "recovery": recoveries,
                "post_change_regret_affected": sum(
                    sum(result.post_change.get(t, [])) for t in stream.affected_by(pool, scenario)
                ),
                "mean_propensity": result.mean_propensity,
            }
        )
    return {"job": job, "runs": out}


def price_cut_types(pool: Pool, price: float = REGRET_PRICE) -> frozenset[int]:
    """Types whose best model changes (weak → strong) when the strong model gets `PRICE_CUT` times cheaper."""
    gap = pool.cost_strong - pool.cost_weak
    new_price = price * (pool.cost_strong / PRICE_CUT - pool.cost_weak) / gap
    return frozenset(
        t
        for t in range(len(pool.types))
        if pool.acc_strong[t] - price <= pool.acc_weak[t] < pool.acc_strong[t] - new_price
    )
