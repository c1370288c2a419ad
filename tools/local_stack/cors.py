"""CORS the way an HTTP API with a CorsConfiguration does it.

API Gateway answers preflight requests itself (the function never sees them), adds the CORS
headers to every response for an allowed Origin, and drops any CORS headers the function
returned. A foreign Origin gets no CORS headers at all, so the browser blocks the response.
"""

from __future__ import annotations

from tools.local_stack.apigw import HttpRequest, HttpResponse
from tools.local_stack.routes import CorsPolicy


def origin_allowed(policy: CorsPolicy, origin: str | None) -> bool:
    """True when `origin` is one of the policy's AllowOrigins (or AllowOrigins has `*`)."""
    if not origin or not policy.enabled:
        return False
    return "*" in policy.allow_origins or origin.rstrip("/") in policy.allow_origins


def is_preflight(request: HttpRequest) -> bool:
    """An OPTIONS request a browser sends before a cross-origin call."""
    return (
        request.method == "OPTIONS"
        and request.header("origin") is not None
        and request.header("access-control-request-method") is not None
    )


def preflight_response(policy: CorsPolicy, request: HttpRequest) -> HttpResponse:
    """API Gateway's answer to a preflight: 204, with CORS headers only for an allowed Origin."""
    response = HttpResponse(status=204)
    origin = request.header("origin")
    if not origin_allowed(policy, origin):
        return response
    response.headers.append(("Access-Control-Allow-Origin", _allow_origin_value(policy, origin)))
    if policy.allow_methods:
        response.headers.append(("Access-Control-Allow-Methods", ",".join(policy.allow_methods)))
    if policy.allow_headers:
        response.headers.append(("Access-Control-Allow-Headers", ",".join(policy.allow_headers)))
    if policy.max_age_s is not None:
        response.headers.append(("Access-Control-Max-Age", str(policy.max_age_s)))
    if policy.allow_credentials:
        response.headers.append(("Access-Control-Allow-Credentials", "true"))
    response.headers.append(("Vary", "Origin"))
    return response


def apply_cors(policy: CorsPolicy, request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """`response` with the function's CORS headers replaced by the API's, for an allowed Origin."""
    if not policy.enabled:
        return response
    response.headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
    origin = request.header("origin")
    if not origin_allowed(policy, origin):
        return response
    response.headers.append(("Access-Control-Allow-Origin", _allow_origin_value(policy, origin)))
    if policy.expose_headers:
        response.headers.append(("Access-Control-Expose-Headers", ",".join(policy.expose_headers)))
    if policy.allow_credentials:
        response.headers.append(("Access-Control-Allow-Credentials", "true"))
    response.headers.append(("Vary", "Origin"))
    return response


def _allow_origin_value(policy: CorsPolicy, origin: str | None) -> str:
    if "*" in policy.allow_origins and not policy.allow_credentials:
        return "*"
    return origin or ""
