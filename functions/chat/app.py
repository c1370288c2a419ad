"""POST /v1/chat/completions and GET /v1/models: a thin Powertools adapter over router_core."""

import base64
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.api import ChatCompletionRequest, json_object
from router_core.http_errors import register_error_handlers
from router_core.keys import bearer_token
from router_core.openai_format import completion_body, models_body, router_headers, sse_body, sse_event
from router_core.turns import RoutedTurn, TurnStream

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"router_core"})
metrics = Metrics()
# GET /v1/models and refused requests publish no metric; Powertools documents this filter for
# functions that legitimately flush nothing (otherwise it warns on every such request).
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
app = APIGatewayHttpResolver(
    enable_validation=True,
    json_body_deserializer=lambda body: json_object(body, runtime.config().max_request_bytes),
)
register_error_handlers(app, logger, unavailable="the router is temporarily unavailable; retry")


_streams: ContextVar[list[tuple[TurnStream, bool]] | None] = ContextVar("streams", default=None)
"""Set by `stream_handler`: the chat route hands its open stream (and include_usage) over here."""


@app.post("/v1/chat/completions")
def chat(
    request: Annotated[ChatCompletionRequest, Body()],
    authorization: Annotated[str | None, Header()] = None,
    x_router_session_id: Annotated[str | None, Header()] = None,
) -> Response[dict[str, Any] | str]:
    streams = _streams.get()
    if request.stream and streams is not None:
        # Streaming entry: every step up to the model's first chunk runs here (its errors are
        # answered as usual); stream_handler relays the rest after this head.
        stream = runtime.turn_router().stream_turn(
            request, bearer_token(authorization), x_router_session_id, time_left_s=_time_left(app.lambda_context)
        )
        streams.append((stream, request.include_usage()))
        return Response(200, "text/event-stream", "", headers=router_headers(stream))
    turn = runtime.turn_router().route_turn(request, bearer_token(authorization), x_router_session_id)
    _count(turn)
    if request.stream:  # the HTTP API (no streaming there): the whole answer as SSE at once
        body = sse_body(turn, include_usage=request.include_usage())
        return Response(200, "text/event-stream", body, headers=router_headers(turn))
    return Response(200, content_types.APPLICATION_JSON, completion_body(turn), headers=router_headers(turn))


def _count(turn: RoutedTurn) -> None:
    """The turn's metrics and its decision, on the request's one metrics log line."""
    # Dollars rounded to nano-dollars (what the table stores): no float noise in every log line.
    # One dimension (service) for every metric: the stack's alarms and CloudWatch dashboard read
    # them without knowing the routers' names, and each metric is billed once, not per router.
    if turn.router:
        metrics.add_metric(name="RoutedTurns", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="SavingsUSD", unit=MetricUnit.NoUnit, value=round(turn.baseline_usd - turn.cost_usd, 9))
    else:
        metrics.add_metric(name="DirectTurns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=round(turn.cost_usd, 9))
    if turn.fallback:
        metrics.add_metric(name="Fallbacks", unit=MetricUnit.Count, value=1)
    if turn.outcome == "failed":
        metrics.add_metric(name="StreamsFailed", unit=MetricUnit.Count, value=1)
    if turn.implicit_feedback is not None and not turn.implicit_feedback.queued:
        # The queue refused the signal about the previous turn: never lost silently.
        metrics.add_metric(name="ImplicitSignalsDropped", unit=MetricUnit.Count, value=1)
    # The decision rides on the metrics line: one log record per request (ingestion is billed per GB).
    metrics.add_metadata(key="decision", value=turn.decision_log or {"fallback": turn.fallback, "model": turn.model})


def _time_left(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else None


@app.get("/v1/models")
def models(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    runtime.turn_router().authenticate(bearer_token(authorization))
    return models_body(runtime.config())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def stream_handler(event: dict[str, Any], context: LambdaContext) -> Iterator[dict[str, Any] | str]:
    """The streaming entry (Function URL in RESPONSE_STREAM mode, behind `stream_server`).

    Takes the same HTTP API v2.0 event as `lambda_handler` and yields the response head first,
    `{"statusCode": int, "headers": {name: value}}`, then the body as text pieces, each to be
    sent to the client as soon as it is yielded: for `stream: true`, one server-sent event per
    chunk as the model produces it, then `data: [DONE]`. Closing the generator early (the
    client went away) ends the stream: the turn is recorded with what it produced so far.
    """
    streams: list[tuple[TurnStream, bool]] = []
    token = _streams.set(streams)
    try:
        result = lambda_handler(event, context)
    finally:
        _streams.reset(token)
    head = {"statusCode": int(result.get("statusCode", 200)), "headers": dict(result.get("headers") or {})}
    if not streams:
        yield head
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        if body:
            yield body
        return
    stream, include_usage = streams[0]
    try:
        yield head
        chunks = stream.chunks(include_usage=include_usage)
        try:
            for chunk in chunks:
                yield sse_event(chunk)
            yield sse_event("[DONE]")
        finally:
            chunks.close()  # the client went away: the stream records what it produced
    finally:
        stream.close()  # gone before the first chunk was read: recorded as stopped, upstream closed
        if stream.turn is not None:
            _count(stream.turn)
            metrics.flush_metrics()
