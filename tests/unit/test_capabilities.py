"""Capability-aware routing: what a request needs, what each model serves, who is left."""

from __future__ import annotations

from typing import Any

import pytest
from router_core.capabilities import (
    IMAGE_TOKENS,
    CapabilityIndex,
    Requirements,
    refusal_message,
    requirements_of,
)
from router_core.config import parse_config

CONFIG = parse_config(
    """
providers:
  oa: {type: openai_compatible, base_url: "http://127.0.0.1:1/v1"}
  br: {type: bedrock, region: us-east-1}
models:
  text-only:
    provider: oa
    upstream_model: t
    input_usd_per_mtok: 0.1
    output_usd_per_mtok: 0.2
    capabilities: {tools: false, json_schema: false, json_object: false, logprobs: false, context_window: 8000}
  small-vision:
    provider: oa
    upstream_model: sv
    input_usd_per_mtok: 0.15
    output_usd_per_mtok: 0.6
    capabilities: {vision: true, context_window: 16000, max_output_tokens: 4096}
  big:
    provider: oa
    upstream_model: b
    input_usd_per_mtok: 2.5
    output_usd_per_mtok: 10
    capabilities: {vision: true, audio_input: true, file_input: true, context_window: 200000, max_output_tokens: 32000}
  claude:
    provider: br
    upstream_model: anthropic.claude
    input_usd_per_mtok: 3
    output_usd_per_mtok: 15
    capabilities: {vision: true, file_input: true, context_window: 200000}
routers:
  r:
    models: [text-only, small-vision, big, claude]
    default_model: text-only
"""
)
INDEX = CapabilityIndex(CONFIG)
ALL = ["text-only", "small-vision", "big", "claude"]
USER = [{"role": "user", "content": "hello there"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
DATA_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
URL_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
TOOL_LOOP = [
    *USER,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "c1", "content": "1"},
]


def able(messages: list[dict[str, Any]], **options: Any) -> list[str]:
    return INDEX.split(ALL, requirements_of(messages, options))[0]


@pytest.mark.parametrize(
    ("messages", "options", "features"),
    [
        (USER, {}, set()),
        (USER, {"temperature": 0.2, "top_p": 0.9, "user": "u", "seed": 1, "stop": "x"}, set()),
        (USER, {"tools": [TOOL]}, {"tools"}),
        (USER, {"functions": [TOOL["function"]]}, {"tools"}),
        (USER, {"tools": [{"type": "custom", "custom": {"name": "c"}}]}, {"tools", "custom_tools"}),
        (USER, {"tools": [TOOL], "parallel_tool_calls": False}, {"tools", "serial_tool_calls"}),
        (USER, {"tools": [TOOL], "parallel_tool_calls": True}, {"tools"}),
        (TOOL_LOOP, {"tools": [TOOL]}, {"tools"}),
        (TOOL_LOOP, {"tools": [TOOL], "tool_choice": "none"}, {"tools", "forbid_tool_calls"}),
        (TOOL_LOOP, {}, {"tools", "forbid_tool_calls"}),
        ([{"role": "user", "content": [{"type": "text", "text": "x"}, DATA_IMAGE]}], {}, {"vision"}),
        ([{"role": "user", "content": [URL_IMAGE]}], {}, {"vision", "image_url_remote"}),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], {}, {"audio_input"}),
        ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}], {}, {"file_input", "file_id"}),
        ([{"role": "user", "content": [{"type": "video_url"}]}], {}, {"unlisted_content"}),
        (USER, {"response_format": {"type": "json_object"}}, {"json_object"}),
        (USER, {"response_format": {"type": "json_schema", "json_schema": {}}}, {"json_schema"}),
        (USER, {"response_format": {"type": "text"}}, set()),
        (
            USER,
            {"tools": [TOOL], "response_format": {"type": "json_schema"}},
            {"tools", "json_schema", "structured_output_with_tools"},
        ),
        (USER, {"logprobs": True, "top_logprobs": 2}, {"logprobs"}),
        (USER, {"logprobs": False}, set()),
        (USER, {"logit_bias": {"1": 2}}, {"logit_bias"}),
        (USER, {"presence_penalty": 0.0, "frequency_penalty": 0}, set()),
        (USER, {"frequency_penalty": 0.4}, {"penalties"}),
        (USER, {"n": 1}, set()),
        (USER, {"n": 3}, {"multiple_choices"}),
        (USER, {"modalities": ["text", "audio"]}, {"audio_output"}),
        (USER, {"web_search_options": {}}, {"web_search"}),
        (USER, {"reasoning_effort": "low", "verbosity": "low"}, {"reasoning_effort", "verbosity"}),
        (USER, {"brand_new_field": 1}, {"unlisted_fields"}),
    ],
)
def test_what_a_request_asks_for(messages: list[dict[str, Any]], options: dict[str, Any], features: set[str]) -> None:
    assert requirements_of(messages, options).features == features


def test_prompt_size_counts_text_tools_and_fixed_amounts_for_images() -> None:
    text = "x" * 4000
    plain = requirements_of([{"role": "user", "content": text}], {})
    assert plain.prompt_tokens == 1000 and plain.output_tokens is None
    with_image = requirements_of([{"role": "user", "content": [{"type": "text", "text": text}, DATA_IMAGE]}], {})
    assert with_image.prompt_tokens == 1000 + IMAGE_TOKENS
    with_tools = requirements_of([{"role": "user", "content": text}], {"tools": [TOOL], "max_tokens": 50})
    assert with_tools.prompt_tokens > 1000 and with_tools.output_tokens == 50
    assert requirements_of(USER, {"max_completion_tokens": 70, "max_tokens": 50}).output_tokens == 70


@pytest.mark.parametrize(
    ("messages", "options", "expected"),
    [
        (USER, {}, ALL),
        (USER, {"tools": [TOOL]}, ["small-vision", "big", "claude"]),
        (TOOL_LOOP, {"tools": [TOOL]}, ["small-vision", "big", "claude"]),
        (TOOL_LOOP, {}, ["small-vision", "big"]),
        (USER, {"tools": [TOOL], "parallel_tool_calls": False}, ["small-vision", "big"]),
        ([{"role": "user", "content": [DATA_IMAGE]}], {}, ["small-vision", "big", "claude"]),
        ([{"role": "user", "content": [URL_IMAGE]}], {}, ["small-vision", "big"]),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], {}, ["big"]),
        ([{"role": "user", "content": [{"type": "file", "file": {"file_data": "d"}}]}], {}, ["big", "claude"]),
        (USER, {"response_format": {"type": "json_schema"}}, ["small-vision", "big", "claude"]),
        (USER, {"logprobs": True}, ["small-vision", "big"]),
        (USER, {"n": 2}, ["text-only", "small-vision", "big"]),
        (USER, {"brand_new_field": True}, ["text-only", "small-vision", "big"]),
        (USER, {"max_tokens": 5000}, ["text-only", "big", "claude"]),
        (USER, {"max_tokens": 100_000}, ["claude"]),
        ([{"role": "user", "content": "y" * 40_000}], {}, ["small-vision", "big", "claude"]),
        ([{"role": "user", "content": "y" * 50_000}], {"max_tokens": 4096}, ["big", "claude"]),
        ([{"role": "user", "content": "y" * 1_000_000}], {}, []),
    ],
)
def test_who_can_serve(messages: list[dict[str, Any]], options: dict[str, Any], expected: list[str]) -> None:
    assert able(messages, **options) == expected


def test_every_excluded_model_says_why() -> None:
    need = requirements_of([{"role": "user", "content": "z" * 40_000}], {"tools": [TOOL], "max_tokens": 5000})
    kept, unable = INDEX.split(ALL, need)
    assert kept == ["big", "claude"]
    assert unable == {
        "text-only": "cannot serve tool calling",
        "small-vision": "writes at most 4096 output tokens, 5000 asked",
    }


def test_none_can_serve_names_what_was_asked_and_each_models_reason() -> None:
    need = requirements_of(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hear this"}, {"type": "input_audio", "input_audio": {}}],
            }
        ],
        {"logprobs": True},
    )
    kept, unable = INDEX.split(["text-only", "small-vision", "claude"], need)
    assert kept == []
    message, param = refusal_message("r", need, unable)
    assert message.startswith("no model behind 'r' can serve this request: it asks for audio input, logprobs (")
    assert "claude cannot serve audio input, logprobs" in message
    assert param == "messages"


def test_an_unknown_field_is_named_in_the_refusal() -> None:
    need = requirements_of(USER, {"zz_new": 1})
    _, unable = INDEX.split(["claude"], need)
    message, param = refusal_message("claude", need, unable)
    assert "(zz_new)" in message and param == "zz_new"


def test_defaults_describe_a_text_chat_model_with_tools() -> None:
    config = parse_config(
        """
providers: {p: {type: simulated}}
models: {m: {provider: p, upstream_model: m, input_usd_per_mtok: 1, output_usd_per_mtok: 1}}
routers: {r: {models: [m], default_model: m}}
"""
    )
    limits = CapabilityIndex(config).limits["m"]
    assert {"tools", "json_schema", "json_object", "logprobs"} <= limits.features
    assert not {"vision", "audio_input", "file_input"} & limits.features
    assert (limits.context_window, limits.max_output_tokens) == (None, None)
    assert limits.why_not(Requirements(frozenset(), 10**9, 10**9)) is None
