"""Router configuration: one pydantic model, loaded once per cold start from YAML.

Every knob has a default, a unit and a reason. A bad file fails at load time with one
message that names the field and the reason (`ConfigError`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REQUEST_TYPES: tuple[str, ...] = (
    "code_generation",
    "code_understanding",
    "technical_design",
    "analytical_reasoning",
    "writing",
    "factual_lookup",
    "general",
)
"""The request types the classifier can return, in display order."""

CONFIG_ENV = "ROUTER_CONFIG_PATH"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,100}$")
"""Router, model and provider names (they are parts of DynamoDB keys separated by '#')."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatedProviderConfig(_Strict):
    """Built-in provider whose answers satisfy the user with the oracle's probability."""

    type: Literal["simulated"]
    oracle: dict[str, dict[str, Probability]] = Field(default_factory=dict)
    """P(answer satisfies) per request type, per model name."""
    default_quality: Probability = 0.7
    """P(answer satisfies) for (type, model) pairs missing from the oracle."""
    latency_ms: Annotated[float, Field(ge=0.0, le=20_000.0)] = 0.0
    """Simulated model latency, milliseconds (0 = answer at once); streamed: the time to the first chunk."""
    stream_interval_ms: Annotated[float, Field(ge=0.0, le=5_000.0)] = 0.0
    """Streamed answers: pause between two content chunks, milliseconds (a model's pace)."""
    stream_piece_chars: Annotated[int, Field(ge=1, le=10_000)] = 16
    """Streamed answers: characters per content chunk (about four tokens)."""


class OpenAICompatibleProviderConfig(_Strict):
    """Any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama, OpenRouter...)."""

    type: Literal["openai_compatible"]
    base_url: str
    """Base URL up to and including the version, e.g. https://api.openai.com/v1."""
    api_key_secret_arn: str | None = None
    """Secrets Manager secret holding the key (deployed default; never an env value)."""
    api_key_ssm_parameter: str | None = None
    """SSM SecureString parameter holding the key (alternative to Secrets Manager)."""
    api_key_env: str | None = None
    """Environment variable holding the key (local development only)."""


class BedrockProviderConfig(_Strict):
    """Amazon Bedrock through the Converse API; authorised by the function's IAM role."""

    type: Literal["bedrock"]
    region: str | None = None
    """Region of the Bedrock endpoint; defaults to the function's region."""


ProviderConfig = Annotated[
    SimulatedProviderConfig | OpenAICompatibleProviderConfig | BedrockProviderConfig,
    Field(discriminator="type"),
]


class Capabilities(_Strict):
    """What a model can serve; the router only sends it requests that fit (`capabilities.py`).

    The defaults describe a current text chat model: tools, JSON mode, JSON schema and logprobs
    yes; image, audio and file input no (declare them for a model that takes them); context
    window and output limit unknown (then only the upstream's own refusal tells, and the
    request falls back to the next model)."""

    tools: bool = True
    """Function calling: `tools` / `functions`, and tool calls or tool results in the history."""
    vision: bool = False
    """Image parts (`image_url`) in messages."""
    audio_input: bool = False
    """Audio parts (`input_audio`) in messages."""
    file_input: bool = False
    """File parts (`file`, e.g. PDFs) in messages."""
    json_object: bool = True
    """`response_format: {"type": "json_object"}` (JSON mode)."""
    json_schema: bool = True
    """`response_format: {"type": "json_schema"}` (structured output)."""
    logprobs: bool = True
    """`logprobs` / `top_logprobs`."""
    context_window: Annotated[int, Field(ge=1)] | None = None
    """Tokens of prompt plus output the model takes; None = not declared."""
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    """Largest output the model writes, tokens; None = not declared."""


class ModelConfig(_Strict):
    """One upstream model the routers may call."""

    provider: str
    """Name of an entry under `providers`."""
    upstream_model: str
    """Model id sent to the provider (e.g. gpt-4o-mini, anthropic.claude-3-haiku...)."""
    input_usd_per_mtok: Annotated[float, Field(ge=0.0)]
    """Price of input tokens, US dollars per million tokens. Required: no model is free."""
    output_usd_per_mtok: Annotated[float, Field(ge=0.0)]
    """Price of output tokens, US dollars per million tokens. Required."""
    quality_tier: Annotated[int, Field(ge=1, le=4)] = 2
    """Cold-start prior: 1 small, 2 mid, 3 frontier, 4 reasoning. Sets the prior mean."""
    strengths: tuple[str, ...] = ()
    """Request types where the model is known to be strong (raises its prior mean)."""
    expected_output_tokens: Annotated[int, Field(ge=1)] = 400
    """Output tokens assumed per answer until the router has observed this model's own."""
    capabilities: Capabilities = Capabilities()
    """What the model can serve (tools, images, JSON schema, context window...)."""

    @field_validator("strengths")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in REQUEST_TYPES]
        if unknown:
            raise ValueError(f"unknown request type(s) {unknown}; known: {list(REQUEST_TYPES)}")
        return value

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for one call with these token counts."""
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


class Weights(_Strict):
    """How the router trades quality against cost; the two weights sum to 1."""

    quality: Probability = 0.7
    cost: Probability = 0.3

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        if abs(self.quality + self.cost - 1.0) > 1e-6:
            raise ValueError(f"quality + cost must be 1, got {self.quality + self.cost:g}")
        return self


class RouterConfig(_Strict):
    """One router name clients send as `model`."""

    models: tuple[str, ...] = Field(min_length=1)
    """Names of entries under `models` this router chooses between."""
    default_model: str
    """Model used when routing itself fails (the router never fails a request a model could answer)."""
    weights: Weights = Weights()
    cost_reference_usd: Annotated[float, Field(gt=0.0)] = 0.007
    """A request costing this many dollars weighs one full quality point (before weights).
    Score = quality·w_quality − (expected $ / cost_reference_usd)·w_cost: real units, so
    adding a model never changes another model's score. With the default weights, $0.007 means
    a model whose answer costs $0.001 more (about 100 output tokens of a frontier model) must
    be about 6 points likelier to satisfy; measured on the live benchmark (benchmarks/live.py)
    as the value that keeps code and writing on the stronger model while factual lookups move
    to the cheaper one."""
    request_types: tuple[str, ...] = REQUEST_TYPES
    """Request types this router learns separately."""
    prior_mass: Annotated[float, Field(gt=0.0, le=1000.0)] = 4.0
    """Pseudo-observations in each cold-start prior (α+β); small = learns fast."""
    signal_gate_min_messages: Annotated[int, Field(ge=1, le=100)] = 4
    """Feedback counts only for a turn whose conversation (system excluded, answer included)
    has at least this many messages."""
    forgetting_half_life_hours: Annotated[float, Field(gt=0.0)] | None = 168.0
    """Evidence loses half its weight after this many hours, so a model that changes is
    noticed; None keeps evidence forever (never a hard sample cap)."""
    exploration_floor: Annotated[float, Field(ge=0.0, le=0.5)] = 0.02
    """Share of requests routed uniformly at random, so every propensity is ≥ floor/len(models)."""
    posterior_temper: Annotated[float, Field(ge=1.0, le=10.0)] = 3.0
    """Thompson draws come from Beta(τα, τβ): the posterior's mean with τ times its concentration
    (τ ≥ 1, unitless; 1 = plain posterior sampling). Plain Thompson sampling over-explores small
    cells; τ = 3 measured better on the MMLU replay (benchmarks/learning.py). Each arm earns its
    temper with evidence (`bandit.effective_temper`): an arm with none samples its full posterior.
    Dashboards still show the untempered posterior."""
    cell_shards: Annotated[int, Field(ge=1, le=64)] = 1
    """Counter items per (type, model) cell; raise for a very hot cell (a config change only)."""
    feedback_per_minute_per_key: Annotated[int, Field(ge=1)] = 120
    """Explicit feedback events (POST /v1/feedback) one client key may apply per minute. Implicit
    signals are bounded by the chat traffic itself (at most one per routed turn, scored once)."""
    neutral_follow_up_reward: Probability | None = 0.25
    """Reward of an ordinary follow-up (neither praise nor complaint) on a gated turn: a weak
    observation, since satisfied users say so more often than unsatisfied ones stay silent. A
    router that only ever hears "thanks" learns from it which model is thanked less often. In
    [0, 1]; below the midpoint means silence leans negative; None reads silence as no signal."""

    @field_validator("request_types")
    @classmethod
    def _types_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in REQUEST_TYPES]
        if unknown:
            raise ValueError(f"unknown request type(s) {unknown}; known: {list(REQUEST_TYPES)}")
        if "general" not in value:
            raise ValueError("must include 'general' (the classifier's fallback type)")
        return value

    @model_validator(mode="after")
    def _default_in_models(self) -> RouterConfig:
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models {list(self.models)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must not repeat")
        return self


class GatewayConfig(_Strict):
    """The whole file: providers, the model catalogue and the routers."""

    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig] = Field(min_length=1)
    routers: dict[str, RouterConfig] = Field(min_length=1)
    store_prompts: bool = False
    """Keep prompt and answer text on turn records (off: only counts and ids are stored)."""
    max_request_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = 4_500_000
    """Largest chat request body accepted, bytes. Images, audio and files travel as base64 in
    the body (a phone photo is 2–4 MB encoded); Lambda takes at most 6 MB per synchronous
    invocation, event included (API Gateway's own limit is 10 MB)."""
    upstream_timeout_seconds: Annotated[float, Field(gt=0.0, le=28.0)] = 12.0
    """Budget for one upstream attempt; all attempts of a request stay under API Gateway's 30 s."""
    request_deadline_seconds: Annotated[float, Field(gt=0.0, le=29.0)] = 26.0
    """Budget for all upstream attempts of one request, seconds."""
    turn_ttl_days: Annotated[float, Field(gt=0.0)] = 7.0
    """Turns can be scored for this long, then DynamoDB deletes them."""
    activity_ttl_hours: Annotated[float, Field(gt=0.0)] = 48.0
    """Activity-log events kept this long."""

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        for kind, names in (("models", self.models), ("routers", self.routers), ("providers", self.providers)):
            for name in names:
                if not NAME_PATTERN.match(name):
                    raise ValueError(f"{kind}.{name}: names may use letters, digits and . _ : / - (max 100)")
        for name, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{name}.provider: {model.provider!r} is not one of providers {sorted(self.providers)}"
                )
        for rname, router in self.routers.items():
            if rname in self.models:
                raise ValueError(f"routers.{rname}: a router must not share a name with a model")
            for m in router.models:
                if m not in self.models:
                    raise ValueError(f"routers.{rname}.models: {m!r} is not one of models {sorted(self.models)}")
        return self

    def router(self, name: str) -> RouterConfig:
        """The router called `name`; KeyError if there is none."""
        return self.routers[name]

    def most_expensive_model(self, router: str, input_tokens: int, output_tokens: int) -> str:
        """The router's model that would cost most for these token counts (savings baseline)."""
        names = self.routers[router].models
        return max(names, key=lambda m: self.models[m].cost_usd(input_tokens, output_tokens))


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}{more}"


def parse_config(text: str, source: str = "<config>") -> GatewayConfig:
    """Parse YAML text into a validated config; ConfigError names the field and reason."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_error(exc)}") from exc


def load_config(path: str | os.PathLike[str] | None = None) -> GatewayConfig:
    """Load from `path`, else $ROUTER_CONFIG_PATH, else the file shipped in this package."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if chosen:
        p = Path(chosen)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
        return parse_config(text, str(p))
    text = resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8")
    return parse_config(text, "router_core/routers.yaml")


@lru_cache(maxsize=1)
def current_config() -> GatewayConfig:
    """The config for this execution environment, loaded once per cold start."""
    return load_config()
