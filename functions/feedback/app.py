"""POST /v1/feedback and the SQS consumer of implicit signals: both call apply_feedback."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.api import FeedbackRequest, parse_body
from router_core.errors import NotFound, RouterError, ServiceUnavailable
from router_core.feedback import apply_feedback, outcome_body
from router_core.keys import bearer_token
from router_core.signals_queue import parse_signal_message
from router_core.store import TurnKey

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()
processor = BatchProcessor(event_type=EventType.SQS)


@app.post("/v1/feedback")
def feedback() -> Response[str]:
    event = app.current_event
    key_hash = runtime.turn_router().authenticate(bearer_token(event.headers.get("authorization")))
    body = parse_body(event.decoded_body, FeedbackRequest, 16_384)
    key = TurnKey.parse(body.turn_id, key_hash)
    if key is None:
        raise NotFound("no such turn for this key", param="turn_id", code="turn_not_found")
    outcome = apply_feedback(
        runtime.store(),
        runtime.config(),
        key,
        body.value(),
        source="explicit",
        kind=f"rating_{body.rating or 'reward'}",
    )
    metrics.add_metric(
        name="ExplicitFeedbackApplied" if outcome.applied else "ExplicitFeedbackGated", unit=MetricUnit.Count, value=1
    )
    return Response(200 if outcome.applied else 202, "application/json", json.dumps(outcome_body(outcome)))


def signal_record(record: SQSRecord) -> None:
    """Apply one implicit signal; raising marks the record failed (retried, then the DLQ)."""
    key, turn, reward, kind = parse_signal_message(record.body)
    outcome = apply_feedback(runtime.store(), runtime.config(), key, reward, source="implicit", kind=kind, turn=turn)
    metrics.add_metric(
        name="ImplicitFeedbackApplied" if outcome.applied else "ImplicitFeedbackSkipped", unit=MetricUnit.Count, value=1
    )


@app.exception_handler(RouterError)
def router_error(exc: RouterError) -> Response[str]:
    return Response(exc.status, "application/json", json.dumps(exc.body()))


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return Response(503, "application/json", json.dumps(ServiceUnavailable("feedback store unavailable; retry").body()))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return process_partial_response(event=event, record_handler=signal_record, processor=processor, context=context)
    return app.resolve(event, context)
