"""Bedrock token streaming: ConverseStream events → OpenAI chat.completion.chunk dicts.

A real `bedrock-runtime` client validates, serialises and signs each request; the answer is an
encoded event stream that botocore's own parser reads (tests/fake_bedrock.py says why Stubber
cannot carry an event stream). No network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from router_core.providers import BedrockProvider, ChatParams, UpstreamError
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from tests.fake_bedrock import FakeBedrock, converse_answer, event, exception_event, stream_events
from tests.integration.test_bedrock_provider import CONFIG, MODEL, WEATHER

pytestmark = pytest.mark.integration

HI = ChatParams(messages=[{"role": "user", "content": "hi"}])
USAGE = {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42}


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> tuple[BedrockProvider, FakeBedrock]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # As `bedrock_client` configures it: no SDK retries (the router's fallback retries).
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    client = boto3.client("bedrock-runtime", region_name="us-east-1", config=config)
    return BedrockProvider("bedrock", CONFIG, client_factory=lambda region, timeout: client), FakeBedrock(client)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


ROLE = _chunk({"role": "assistant", "content": ""})


def _until_failure(chunks: Iterator[dict[str, Any]]) -> tuple[list[dict[str, Any]], UpstreamError]:
    """(the chunks received, the UpstreamError that ended the stream)."""
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as caught:
        for chunk in chunks:
            received.append(chunk)
    return received, caught.value


def _accumulate(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """(the assistant message, the finish_reason) an OpenAI client builds from the chunks."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], {"function": {"name": None, "arguments": ""}})
                slot.update({k: call[k] for k in ("id", "type") if k in call})
                slot["function"]["name"] = call["function"].get("name") or slot["function"]["name"]
                slot["function"]["arguments"] += call["function"].get("arguments", "")
            finish = choice["finish_reason"] or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, finish


def test_text_arrives_in_content_deltas_between_the_role_and_the_finish_chunk(
    bedrock: tuple[BedrockProvider, FakeBedrock],
) -> None:
    provider, fake = bedrock
    fake.queue_stream(stream_events([{"text": "Rome is the capital."}], "end_turn", piece=6))
    params = ChatParams(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Italy?"}],
        temperature=0.1,
        max_tokens=50,
    )
    chunks = list(provider.stream(MODEL, params, 5.0))
    assert chunks == [
        ROLE,
        _chunk({"content": "Rome i"}),
        _chunk({"content": "s the "}),
        _chunk({"content": "capita"}),
        _chunk({"content": "l."}),
        _chunk({}, "stop"),
    ]
    (sent,) = fake.requests
    assert sent["operation"] == "ConverseStream"
    assert sent["url"].endswith("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    assert sent["body"] == {
        "messages": [{"role": "user", "content": [{"text": "Capital of Italy?"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"temperature": 0.1, "maxTokens": 50},
    }


def test_a_tool_call_opens_with_its_name_and_its_arguments_follow_in_pieces(
    bedrock: tuple[BedrockProvider, FakeBedrock],
) -> None:
    provider, fake = bedrock
    blocks = [
        {"text": "Checking both."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Rome"}}},
    ]
    fake.queue_stream(stream_events(blocks, "tool_use", piece=5))
    params = ChatParams(
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}], options={"tools": [WEATHER]}
    )
    chunks = list(provider.stream(MODEL, params, 5.0))

    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    openings = [c for c in calls if "id" in c]
    assert openings == [
        {"index": 0, "id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    pieces = [c for c in calls if "id" not in c]
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"} for c in pieces)
    assert len([c for c in pieces if c["index"] == 0]) > 1  # the arguments really came in pieces
    message, finish = _accumulate(chunks)
    assert message["content"] == "Checking both."
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert finish == "tool_calls"
    assert fake.requests[0]["body"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "Weather",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        },
    ],
)
def test_structured_output_streams_the_forced_tools_input_as_content(
    bedrock: tuple[BedrockProvider, FakeBedrock], response_format: dict[str, Any]
) -> None:
    provider, fake = bedrock
    name = response_format.get("json_schema", {}).get("name", "json_answer")
    forced = {"toolUse": {"toolUseId": "tooluse_9", "name": name, "input": {"city": "Paris"}}}
    fake.queue_stream(stream_events([forced], "tool_use", piece=4))
    params = ChatParams(
        messages=[{"role": "user", "content": "Weather as JSON"}], options={"response_format": response_format}
    )
    chunks = list(provider.stream(MODEL, params, 5.0))
    assert all("tool_calls" not in c["choices"][0]["delta"] for c in chunks)
    assert len(chunks) > 4  # role, several content pieces, finish
    message, finish = _accumulate(chunks)
    assert json.loads(message["content"]) == {"city": "Paris"}
    assert finish == "stop"
    assert fake.requests[0]["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": name}}


def test_bedrocks_usage_report_is_the_last_chunk(bedrock: tuple[BedrockProvider, FakeBedrock]) -> None:
    provider, fake = bedrock
    usage = {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 8}
    fake.queue_stream(stream_events([{"text": "Hi!"}], "end_turn", usage=usage))
    chunks = list(provider.stream(MODEL, HI, 5.0))
    assert chunks[-2:] == [
        _chunk({}, "stop"),
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": 12,
                "total_tokens": 42,
                "prompt_tokens_details": {"cached_tokens": 8},
            },
        },
    ]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "malformed_model_output"),
    ],
)
def test_the_stop_reason_maps_to_the_finish_reason_complete_gives(
    bedrock: tuple[BedrockProvider, FakeBedrock], stop: str, finish: str
) -> None:
    provider, fake = bedrock
    fake.queue_stream(stream_events([{"text": "Partial"}], stop, usage=USAGE))
    fake.queue_converse(converse_answer([{"text": "Partial"}], stop))
    streamed = list(provider.stream(MODEL, HI, 5.0))
    assert streamed[-2] == _chunk({}, finish)
    assert provider.complete(MODEL, HI, 5.0).finish_reason == finish


def test_reasoning_deltas_are_not_sent(bedrock: tuple[BedrockProvider, FakeBedrock]) -> None:
    provider, fake = bedrock
    reasoning = {"reasoningContent": {"text": "The user greets me."}}
    signature = {"reasoningContent": {"signature": "sig-1"}}
    fake.queue_stream(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": reasoning}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": signature}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hello!"}}),
            event("contentBlockStop", {"contentBlockIndex": 1}),
            event("messageStop", {"stopReason": "end_turn"}),
        ]
    )
    assert list(provider.stream(MODEL, HI, 5.0)) == [ROLE, _chunk({"content": "Hello!"}), _chunk({}, "stop")]


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        ("modelStreamErrorException", "server_error"),
        ("internalServerException", "server_error"),
        ("serviceUnavailableException", "server_error"),
        ("throttlingException", "rate_limited"),
        ("validationException", "client_error"),
    ],
)
def test_an_exception_event_mid_stream_raises_after_the_chunks_before_it(
    bedrock: tuple[BedrockProvider, FakeBedrock], exception: str, kind: str
) -> None:
    provider, fake = bedrock
    events = stream_events([{"text": "Hello there"}], "end_turn", piece=5)
    fake.queue_stream([*events[:3], exception_event(exception, "it broke")])  # start, 2 deltas, then the exception
    received, err = _until_failure(provider.stream(MODEL, HI, 5.0))
    assert received == [ROLE, _chunk({"content": "Hello"}), _chunk({"content": " ther"})]
    assert (err.kind, err.status, err.invalid_request) == (kind, None, False)
    assert "it broke" in err.message


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (ReadTimeoutError(None, "", "Read timed out."), "timeout"),  # type: ignore[arg-type]
        (ProtocolError("Connection broken: IncompleteRead"), "server_error"),
    ],
)
def test_a_connection_failing_mid_stream_raises_after_the_chunks_before_it(
    bedrock: tuple[BedrockProvider, FakeBedrock], failure: Exception, kind: str
) -> None:
    provider, fake = bedrock
    fake.queue_stream(stream_events([{"text": "Hello"}], "end_turn")[:2], failure=failure)
    received, err = _until_failure(provider.stream(MODEL, HI, 5.0))
    assert received == [ROLE, _chunk({"content": "Hell"})]
    assert err.kind == kind
    assert fake.bodies[0].closed


def test_a_stream_that_ends_without_message_stop_is_a_bad_response(
    bedrock: tuple[BedrockProvider, FakeBedrock],
) -> None:
    provider, fake = bedrock
    fake.queue_stream(stream_events([{"text": "Hello"}], "end_turn")[:-1])
    stream = provider.stream(MODEL, HI, 5.0)
    assert [next(stream), next(stream)] == [ROLE, _chunk({"content": "Hell"})]
    with pytest.raises(UpstreamError) as caught:
        list(stream)
    assert caught.value.kind == "bad_response"


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (429, "ThrottlingException", "Too many requests, please wait.", "rate_limited"),
        (400, "ValidationException", "Input is too long for requested model.", "context_length"),
        (503, "ServiceUnavailableException", "Try again.", "server_error"),
        (403, "AccessDeniedException", "No access to this model.", "client_error"),
    ],
)
def test_an_error_answer_to_the_call_is_raised_by_the_first_next(
    bedrock: tuple[BedrockProvider, FakeBedrock], status: int, code: str, message: str, kind: str
) -> None:
    provider, fake = bedrock
    fake.queue_error(status, code, message)
    stream = provider.stream(MODEL, HI, 5.0)
    assert fake.requests == []  # nothing is sent before the first next()
    with pytest.raises(UpstreamError) as caught:
        next(stream)
    assert len(fake.requests) == 1
    err = caught.value
    assert (err.kind, err.status, err.invalid_request) == (kind, status, False)
    assert code in err.message


def test_closing_the_stream_early_closes_bedrocks_event_stream(bedrock: tuple[BedrockProvider, FakeBedrock]) -> None:
    provider, fake = bedrock
    body = fake.queue_stream(stream_events([{"text": "A long answer. " * 200}], "end_turn"))
    stream = provider.stream(MODEL, HI, 5.0)
    assert [next(stream), next(stream)] == [ROLE, _chunk({"content": "A lo"})]
    assert not body.closed
    stream.close()
    assert body.closed
    assert body.read < 1000  # the rest of the answer was never read


@pytest.mark.parametrize(
    ("options", "content", "named"),
    [
        ({"logprobs": True}, "hi", "logprobs"),
        ({"n": 2}, "hi", "n > 1"),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "hi", "structured output together"),
        ({}, [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], "images by http(s) URL"),
    ],
)
def test_what_converse_cannot_do_is_refused_before_any_call(
    bedrock: tuple[BedrockProvider, FakeBedrock], options: dict[str, Any], content: Any, named: str
) -> None:
    provider, fake = bedrock
    stream = provider.stream(MODEL, ChatParams(messages=[{"role": "user", "content": content}], options=options), 5.0)
    with pytest.raises(UpstreamError) as caught:
        next(stream)
    err = caught.value
    assert (err.kind, err.status, err.invalid_request) == ("client_error", 400, True)
    assert named in err.message
    assert fake.requests == []


CONVERSATIONS: dict[str, tuple[dict[str, Any], list[dict[str, Any]], str]] = {
    "text": ({}, [{"text": "Rome, since 1871."}], "end_turn"),
    "two text blocks": ({}, [{"text": "First part."}, {"text": "Second part."}], "max_tokens"),
    "text and tool calls": (
        {"tools": [WEATHER]},
        [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Nice, FR"}}},
        ],
        "tool_use",
    ),
    "structured output": (
        {"response_format": {"type": "json_object"}},
        [{"toolUse": {"toolUseId": "tooluse_9", "name": "json_answer", "input": {"city": "Paris", "temp_c": 18}}}],
        "tool_use",
    ),
    "structured output after text": (
        {"response_format": {"type": "json_object"}},
        [
            {"text": "Here it is."},
            {"toolUse": {"toolUseId": "tooluse_9", "name": "json_answer", "input": {"ok": True}}},
        ],
        "tool_use",
    ),
    "structured output given twice": (
        {"response_format": {"type": "json_object"}},
        [
            {"toolUse": {"toolUseId": "tooluse_8", "name": "json_answer", "input": {"first": 1}}},
            {"toolUse": {"toolUseId": "tooluse_9", "name": "json_answer", "input": {"second": 2}}},
        ],
        "tool_use",
    ),
    "structured output refused by the model": (
        {"response_format": {"type": "json_object"}},
        [{"text": "I cannot answer that."}],
        "end_turn",
    ),
}


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    """The message with JSON compared as values (streamed JSON keeps Bedrock's own spacing)."""
    if message.get("content", "") and message["content"].startswith("{"):
        message = {**message, "content": json.loads(message["content"])}
    for call in message.get("tool_calls") or ():
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return message


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_the_accumulated_stream_is_the_answer_complete_gives(
    bedrock: tuple[BedrockProvider, FakeBedrock], conversation: str
) -> None:
    provider, fake = bedrock
    options, blocks, stop = CONVERSATIONS[conversation]
    params = ChatParams(messages=[{"role": "user", "content": "Weather in Paris?"}], options=options)
    fake.queue_converse(converse_answer(blocks, stop, USAGE))
    fake.queue_stream(stream_events(blocks, stop, USAGE, piece=3))

    completion = provider.complete(MODEL, params, 5.0)
    chunks = list(provider.stream(MODEL, params, 5.0))

    (choice,) = completion.choices
    message, finish = _accumulate(chunks)
    assert _comparable(message) == _comparable(choice["message"])
    assert finish == choice["finish_reason"]
    assert chunks[-1] == {"choices": [], "usage": completion.usage}
    converse_request, stream_request = fake.requests
    assert (converse_request["operation"], stream_request["operation"]) == ("Converse", "ConverseStream")
    assert stream_request["body"] == converse_request["body"]
