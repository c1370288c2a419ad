"""The simulated upstream: oracle frequencies, reproducibility, variety, judge mode, latency."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import pytest
from router_core.config import GatewayConfig, ModelConfig, SimulatedProviderConfig, load_config
from router_core.providers import (
    ChatParams,
    SimulatedProvider,
    UpstreamError,
    footer,
    provider_for,
    read_footer,
    reset_providers,
)

pytestmark = pytest.mark.unit

ORACLE = {"code_generation": {"fast": 0.35, "smart": 0.92}, "writing": {"fast": 0.55}}


def _model(tier: int = 2, upstream: str = "gpt-test") -> ModelConfig:
    return ModelConfig(
        provider="simulated",
        upstream_model=upstream,
        input_usd_per_mtok=1.0,
        output_usd_per_mtok=2.0,
        quality_tier=tier,
    )


def _provider(
    models: dict[str, ModelConfig], *, default_quality: float = 0.7, latency_ms: float = 0.0, sleep: Any = None
) -> SimulatedProvider:
    config = SimulatedProviderConfig(
        type="simulated", oracle=ORACLE, default_quality=default_quality, latency_ms=latency_ms
    )
    if sleep is None:
        return SimulatedProvider("simulated", config, models)
    return SimulatedProvider("simulated", config, models, sleep=sleep)


def _ask(text: str, request_type: str = "code_generation", seed: int | None = None, **extra: Any) -> ChatParams:
    return ChatParams(messages=[{"role": "user", "content": text}], request_type=request_type, seed=seed, **extra)


def _satisfied(text: str) -> bool:
    found = read_footer(text)
    assert found is not None, text
    return found[1]


@pytest.mark.parametrize(
    ("name", "request_type", "expected"),
    [("fast", "code_generation", 0.35), ("smart", "code_generation", 0.92), ("fast", "writing", 0.55)],
)
def test_satisfaction_frequency_matches_the_oracle_over_many_seeds(
    name: str, request_type: str, expected: float
) -> None:
    models = {"fast": _model(2, "gpt-small"), "smart": _model(3, "gpt-big")}
    provider = _provider(models)
    draws = 3000
    hits = sum(
        _satisfied(
            provider.complete(
                models[name], _ask("write a python function that reverses a list", request_type, seed), 5.0
            ).text
        )
        for seed in range(draws)
    )
    # 4.5 standard deviations of a binomial proportion: a false failure is ~1 in 150,000 runs.
    tolerance = 4.5 * math.sqrt(expected * (1 - expected) / draws)
    assert abs(hits / draws - expected) < tolerance


def test_a_pair_missing_from_the_oracle_uses_default_quality() -> None:
    models = {"fast": _model()}
    provider = _provider(models, default_quality=0.2)
    draws = 3000
    hits = sum(
        _satisfied(provider.complete(models["fast"], _ask("who wrote hamlet", "factual_lookup", s), 5.0).text)
        for s in range(draws)
    )
    assert abs(hits / draws - 0.2) < 4.5 * math.sqrt(0.2 * 0.8 / draws)


def test_the_same_seed_gives_the_same_answer_and_other_seeds_vary() -> None:
    models = {"smart": _model(3)}
    provider = _provider(models)
    params = _ask("explain how a hash map handles collisions", "code_understanding", seed=42)
    first = provider.complete(models["smart"], params, 5.0)
    again = provider.complete(models["smart"], params, 5.0)
    assert (first.text, first.output_tokens) == (again.text, again.output_tokens)
    others = {
        provider.complete(models["smart"], _ask(params.messages[0]["content"], "code_understanding", s), 5.0).text
        for s in range(20)
    }
    assert len(others) >= 15


def test_unseeded_answers_are_random() -> None:
    models = {"fast": _model()}
    provider = _provider(models)
    texts = {
        provider.complete(models["fast"], _ask("tell me something about tea", "general"), 5.0).text for _ in range(20)
    }
    assert len(texts) >= 15


def test_an_answer_never_repeats_the_previous_assistant_answer() -> None:
    # Seeded draws over one short question: the guard must redraw whenever a draw repeats the previous answer.
    models = {"tiny": _model(1)}
    provider = _provider(models, default_quality=0.5)
    question = {"role": "user", "content": "what is a good name for a cat"}
    variants = {
        provider.complete(models["tiny"], ChatParams(messages=[question], seed=s), 5.0).text for s in range(400)
    }
    for previous in variants:
        for seed in range(20):
            conversation = [question, {"role": "assistant", "content": previous}, question]
            answer = provider.complete(models["tiny"], ChatParams(messages=conversation, seed=seed), 5.0)
            assert answer.text != previous


def test_bigger_quality_tiers_write_longer_answers() -> None:
    models = {f"t{tier}": _model(tier, f"m{tier}") for tier in (1, 2, 3, 4)}
    provider = _provider(models)

    def mean_length(name: str) -> float:
        texts = [
            provider.complete(models[name], _ask("design a url shortener", "technical_design", s), 5.0).text
            for s in range(60)
        ]
        return sum(len(t) for t in texts) / len(texts)

    lengths = [mean_length(f"t{tier}") for tier in (1, 2, 3, 4)]
    assert lengths == sorted(lengths)
    assert lengths[0] * 2 < lengths[3]


def test_the_footer_is_the_last_line_and_names_the_routers_model() -> None:
    models = {"smart": _model(3, "vendor-model-2024")}
    provider = _provider(models)
    completion = provider.complete(models["smart"], _ask("write a haiku about rain", "writing", seed=3), 5.0)
    last_line = completion.text.splitlines()[-1]
    assert last_line in (footer("smart", True), footer("smart", False))
    assert read_footer(completion.text) == ("smart", last_line == footer("smart", True))
    assert completion.upstream_model == "vendor-model-2024"
    assert completion.finish_reason == "stop"


def test_token_counts_are_estimated_from_the_text_and_reported_as_the_upstreams_own() -> None:
    models = {"fast": _model()}
    provider = _provider(models)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 41}]
    completion = provider.complete(models["fast"], ChatParams(messages=messages, seed=1), 5.0)
    assert completion.input_tokens == math.ceil(len("be brief\n" + "x" * 41) / 4)
    assert completion.output_tokens == math.ceil(len(completion.text) / 4)
    assert completion.usage_estimated is False


def test_max_tokens_cuts_the_body_but_keeps_the_footer() -> None:
    models = {"big": _model(4)}
    provider = _provider(models)
    completion = provider.complete(
        models["big"], _ask("compare two sorting algorithms", "analytical_reasoning", 9, max_tokens=30), 5.0
    )
    assert completion.finish_reason == "length"
    assert read_footer(completion.text.splitlines()[-1]) is not None
    assert len(completion.text) <= 30 * 4


JUDGE_SYSTEM = "You are a strict but fair evaluator.\nLine 1: PASS or FAIL\nLine 2: One sentence of reasoning."


@pytest.mark.parametrize("satisfied", [True, False])
def test_judge_mode_reads_the_verdict_from_the_quoted_footer(satisfied: bool) -> None:
    models = {"smart": _model(3)}
    provider = _provider(models)
    quoted = f"def add(a, b):\n    return a + b\n\n{footer('fast', satisfied)}"
    messages = [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Question: write an add function.\n\nAnswer to judge:\n{quoted}"},
    ]
    completion = provider.complete(models["smart"], ChatParams(messages=messages, seed=5), 5.0)
    lines = completion.text.splitlines()
    assert len(lines) == 2
    assert lines[0] == ("PASS" if satisfied else "FAIL")
    assert "fast" in lines[1]


def test_judge_mode_also_triggers_when_the_user_message_asks_for_the_verdict() -> None:
    models = {"smart": _model(3)}
    provider = _provider(models)
    text = f"Reply PASS or FAIL on the first line.\n\n---\nSome answer.\n{footer('cheap', False)}\n---"
    completion = provider.complete(models["smart"], _ask(text, "general", 1), 5.0)
    assert completion.text.splitlines()[0] == "FAIL"


def test_a_verdict_request_without_a_quoted_footer_gets_a_normal_answer() -> None:
    models = {"smart": _model(3)}
    provider = _provider(models)
    completion = provider.complete(models["smart"], _ask("Answer PASS or FAIL: is the sky green?", "general", 2), 5.0)
    assert completion.text.splitlines()[0] not in ("PASS", "FAIL")
    assert read_footer(completion.text) is not None


def test_latency_within_the_timeout_is_slept_and_latency_beyond_it_times_out() -> None:
    slept: list[float] = []
    models = {"fast": _model()}
    provider = _provider(models, latency_ms=800.0, sleep=slept.append)
    provider.complete(models["fast"], _ask("hello"), 2.0)
    assert slept == [0.8]
    with pytest.raises(UpstreamError) as caught:
        provider.complete(models["fast"], _ask("hello"), 0.5)
    assert caught.value.kind == "timeout"
    assert caught.value.retryable is True
    assert slept == [0.8, 0.5]


def test_the_model_name_is_resolved_by_identity_even_when_configs_are_equal() -> None:
    # Two catalogue entries that are equal in every field: only identity tells them apart.
    twin_a, twin_b = _model(2, "same-upstream"), _model(2, "same-upstream")
    assert twin_a == twin_b
    models = {"fast": twin_a, "smart": twin_b}
    provider = _provider(models)
    assert provider.model_name(twin_a) == "fast"
    assert provider.model_name(twin_b) == "smart"
    answer = provider.complete(twin_b, _ask("write code", "code_generation", 1), 5.0)
    assert read_footer(answer.text) is not None
    assert read_footer(answer.text)[0] == "smart"  # type: ignore[index]


def test_a_model_from_another_catalogue_falls_back_to_equality_then_upstream_model() -> None:
    models = {"fast": _model(2, "gpt-small")}
    provider = _provider(models)
    assert provider.model_name(_model(2, "gpt-small")) == "fast"
    assert provider.model_name(_model(3, "gpt-other")) == "gpt-other"


def test_provider_for_builds_the_simulated_provider_from_the_shipped_config_and_caches_it() -> None:
    reset_providers()
    config: GatewayConfig = load_config()
    provider = provider_for("simulated", config)
    assert isinstance(provider, SimulatedProvider)
    assert provider_for("simulated", config) is provider
    completion = provider.complete(config.models["smart"], _ask("write a sorting function", "code_generation", 7), 5.0)
    assert read_footer(completion.text) is not None
    assert read_footer(completion.text)[0] == "smart"  # type: ignore[index]
    with pytest.raises(KeyError):
        provider_for("nope", config)
    reset_providers()


def test_answer_lengths_are_realistic_per_request_type() -> None:
    # Code answers run to hundreds of tokens, factual answers tens to about 150 (ANSWER_TOKENS).
    models = {"mid": _model(2, "mid"), "big": _model(3, "big")}
    provider = _provider(models, default_quality=1.0)

    def median_tokens(name: str, prompt: str, request_type: str) -> float:
        return statistics.median(
            provider.complete(models[name], _ask(prompt, request_type, s), 5.0).output_tokens for s in range(41)
        )

    factual_mid = median_tokens("mid", "what is the capital of australia", "factual_lookup")
    factual_big = median_tokens("big", "what is the capital of australia", "factual_lookup")
    code_mid = median_tokens("mid", "write a function that merges two sorted lists", "code_generation")
    assert 40 <= factual_mid < factual_big <= 170
    assert 200 <= code_mid <= 500


# ---------------------------------------------------------------- tools, JSON, images, n, logprobs

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "hourly": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            },
            "required": ["city", "unit"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


def _capable(**capabilities: Any) -> ModelConfig:
    return ModelConfig(
        provider="simulated",
        upstream_model="gpt-test",
        input_usd_per_mtok=1.0,
        output_usd_per_mtok=2.0,
        capabilities=capabilities,  # type: ignore[arg-type]
    )


def _complete(messages: list[dict[str, Any]], model: ModelConfig | None = None, **options: Any) -> Any:
    model = model or _capable(vision=True)
    return _provider({"m": model}).complete(model, ChatParams(messages=messages, seed=7, options=options), 5.0)


def test_offered_tools_are_called_with_arguments_that_fit_their_schema() -> None:
    completion = _complete(ASK, tools=[WEATHER])
    (choice,) = completion.choices
    assert choice["finish_reason"] == completion.finish_reason == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert arguments["unit"] in ("c", "f") and isinstance(arguments["city"], str)
    assert 1 <= arguments["days"] <= 7 and isinstance(arguments["hourly"], bool) and len(arguments["tags"]) == 2
    assert completion.text == "" and completion.output_tokens > 0


def test_after_a_tool_result_the_model_answers_in_text() -> None:
    call = _complete(ASK, tools=[WEATHER]).choices[0]["message"]
    history = [*ASK, call, {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "18C"}]
    completion = _complete(history, tools=[WEATHER])
    assert completion.finish_reason in ("stop", "length")
    assert completion.text.startswith("Using the tool results: ") and read_footer(completion.text)


def test_tool_choice_decides_whether_and_which_tool_is_called() -> None:
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    assert _complete(ASK, tools=[WEATHER], tool_choice="none").finish_reason == "stop"
    named = {"type": "function", "function": {"name": "get_time"}}
    message = _complete(ASK, tools=[WEATHER, other], tool_choice=named).choices[0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [message["tool_calls"][0]]}]
    history.append({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "noon"})
    assert _complete(history, tools=[WEATHER], tool_choice="required").finish_reason == "tool_calls"


def test_json_schema_and_json_object_answers_are_json() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}}}
    text = _complete(ASK, response_format={"type": "json_schema", "json_schema": {"name": "W", "schema": schema}}).text
    assert set(json.loads(text)) == {"city", "temp"}
    assert isinstance(json.loads(_complete(ASK, response_format={"type": "json_object"}).text), dict)


def test_images_are_read_by_a_vision_model_and_refused_by_others() -> None:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    assert _complete([{"role": "user", "content": content}]).text.startswith("I looked at the 1 image you sent.")
    with pytest.raises(UpstreamError) as caught:
        _complete([{"role": "user", "content": content}], model=_capable())
    assert (caught.value.status, caught.value.invalid_request) == (400, False)
    assert "image input" in caught.value.message


def test_several_choices_and_logprobs() -> None:
    completion = _complete(ASK, n=3, logprobs=True, top_logprobs=2)
    assert [c["index"] for c in completion.choices] == [0, 1, 2]
    assert len({c["message"]["content"] for c in completion.choices}) == 3
    entries = completion.choices[0]["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == completion.text
    assert all(e["logprob"] <= 0 and len(e["top_logprobs"]) == 2 for e in entries)
