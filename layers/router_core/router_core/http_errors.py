"""Every error a client sees, in one shape: an OpenAI error body with the status its error carries.

The three functions register the same handlers on their resolver (`register_error_handlers`), so
a domain error, a request that fails validation, a path no route serves and an unexpected
failure look alike whichever function answered.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ValidationException,
)

from router_core.api import invalid_request
from router_core.errors import InvalidRequest, NotFound, RouterError, ServiceUnavailable


def _json_or_none(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def error_response(exc: RouterError) -> Response[dict[str, Any]]:
    """`exc`'s status with its OpenAI-shaped body ({"error": {message, type, param, code}})."""
    return Response(exc.status, content_types.APPLICATION_JSON, exc.body())


def register_error_handlers(app: APIGatewayHttpResolver, logger: Logger, *, unavailable: str) -> None:
    """Answer every failed request on `app` with `error_response`.

    RouterError → its own status; a request that fails the resolver's validation → 400 naming
    the field (instead of Powertools' 422); a body that is not UTF-8, or sent as multipart form
    data, → 400; a path no route serves → 404; anything else → 503
    with `unavailable` as the message, logged with its traceback (never the request body).
    """

    def invalid(exc: ValidationException) -> Response[dict[str, Any]]:
        if any(e["loc"][0] == "response" for e in exc.errors()):
            return unexpected(exc)  # a route returned what its annotation does not allow: our bug
        event = app.current_event
        return error_response(
            invalid_request(exc.errors(), event.headers.get("content-type"), _json_or_none(event.body))
        )

    def no_route(exc: NotFoundError) -> Response[dict[str, Any]]:
        event = app.current_event
        return error_response(NotFound(f"no route for {event.http_method} {event.path}", code="unknown_route"))

    def not_utf8(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
        # The only bytes a request decodes are its body's (Powertools decodes it before any route).
        return error_response(InvalidRequest("request body is not valid UTF-8", code="invalid_json"))

    def value_error(exc: ValueError) -> Response[dict[str, Any]]:
        # Powertools parses a multipart/form-data body before any route (and raises ValueError
        # for one without a boundary); every route here takes JSON only.
        content_type = app.current_event.headers.get("content-type") or ""
        if content_type.strip().lower().startswith("multipart/"):
            return error_response(
                InvalidRequest(
                    f"send the body as JSON with content-type: application/json (got {content_type!r})",
                    code="invalid_json",
                )
            )
        return unexpected(exc)

    def unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
        return error_response(ServiceUnavailable(unavailable))

    app.exception_handler(RouterError)(error_response)
    app.exception_handler([RequestValidationError, RequestUnsupportedContentType])(invalid)
    app.exception_handler(UnicodeDecodeError)(not_utf8)
    app.exception_handler(ValueError)(value_error)
    app.not_found(no_route)
    app.exception_handler(Exception)(unexpected)
