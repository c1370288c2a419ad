"""POST /v1/chat/completions and GET /v1/models: a thin Powertools adapter over router_core."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.api import ChatCompletionRequest, parse_body
from router_core.errors import RouterError, ServiceUnavailable
from router_core.keys import bearer_token
from router_core.openai_format import JSON, completion_body, error_body, models_body, router_headers, sse_body

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


@app.post("/v1/chat/completions")
def chat() -> Response[str]:
    event = app.current_event
    api_key = bearer_token(event.headers.get("authorization"))
    request = parse_body(event.decoded_body, ChatCompletionRequest, runtime.config().max_request_bytes)
    turn = runtime.turn_router().route_turn(request, api_key, event.headers.get("x-router-session-id"))
    metrics.add_dimension(name="router", value=turn.router or "direct")
    metrics.add_metric(name="RoutedTurns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=turn.cost_usd)
    if turn.fallback:
        metrics.add_metric(name="Fallbacks", unit=MetricUnit.Count, value=1)
    # The decision rides on the metrics line: one log record per request (ingestion is billed per GB).
    metrics.add_metadata(key="decision", value=turn.decision_log or {"fallback": turn.fallback, "model": turn.model})
    if request.stream:
        return Response(200, "text/event-stream", sse_body(turn), headers=router_headers(turn))
    return Response(200, JSON, completion_body(turn), headers=router_headers(turn))


@app.get("/v1/models")
def models() -> Response[str]:
    runtime.turn_router().authenticate(bearer_token(app.current_event.headers.get("authorization")))
    return Response(200, JSON, models_body(runtime.config()))


@app.exception_handler(RouterError)
def router_error(exc: RouterError) -> Response[str]:
    return Response(exc.status, JSON, error_body(exc))


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return Response(503, JSON, error_body(ServiceUnavailable("the router is temporarily unavailable; retry")))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
