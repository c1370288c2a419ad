"""The whole Chat Completions surface through the router, with the official `openai` client.

The client talks to the chat handler in-process (an httpx transport that turns each request
into an API Gateway v2.0 event); the router calls a real OpenAI-compatible HTTP server on
127.0.0.1 that records every body it receives (tests/fake_upstream.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.aws_env import http_event
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.conftest import Stack, router_config

pytestmark = pytest.mark.integration

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CALL = {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris right now?"}]
PNG_DATA_URL = (
    "data:image/png;base64,"
    + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

MODELS: dict[str, Any] = {
    "fast": {
        "provider": "local",
        "upstream_model": "m-fast",
        "input_usd_per_mtok": 0.15,
        "output_usd_per_mtok": 0.6,
        "capabilities": {"context_window": 2000, "max_output_tokens": 1000},
    },
    "smart": {
        "provider": "local",
        "upstream_model": "m-smart",
        "input_usd_per_mtok": 2.5,
        "output_usd_per_mtok": 10,
        "capabilities": {"vision": True, "audio_input": True, "file_input": True, "context_window": 128000},
    },
    "plain": {
        "provider": "local",
        "upstream_model": "m-plain",
        "input_usd_per_mtok": 0.1,
        "output_usd_per_mtok": 0.2,
        "capabilities": {"tools": False, "json_object": False, "json_schema": False, "logprobs": False},
    },
}


class HandlerTransport(httpx.BaseTransport):
    """httpx → the chat handler, as API Gateway would invoke it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        event = http_event(request.method, request.url.path, body=request.read().decode("utf-8"), headers=headers)
        result = self.stack.call(self.stack.chat, event)
        return httpx.Response(result["statusCode"], headers=result.get("headers") or {}, content=result["body"])


@pytest.fixture
def upstream(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        config = {
            "providers": {"local": {"type": "openai_compatible", "base_url": fake.base_url}},
            "models": MODELS,
            "routers": {
                "smart-cheap-router": {"models": ["fast", "smart"], "default_model": "fast"},
                "all-router": {"models": ["plain", "fast", "smart"], "default_model": "plain"},
            },
            "upstream_timeout_seconds": 2.0,
            "request_deadline_seconds": 5.0,
        }
        with router_config(config, tmp_path, monkeypatch):
            yield fake


@pytest.fixture
def client(stack: Stack, upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=stack.api_key,
        base_url="https://router.test/v1",
        http_client=httpx.Client(transport=HandlerTransport(stack)),
        max_retries=0,
    )


def last_body(upstream: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = upstream.requests[-1].body
    return body


# ---------------------------------------------------------------- every field, unchanged


def test_every_documented_field_reaches_the_model_unchanged(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    fields: dict[str, Any] = {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_completion_tokens": 321,
        "n": 2,
        "stop": ["\n\nEND", "STOP"],
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
        "logit_bias": {"50256": -100, "1734": 5},
        "logprobs": True,
        "top_logprobs": 3,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "user": "user-1234",
        "safety_identifier": "hashed-user-1234",
        "prompt_cache_key": "weather-app",
        "metadata": {"app": "weather"},
        "store": False,
        "service_tier": "auto",
        "reasoning_effort": "low",
        "verbosity": "medium",
        "prediction": {"type": "content", "content": "The weather in Paris"},
    }
    client.chat.completions.create(model="smart", messages=QUESTION, **fields)  # type: ignore[call-overload]
    assert last_body(upstream) == {**fields, "model": "m-smart", "messages": QUESTION, "stream": False}


def test_response_formats_and_max_tokens_are_forwarded_as_sent(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    formats: list[dict[str, Any]] = [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        {"type": "text"},
    ]
    for response_format in formats:
        client.chat.completions.create(
            model="smart",
            messages=QUESTION,
            response_format=response_format,  # type: ignore[arg-type]
            max_tokens=77,
            stop="END",
        )
        body = last_body(upstream)
        assert body["response_format"] == response_format
        assert (body["max_tokens"], body["stop"]) == (77, "END")
        assert "max_completion_tokens" not in body


def test_unknown_future_fields_are_forwarded_unchanged(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    extra = {"future_option": {"depth": 3, "flags": [True, None]}, "another_one": "x"}
    client.chat.completions.create(model="smart", messages=QUESTION, extra_body=extra)
    body = last_body(upstream)
    assert {k: body[k] for k in extra} == extra


def test_stream_and_stream_options_are_the_routers_own(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="smart", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    list(stream)
    body = last_body(upstream)
    assert body["stream"] is False and "stream_options" not in body


# ---------------------------------------------------------------- the full response back


def test_tool_calls_refusal_logprobs_usage_details_and_fingerprint_come_back(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 12,
        "total_tokens": 52,
        "prompt_tokens_details": {"cached_tokens": 32, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 4, "accepted_prediction_tokens": 0},
    }
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}], "refusal": None}
    upstream.set_behaviour(
        Behaviour.answer(
            {"content": None, "tool_calls": [CALL], "refusal": None, "annotations": []},
            finish_reason="tool_calls",
            logprobs=logprobs,
            usage=usage,
            system_fingerprint="fp_0123",
            service_tier="default",
        )
    )
    response = client.chat.completions.create(model="smart", messages=QUESTION, tools=[WEATHER_TOOL], logprobs=True)  # type: ignore[list-item]
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    assert [c.model_dump() for c in choice.message.tool_calls] == [CALL]
    assert choice.logprobs is not None and choice.logprobs.model_dump() == logprobs
    assert response.usage is not None and response.usage.model_dump(exclude_none=True) == usage
    assert response.system_fingerprint == "fp_0123" and response.service_tier == "default"
    assert response.model_extra and response.model_extra["router"]["cost_usd"] > 0


@pytest.mark.parametrize("finish", ["length", "content_filter", "stop"])
def test_finish_reasons_pass_through(client: openai.OpenAI, upstream: FakeUpstream, finish: str) -> None:
    upstream.set_behaviour(Behaviour.answer({"content": "partial"}, finish_reason=finish))
    response = client.chat.completions.create(model="smart", messages=QUESTION)
    assert response.choices[0].finish_reason == finish


def test_a_refusal_reaches_the_client(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.answer({"content": None, "refusal": "I can't help with that."}))
    response = client.chat.completions.create(model="smart", messages=QUESTION)
    assert response.choices[0].message.refusal == "I can't help with that."
    assert response.choices[0].message.content is None


def test_several_choices_come_back(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    choices = [
        {"index": i, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop"}
        for i in range(3)
    ]
    upstream.set_behaviour(Behaviour("document", document={"choices": choices}))
    response = client.chat.completions.create(model="smart", messages=QUESTION, n=3)
    assert [c.message.content for c in response.choices] == ["answer 0", "answer 1", "answer 2"]


# ---------------------------------------------------------------- round trips


def test_a_tools_round_trip_keeps_the_history_intact(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.script(
        Behaviour.answer({"content": None, "tool_calls": [CALL]}, finish_reason="tool_calls"),
        Behaviour.answer({"content": "It is 18°C and sunny in Paris."}),
    )
    first = client.chat.completions.create(model="smart-cheap-router", messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.tool_calls
    session = first.model_extra["router"]["session_id"] if first.model_extra else None
    history: list[Any] = [
        *QUESTION,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": '{"temp_c": 18, "sky": "sunny"}'},
    ]
    second = client.chat.completions.create(
        model="smart-cheap-router",
        messages=history,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        extra_headers={"x-router-session-id": session or ""},
    )
    assert second.choices[0].message.content == "It is 18°C and sunny in Paris."
    sent = last_body(upstream)["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [CALL]} or sent[1]["tool_calls"] == [CALL]
    assert sent[2] == history[2]
    assert second.model_extra and second.model_extra["router"]["turn_id"].startswith(f"{session}.1.")


def test_a_streamed_tools_round_trip_with_usage_chunk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    second_call = {**CALL, "id": "call_def456", "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'}}
    upstream.script(
        Behaviour.answer({"content": None, "tool_calls": [CALL, second_call]}, finish_reason="tool_calls"),
        Behaviour.answer({"content": "Paris 18°C, Lyon 21°C."}),
    )
    chunks = list(
        client.chat.completions.create(
            model="smart",
            messages=QUESTION,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in chunks[:-1]:
        assert chunk.usage is None
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                if delta.function:
                    entry["name"] += delta.function.name or ""
                    entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [calls[0]["id"], calls[1]["id"]] == ["call_abc123", "call_def456"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Lyon"}]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18

    history: list[Any] = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in (calls[0], calls[1])
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "18"},
        {"role": "tool", "tool_call_id": "call_def456", "content": "21"},
    ]
    text = ""
    for chunk in client.chat.completions.create(model="smart", messages=history, tools=[WEATHER_TOOL], stream=True):  # type: ignore[list-item]
        for choice in chunk.choices:
            text += choice.delta.content or ""
    assert text == "Paris 18°C, Lyon 21°C."
    assert last_body(upstream)["messages"] == history


def test_a_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    chunks = list(client.chat.completions.create(model="smart", messages=QUESTION, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_parse_with_a_pydantic_model(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    class Weather(BaseModel):
        city: str
        temp_c: float
        sunny: bool

    upstream.set_behaviour(Behaviour.answer({"content": '{"city": "Paris", "temp_c": 18.5, "sunny": true}'}))
    response = client.chat.completions.parse(model="smart-cheap-router", messages=QUESTION, response_format=Weather)  # type: ignore[arg-type]
    assert response.choices[0].message.parsed == Weather(city="Paris", temp_c=18.5, sunny=True)
    sent = last_body(upstream)["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Weather"
    assert sent["json_schema"]["schema"]["required"] == ["city", "temp_c", "sunny"]


def test_an_image_part_reaches_a_vision_model(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
    ]
    response = client.chat.completions.create(
        model="smart-cheap-router",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert response.model == "smart"  # fast has no vision: never a candidate
    assert last_body(upstream)["messages"] == [{"role": "user", "content": content}]


def test_audio_and_file_parts_reach_the_model(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    content = [
        {"type": "text", "text": "Summarise both."},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]
    client.chat.completions.create(model="smart-cheap-router", messages=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert last_body(upstream)["messages"][0]["content"] == content


# ---------------------------------------------------------------- failures, OpenAI-shaped


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    return body


def test_a_bogus_tool_is_a_400_naming_it(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smart", messages=QUESTION, tools=[{"type": "bogus"}])  # type: ignore[list-item]
    assert caught.value.status_code == 400
    assert error_of(caught.value)["param"] == "tools.0"
    assert "does not match any of the expected tags: 'function', 'custom'" in error_of(caught.value)["message"]
    assert upstream.count() == 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "required"}, None),
        ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}}, None),
        ({"top_logprobs": 2}, None),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": "0.5"}, "temperature"),
        ({"stream_options": {"include_usage": True}}, None),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0.content.0"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
    ],
)
def test_malformed_fields_are_400s(
    stack: Stack, upstream: FakeUpstream, fields: dict[str, Any], param: str | None
) -> None:
    response = stack.chat_request({"model": "smart", "messages": QUESTION, **fields})
    assert response["statusCode"] == 400, response
    error = json.loads(response["body"])["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param
    assert upstream.count() == 0


def test_a_tool_message_without_its_call_is_a_400(stack: Stack, upstream: FakeUpstream) -> None:
    messages = [*QUESTION, {"role": "tool", "tool_call_id": "call_nowhere", "content": "18"}]
    response = stack.chat_request({"model": "smart", "messages": messages})
    assert response["statusCode"] == 400
    assert "call_nowhere" in json.loads(response["body"])["error"]["message"]


def test_the_upstreams_400_for_a_bad_schema_reaches_the_client(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(400, "Invalid schema for function 'get_weather'", code="invalid_schema"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smart", messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    error = error_of(caught.value)
    assert error["code"] == "upstream_rejected" and "Invalid schema" in error["message"]


# ---------------------------------------------------------------- capability-aware routing


def test_a_tools_request_never_goes_to_a_model_without_tools(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    for _ in range(12):
        response = client.chat.completions.create(model="all-router", messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[list-item]
        assert response.model in {"fast", "smart"}
    assert upstream.count("m-plain") == 0


def test_a_prompt_longer_than_a_context_window_skips_that_model(
    client: openai.OpenAI, upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    long_prompt = "Explain this log line by line:\n" + "x=1 " * 3000  # ~3000 tokens > fast's 2000
    for _ in range(6):
        response = client.chat.completions.create(
            model="smart-cheap-router", messages=[{"role": "user", "content": long_prompt}]
        )
        assert response.model == "smart"
    assert upstream.count("m-fast") == 0
    decision = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["decision"]
    assert decision["candidates"] == ["smart"]
    assert "context window of 2000 tokens" in decision["excluded"]["fast"]


def test_a_direct_model_that_cannot_serve_is_a_400(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="plain", messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    error = error_of(caught.value)
    assert error["code"] == "unsupported_by_models" and error["param"] == "tools"
    assert "tool calling" in error["message"] and "plain" in error["message"]
    assert upstream.count() == 0


def test_none_can_serve_names_what_was_asked(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    content = [{"type": "text", "text": "Describe it"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smart-cheap-router",
            messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
            max_completion_tokens=200_000,
        )
    error = error_of(caught.value)
    assert error["code"] == "unsupported_by_models"
    assert "image input" in error["message"]
    assert "fast cannot serve image input" in error["message"]
    assert "smart context window of 128000 tokens" in error["message"]
    assert upstream.count() == 0


def test_deprecated_functions_audio_and_web_search_fields_reach_the_model(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    fields: dict[str, Any] = {
        "functions": [WEATHER_TOOL["function"]],
        "function_call": {"name": "get_weather"},
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "web_search_options": {"search_context_size": "low"},
    }
    client.chat.completions.create(model="smart", messages=QUESTION, **fields)  # type: ignore[call-overload]
    assert last_body(upstream) == {**fields, "model": "m-smart", "messages": QUESTION, "stream": False}


def test_numbers_arrive_as_the_client_wrote_them(stack: Stack, upstream: FakeUpstream) -> None:
    response = stack.chat_request({"model": "smart", "messages": QUESTION, "temperature": 1, "top_p": 1})
    assert response["statusCode"] == 200
    body = last_body(upstream)
    assert type(body["temperature"]) is int and type(body["top_p"]) is int  # never re-serialised as 1.0


def test_a_stream_carries_every_choice_and_a_refusal(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    choices = [
        {"index": 0, "message": {"role": "assistant", "content": None, "refusal": "No."}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "Sure: 42."}, "finish_reason": "length"},
    ]
    upstream.set_behaviour(Behaviour("document", document={"choices": choices, "system_fingerprint": "fp_1"}))
    chunks = list(client.chat.completions.create(model="smart", messages=QUESTION, n=2, stream=True))
    text = {0: "", 1: ""}
    refusal = {0: "", 1: ""}
    finish: dict[int, str] = {}
    for chunk in chunks:
        assert chunk.system_fingerprint == "fp_1"
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
            refusal[choice.index] += choice.delta.refusal or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert text == {0: "", 1: "Sure: 42."} and refusal == {0: "No.", 1: ""}
    assert finish == {0: "stop", 1: "length"}


def test_a_photo_sized_image_fits_the_request_limit(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    photo = "data:image/jpeg;base64," + "A" * 3_000_000  # a ~2.2 MB JPEG, base64-encoded
    content = [{"type": "text", "text": "Describe the photo."}, {"type": "image_url", "image_url": {"url": photo}}]
    response = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert response.choices[0].message.content
    assert last_body(upstream)["messages"][0]["content"][1]["image_url"]["url"] == photo
