"""Token streaming through the chat function's streaming entry (`stream_handler`), on moto.

The upstream is a real HTTP server on 127.0.0.1 speaking OpenAI SSE (tests/fake_upstream.py),
or the simulated provider. What must hold: the head (router headers) comes first, the chunks
are relayed one by one as the upstream sends them, retries and fallback happen only before the
first byte, the turn is recorded when the stream ends however it ends (completed, stopped by
the client, failed upstream), and a failed stream is never scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION, http_event, lambda_context
from tests.fake_bedrock import FakeBedrock, exception_event, stream_events
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.conftest import Stack, router_config, two_models_on

pytestmark = pytest.mark.integration

CODE = "Write a Python function that merges two sorted lists."
PIECES = [f"piece{i} " for i in range(20)]
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def request(text: str = CODE, **fields: Any) -> dict[str, Any]:
    return {"model": "smart-cheap-router", "stream": True, "messages": [{"role": "user", "content": text}], **fields}


def open_stream(stack: Stack, body: dict[str, Any], *, context: Any = None) -> Iterator[Any]:
    headers = {"authorization": f"Bearer {stack.api_key}", "content-type": "application/json"}
    event = http_event("POST", "/v1/chat/completions", body=json.dumps(body), headers=headers)
    generator: Iterator[Any] = stack.chat.stream_handler(event, context or lambda_context("chat"))
    return generator


def events(pieces: list[str]) -> list[Any]:
    """The SSE pieces as parsed events (each piece is exactly one event)."""
    out: list[Any] = []
    for piece in pieces:
        assert piece.startswith("data: ") and piece.endswith("\n\n"), piece
        data = piece[len("data: ") : -2]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def content(parsed: list[Any]) -> str:
    return "".join(
        c["delta"].get("content") or "" for e in parsed if isinstance(e, dict) for c in e.get("choices") or ()
    )


def stored_turn(stack: Stack, turn_id: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.resources.table_name)
    items = [i for i in table.scan()["Items"] if str(i.get("sk", "")).startswith("TURN#") or "nonce" in i]
    nonce = turn_id.rsplit(".", 1)[1]
    found = [i for i in items if i.get("nonce") == nonce]
    assert len(found) == 1, items
    return found[0]


@pytest.fixture
def upstream(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    """The handlers on a config whose two models live on a real SSE upstream on 127.0.0.1."""
    with FakeUpstream() as fake:
        config = two_models_on(fake.base_url, upstream_timeout_seconds=1.0, request_deadline_seconds=3.0)
        config["routers"]["smart-cheap-router"]["exploration_floor"] = 0.0
        with router_config(config, tmp_path, monkeypatch):
            yield fake


def test_the_head_comes_first_then_each_upstream_chunk_as_it_arrives(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES, interval_s=0.05))
    stream = open_stream(stack, request(stream_options={"include_usage": True}))
    head = next(stream)
    assert head["statusCode"] == 200
    headers = head["headers"]
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["x-router-model"] in ("fast", "smart") and headers["x-router-request-type"] == "code_generation"
    turn_id = headers["x-router-turn-id"]
    arrivals: list[float] = []
    pieces: list[str] = []
    for piece in stream:
        arrivals.append(time.monotonic())
        pieces.append(piece)
    parsed = events(pieces)
    assert parsed[-1] == "[DONE]"
    assert content(parsed) == "".join(PIECES)
    # One event per upstream piece, relayed as it came: the content chunks span the upstream's pace.
    content_times = [t for t, e in zip(arrivals, parsed, strict=True) if isinstance(e, dict) and content([e])]
    assert len(content_times) == len(PIECES)
    assert content_times[-1] - content_times[0] >= 0.05 * (len(PIECES) - 1) * 0.8
    # The upstream was asked for a stream with usage; every chunk is the router's (id, model).
    sent = upstream.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    chunks = [e for e in parsed if isinstance(e, dict)]
    assert {c["id"] for c in chunks} == {"chatcmpl-" + turn_id.replace(".", "-")}
    assert {c["model"] for c in chunks} == {headers["x-router-model"]}
    assert all("usage" in c for c in chunks)
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["router"]["turn_id"] == turn_id
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 11
    # Recorded when the stream ended, priced from the upstream's usage.
    item = stored_turn(stack, turn_id)
    assert int(item["in_tok"]) == 11 and int(item["out_tok"]) == sum(len(p) for p in PIECES) // 4
    assert "outcome" not in item


def test_without_include_usage_no_usage_field_and_no_usage_chunk(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES[:3]))
    stream = open_stream(stack, request())
    next(stream)
    parsed = events(list(stream))
    chunks = [e for e in parsed if isinstance(e, dict)]
    assert all("usage" not in c for c in chunks) and all(c["choices"] for c in chunks)


def test_a_failure_before_the_first_chunk_falls_back_to_the_next_model(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(503), model="m-smart")
    upstream.set_behaviour(Behaviour.streamed(PIECES[:4]), model="m-fast")
    fallbacks = 0
    for _ in range(25):
        stream = open_stream(stack, request())
        head = next(stream)
        parsed = events(list(stream))
        assert head["statusCode"] == 200 and head["headers"]["x-router-model"] == "fast"
        assert content(parsed) == "".join(PIECES[:4]) and parsed[-1] == "[DONE]"
        if head["headers"].get("x-router-fallback") == "next_model":
            fallbacks += 1
            assert "x-router-propensity" not in head["headers"]
    assert fallbacks >= 1
    # The broken model's failures happened before any byte: nothing of them reached a client.
    assert upstream.count("m-fast") == 25


def test_every_model_failing_before_the_first_chunk_is_a_clear_502(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(500))
    stream = open_stream(stack, request())
    head = next(stream)
    assert head["statusCode"] == 502
    body = json.loads("".join(stream))
    assert body["error"]["code"] == "upstream_failed"
    assert stack.router_state()["counts"]["turns"] == 0


def test_an_upstream_error_after_the_first_byte_ends_the_stream_and_the_turn_is_never_scored(
    stack: Stack, upstream: FakeUpstream
) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES, fail_after=5))
    stream = open_stream(stack, request())
    head = next(stream)
    assert head["statusCode"] == 200
    turn_id = head["headers"]["x-router-turn-id"]
    parsed = events(list(stream))
    assert content(parsed) == "".join(PIECES[:5])
    error = parsed[-2]
    assert error["error"]["code"] == "upstream_stream_failed" and error["error"]["type"] == "server_error"
    assert error["router"]["outcome"] == "failed"
    assert parsed[-1] == "[DONE]"
    item = stored_turn(stack, turn_id)
    assert item["outcome"] == "failed" and item["gate_passed"] is False and int(item["out_tok"]) > 0
    rating = stack.feedback_request({"turn_id": turn_id, "rating": "down"})
    assert rating["statusCode"] == 409 and json.loads(rating["body"])["error"]["code"] == "turn_failed"


def test_a_connection_cut_mid_stream_is_a_failed_stream(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES, cut_after=3))
    stream = open_stream(stack, request())
    head = next(stream)
    parsed = events(list(stream))
    assert content(parsed) == "".join(PIECES[:3])
    assert parsed[-2]["error"]["code"] == "upstream_stream_failed"
    assert stored_turn(stack, head["headers"]["x-router-turn-id"])["outcome"] == "failed"


def test_a_client_that_goes_away_stops_the_stream_and_the_turn_keeps_what_was_produced(
    stack: Stack, upstream: FakeUpstream
) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES, interval_s=0.05))
    stream = open_stream(stack, request())
    head = next(stream)
    received = [next(stream) for _ in range(4)]  # role chunk + 3 pieces
    stream.close()  # type: ignore[attr-defined]
    assert content(events(received)) == "".join(PIECES[:3])
    item = stored_turn(stack, head["headers"]["x-router-turn-id"])
    assert item["outcome"] == "stopped"
    # Estimated from what was produced (the upstream's usage never came): a few tokens, not the whole answer.
    assert 0 < int(item["out_tok"]) < sum(len(p) for p in PIECES) // 4
    # A stopped answer was delivered in part: the user may still rate it (accepted; this first
    # turn of a conversation is below the signal gate, so it is not applied).
    rating = stack.feedback_request({"turn_id": head["headers"]["x-router-turn-id"], "rating": "down"})
    assert rating["statusCode"] == 202 and json.loads(rating["body"])["turn_id"] == head["headers"]["x-router-turn-id"]


def test_tool_call_deltas_are_relayed_and_spell_valid_arguments(stack: Stack, upstream: FakeUpstream) -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "c"})}
    upstream.set_behaviour(Behaviour.streamed([], tool_call=call))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    stream = open_stream(stack, request("What is the weather in Paris?", tools=tools))
    next(stream)
    parsed = [e for e in events(list(stream)) if isinstance(e, dict)]
    deltas = [c["delta"] for e in parsed for c in e["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "get_weather"
    assert len(calls) == 3
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris", "unit": "c"}
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_is_ended_before_the_function_runs_out_of_time(stack: Stack, upstream: FakeUpstream) -> None:
    from router_core import runtime

    upstream.set_behaviour(Behaviour.streamed(PIECES, interval_s=0.1))
    context = lambda_context("chat")
    left = runtime.config().upstream_timeout_seconds + 2.0 + 0.45  # the stream may run ~0.45 s
    context._deadline = time.monotonic() + left
    stream = open_stream(stack, request(), context=context)
    head = next(stream)
    parsed = events(list(stream))
    assert 0 < len(content(parsed)) < len("".join(PIECES))
    assert parsed[-2]["error"]["code"] == "upstream_stream_failed"
    assert stored_turn(stack, head["headers"]["x-router-turn-id"])["outcome"] == "failed"


def test_the_http_api_path_still_answers_streams_whole(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.ok("one whole answer"))
    response = stack.chat_request(request())
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "text/event-stream"
    parsed = events([e + "\n\n" for e in response["body"].split("\n\n") if e])
    assert content(parsed) == "one whole answer" and parsed[-1] == "[DONE]"
    assert upstream.requests[-1].body["stream"] is False


def test_non_streamed_requests_through_the_streaming_entry_answer_json(stack: Stack, upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.ok("plain json"))
    stream = open_stream(stack, {**request(), "stream": False})
    head = next(stream)
    assert head["statusCode"] == 200 and head["headers"]["Content-Type"] == "application/json"
    body = json.loads("".join(stream))
    assert body["choices"][0]["message"]["content"] == "plain json" and body["router"]["turn_id"]


def test_bad_requests_through_the_streaming_entry_are_clear_4xx(stack: Stack, upstream: FakeUpstream) -> None:
    stream = open_stream(stack, {"model": "smart-cheap-router", "stream": True, "messages": []})
    head = next(stream)
    assert head["statusCode"] == 400
    assert json.loads("".join(stream))["error"]["type"] == "invalid_request_error"
    assert upstream.count() == 0


def test_the_simulated_provider_streams_the_answer_it_would_give_whole(stack: Stack) -> None:
    stream = open_stream(stack, request(stream_options={"include_usage": True}))
    head = next(stream)
    parsed = events(list(stream))
    chunks = [e for e in parsed if isinstance(e, dict)]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 10
    text = content(parsed)
    assert "[simulated answer by " + head["headers"]["x-router-model"] in text
    usage = chunks[-1]["usage"]
    item = stored_turn(stack, head["headers"]["x-router-turn-id"])
    assert int(item["out_tok"]) == usage["completion_tokens"] and int(item["in_tok"]) == usage["prompt_tokens"]


@pytest.fixture
def bedrock(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """One Bedrock model behind the router; its real bedrock-runtime client answers from a queue."""
    import boto3
    from router_core.providers import bedrock as bedrock_module

    # An endpoint moto does not serve: under mock_aws its handler would otherwise also see the
    # call (and it has no ConverseStream); FakeBedrock answers it.
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url="https://bedrock-runtime.fake.test")
    for seconds in range(1, 4):  # the provider's cached clients, per whole-second read timeout
        monkeypatch.setitem(bedrock_module._clients, ("us-east-1", seconds), client)
    fake = FakeBedrock(client)
    config = {
        "providers": {"aws": {"type": "bedrock", "region": "us-east-1"}},
        "models": {
            "claude": {"provider": "aws", "upstream_model": CLAUDE, "input_usd_per_mtok": 3, "output_usd_per_mtok": 15}
        },
        "routers": {"smart-cheap-router": {"models": ["claude"], "default_model": "claude"}},
        "upstream_timeout_seconds": 2.0,
        "request_deadline_seconds": 3.0,
    }
    with router_config(config, tmp_path, monkeypatch):
        yield fake


def test_a_bedrock_model_streams_through_converse_stream(stack: Stack, bedrock: FakeBedrock) -> None:
    text = "Merge by walking both lists with two indices."
    usage = {"inputTokens": 21, "outputTokens": 12, "totalTokens": 33}
    bedrock.queue_stream(stream_events([{"text": text}], "end_turn", usage))
    stream = open_stream(stack, request(stream_options={"include_usage": True}))
    head = next(stream)
    assert head["statusCode"] == 200 and head["headers"]["x-router-model"] == "claude"
    parsed = events(list(stream))
    assert bedrock.requests[-1]["operation"] == "ConverseStream"
    assert content(parsed) == text
    chunks = [e for e in parsed if isinstance(e, dict)]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 10
    assert chunks[-1]["usage"]["prompt_tokens"] == 21 and chunks[-1]["usage"]["completion_tokens"] == 12
    item = stored_turn(stack, head["headers"]["x-router-turn-id"])
    assert int(item["in_tok"]) == 21 and int(item["out_tok"]) == 12


def test_a_bedrock_exception_mid_stream_ends_the_stream_as_failed(stack: Stack, bedrock: FakeBedrock) -> None:
    events_sent = stream_events([{"text": "The first part arrives, then"}], "end_turn")[:4]
    bedrock.queue_stream([*events_sent, exception_event("modelStreamErrorException", "the model broke")])
    stream = open_stream(stack, request())
    head = next(stream)
    parsed = events(list(stream))
    assert content(parsed) and parsed[-2]["error"]["code"] == "upstream_stream_failed"
    assert stored_turn(stack, head["headers"]["x-router-turn-id"])["outcome"] == "failed"


def test_a_client_gone_right_after_the_head_still_records_the_turn_and_closes_the_upstream(
    stack: Stack, upstream: FakeUpstream
) -> None:
    upstream.set_behaviour(Behaviour.streamed(PIECES, interval_s=0.2))
    stream = open_stream(stack, request())
    head = next(stream)
    stream.close()  # type: ignore[attr-defined]
    item = stored_turn(stack, head["headers"]["x-router-turn-id"])
    assert item["outcome"] == "stopped"
    # The upstream saw its client go and stopped writing (its 20 pieces would take 4 s).
    deadline = time.monotonic() + 2.0
    while upstream.active_streams() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.active_streams() == 0
