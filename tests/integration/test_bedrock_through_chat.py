"""A router with an OpenAI-compatible model and a Bedrock model, driven by the official client:
each request goes to a model that can serve it, and what Bedrock cannot do is a clear 400."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import openai
import pytest
import yaml
from botocore.stub import ANY, Stubber

from tests.fake_upstream import FakeUpstream
from tests.integration.conftest import Stack
from tests.integration.test_chat_completions_surface import PNG_DATA_URL, QUESTION, WEATHER_TOOL, HandlerTransport

pytestmark = pytest.mark.integration

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@pytest.fixture
def bedrock(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeUpstream, Stubber]]:
    """Models `gpt` (OpenAI-compatible, no vision) and `claude` (Bedrock, vision) behind `mixed`."""
    from router_core import runtime
    from router_core.providers import bedrock as bedrock_module
    from router_core.providers import reset_providers

    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    for seconds in range(1, 4):  # the provider's cached clients, per whole-second read timeout
        monkeypatch.setitem(bedrock_module._clients, ("us-east-1", seconds), client)
    with FakeUpstream() as fake, Stubber(client) as stubber:
        config = {
            "providers": {
                "local": {"type": "openai_compatible", "base_url": fake.base_url},
                "aws": {"type": "bedrock", "region": "us-east-1"},
            },
            "models": {
                "gpt": {
                    "provider": "local",
                    "upstream_model": "m-gpt",
                    "input_usd_per_mtok": 0.15,
                    "output_usd_per_mtok": 0.6,
                },
                "claude": {
                    "provider": "aws",
                    "upstream_model": CLAUDE,
                    "input_usd_per_mtok": 3,
                    "output_usd_per_mtok": 15,
                    "capabilities": {"vision": True, "file_input": True, "context_window": 200000},
                },
            },
            "routers": {"mixed": {"models": ["gpt", "claude"], "default_model": "gpt"}},
            "upstream_timeout_seconds": 2.0,
            "request_deadline_seconds": 3.0,
        }
        path = tmp_path / "routers.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        monkeypatch.setenv("ROUTER_CONFIG_PATH", str(path))
        runtime.reset()
        reset_providers()
        yield fake, stubber
        reset_providers()


@pytest.fixture
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=stack.api_key,
        base_url="https://router.test/v1",
        http_client=httpx.Client(transport=HandlerTransport(stack)),
        max_retries=0,
    )


def converse_reply(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 900, "outputTokens": 20, "totalTokens": 920},
        "metrics": {"latencyMs": 300},
    }


def test_an_image_goes_to_the_bedrock_vision_model_as_bytes(
    client: openai.OpenAI, bedrock: tuple[FakeUpstream, Stubber]
) -> None:
    fake, stubber = bedrock
    png = base64.b64decode(PNG_DATA_URL.split(",", 1)[1])
    stubber.add_response(
        "converse",
        converse_reply([{"text": "A single pixel."}]),
        {
            "modelId": CLAUDE,
            "messages": [
                {
                    "role": "user",
                    "content": [{"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": png}}}],
                }
            ],
        },
    )
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    response = client.chat.completions.create(model="mixed", messages=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert response.model == "claude" and response.choices[0].message.content == "A single pixel."
    assert response.usage is not None and response.usage.prompt_tokens == 900
    assert fake.count() == 0


def test_a_bedrock_tool_call_comes_back_as_openai_tool_calls(
    client: openai.OpenAI, bedrock: tuple[FakeUpstream, Stubber]
) -> None:
    _, stubber = bedrock
    stubber.add_response(
        "converse",
        converse_reply(
            [{"toolUse": {"toolUseId": "tooluse_7", "name": "get_weather", "input": {"city": "Paris"}}}], "tool_use"
        ),
        {"modelId": CLAUDE, "messages": ANY, "toolConfig": ANY},
    )
    response = client.chat.completions.create(model="claude", messages=QUESTION, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.id == "tooluse_7" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "asked"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n > 1"),
        ({"tools": [WEATHER_TOOL], "parallel_tool_calls": False}, "parallel_tool_calls: false"),
        ({"extra_body": {"future_option": 1}}, "future_option"),
    ],
)
def test_what_bedrock_cannot_do_goes_to_the_other_model_or_is_a_clear_400(
    client: openai.OpenAI, bedrock: tuple[FakeUpstream, Stubber], fields: dict[str, Any], asked: str
) -> None:
    fake, _ = bedrock
    for _ in range(4):
        assert client.chat.completions.create(model="mixed", messages=QUESTION, **fields).model == "gpt"
    assert fake.count("m-gpt") == 4
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude", messages=QUESTION, **fields)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "unsupported_by_models"
    assert asked in body["message"] and "claude cannot serve" in body["message"]


@pytest.mark.parametrize(
    ("request_fields", "mentions"),
    [
        (
            {
                "model": "mixed",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not-base64@@"}},
                        ],
                    }
                ],
            },
            "not valid base64",
        ),
        (
            {
                "model": "claude",
                "messages": QUESTION,
                "response_format": {"type": "json_schema", "json_schema": {"name": "L", "schema": {"type": "array"}}},
            },
            "top level is an object",
        ),
    ],
)
def test_a_request_converse_cannot_carry_is_a_400_with_the_reason(
    stack: Stack, bedrock: tuple[FakeUpstream, Stubber], request_fields: dict[str, Any], mentions: str
) -> None:
    response = stack.chat_request(request_fields)
    assert response["statusCode"] == 400, response
    error = json.loads(response["body"])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "upstream_rejected"
    assert mentions in error["message"]
