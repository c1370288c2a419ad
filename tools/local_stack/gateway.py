"""The request pipeline of an HTTP API, independent of sockets.

In API Gateway's order: payload limit (413), CORS preflight (answered here), route match
(404), route throttling (429), IAM authorizer (403), then the Lambda proxy integration, whose
errors become 500 (function error or malformed result) or 503 (past the 30 s integration
timeout). CORS headers are added to every response for an allowed Origin.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from tools.local_stack.apigw import (
    HttpRequest,
    HttpResponse,
    InvalidResult,
    StreamBody,
    build_event,
    gateway_error,
    new_request_id,
    response_from_result,
)
from tools.local_stack.cors import apply_cors, is_preflight, preflight_response
from tools.local_stack.routes import ApiSpec, CorsPolicy, Route, StreamRoute, Throttle
from tools.local_stack.runtime import FunctionError, FunctionTimeout, LocalFunction
from tools.local_stack.sigv4 import SignatureError, SignedRequest, SigV4Verifier

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
"""HTTP APIs reject request bodies above 10 MB."""
INTEGRATION_TIMEOUT_S = 30.0
"""HTTP APIs stop waiting for an integration after 30 s."""
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
    | {"x-amzn-request-context", "x-amzn-lambda-context"}  # set by the adapter, never by a client
)


def shutting_down() -> HttpResponse:
    """The answer to a request that arrives while the stack stops: retry against the next start."""
    body = {
        "error": {
            "message": "The local stack is shutting down; retry in a few seconds.",
            "type": "server_error",
            "param": None,
            "code": "shutting_down",
        }
    }
    return HttpResponse(
        status=503,
        headers=[("Content-Type", "application/json"), ("Retry-After", "5"), ("Connection", "close")],
        body=json.dumps(body).encode("utf-8"),
    )


class TokenBucket:
    """Route throttling: `rate_per_s` steady, up to `burst` at once. Thread-safe."""

    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = throttle.rate_per_s
        self._burst = float(throttle.burst)
        self._tokens = float(throttle.burst)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty (the request gets 429)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class Exchange:
    """One handled request, for the access log."""

    request: HttpRequest
    response: HttpResponse
    route: Route | None
    request_id: str
    elapsed_ms: float


class _GuardedStream:
    """A streamed body that runs the durability barrier before each piece leaves and ends the
    request's in-flight count when it is closed (however it ends)."""

    def __init__(
        self,
        inner: StreamBody,
        before_piece: Callable[[], None] | None,
        on_error: Callable[[Exception], None],
        done: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._before_piece = before_piece
        self._on_error = on_error
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            piece = next(self._inner)
        except StopIteration:
            raise
        except Exception as exc:
            self._on_error(exc)
            raise
        if self._before_piece is not None:
            self._before_piece()  # a turn recorded before this piece is on disk before the client sees it
        return piece

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class Gateway:
    """Turns HTTP requests into Lambda invocations the way the template's HTTP API does.

    Paths CloudFront sends to a streaming Function URL (`spec.stream_routes`) are relayed to
    that function's web server instead, as the Lambda Web Adapter would, and answered piece by
    piece.
    """

    def __init__(
        self,
        spec: ApiSpec,
        functions: Mapping[str, LocalFunction],
        verifier: SigV4Verifier,
        *,
        account_id: str,
        api_id: str = "local",
        fallback: Callable[[HttpRequest], HttpResponse | None] | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        on_error: Callable[[str], None] = lambda _message: None,
        before_response: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._before_response = before_response
        self._functions = functions
        self._verifier = verifier
        self._account_id = account_id
        self._api_id = api_id
        self._fallback = fallback
        self._on_exchange = on_exchange
        self._on_error = on_error
        self._clock = clock
        self._buckets = {r.route_key: TokenBucket(spec.throttle, clock) for r in spec.routes} if spec.throttle else {}
        self._in_flight = 0
        self._idle = threading.Condition()
        self.draining = False

    def drain(self) -> None:
        """Refuse new requests (503, `Connection: close`) from now on; in-flight ones finish."""
        self.draining = True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False if some still are after `timeout_s`."""
        deadline = self._clock() + timeout_s
        with self._idle:
            while self._in_flight:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
        return True

    def handle(self, request: HttpRequest) -> HttpResponse:
        """The response API Gateway would send for `request` (never raises)."""
        if self.draining:
            return shutting_down()
        with self._idle:
            self._in_flight += 1
        streaming = False
        try:
            response = self._handle(request)
            if self._before_response is not None:
                self._before_response()  # e.g. the journal on disk: nothing is acknowledged before
            if response.stream is not None:
                guarded = _GuardedStream(response.stream, self._before_response, self._stream_failed, self._done)
                response.stream = guarded
                streaming = True  # the stream's close ends the request
            return response
        finally:
            if not streaming:
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _stream_failed(self, exc: Exception) -> None:
        self._on_error(f"streamed answer cut off: {exc}")

    def _handle(self, request: HttpRequest) -> HttpResponse:
        started = self._clock()
        request_id = new_request_id()
        stream_route = self.spec.stream_route(request.raw_path)
        cors: CorsPolicy = stream_route.cors if stream_route is not None else self.spec.cors
        if stream_route is not None:
            route, response = None, self._relay(stream_route, request, request_id)
        else:
            route, response = self._dispatch(request, request_id)
        response.set_header("apigw-requestid", request_id)
        if not (cors.enabled and is_preflight(request)):  # a preflight answer has its own headers
            response = apply_cors(cors, request, response)
        if self._on_exchange is not None:
            elapsed_ms = (self._clock() - started) * 1000.0
            self._on_exchange(Exchange(request, response, route, request_id, elapsed_ms))
        return response

    def _dispatch(self, request: HttpRequest, request_id: str) -> tuple[Route | None, HttpResponse]:
        if request.oversize or len(request.body) > MAX_PAYLOAD_BYTES:
            return None, gateway_error(413, "Request Entity Too Large")
        if self.spec.cors.enabled and is_preflight(request):
            return None, preflight_response(self.spec.cors, request)
        found = self.spec.find(request.method, request.raw_path)
        if found is None:
            page = self._fallback(request) if self._fallback is not None else None
            return None, page if page is not None else gateway_error(404, "Not Found")
        route, path_parameters = found
        bucket = self._buckets.get(route.route_key)
        if bucket is not None and not bucket.take():
            return route, gateway_error(429, "Too Many Requests")
        caller = None
        if route.iam:
            try:
                caller = self._verifier.verify(
                    SignedRequest(request.method, request.raw_path, request.raw_query, request.headers, request.body)
                )
            except SignatureError as exc:
                return route, gateway_error(403, exc.message)
        event = build_event(
            request,
            route,
            path_parameters,
            api_id=self._api_id,
            account_id=self._account_id,
            request_id=request_id,
            caller=caller,
        )
        return route, self._integrate(route, event)

    def _integrate(self, route: Route, event: dict[str, object]) -> HttpResponse:
        function = self._functions[route.function]
        started = self._clock()
        try:
            result = function.invoke(dict(event))
            if self._clock() - started > INTEGRATION_TIMEOUT_S:
                self._on_error(f"{route.route_key}: integration ran past {INTEGRATION_TIMEOUT_S:.0f} s")
                return gateway_error(503, "Service Unavailable")
            return response_from_result(result)
        except FunctionError as exc:
            self._on_error(f"{route.route_key}: {exc} (traceback in {function.log_path})")
        except FunctionTimeout as exc:
            self._on_error(f"{route.route_key}: {exc}")
        except InvalidResult as exc:
            self._on_error(f"{route.route_key}: malformed Lambda result: {exc}")
        return gateway_error(500, "Internal Server Error")

    def _relay(self, stream_route: StreamRoute, request: HttpRequest, request_id: str) -> HttpResponse:
        """What a Function URL in RESPONSE_STREAM mode answers, its function run by the adapter."""
        if request.oversize or len(request.body) > MAX_PAYLOAD_BYTES:
            return gateway_error(413, "Request Entity Too Large")
        if stream_route.cors.enabled and is_preflight(request):
            return preflight_response(stream_route.cors, request)
        function = self._functions[stream_route.function]
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("x-amzn-request-context", json.dumps(self._url_request_context(request, request_id))))
        target = request.raw_path + (f"?{request.raw_query}" if request.raw_query else "")
        key = f"{request.method} {request.raw_path}"
        try:
            result = function.stream(request.method, target, headers, request.body, request_id)
        except (FunctionError, FunctionTimeout) as exc:
            self._on_error(f"{key}: {exc} (log: {function.log_path})")
            return gateway_error(502, "Internal Server Error")
        # Server and Date come from this server, as a Function URL sets its own.
        response_headers = [(k, v) for k, v in result.headers if k.lower() not in _HOP_BY_HOP | {"server", "date"}]
        response = HttpResponse(status=result.status, headers=response_headers)
        if (response.header("content-type") or "").startswith("text/event-stream"):
            response.stream = result.body
            return response
        try:
            response.body = b"".join(result.body)  # not a stream: sent whole, with its length
        except (FunctionError, FunctionTimeout) as exc:
            self._on_error(f"{key}: {exc} (log: {function.log_path})")
            return gateway_error(502, "Internal Server Error")
        finally:
            result.body.close()
        return response

    def _url_request_context(self, request: HttpRequest, request_id: str) -> dict[str, object]:
        """The requestContext of a Function URL event (what the adapter sends in a header)."""
        now = time.time()
        host = request.header("host") or "localhost"
        return {
            "accountId": "anonymous",
            "apiId": host.split(".", 1)[0],
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": unquote(request.raw_path),
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": request.header("user-agent") or "",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        }
