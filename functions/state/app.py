"""GET /v1/state (AWS_IAM): one snapshot per router, for the dashboard."""

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.errors import PermissionDenied
from router_core.http_errors import register_error_handlers
from router_core.snapshot import build_snapshot

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"router_core"})
app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app, logger, unavailable="state store unavailable; retry")


@app.get("/v1/state")
def state(
    router: Annotated[str | None, Query()] = None,
    history_since: Annotated[int | None, Query(ge=0)] = None,
) -> Response[dict[str, Any]]:
    authorizer = app.current_event.request_context.authorizer
    if authorizer is None or authorizer.iam is None or not authorizer.iam.access_key:
        # API Gateway's IAM authorizer guards this route; refuse anything that bypassed it.
        raise PermissionDenied("sign the request with SigV4 (service execute-api)")
    snapshot = build_snapshot(runtime.store(), runtime.config(), router, history_since)
    return Response(200, content_types.APPLICATION_JSON, snapshot, headers={"cache-control": "no-store"})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
