"""The shared error handlers on a bare resolver: each failure becomes one OpenAI-shaped answer."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from router_core.api import FeedbackRequest
from router_core.errors import Conflict
from router_core.http_errors import register_error_handlers

pytestmark = pytest.mark.unit


@pytest.fixture
def app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app, Logger(service="test-http-errors"), unavailable="try again")

    @app.post("/rate")
    def rate(request: Annotated[FeedbackRequest, Body()]) -> dict[str, Any]:
        raise Conflict("already rated", code="already_scored")

    @app.get("/broken")
    def broken() -> dict[str, int]:
        return {"count": "many"}  # type: ignore[dict-item]  # breaks its own annotation

    return app


def answer(app: APIGatewayHttpResolver, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any]]:
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        "body": body,
        "isBase64Encoded": False,
    }
    response = app.resolve(event, {})
    error: dict[str, Any] = json.loads(response["body"])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return response["statusCode"], error


def test_a_validation_error_is_a_400_naming_the_field_not_a_422(app: APIGatewayHttpResolver) -> None:
    status, error = answer(app, "POST", "/rate", json.dumps({"turn_id": "a.0.b", "rating": "meh"}))
    assert (status, error["code"], error["param"]) == (400, "invalid_request", "rating")
    assert error["message"].startswith("rating: ")


def test_a_router_error_keeps_its_status_and_code(app: APIGatewayHttpResolver) -> None:
    status, error = answer(app, "POST", "/rate", json.dumps({"turn_id": "a.0.b", "rating": "up"}))
    assert (status, error["code"]) == (409, "already_scored")


def test_a_response_that_breaks_its_annotation_is_our_503_not_the_clients_400(app: APIGatewayHttpResolver) -> None:
    status, error = answer(app, "GET", "/broken")
    assert (status, error["code"], error["message"]) == (503, "service_unavailable", "try again")
