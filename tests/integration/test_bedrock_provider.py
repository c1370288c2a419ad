"""The Bedrock Converse provider through botocore's Stubber (real request validation, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
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
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "42 degrees", "tool_call_id": "1"},
        {"role": "assistant", "content": "It is 42."},
        {"role": "user", "content": "   "},
        {"role": "assistant", "content": "Anything else?"},
        {"role": "user", "content": "No, thanks."},
    ]
    turns, system = to_converse(messages)
    assert system == [{"text": "You are terse."}, {"text": "Prefer metric units."}]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert turns[0]["content"] == [{"text": "(continuing the conversation)"}]
    assert turns[1]["content"] == [{"text": "Hi, how can I help?"}]
    assert turns[2]["content"] == [
        {"text": "First question."},
        {"text": "Second part."},
        {"text": "[tool result]\n42 degrees"},
    ]
    assert turns[3]["content"] == [{"text": "It is 42."}, {"text": "Anything else?"}]
    assert turns[4]["content"] == [{"text": "No, thanks."}]


def test_image_parts_are_refused_as_a_model_specific_client_error() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(UpstreamError) as caught:
        to_converse([{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])
    assert (caught.value.kind, caught.value.invalid_request) == ("client_error", False)


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
