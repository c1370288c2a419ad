"""The chat function's web server behind the Lambda Web Adapter: each piece the handler yields
reaches the client as its own chunk before the next is produced, a client that goes away closes
the handler's generator, and failures answer 500 with an OpenAI-style error, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 5.0
"""Upper bound on any wait; a healthy run never reaches it."""


def load_stream_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stream_server", ROOT / "functions" / "chat" / "stream_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stream_server = load_stream_server()


class GatedApp:
    """A test `stream_handler`: an SSE head, then `pieces` pieces, each produced only once the
    test allows it; records the event and context it got and whether it was closed early."""

    def __init__(self, pieces: int) -> None:
        self.pieces = pieces
        self.allow = [threading.Event() for _ in range(pieces)]
        self.produced = 0
        self.closed = threading.Event()
        self.finished = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Iterator[dict[str, Any] | str]:
        self.events.append(event)
        self.contexts.append(context)
        yield {"statusCode": 200, "headers": {"Content-Type": "text/event-stream", "x-router-model": "fast"}}
        try:
            for i in range(self.pieces):
                assert self.allow[i].wait(WAIT_S), f"piece {i} was never allowed"
                self.produced += 1
                yield f'data: {{"i": {i}}}\n\n'
            yield "data: [DONE]\n\n"
            self.finished.set()
        except GeneratorExit:
            self.closed.set()
            raise


def serve(handler: Any) -> Any:
    server = stream_server.StreamServer(handler, 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def running() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def start(running: list[Any], handler: Any) -> Any:
    server = serve(handler)
    running.append(server)
    return server


def send(port: int, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(request)
    return sock


def post(path: str = "/v1/chat/completions", body: bytes = b'{"stream": true}', extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: example.lambda-url.us-east-1.on.aws\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Router-Session-Id: s1\r\n{extra}\r\n"
    ).encode() + body


def read_head(reader: Any) -> tuple[int, dict[str, str]]:
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def read_chunk(reader: Any) -> bytes:
    size = int(reader.readline().strip(), 16)
    data = reader.read(size)
    assert reader.read(2) == b"\r\n"
    return bytes(data)


def test_each_piece_reaches_the_client_as_its_own_chunk_before_the_next_is_produced(running: list[Any]) -> None:
    app = GatedApp(pieces=12)
    server = start(running, app)
    with send(server.port, post()) as sock, sock.makefile("rb") as reader:
        status, headers = read_head(reader)
        assert status == 200
        assert headers["content-type"] == "text/event-stream"
        assert headers["transfer-encoding"] == "chunked"
        assert headers["x-router-model"] == "fast"
        assert "content-length" not in headers
        for i in range(app.pieces):
            app.allow[i].set()
            # Piece i is on the wire while piece i + 1 does not exist yet: nothing buffers it.
            assert read_chunk(reader) == f'data: {{"i": {i}}}\n\n'.encode()
            assert app.produced == i + 1
        assert read_chunk(reader) == b"data: [DONE]\n\n"
        assert reader.readline() == b"0\r\n" and reader.readline() == b"\r\n"
    assert app.finished.wait(WAIT_S)


def test_a_client_that_accepts_gzip_decodes_each_piece_as_it_lands(running: list[Any]) -> None:
    app = GatedApp(pieces=12)
    server = start(running, app)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    sent = 0
    with (
        send(server.port, post(extra="Accept-Encoding: br;q=1.0, gzip;q=0.8\r\n")) as sock,
        sock.makefile("rb") as reader,
    ):
        status, headers = read_head(reader)
        assert status == 200 and headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        for i in range(app.pieces):
            app.allow[i].set()
            chunk = read_chunk(reader)
            sent += len(chunk)
            # Each chunk decodes on its own to exactly its piece: nothing waits in the compressor.
            assert decoder.decompress(chunk) == f'data: {{"i": {i}}}\n\n'.encode()
            assert app.produced == i + 1
        assert decoder.decompress(read_chunk(reader)) == b"data: [DONE]\n\n"
        decoder.decompress(read_chunk(reader))  # the gzip trailer
        assert decoder.eof and not decoder.unused_data
        assert reader.readline() == b"0\r\n" and reader.readline() == b"\r\n"


def test_gzip_is_only_sent_to_clients_that_accept_it(running: list[Any]) -> None:
    for accept, gzipped in (("gzip;q=0", False), ("identity", False), ("*", True), ("deflate, gzip", True)):
        app = GatedApp(pieces=0)
        server = start(running, app)
        with send(server.port, post(extra=f"Accept-Encoding: {accept}\r\n")) as sock, sock.makefile("rb") as reader:
            _, headers = read_head(reader)
            assert ("content-encoding" in headers) is gzipped, accept


def test_a_client_that_disconnects_mid_stream_closes_the_generator(running: list[Any]) -> None:
    app = GatedApp(pieces=3)
    server = start(running, app)
    sock = send(server.port, post())
    reader = sock.makefile("rb")
    read_head(reader)
    app.allow[0].set()
    assert read_chunk(reader) == b'data: {"i": 0}\n\n'
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset, not FIN
    reader.close()
    sock.close()
    for event in app.allow[1:]:
        event.set()  # the server keeps writing until the reset shows, then closes the generator
    assert app.closed.wait(WAIT_S)
    assert not app.finished.is_set()
    # The same server still serves (the gates are open now, so this stream runs to the end).
    with send(server.port, post()) as again, again.makefile("rb") as r2:
        assert read_head(r2)[0] == 200
        assert [read_chunk(r2) for _ in range(4)][-1] == b"data: [DONE]\n\n"


def test_a_handler_error_answers_500_with_an_openai_error_and_no_traceback(running: list[Any]) -> None:
    def failing(event: dict[str, Any], context: Any) -> Iterator[dict[str, Any] | str]:
        raise RuntimeError("secret internal detail")
        yield {}  # pragma: no cover

    server = start(running, failing)
    with send(server.port, post()) as sock, sock.makefile("rb") as reader:
        status, headers = read_head(reader)
        body = reader.read(int(headers["content-length"]))
    assert status == 500
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {
            "message": "The server had an error processing the request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert b"secret" not in body and b"Traceback" not in body


def test_a_buffered_answer_is_sent_whole_with_its_content_length(running: list[Any]) -> None:
    def buffered(event: dict[str, Any], context: Any) -> Iterator[dict[str, Any] | str]:
        yield {"statusCode": 201, "headers": {"content-type": "application/json"}}
        yield '{"a": '
        yield "1}"

    server = start(running, buffered)
    with send(server.port, post()) as sock, sock.makefile("rb") as reader:
        status, headers = read_head(reader)
        assert status == 201
        assert "transfer-encoding" not in headers
        assert reader.read(int(headers["content-length"])) == b'{"a": 1}'


def test_the_readiness_path_answers_200_without_calling_the_handler(running: list[Any]) -> None:
    app = GatedApp(pieces=0)
    server = start(running, app)
    with send(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") as sock, sock.makefile("rb") as reader:
        assert read_head(reader)[0] == 200
    assert app.events == []


def test_the_event_and_context_come_from_the_adapters_headers(running: list[Any]) -> None:
    app = GatedApp(pieces=0)
    server = start(running, app)
    request_context = {
        "requestId": "rid-1",
        "http": {"method": "POST", "path": "/v1/chat/completions"},
        "stage": "$default",
    }
    lambda_context = {
        "request_id": "aws-req-1",
        "deadline": 4102444800000,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:chat-stream",
        "env_config": {"function_name": "chat-stream", "memory": 256, "version": "$LATEST"},
    }
    extra = (
        f"x-amzn-request-context: {json.dumps(request_context)}\r\n"
        f"x-amzn-lambda-context: {json.dumps(lambda_context)}\r\nCookie: a=1; b=2\r\n"
    )
    with send(server.port, post("/v1/chat/completions?x=1&x=2", extra=extra)) as sock, sock.makefile("rb") as reader:
        read_head(reader)
    (event,), (context,) = app.events, app.contexts
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/v1/chat/completions"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["x-router-session-id"] == "s1"
    assert "x-amzn-request-context" not in event["headers"] and "x-amzn-lambda-context" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["requestContext"] == request_context
    assert (event["body"], event["isBase64Encoded"]) == ('{"stream": true}', False)
    assert context.aws_request_id == "aws-req-1"
    assert context.function_name == "chat-stream"
    assert context.memory_limit_in_mb == 256
    assert context.invoked_function_arn.endswith(":function:chat-stream")
    assert context.get_remaining_time_in_millis() > 0


def test_without_the_adapters_headers_the_event_is_built_and_binary_bodies_are_base64() -> None:
    event = stream_server.build_event(
        "PUT", "/upload", [("Content-Type", "application/octet-stream"), ("Host", "h")], b"\xff\x00", "10.0.0.1"
    )
    assert event["isBase64Encoded"] is True and event["body"] == "/wA="
    assert event["requestContext"]["http"] == {
        "method": "PUT",
        "path": "/upload",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.1",
        "userAgent": "",
    }
    assert event["requestContext"]["requestId"]
    context = stream_server.LambdaContext(None)
    assert context.aws_request_id and context.invoked_function_arn.startswith("arn:aws:lambda:")
