"""Streamed chat through the local base URL, served as CloudFront and the Function URL serve it:
POST /v1/chat/completions goes to the streaming function's web server (Lambda Web Adapter style)
and comes back as a chunked event stream; every other /v1 path stays on the HTTP API."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.e2e.conftest import ROUTER, RunningStack

pytestmark = pytest.mark.e2e


def stream_body(text: str = "Write a Python function that reverses a list", **extra: Any) -> dict[str, Any]:
    return {"model": ROUTER, "stream": True, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(raw: str) -> list[str]:
    """The `data:` payloads of an event stream, in order."""
    return [line[len("data: ") :] for line in raw.split("\n") if line.startswith("data: ")]


def test_the_openai_client_streams_through_the_base_url_with_the_router_headers(local_stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=local_stack.info.openai_base_url, api_key=local_stack.info.client_key)
    with client.chat.completions.with_streaming_response.create(
        model=ROUTER, messages=[{"role": "user", "content": "Write a Python function that sorts a list"}], stream=True
    ) as response:
        assert response.http_response.status_code == 200
        headers = response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["transfer-encoding"] == "chunked"
        assert headers["x-router-request-type"] == "code_generation"
        assert headers["x-router-model"] in ("fast", "smart")
        assert headers["x-router-turn-id"] and headers["x-router-session-id"]
        chunks = list(response.parse())
    assert chunks, "no chunk"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == headers["x-router-model"] for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[simulated answer by" in text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_raw_stream_is_well_formed_and_ends_with_done(local_stack: RunningStack) -> None:
    with (
        local_stack.client() as client,
        client.stream("POST", "/v1/chat/completions", json=stream_body()) as response,
    ):
        assert response.status_code == 200
        assert "content-length" not in response.headers
        raw = "".join(response.iter_text())
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    assert raw.endswith("data: [DONE]\n\n")
    for event in events[:-1]:
        chunk = json.loads(event)
        assert chunk["object"] == "chat.completion.chunk"
        assert isinstance(chunk["choices"], list)


def test_a_non_streamed_chat_through_the_same_base_url_is_json_with_its_length(local_stack: RunningStack) -> None:
    with local_stack.client() as client:
        response = client.post("/v1/chat/completions", json={**stream_body(), "stream": False})
        models = client.get("/v1/models")  # the HTTP API's route, same base URL
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-router-model"]
    assert models.status_code == 200 and models.json()["data"]


def test_a_bad_key_on_the_streamed_path_is_401_in_openai_shape(local_stack: RunningStack) -> None:
    response = httpx.post(
        local_stack.info.openai_base_url + "/chat/completions",
        json=stream_body(),
        headers={"Authorization": "Bearer rk-wrong"},
        timeout=30.0,
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"]


def test_the_streamed_path_answers_cors_from_the_function_url_configuration(local_stack: RunningStack) -> None:
    origin = local_stack.site_origin
    url = local_stack.info.openai_base_url + "/chat/completions"
    preflight = httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10.0,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]

    with (
        local_stack.client(headers={"Origin": origin}) as client,
        client.stream("POST", "/v1/chat/completions", json=stream_body()) as response,
    ):
        assert response.headers["access-control-allow-origin"] == origin
        exposed = response.headers["access-control-expose-headers"].split(",")
        assert {"x-router-model", "x-router-request-type", "x-router-session-id"} <= set(exposed)
        response.read()

    foreign = httpx.options(
        url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=10.0
    )
    assert "access-control-allow-origin" not in foreign.headers


def test_a_body_over_ten_megabytes_on_the_streamed_path_is_413(local_stack: RunningStack) -> None:
    port = urlsplit(local_stack.info.api_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Origin: {local_stack.site_origin}\r\n".encode()
            + f"Content-Length: {10 * 1024 * 1024 + 1}\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    text = received.decode("latin-1")
    assert text.startswith("HTTP/1.1 413")
    assert f"Access-Control-Allow-Origin: {local_stack.site_origin}\r\n" in text


def test_a_client_that_disconnects_mid_stream_leaves_the_stack_serving(local_stack: RunningStack) -> None:
    port = urlsplit(local_stack.info.api_url).port
    body = json.dumps(stream_body("Explain what a binary search does")).encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {local_stack.info.client_key}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert sock.recv(12) == b"HTTP/1.1 200"  # the head arrived; go away mid-answer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with local_stack.client() as client:
        for _ in range(3):
            with client.stream("POST", "/v1/chat/completions", json=stream_body()) as response:
                assert response.status_code == 200
                assert sse_events(response.read().decode())[-1] == "[DONE]"
        assert client.get("/v1/models").status_code == 200


def test_a_streamed_turn_survives_a_kill_and_restart(tmp_path: Path, start_stack: Any) -> None:
    state_dir = tmp_path / "state"
    first: RunningStack = start_stack(state_dir)
    with (
        first.client() as client,
        client.stream("POST", "/v1/chat/completions", json=stream_body("Write a Python class for a queue")) as response,
    ):
        turn_id = response.headers["x-router-turn-id"]
        assert sse_events(response.read().decode())[-1] == "[DONE]"
    assert first.process._process is not None
    first.process._process.kill()  # no clean stop: only what is journaled survives
    first.process._process.wait(10.0)

    second: RunningStack = start_stack(state_dir, api_port=first.api_port, site_port=first.site_port)
    with second.client() as client:
        rated = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
    # The turn exists (an unknown turn is 404); a two-message conversation is below the signal gate.
    assert rated.status_code == 202, rated.text
    assert (rated.json()["turn_id"], rated.json()["reason"]) == (turn_id, "signal_gate")
