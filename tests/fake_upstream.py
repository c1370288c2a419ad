"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, with switchable behaviours.

    with FakeUpstream() as upstream:
        upstream.set_behaviour(Behaviour.server_error(503), model="m-primary")
        upstream.script(Behaviour.rate_limited("0.5"), Behaviour.ok("hi"), model="m-backup")
        ... point an openai_compatible provider at upstream.base_url ...
        assert upstream.count("m-primary") == 2

Behaviours: ok, slow (sleep N s, then ok), any status with an OpenAI-style error body (500,
400, 401...), 429 with Retry-After, malformed JSON, connection closed without an answer, and a
streamed answer (`streamed`: SSE pieces some time apart, optionally broken by an error event or
a cut connection). A request with `stream: true` answered `ok` gets its text as SSE, word by
word, as an OpenAI server would. A
behaviour applies to every request for one `model` (or to all models), and `script` queues
one-shot behaviours that are used first, in order. Every request is recorded (path, headers,
JSON body, client port). `api_key` makes the server demand `Authorization: Bearer <key>`.
Standard library only: `http.server` in a daemon thread.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

BehaviourKind = Literal["ok", "slow", "status", "malformed", "close", "document", "stream"]


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request; build with the class methods."""

    kind: BehaviourKind
    text: str | None = None
    """Answer text for ok/slow; None answers `fake answer <n> from <model>` (distinct every time)."""
    usage: bool = True
    """Report token usage (False: the answer has no `usage` object)."""
    delay_s: float = 0.0
    status: int = 200
    message: str = ""
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    document: Any = None
    """For `answer`: the response fields (choices, usage, system_fingerprint...) sent as given."""
    pieces: tuple[str, ...] = ()
    """For `streamed`: the content deltas, in order."""
    interval_s: float = 0.0
    """For `streamed`: the pause before each piece after the first."""
    fail_after: int | None = None
    """For `streamed`: after this many pieces, an `error` event instead of the rest."""
    cut_after: int | None = None
    """For `streamed`: after this many pieces, the connection is closed mid-stream."""
    tool_call: Any = None
    """For `streamed`: a tool call (id, name, arguments) streamed after the pieces."""

    @classmethod
    def answer(
        cls,
        message: dict[str, Any],
        *,
        finish_reason: str = "stop",
        logprobs: Any = None,
        usage: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Behaviour:
        """Answer with this assistant `message` (tool_calls, refusal...), as an OpenAI server does;
        `fields` are more top-level response fields (system_fingerprint, or `choices` to send several)."""
        choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
        choice["logprobs"] = logprobs
        document: dict[str, Any] = {"choices": [choice], **fields}
        document["usage"] = usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return cls("document", document=document)

    @classmethod
    def streamed(
        cls,
        pieces: list[str],
        *,
        interval_s: float = 0.0,
        usage: bool = True,
        first_delay_s: float = 0.0,
        fail_after: int | None = None,
        cut_after: int | None = None,
        tool_call: dict[str, str] | None = None,
    ) -> Behaviour:
        """Answer `stream: true` requests as SSE: a role chunk after `first_delay_s`, the pieces
        `interval_s` apart, a finish chunk and (with `usage`) a usage chunk, then [DONE]."""
        return cls(
            "stream",
            pieces=tuple(pieces),
            interval_s=interval_s,
            delay_s=first_delay_s,
            usage=usage,
            fail_after=fail_after,
            cut_after=cut_after,
            tool_call=tool_call,
        )

    @classmethod
    def ok(cls, text: str | None = None, *, usage: bool = True) -> Behaviour:
        return cls("ok", text=text, usage=usage)

    @classmethod
    def slow(cls, seconds: float, text: str | None = None) -> Behaviour:
        """Answer normally after `seconds` (the server wakes early when it stops)."""
        return cls("slow", text=text, delay_s=seconds)

    @classmethod
    def error(
        cls, status: int, message: str = "", *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> Behaviour:
        """Answer `status` with an OpenAI-style error body `{"error": {"message", "type", "code"}}`."""
        return cls(
            "status",
            status=status,
            message=message or f"fake upstream error {status}",
            code=code,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Behaviour:
        return cls.error(status, "the fake upstream failed")

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Behaviour:
        """429 with a `Retry-After` header (seconds or an HTTP date; None sends no header)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.error(429, "Rate limit reached, slow down", code="rate_limit_exceeded", headers=headers)

    @classmethod
    def malformed(cls) -> Behaviour:
        """200 with a body that is not valid JSON."""
        return cls("malformed")

    @classmethod
    def close(cls) -> Behaviour:
        """Read the request, then close the connection without answering."""
        return cls("close")


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client_port: int
    model: str | None = field(default=None)


class FakeUpstream:
    """The server; start/stop it directly or use it as a context manager."""

    def __init__(self, behaviour: Behaviour | None = None, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self._default = behaviour or Behaviour.ok()
        self._per_model: dict[str, Behaviour] = {}
        self._scripts: dict[str | None, deque[Behaviour]] = {}
        self._requests: list[ReceivedRequest] = []
        self._answers = 0
        self._streaming = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> FakeUpstream:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.upstream = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow answers so shutdown is immediate
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake upstream is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The provider `base_url` (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- behaviour
    def set_behaviour(self, behaviour: Behaviour, *, model: str | None = None) -> None:
        """Answer every request (or every request for `model`) this way from now on."""
        with self._lock:
            if model is None:
                self._default = behaviour
            else:
                self._per_model[model] = behaviour

    def script(self, *behaviours: Behaviour, model: str | None = None) -> None:
        """Queue one-shot behaviours, used in order before the standing behaviour."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def reset(self) -> None:
        """Back to answering ok, with no scripts and no recorded requests."""
        with self._lock:
            self._default = Behaviour.ok()
            self._per_model.clear()
            self._scripts.clear()
            self._requests.clear()
            self.api_key = None

    # ---- inspection
    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def active_streams(self) -> int:
        """Streamed answers being written right now (one ends when done or its client went away)."""
        with self._lock:
            return self._streaming

    def count(self, model: str | None = None) -> int:
        """Chat requests received (for `model`, or in all)."""
        return sum(1 for r in self.requests if r.path.endswith("/chat/completions") and model in (None, r.model))

    # ---- used by the handler
    def _choose(self, model: str | None) -> Behaviour:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
            return self._per_model.get(model or "", self._default)

    def _record(self, request: ReceivedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            self._answers += 1
            return self._answers

    def _known_models(self) -> list[str]:
        with self._lock:
            return sorted(set(self._per_model) | {m for m in self._scripts if m})


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: FakeUpstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out close their socket mid-answer; that is expected here.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            models = self.server.upstream._known_models() or ["fake-model"]
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        upstream = self.server.upstream
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        number = upstream._record(
            ReceivedRequest(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                client_port=int(self.client_address[1]),
                model=model if isinstance(model, str) else None,
            )
        )
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if upstream.api_key is not None and self.headers.get("Authorization") != f"Bearer {upstream.api_key}":
            self._json(
                401, {"error": {"message": "Incorrect API key provided", "type": "auth", "code": "invalid_api_key"}}
            )
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._json(400, {"error": {"message": "'messages' is required", "type": "invalid_request_error"}})
            return
        self._answer(upstream._choose(model if isinstance(model, str) else None), body, number)

    def _answer(self, behaviour: Behaviour, body: dict[str, Any], number: int) -> None:
        model = str(body.get("model", "fake-model"))
        if behaviour.kind == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour.kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ', "application/json")
            return
        if behaviour.kind == "status":
            error = {"message": behaviour.message, "type": "fake_error", "code": behaviour.code}
            self._json(behaviour.status, {"error": error}, dict(behaviour.headers))
            return
        if behaviour.kind == "document":
            envelope = {"id": f"chatcmpl-fake-{number}", "object": "chat.completion", "created": int(time.time())}
            self._json(200, {**envelope, "model": model, **behaviour.document})
            return
        if behaviour.kind == "slow" and self.server.upstream._stopping.wait(behaviour.delay_s):
            self.close_connection = True
            return
        text = behaviour.text if behaviour.text is not None else f"fake answer {number} from {model}"
        if behaviour.kind == "stream" or body.get("stream") is True:
            if behaviour.kind != "stream":
                words = text.split(" ")
                behaviour = Behaviour.streamed([w + " " for w in words[:-1]] + words[-1:], usage=behaviour.usage)
            self._stream(behaviour, body, number)
            return
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict))
        answer: dict[str, Any] = {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
        if behaviour.usage:
            prompt_tokens, completion_tokens = max(1, prompt_chars // 4), max(1, len(text) // 4)
            answer["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        self._json(200, answer)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc).encode("utf-8"), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, behaviour: Behaviour, body: dict[str, Any], number: int) -> None:
        """An OpenAI-style SSE answer (see `Behaviour.streamed`), flushed event by event."""
        upstream = self.server.upstream
        with upstream._lock:
            upstream._streaming += 1
        try:
            self._write_stream(behaviour, body, number)
        finally:
            with upstream._lock:
                upstream._streaming -= 1

    def _write_stream(self, behaviour: Behaviour, body: dict[str, Any], number: int) -> None:
        stopping = self.server.upstream._stopping
        if behaviour.delay_s and stopping.wait(behaviour.delay_s):
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": f"chatcmpl-fake-{number}", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = str(body.get("model", "fake-model"))

        def event(payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]}

        try:
            event(delta({"role": "assistant", "content": ""}))
            for position, piece in enumerate(behaviour.pieces):
                if position and behaviour.interval_s and stopping.wait(behaviour.interval_s):
                    return
                if behaviour.fail_after is not None and position == behaviour.fail_after:
                    event({"error": {"message": "the fake upstream broke mid-stream", "type": "server_error"}})
                    return
                if behaviour.cut_after is not None and position == behaviour.cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                event(delta({"content": piece}))
            finish = "stop"
            if behaviour.tool_call is not None:
                call = behaviour.tool_call
                opening = {"index": 0, "id": call["id"], "type": "function"}
                event(delta({"tool_calls": [{**opening, "function": {"name": call["name"], "arguments": ""}}]}))
                arguments = call["arguments"]
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    event(delta({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
                finish = "tool_calls"
            event(delta({}, finish))
            options = body.get("stream_options") or {}
            if behaviour.usage and options.get("include_usage"):
                produced = max(1, sum(len(p) for p in behaviour.pieces) // 4)
                usage = {"prompt_tokens": 11, "completion_tokens": produced, "total_tokens": 11 + produced}
                event({**base, "choices": [], "usage": usage})
            event("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            return  # the router closed the stream (its client went away)
