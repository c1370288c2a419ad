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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tools.local_stack.apigw import (
    HttpRequest,
    HttpResponse,
    InvalidResult,
    build_event,
    gateway_error,
    new_request_id,
    response_from_result,
)
from tools.local_stack.cors import apply_cors, is_preflight, preflight_response
from tools.local_stack.routes import ApiSpec, Route, Throttle
from tools.local_stack.runtime import FunctionError, FunctionTimeout, LocalFunction
from tools.local_stack.sigv4 import SignatureError, SignedRequest, SigV4Verifier

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
"""HTTP APIs reject request bodies above 10 MB."""
INTEGRATION_TIMEOUT_S = 30.0
"""HTTP APIs stop waiting for an integration after 30 s."""


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


class Gateway:
    """Turns HTTP requests into Lambda invocations the way the template's HTTP API does."""

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
        try:
            response = self._handle(request)
            if self._before_response is not None:
                self._before_response()  # e.g. the journal on disk: nothing is acknowledged before
            return response
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle(self, request: HttpRequest) -> HttpResponse:
        started = self._clock()
        request_id = new_request_id()
        route, response = self._dispatch(request, request_id)
        response.set_header("apigw-requestid", request_id)
        if not (self.spec.cors.enabled and is_preflight(request)):  # a preflight answer has its own headers
            response = apply_cors(self.spec.cors, request, response)
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
