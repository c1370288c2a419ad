"""The web server the Lambda Web Adapter forwards streamed chat requests to (`run.sh` starts it).

The adapter turns each Function URL invocation into an HTTP request on 127.0.0.1, with the
invocation's request context and Lambda context as JSON headers (`x-amzn-request-context`,
`x-amzn-lambda-context`). This server turns that request back into the HTTP API v2.0 event
`app.stream_handler` takes and writes what the handler yields as it comes: the head, then each
piece of an event stream as one chunk, flushed at once (no buffering, Nagle off). A client that
goes away closes the handler's generator, so the turn is recorded with what was produced.
Standard library only: it runs in the Lambda runtime next to the router core layer.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, unquote_plus

from router_core.openai_format import GzipEventStream, accepts_gzip

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 900
"""Used for the remaining time when no Lambda context says otherwise (Lambda's maximum)."""
_LWA_HEADERS = ("x-amzn-request-context", "x-amzn-lambda-context")
_TEXT_MEDIA = ("application/json", "application/x-www-form-urlencoded", "application/xml", "application/javascript")

StreamHandler = Callable[[dict[str, Any], Any], Iterator[dict[str, Any] | str]]


class LambdaContext:
    """The context a Python handler gets, from the adapter's `x-amzn-lambda-context` JSON
    (request_id, deadline in epoch ms, invoked_function_arn, env_config) or, without it, from
    the AWS_LAMBDA_* environment variables."""

    def __init__(self, raw: dict[str, Any] | None = None, *, now_s: float | None = None) -> None:
        raw = raw or {}
        env_config = raw.get("env_config") or {}
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = str(env_config.get("function_name") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "chat"))
        self.function_version = str(
            env_config.get("version") or os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        )
        self.memory_limit_in_mb = int(
            env_config.get("memory") or os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128
        )
        self.invoked_function_arn = str(
            raw.get("invoked_function_arn") or f"arn:aws:lambda:{region}:000000000000:function:{self.function_name}"
        )
        self.aws_request_id = str(raw.get("request_id") or uuid.uuid4())
        self.log_group_name = str(env_config.get("log_group") or os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""))
        self.log_stream_name = str(env_config.get("log_stream") or os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""))
        self.identity = raw.get("identity")
        self.client_context = raw.get("client_context")
        self.tenant_id = raw.get("tenant_id")
        start_ms = (time.time() if now_s is None else now_s) * 1000
        self._deadline_ms = float(raw.get("deadline") or start_ms + DEFAULT_TIMEOUT_S * 1000)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds before the invocation's deadline (never negative)."""
        return max(0, int(self._deadline_ms - time.time() * 1000))


def build_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
) -> dict[str, Any]:
    """The payload format 2.0 event for one HTTP request (what a Function URL sends a function)."""
    raw_path, _, raw_query = target.partition("#")[0].partition("?")
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        else:
            lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    supplied = lowered.pop("x-amzn-request-context", None)
    lowered.pop("x-amzn-lambda-context", None)
    context = _request_context(supplied, method, raw_path, lowered, source_ip)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": context.get("routeKey", "$default"),
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for part in filter(None, raw_query.split("&")):
        key, _, value = part.partition("=")
        k, v = unquote_plus(key), unquote_plus(value)
        query[k] = f"{query[k]},{v}" if k in query else v
    if query:
        event["queryStringParameters"] = query
    if body:
        media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
        text = media.startswith("text/") or media in _TEXT_MEDIA or media.endswith("+json")
        try:
            event["body"] = body.decode("utf-8") if text else None
        except UnicodeDecodeError:
            event["body"] = None
        if event["body"] is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def _request_context(
    supplied: str | None, method: str, raw_path: str, headers: dict[str, str], source_ip: str
) -> dict[str, Any]:
    if supplied:
        try:
            context = json.loads(supplied)
            if isinstance(context, dict):
                return context
        except ValueError:
            pass
    now = time.time()
    return {
        "accountId": "anonymous",
        "apiId": "local",
        "domainName": headers.get("host", "localhost"),
        "http": {
            "method": method,
            "path": unquote(raw_path),
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }


def server_error_body() -> bytes:
    """The OpenAI-style error a client gets when the handler fails (details stay in the log)."""
    error = {"message": "The server had an error processing the request.", "type": "server_error"}
    return json.dumps({"error": {**error, "param": None, "code": None}}).encode("utf-8")


class StreamServer(ThreadingHTTPServer):
    """A threading HTTP/1.1 server on 127.0.0.1 that answers every request with `handler`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: StreamHandler, port: int = 0, readiness_path: str = "/healthz") -> None:
        self.handler = handler
        self.readiness_path = readiness_path
        super().__init__((HOST, port), _RequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # every chunk leaves at once
    server: StreamServer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method takes the same path
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.command == "GET" and self.path == self.server.readiness_path:
            self._send_whole(200, [("Content-Type", "text/plain")], b"ready")
            return
        event = build_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        try:
            raw_context = json.loads(self.headers.get("x-amzn-lambda-context") or "{}")
        except ValueError:
            raw_context = {}
        context = LambdaContext(raw_context if isinstance(raw_context, dict) else {})
        pieces: Iterator[dict[str, Any] | str] = iter(())
        try:
            pieces = iter(self.server.handler(event, context))
            head = next(pieces)
            if not isinstance(head, dict):
                raise TypeError(f"the first item must be the response head, not {type(head).__name__}")
            status = int(head.get("statusCode", 200))
            headers = [(str(k), str(v)) for k, v in (head.get("headers") or {}).items()]
            streamed = any(k.lower() == "content-type" and v.startswith("text/event-stream") for k, v in headers)
            if not streamed:
                self._send_whole(status, headers, "".join(str(p) for p in pieces).encode("utf-8"))
                return
        except Exception:
            traceback.print_exc()
            _close(pieces)
            self._send_whole(500, [("Content-Type", "application/json")], server_error_body())
            return
        self._send_stream(status, headers, pieces, gzip=accepts_gzip(self.headers.get("Accept-Encoding")))

    def _send_whole(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        try:
            self._send_head(status, headers)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_stream(
        self, status: int, headers: list[tuple[str, str]], pieces: Iterator[dict[str, Any] | str], *, gzip: bool
    ) -> None:
        """Chunked, one flushed chunk per piece; gzip-encoded (each piece flushed through the
        compressor) when the client accepts it: the same events at a twentieth of the bytes."""
        compressor = GzipEventStream() if gzip else None
        try:
            self._send_head(status, headers)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Vary", "Accept-Encoding")
            if compressor is not None:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            for piece in pieces:
                data = str(piece).encode("utf-8")
                if data and compressor is not None:
                    data = compressor.piece(data)
                if data:  # an empty chunk would end the body
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if compressor is not None:
                trailer = compressor.end()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(trailer), trailer))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            _close(pieces)  # the client went away: the turn is recorded with what was produced
            self.close_connection = True
        except Exception:
            # The head is out: close without the last chunk, so the client sees a cut-off body.
            traceback.print_exc()
            _close(pieces)
            self.close_connection = True

    def _send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the handler logs each request itself (structured JSON)


def _close(pieces: Iterator[Any]) -> None:
    close = getattr(pieces, "close", None)
    if close is not None:
        close()


def main() -> None:
    """Serve `app.stream_handler` on AWS_LWA_PORT (or PORT, default 8080) until killed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import app  # the chat function, imported once per execution environment

    port = int(os.environ.get("AWS_LWA_PORT") or os.environ.get("PORT") or DEFAULT_PORT)
    readiness = os.environ.get("AWS_LWA_READINESS_CHECK_PATH", "/healthz")
    StreamServer(app.stream_handler, port, readiness).serve_forever()


if __name__ == "__main__":
    main()
