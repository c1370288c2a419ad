"""Capability-aware routing: what a request needs, what each model can serve, who is left.

`requirements_of` reads a request once into `Requirements`: the features it asks for (tools,
images, JSON schema, logprobs...), its estimated prompt size and the output it asked for.
`CapabilityIndex` holds, per model, the features it supports (its declared `capabilities`,
minus what its provider cannot carry: Bedrock's Converse API has no logprobs, no logit bias,
no n > 1...) and its limits. `CapabilityIndex.split` keeps the models that can serve a request
and says why each other one cannot; the chat flow routes among the first and logs the second.

A feature is a short name; `FEATURES` says what each means and which request field asks for
it, so the client's 400 can name what it asked. Pure: no I/O; built once per configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from router_core.api import ChatCompletionRequest
from router_core.config import GatewayConfig, ModelConfig

CHARS_PER_TOKEN: Final = 4.0
"""Prompt size estimate (≈ 4 characters per token); real spend uses the upstream's usage."""
IMAGE_TOKENS: Final = 800
"""Tokens one image part is assumed to cost in the prompt (a high-detail 1024² image is ~765)."""
AUDIO_TOKENS: Final = 1000
FILE_TOKENS: Final = 2000
"""Tokens assumed for one audio or file part (their size is unknown until the model reads them)."""
TOOL_TOKENS: Final = 150
"""Tokens assumed for one offered tool's definition (name, description, parameter schema):
a fixed amount, because serialising every schema on every request would cost more than the
estimate is worth."""
TOOL_CALL_TOKENS: Final = 15
"""Tokens of one tool call's framing (id, type, name), on top of its arguments' text."""

FEATURES: Final[Mapping[str, tuple[str, str]]] = {
    "tools": ("tools", "tool calling"),
    "custom_tools": ("tools", "custom (non-function) tools"),
    "serial_tool_calls": ("parallel_tool_calls", "parallel_tool_calls: false"),
    "forbid_tool_calls": ("tool_choice", "tool calls in the history with no tools allowed now"),
    "vision": ("messages", "image input"),
    "image_url_remote": ("messages", "images by http(s) URL"),
    "audio_input": ("messages", "audio input"),
    "file_input": ("messages", "file input"),
    "file_id": ("messages", "files by file_id"),
    "unlisted_content": ("messages", "content parts of an undocumented type"),
    "json_object": ("response_format", "JSON mode (response_format json_object)"),
    "json_schema": ("response_format", "structured output (response_format json_schema)"),
    "structured_output_with_tools": ("response_format", "structured output together with tools"),
    "logprobs": ("logprobs", "logprobs"),
    "logit_bias": ("logit_bias", "logit_bias"),
    "penalties": ("presence_penalty", "presence/frequency penalties"),
    "multiple_choices": ("n", "n > 1"),
    "audio_output": ("modalities", "audio output"),
    "web_search": ("web_search_options", "web search"),
    "reasoning_effort": ("reasoning_effort", "reasoning_effort"),
    "verbosity": ("verbosity", "verbosity"),
    "unlisted_fields": ("(body)", "request fields this router does not document"),
}
"""feature → (the request field that asks for it, what it is in words)."""
_ORDER: Final = {feature: position for position, feature in enumerate(FEATURES)}

MODEL_FLAGS: Final[Mapping[str, tuple[str, ...]]] = {
    "tools": ("tools", "custom_tools", "serial_tool_calls", "forbid_tool_calls", "structured_output_with_tools"),
    "vision": ("vision", "image_url_remote"),
    "audio_input": ("audio_input",),
    "file_input": ("file_input", "file_id"),
    "json_object": ("json_object",),
    "json_schema": ("json_schema", "structured_output_with_tools"),
    "logprobs": ("logprobs",),
}
"""A model's capability flag → the features it needs to be true. Features under no flag depend
only on the provider (an OpenAI-compatible upstream refuses what its model cannot do itself)."""

PROVIDER_LACKS: Final[Mapping[str, frozenset[str]]] = {
    "openai_compatible": frozenset(),
    "simulated": frozenset(),
    "bedrock": frozenset(
        {
            "custom_tools",
            "serial_tool_calls",
            "forbid_tool_calls",
            "image_url_remote",
            "file_id",
            "unlisted_content",
            "structured_output_with_tools",
            "logprobs",
            "logit_bias",
            "penalties",
            "multiple_choices",
            "audio_output",
            "web_search",
            "reasoning_effort",
            "verbosity",
            "unlisted_fields",
        }
    ),
}
"""Features a provider type cannot carry to any model (Converse has no field for them)."""

_DOCUMENTED_FIELDS: Final = frozenset(ChatCompletionRequest.model_fields)
_KNOWN_PARTS: Final = frozenset({"text", "image_url", "input_audio", "file", "refusal", "input_text"})


@dataclass(frozen=True, slots=True)
class Requirements:
    """What one request needs from a model."""

    features: frozenset[str]
    prompt_tokens: int
    """Estimated prompt size: text / `CHARS_PER_TOKEN`, plus fixed amounts per image, audio or file."""
    output_tokens: int | None
    """The client's output limit (`max_completion_tokens`, else `max_tokens`), if any."""
    unlisted: tuple[str, ...] = ()
    """Top-level fields this router does not document (they ask for `unlisted_fields`)."""

    def asked(self) -> list[str]:
        """The features asked for, in words, in `FEATURES` order."""
        return [self.words(f) for f in FEATURES if f in self.features]

    def words(self, feature: str) -> str:
        if feature == "unlisted_fields":
            return f"{FEATURES[feature][1]} ({', '.join(self.unlisted)})"
        return FEATURES[feature][1]

    def log(self) -> dict[str, Any]:
        """For the decision log (no prompt text)."""
        return {"features": sorted(self.features), "prompt_tokens": self.prompt_tokens, "output": self.output_tokens}


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What one model can serve."""

    features: frozenset[str]
    context_window: int | None
    max_output_tokens: int | None

    def why_not(self, need: Requirements) -> str | None:
        """None when the model can serve `need`; else the reason in words."""
        if need.features <= self.features and self.fits(need):
            return None
        lacking = need.features - self.features
        if lacking:
            return "cannot serve " + ", ".join(need.words(f) for f in sorted(lacking, key=_ORDER.__getitem__))
        out = need.output_tokens or 0
        if self.max_output_tokens is not None and out > self.max_output_tokens:
            return f"writes at most {self.max_output_tokens} output tokens, {out} asked"
        return (
            f"context window of {self.context_window} tokens is smaller than the request "
            f"(~{need.prompt_tokens} prompt tokens + {out} output)"
        )

    def fits(self, need: Requirements) -> bool:
        out = need.output_tokens or 0
        if self.max_output_tokens is not None and out > self.max_output_tokens:
            return False
        return self.context_window is None or need.prompt_tokens + out <= self.context_window


def model_limits(model: ModelConfig, provider_type: str) -> ModelLimits:
    """A model's supported features: all, minus those its false flags need, minus its provider's gaps."""
    caps = model.capabilities
    lacking: set[str] = set(PROVIDER_LACKS.get(provider_type, frozenset()))
    for flag, features in MODEL_FLAGS.items():
        if not getattr(caps, flag):
            lacking.update(features)
    return ModelLimits(frozenset(FEATURES) - lacking, caps.context_window, caps.max_output_tokens)


class CapabilityIndex:
    """Every model's limits, computed once per configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self.limits: dict[str, ModelLimits] = {
            name: model_limits(model, config.providers[model.provider].type) for name, model in config.models.items()
        }

    def split(self, models: Iterable[str], need: Requirements) -> tuple[list[str], dict[str, str]]:
        """(the models that can serve `need`, in the given order; {model: why not} for the others)."""
        able: list[str] = []
        unable: dict[str, str] = {}
        for name in models:
            limits = self.limits[name]
            if need.features <= limits.features and limits.fits(need):
                able.append(name)
            else:
                unable[name] = limits.why_not(need) or ""
        return able, unable


def requirements_of(messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> Requirements:
    """What a request (its messages as sent, and its other fields) needs from a model."""
    features: set[str] = set()
    chars, fixed = _read_messages(messages, features)
    tools = options.get("tools") or options.get("functions")
    if tools:
        features.add("tools")
        fixed += TOOL_TOKENS * len(tools)
        if any(isinstance(t, Mapping) and t.get("type") == "custom" for t in tools):
            features.add("custom_tools")
    if "tools" in features:
        if options.get("parallel_tool_calls") is False:
            features.add("serial_tool_calls")
        declared = bool(tools)
        if _has_tool_history(messages) and (options.get("tool_choice") == "none" or not declared):
            features.add("forbid_tool_calls")
    _read_options(options, features)
    unlisted = () if _DOCUMENTED_FIELDS.issuperset(options) else tuple(sorted(set(options) - _DOCUMENTED_FIELDS))
    if unlisted:
        features.add("unlisted_fields")
    output = options.get("max_completion_tokens") or options.get("max_tokens")
    return Requirements(
        features=frozenset(features),
        prompt_tokens=max(1, int(chars / CHARS_PER_TOKEN) + fixed),
        output_tokens=output if isinstance(output, int) else None,
        unlisted=unlisted,
    )


def _read_messages(messages: Sequence[Mapping[str, Any]], features: set[str]) -> tuple[int, int]:
    """(text characters, fixed tokens of non-text parts); adds the features the parts need."""
    chars = 0
    fixed = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                part_chars, part_tokens = _read_part(part, features)
                chars += part_chars
                fixed += part_tokens
        calls = message.get("tool_calls")
        if calls or message.get("role") in ("tool", "function") or message.get("function_call"):
            features.add("tools")
            for call in calls or ():
                fixed += TOOL_CALL_TOKENS
                arguments = (call.get("function") or {}).get("arguments") if isinstance(call, Mapping) else None
                chars += len(arguments) if isinstance(arguments, str) else 0
    return chars, fixed


def _read_part(part: Any, features: set[str]) -> tuple[int, int]:
    """(text characters, fixed tokens) of one content part; adds the features it needs."""
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in ("text", "input_text", "refusal"):
        return len(part.get("refusal" if kind == "refusal" else "text") or ""), 0
    if kind == "image_url":
        features.add("vision")
        if not str((part.get("image_url") or {}).get("url", "")).startswith("data:"):
            features.add("image_url_remote")
        return 0, IMAGE_TOKENS
    if kind == "input_audio":
        features.add("audio_input")
        return 0, AUDIO_TOKENS
    if kind == "file":
        features.add("file_input")
        if (part.get("file") or {}).get("file_id"):
            features.add("file_id")
        return 0, FILE_TOKENS
    if kind not in _KNOWN_PARTS:
        features.add("unlisted_content")
    return 0, 0


def _has_tool_history(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def _read_options(options: Mapping[str, Any], features: set[str]) -> None:
    """Adds the features the request's other fields ask for (values that change nothing ask for nothing)."""
    response_format = options.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind in ("json_object", "json_schema"):
        features.add(kind)
        if "tools" in features:
            features.add("structured_output_with_tools")
    n = options.get("n")
    asked = {
        "logprobs": options.get("logprobs"),
        "logit_bias": options.get("logit_bias"),
        "penalties": options.get("presence_penalty") or options.get("frequency_penalty"),
        "multiple_choices": isinstance(n, int) and n > 1,
        "audio_output": "audio" in (options.get("modalities") or ()) or options.get("audio"),
        "web_search": options.get("web_search_options") is not None,
        "reasoning_effort": options.get("reasoning_effort") is not None,
        "verbosity": options.get("verbosity") is not None,
    }
    features.update(feature for feature, wanted in asked.items() if wanted)


def refusal_message(target: str, need: Requirements, unable: Mapping[str, str]) -> tuple[str, str]:
    """(message, param) of the 400 when no model behind `target` can serve `need`."""
    asked = need.asked()
    what = f"it asks for {', '.join(asked)}" if asked else "it does not fit"
    reasons = "; ".join(f"{name} {why}" for name, why in unable.items())
    missing = [f for f in FEATURES if f in need.features and any(need.words(f) in why for why in unable.values())]
    param = FEATURES[missing[0]][0] if missing else "messages"
    if param == "(body)":
        param = need.unlisted[0]
    return f"no model behind {target!r} can serve this request: {what} ({reasons})", param
