"""The Bedrock Converse provider through botocore's Stubber (real request validation, no network)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from router_core.config import BedrockProviderConfig, ModelConfig
from router_core.providers import BedrockProvider, ChatParams, UpstreamError
from router_core.providers.bedrock import bedrock_client, to_converse

pytestmark = pytest.mark.integration

MODEL = ModelConfig(
    provider="bedrock",
    upstream_model="anthropic.claude-3-haiku-20240307-v1:0",
    input_usd_per_mtok=0.25,
    output_usd_per_mtok=1.25,
)
CONFIG = BedrockProviderConfig(type="bedrock", region="us-east-1")


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BedrockProvider, Stubber]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield BedrockProvider("bedrock", CONFIG, client_factory=lambda region, timeout: client), stubber
        stubber.assert_no_pending_responses()


def _reply(text: str, stop: str = "end_turn", tokens: tuple[int, int] = (21, 7)) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
        "metrics": {"latencyMs": 120},
    }


def test_a_converse_answer_maps_to_a_completion(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    params = ChatParams(
        messages=[
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of Italy?"},
        ],
        temperature=0.1,
        max_tokens=50,
    )
    stubber.add_response(
        "converse",
        _reply("Rome", stop="max_tokens"),
        expected_params={
            "modelId": MODEL.upstream_model,
            "messages": [{"role": "user", "content": [{"text": "Capital of Italy?"}]}],
            "system": [{"text": "Answer in one word."}],
            "inferenceConfig": {"temperature": 0.1, "maxTokens": 50},
        },
    )
    completion = provider.complete(MODEL, params, 5.0)
    assert completion.text == "Rome"
    assert (completion.input_tokens, completion.output_tokens) == (21, 7)
    assert completion.finish_reason == "length"
    assert completion.usage_estimated is False
    assert completion.upstream_model == MODEL.upstream_model


def test_no_inference_config_is_sent_when_the_client_set_none(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_response(
        "converse",
        _reply("Hello!"),
        expected_params={"modelId": MODEL.upstream_model, "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    )
    assert (
        provider.complete(MODEL, ChatParams(messages=[{"role": "user", "content": "hi"}]), 5.0).finish_reason == "stop"
    )


def test_messages_convert_to_alternating_converse_turns() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Prefer metric units."}]},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "First question."},
        {"role": "user", "content": [{"type": "text", "text": "Second part."}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "temp", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "42 degrees", "tool_call_id": "1"},
        {"role": "assistant", "content": "It is 42."},
        {"role": "user", "content": "   "},
        {"role": "assistant", "content": "Anything else?"},
        {"role": "user", "content": "No, thanks."},
    ]
    turns, system = to_converse(messages)
    assert system == [{"text": "You are terse."}, {"text": "Prefer metric units."}]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert turns[0]["content"] == [{"text": "(continuing the conversation)"}]
    assert turns[1]["content"] == [{"text": "Hi, how can I help?"}]
    assert turns[2]["content"] == [{"text": "First question."}, {"text": "Second part."}]
    assert turns[3]["content"] == [{"toolUse": {"toolUseId": "1", "name": "temp", "input": {}}}]
    assert turns[4]["content"] == [{"toolResult": {"toolUseId": "1", "content": [{"text": "42 degrees"}]}}]
    assert turns[5]["content"] == [{"text": "It is 42."}, {"text": "Anything else?"}]
    assert turns[6]["content"] == [{"text": "No, thanks."}]


def test_an_image_by_url_is_refused_with_a_400() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(UpstreamError) as caught:
        to_converse([{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])
    assert (caught.value.kind, caught.value.status, caught.value.invalid_request) == ("client_error", 400, True)
    assert "data: URLs" in caught.value.message


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 429, "rate_limited"),
        ("ModelTimeoutException", 408, "timeout"),
        ("ServiceUnavailableException", 503, "server_error"),
        ("InternalServerException", 500, "server_error"),
        ("ValidationException", 400, "client_error"),
        ("AccessDeniedException", 403, "client_error"),
    ],
)
def test_bedrock_errors_map_to_upstream_error_kinds(
    stubbed: tuple[BedrockProvider, Stubber], code: str, status: int, kind: str
) -> None:
    provider, stubber = stubbed
    stubber.add_client_error("converse", service_error_code=code, service_message="it failed", http_status_code=status)
    with pytest.raises(UpstreamError) as caught:
        provider.complete(MODEL, ChatParams(messages=[{"role": "user", "content": "hi"}]), 5.0)
    err = caught.value
    assert (err.kind, err.status) == (kind, status)
    assert err.retryable is (kind != "client_error")
    assert err.invalid_request is False  # Bedrock validation errors are mostly model-specific
    assert code in str(err)


def test_a_bedrock_prompt_too_long_for_the_model_is_a_context_length_error(
    stubbed: tuple[BedrockProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="Input is too long for requested model.",
        http_status_code=400,
    )
    with pytest.raises(UpstreamError) as caught:
        provider.complete(MODEL, ChatParams(messages=[{"role": "user", "content": "hi"}]), 5.0)
    assert (caught.value.kind, caught.value.retryable, caught.value.invalid_request) == ("context_length", False, False)


class _FailingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def converse(self, **request: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"), "timeout"),
        (EndpointConnectionError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"), "unavailable"),
    ],
)
def test_transport_failures_map_to_timeout_and_unavailable(error: Exception, kind: str) -> None:
    provider = BedrockProvider("bedrock", CONFIG, client_factory=lambda region, timeout: _FailingClient(error))
    with pytest.raises(UpstreamError) as caught:
        provider.complete(MODEL, ChatParams(messages=[{"role": "user", "content": "hi"}]), 5.0)
    assert caught.value.kind == kind


def test_clients_are_cached_per_region_and_whole_second_timeout_without_sdk_retries() -> None:
    first = bedrock_client("eu-central-1", 2.4)
    assert bedrock_client("eu-central-1", 3.0) is first
    assert bedrock_client("eu-central-1", 3.2) is not first
    assert bedrock_client("eu-west-3", 2.4) is not first
    assert first.meta.region_name == "eu-central-1"
    assert first.meta.config.read_timeout == 3
    assert first.meta.config.retries["total_max_attempts"] == 1


# ---------------------------------------------------------------- the Chat Completions surface on Converse

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _tool_reply(tool_id: str, name: str, tool_input: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    content.append({"toolUse": {"toolUseId": tool_id, "name": name, "input": tool_input}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 8},
        "metrics": {"latencyMs": 90},
    }


def test_tools_and_tool_choice_map_to_tool_config_and_tool_use_to_tool_calls(
    stubbed: tuple[BedrockProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    params = ChatParams(
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        options={"tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": True, "user": "u-1", "seed": 3},
    )
    stubber.add_response(
        "converse",
        _tool_reply("tooluse_1", "get_weather", {"city": "Paris"}, text="Let me check."),
        expected_params={
            "modelId": MODEL.upstream_model,
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Current weather in a city",
                            "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
                        }
                    }
                ],
                "toolChoice": {"any": {}},
            },
        },
    )
    completion = provider.complete(MODEL, params, 5.0)
    (choice,) = completion.choices
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "tooluse_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert completion.usage == {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 8},
    }


def test_a_tool_round_trip_sends_tool_use_and_tool_result(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    call = {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    params = ChatParams(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"temp_c": 18}'},
        ],
        options={"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    )
    stubber.add_response(
        "converse",
        _reply("18°C in Paris."),
        expected_params={
            "modelId": MODEL.upstream_model,
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": '{"temp_c": 18}'}]}}],
                },
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Current weather in a city",
                            "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": "get_weather"}},
            },
        },
    )
    completion = provider.complete(MODEL, params, 5.0)
    assert completion.choices[0]["message"] == {"role": "assistant", "content": "18°C in Paris."}
    assert completion.finish_reason == "stop"


def test_images_documents_audio_stop_and_top_p(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    png = "data:image/png;base64," + base64.b64encode(PNG).decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": png, "detail": "high"}},
        {"type": "file", "file": {"filename": "Q3 report (final).pdf", "file_data": pdf}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}},
    ]
    params = ChatParams(
        messages=[{"role": "user", "content": content}],
        temperature=0.2,
        max_tokens=300,
        options={"top_p": 0.8, "stop": ["END", "STOP"], "max_completion_tokens": 300},
    )
    stubber.add_response(
        "converse",
        _reply("Both show growth."),
        expected_params={
            "modelId": MODEL.upstream_model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Compare these."},
                        {"image": {"format": "png", "source": {"bytes": PNG}}},
                        {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": b"%PDF-1.4"}}},
                        {"audio": {"format": "wav", "source": {"bytes": b"RIFF"}}},
                    ],
                }
            ],
            "inferenceConfig": {"temperature": 0.2, "topP": 0.8, "maxTokens": 300, "stopSequences": ["END", "STOP"]},
        },
    )
    assert provider.complete(MODEL, params, 5.0).text == "Both show growth."


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "Weather",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": True,
            },
        },
    ],
)
def test_structured_output_goes_through_a_forced_tool(
    stubbed: tuple[BedrockProvider, Stubber], response_format: dict[str, Any]
) -> None:
    provider, stubber = stubbed
    name = response_format.get("json_schema", {}).get("name", "json_answer")
    schema = response_format.get("json_schema", {}).get("schema", {"type": "object", "properties": {}})
    stubber.add_response(
        "converse",
        _tool_reply("tooluse_9", name, {"city": "Paris"}),
        expected_params={
            "modelId": MODEL.upstream_model,
            "messages": [{"role": "user", "content": [{"text": "Weather as JSON"}]}],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": name, "description": ANY, "inputSchema": {"json": schema}}}],
                "toolChoice": {"tool": {"name": name}},
            },
        },
    )
    completion = provider.complete(
        MODEL,
        ChatParams(
            messages=[{"role": "user", "content": "Weather as JSON"}], options={"response_format": response_format}
        ),
        5.0,
    )
    (choice,) = completion.choices
    assert json.loads(choice["message"]["content"]) == {"city": "Paris"}
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("options", "messages", "named"),
    [
        ({"logprobs": True}, None, "logprobs"),
        ({"n": 2}, None, "n > 1"),
        ({"logit_bias": {"1": 5}}, None, "logit_bias"),
        ({"presence_penalty": 0.5}, None, "penalties"),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, None, "parallel_tool_calls: false"),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, None, "structured output together"),
        ({"future_field": 1}, None, "future_field"),
        ({}, [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], "images by http(s) URL"),
        ({}, [{"type": "file", "file": {"file_id": "file-abc"}}], "files by file_id"),
    ],
)
def test_what_converse_cannot_do_is_a_clear_400(
    stubbed: tuple[BedrockProvider, Stubber], options: dict[str, Any], messages: Any, named: str
) -> None:
    provider, _ = stubbed
    content: Any = [{"type": "text", "text": "hi"}, *messages] if messages else "hi"
    with pytest.raises(UpstreamError) as caught:
        provider.complete(MODEL, ChatParams(messages=[{"role": "user", "content": content}], options=options), 5.0)
    err = caught.value
    assert (err.kind, err.status, err.invalid_request) == ("client_error", 400, True)
    assert named in err.message


def test_tool_choice_none_sends_no_tools(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_response(
        "converse",
        _reply("Sunny, probably."),
        expected_params={"modelId": MODEL.upstream_model, "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    )
    params = ChatParams(
        messages=[{"role": "user", "content": "hi"}], options={"tools": [WEATHER], "tool_choice": "none"}
    )
    assert provider.complete(MODEL, params, 5.0).text == "Sunny, probably."


def test_input_text_and_refusal_parts_are_text() -> None:
    turns, _ = to_converse(
        [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            {"role": "user", "content": "why?"},
        ]
    )
    assert [t["content"] for t in turns] == [[{"text": "hi"}], [{"text": "I can't."}], [{"text": "why?"}]]
