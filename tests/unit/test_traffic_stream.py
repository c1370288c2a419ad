"""`tools.traffic --stream` reads a streamed chat answer however its bytes arrive, and fails a
request clearly when the stream does not finish. The real stream is tested against the local
stack (tests/e2e/test_traffic_tool.py); these pin the edge cases a healthy server rarely sends."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tools.traffic import ApiError, RetryPolicy, RouterApi, event_data, read_chat_stream

pytestmark = pytest.mark.unit

HEADERS = {
    "content-type": "text/event-stream",
    "x-router-model": "fast",
    "x-router-request-type": "code_generation",
    "x-router-turn-id": "s1.2.abc",
    "x-router-session-id": "s1",
    "x-router-propensity": "0.25",
}
FACTS = {
    "turn_id": "s1.2.abc",
    "cost_usd": 0.0002,
    "baseline_cost_usd": 0.003,
    "feedback_gate": {"messages": 6, "required": 4, "passed": True},
    "implicit_feedback": {"turn_id": "s1.1.xyz", "kind": "satisfaction", "reward": 1.0},
}
USAGE = {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fast", "choices": [choice], **extra}


def sse(*events: Any) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events
    )


ANSWER = sse(
    chunk({"role": "assistant", "content": ""}, usage=None),
    chunk({"content": "Hello"}, usage=None),
    chunk({"content": ", wör"}, usage=None),
    chunk({"content": "ld"}, usage=None),
    chunk({}, "stop", usage=None, router=FACTS),
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    "[DONE]",
)


def split(body: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`body` in pieces of the given sizes (cycled): events cut mid-line, mid-JSON, mid-UTF-8."""
    at, i = 0, 0
    while at < len(body):
        yield body[at : at + sizes[i % len(sizes)]]
        at += sizes[i % len(sizes)]
        i += 1


def api_answering(*handlers: Callable[[httpx.Request], httpx.Response]) -> tuple[RouterApi, list[httpx.Request]]:
    """A RouterApi whose requests are answered by `handlers` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handlers[min(len(seen), len(handlers)) - 1](request)

    api = RouterApi(
        "http://router.test",
        "rk-test",
        retry=RetryPolicy(attempts=3, base_delay_s=0.0),
        transport=httpx.MockTransport(handle),
        sleep=lambda _: None,
    )
    return api, seen


def streamed(body: bytes | Iterator[bytes], headers: dict[str, str] | None = None) -> Callable[..., httpx.Response]:
    return lambda request: httpx.Response(200, headers=headers or HEADERS, content=body)


def chat(api: RouterApi) -> Any:
    return api.chat("smart-cheap-router", [{"role": "user", "content": "hi"}], "s1", stream=True)


@pytest.mark.parametrize("sizes", [[1], [7, 3], [50, 1, 200], [len(ANSWER)]], ids=str)
def test_a_stream_split_anywhere_reads_as_the_same_answer(sizes: list[int]) -> None:
    api, seen = api_answering(streamed(split(ANSWER, sizes)))
    reply = chat(api)
    assert reply.content == "Hello, wörld"
    assert reply.content_chunks == 3
    assert reply.first_content_s is not None and reply.first_content_s >= 0.0
    assert (reply.model, reply.request_type, reply.turn_id, reply.session_id) == (
        "fast",
        "code_generation",
        "s1.2.abc",
        "s1",
    )
    assert reply.propensity == 0.25 and reply.gate_passed
    assert reply.implicit_feedback == FACTS["implicit_feedback"]
    assert (reply.cost_usd, reply.baseline_cost_usd) == (0.0002, 0.003)
    assert reply.usage == USAGE
    sent = json.loads(seen[0].content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_a_gzip_encoded_stream_split_mid_block_reads_the_same() -> None:
    body = gzip.compress(ANSWER)
    api, _ = api_answering(streamed(split(body, [5, 2]), {**HEADERS, "content-encoding": "gzip"}))
    reply = chat(api)
    assert reply.content == "Hello, wörld" and reply.content_chunks == 3 and reply.usage == USAGE


def test_crlf_line_ends_comments_and_multi_line_data_follow_the_event_stream_rules() -> None:
    lines = ": keep-alive", 'data: {"choices": [{"delta":', 'data:  {"content": "x"}}]}', "", "data: [DONE]", ""
    assert list(event_data(lines)) == ['{"choices": [{"delta":\n {"content": "x"}}]}', "[DONE]"]
    api, _ = api_answering(streamed(ANSWER.replace(b"\n", b"\r\n")))
    assert chat(api).content == "Hello, wörld"


def test_time_to_first_content_is_measured_from_the_request_to_the_first_chunk_with_text() -> None:
    ticks = iter([1.5, 9.0, 9.5])
    lines = ANSWER.decode().split("\n")
    answer = read_chat_stream(lines, sent_at=1.0, clock=lambda: next(ticks))
    assert answer.first_content_s == 0.5  # the role chunk's empty content is not content
    assert answer.content_chunks == 3


def test_an_error_event_fails_the_request_with_the_servers_message() -> None:
    error = {
        "error": {"message": "the model's stream broke after it started: reset", "type": "server_error"}
        | {"param": None, "code": "upstream_stream_failed"},
        "router": {**FACTS, "outcome": "failed"},
    }
    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), error, "[DONE]")
    api, seen = api_answering(streamed(body))
    api_without_done, _ = api_answering(streamed(body.removesuffix(sse("[DONE]"))))
    with pytest.raises(ApiError, match="error event"):  # the server's reason, not the missing [DONE]
        chat(api_without_done)
    with pytest.raises(
        ApiError, match=r"error event \(upstream_stream_failed\): the model's stream broke after it started: reset"
    ) as e:
        chat(api)
    assert e.value.code == "upstream_stream_failed" and not e.value.fatal
    assert len(seen) == 1  # after the first byte nothing is retried


def test_a_stream_that_ends_without_done_is_an_error() -> None:
    api, seen = api_answering(streamed(ANSWER.removesuffix(sse("[DONE]"))))
    with pytest.raises(ApiError, match=r"ended without data: \[DONE\]"):
        chat(api)
    assert len(seen) == 1


def test_a_connection_cut_mid_stream_is_an_error_and_not_retried() -> None:
    def cut() -> Iterator[bytes]:
        yield ANSWER[:200]
        raise httpx.ReadError("connection reset by peer")

    api, seen = api_answering(streamed(cut()))
    with pytest.raises(ApiError, match="the stream broke after it started"):
        chat(api)
    assert len(seen) == 1


def test_a_429_then_a_503_before_the_stream_are_retried_then_the_stream_is_read() -> None:
    limited = httpx.Response(429, headers={"retry-after": "0"}, json={"error": {"message": "slow down"}})
    unavailable = httpx.Response(503, json={"message": "Service Unavailable"})
    api, seen = api_answering(lambda r: limited, lambda r: unavailable, streamed(ANSWER))
    assert chat(api).content == "Hello, wörld"
    assert len(seen) == 3


def test_an_error_answer_on_the_streamed_path_gives_the_same_clear_message() -> None:
    rejected = httpx.Response(401, json={"error": {"message": "bad key", "code": "invalid_api_key"}})
    api, _ = api_answering(lambda r: rejected)
    with pytest.raises(ApiError, match="rejected the client key") as e:
        chat(api)
    assert e.value.fatal
    bad = httpx.Response(400, json={"error": {"message": "messages: required", "code": "invalid_request"}})
    api, _ = api_answering(lambda r: bad)
    with pytest.raises(ApiError, match="400 invalid_request messages: required"):
        chat(api)


def test_an_event_that_is_not_json_is_an_error() -> None:
    api, _ = api_answering(streamed(sse(chunk({"content": "a"})) + b"data: {not json\n\n" + sse("[DONE]")))
    with pytest.raises(ApiError, match="not JSON"):
        chat(api)
