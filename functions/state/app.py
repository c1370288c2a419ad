"""GET /v1/state (AWS_IAM): one snapshot per router, for the dashboard."""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.errors import NotFound, RouterError, ServiceUnavailable
from router_core.snapshot import build_snapshot

logger = Logger()
app = APIGatewayHttpResolver()


@app.get("/v1/state")
def state() -> Response[str]:
    iam = app.current_event.request_context.authorizer.iam if app.current_event.request_context.authorizer else None
    if iam is None or not iam.access_key:
        # API Gateway's IAM authorizer guards this route; refuse anything that bypassed it.
        return Response(403, "application/json", json.dumps({"message": "Forbidden"}))
    router = app.current_event.get_query_string_value("router")
    if router and router not in runtime.config().routers:
        raise NotFound(f"no router named {router!r}", param="router", code="router_not_found")
    snapshot = build_snapshot(runtime.store(), runtime.config(), router)
    return Response(200, "application/json", json.dumps(snapshot), headers={"cache-control": "no-store"})


@app.exception_handler(RouterError)
def router_error(exc: RouterError) -> Response[str]:
    return Response(exc.status, "application/json", json.dumps(exc.body()))


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return Response(503, "application/json", json.dumps(ServiceUnavailable("state store unavailable; retry").body()))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
