"""HTTP ⇄ API Gateway HTTP API payload format 2.0: request events in, Lambda results out.

The event has every field a deployed HTTP API sends (version, routeKey, rawPath,
rawQueryString, cookies, lowercased headers with repeats joined by commas,
queryStringParameters, pathParameters, requestContext with http/time/timeEpoch and, on IAM
routes, `authorizer.iam`), and the body base64-encoded when it is not text. Results are read
the way API Gateway reads them: a dict with `statusCode` is a structured response; anything
else is JSON with status 200.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote, unquote_plus

from tools.local_stack.routes import Route
from tools.local_stack.sigv4 import Credential

STAGE = "$default"
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/x-ndjson",
    "application/graphql",
    "application/yaml",
)


@dataclass(frozen=True)
class HttpRequest:
    """A request as it arrived: raw path and query, headers in order (original case), body bytes."""

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    oversize: bool = False
    """The body was larger than the server reads (10 MB); `body` is then empty."""

    def header(self, name: str) -> str | None:
        """All values of header `name` joined by commas, or None."""
        lowered = name.lower()
        values = [v for k, v in self.headers if k.lower() == lowered]
        return ",".join(values) if values else None


class StreamBody(Protocol):
    """A body written piece by piece; `close` ends it early and releases what it holds."""

    def __iter__(self) -> Iterator[bytes]: ...

    def __next__(self) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class HttpResponse:
    """What goes back on the wire. `headers` keeps order and repeats (Set-Cookie)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: StreamBody | None = None
    """When set, the body is sent as it comes (chunked, each piece flushed) instead of `body`;
    the server always closes it (early when the client goes away)."""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))


class InvalidResult(Exception):
    """The function returned something API Gateway cannot turn into a response."""


def gateway_error(status: int, message: str) -> HttpResponse:
    """API Gateway's own error shape: `{"message": ...}` as JSON."""
    body = json.dumps({"message": message}).encode("utf-8")
    return HttpResponse(status=status, headers=[("Content-Type", "application/json")], body=body)


def new_request_id() -> str:
    """An id shaped like API Gateway's (`requestContext.requestId`, `apigw-requestid`)."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii").rstrip("=")


def is_text(content_type: str | None) -> bool:
    """True when a body of this content type travels as text in the event (else base64)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+json")
        or media.endswith("+xml")
        or media.endswith("/json")
    )


def build_event(
    request: HttpRequest,
    route: Route,
    path_parameters: Mapping[str, str],
    *,
    api_id: str,
    account_id: str,
    request_id: str,
    caller: Credential | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway sends the route's function for `request`."""
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    host = headers.get("host", "")
    domain = host.split(":", 1)[0] if host else "localhost"
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": host or domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": unquote(request.raw_path),
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": STAGE,
        "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if caller is not None:
        context["authorizer"] = {
            "iam": {
                "accessKey": caller.access_key_id,
                "accountId": caller.account_id,
                "callerId": caller.user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": caller.user_arn,
                "userId": caller.user_id,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if request.body:
        if is_text(headers.get("content-type")):
            try:
                event["body"] = request.body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def _query_parameters(raw_query: str) -> dict[str, str]:
    # Repeated keys are joined with commas, as HTTP APIs do.
    params: dict[str, str] = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        k, v = unquote_plus(key), unquote_plus(value)
        params[k] = f"{params[k]},{v}" if k in params else v
    return params


def response_from_result(result: Any) -> HttpResponse:
    """The HTTP response API Gateway makes of a function's return value (InvalidResult if none)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        try:
            body = json.dumps(result).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidResult(f"result is not JSON-serialisable: {exc}") from exc
        return HttpResponse(status=200, headers=[("Content-Type", "application/json")], body=body)
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise InvalidResult(f"statusCode {status!r} is not an HTTP status")
    response = HttpResponse(status=status)
    headers = result.get("headers") or {}
    if not isinstance(headers, dict):
        raise InvalidResult("headers must be an object")
    for name, value in headers.items():
        response.headers.append((str(name), _header_text(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            response.headers.append((str(name), _header_text(value)))
    for cookie in result.get("cookies") or []:
        response.headers.append(("Set-Cookie", str(cookie)))
    text = result.get("body")
    if text is None:
        response.body = b""
    elif not isinstance(text, str):
        raise InvalidResult("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            response.body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidResult(f"isBase64Encoded but the body is not base64: {exc}") from exc
    else:
        response.body = text.encode("utf-8")
    return response


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if "\r" in text or "\n" in text:
        raise InvalidResult("header values must not contain line breaks")
    return text
