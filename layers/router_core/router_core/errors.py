"""Domain errors. Every `RouterError` carries its HTTP status and an OpenAI-style error body.

Handlers map every `RouterError` to a response in one place; nothing else decides statuses.
`BanditError` is the one internal error: no client sees it (the chat flow falls back instead).
"""

from __future__ import annotations

from typing import Any


class RouterError(Exception):
    """Base of every error a client may see."""

    status: int = 500
    error_type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The OpenAI-shaped error body."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class InvalidRequest(RouterError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(RouterError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(RouterError):
    status = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(RouterError):
    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(RouterError):
    status = 409
    error_type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(RouterError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(RouterError):
    status = 429
    error_type = "rate_limit_error"
    code = "rate_limited"


class UpstreamFailed(RouterError):
    """Every candidate model failed; `status` is 504 after a timeout, else 502."""

    error_type = "upstream_error"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, code="upstream_timeout" if status == 504 else "upstream_failed")
        self.status = status


class ServiceUnavailable(RouterError):
    """The router's own storage failed where no safe answer is possible (e.g. feedback)."""

    status = 503
    error_type = "server_error"
    code = "service_unavailable"


class BanditError(ValueError):
    """The bandit (`posterior`, `bandit`, `beta_distribution`) was given inputs it cannot decide on.

    Not a `RouterError`: the chat flow catches it and routes to the router's default model.
    """
