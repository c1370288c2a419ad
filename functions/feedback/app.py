"""POST /v1/feedback and the SQS consumer of implicit signals: both call apply_feedback."""

import warnings
from functools import partial
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from router_core import runtime
from router_core.api import FEEDBACK_MAX_BYTES, FeedbackRequest, json_object
from router_core.errors import RateLimited
from router_core.feedback import FeedbackOutcome, Signal, apply_explicit_feedback, apply_implicit_batch, outcome_body
from router_core.http_errors import register_error_handlers
from router_core.keys import bearer_token
from router_core.signals_queue import PoisonMessage, parse_signal_message

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"router_core"})
metrics = Metrics()
# Refused requests publish no metric; Powertools documents this filter for functions that
# legitimately flush nothing (otherwise it warns on every such request).
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
app = APIGatewayHttpResolver(
    enable_validation=True, json_body_deserializer=partial(json_object, max_bytes=FEEDBACK_MAX_BYTES)
)
register_error_handlers(app, logger, unavailable="feedback store unavailable; retry")


@app.post("/v1/feedback")
def feedback(
    request: Annotated[FeedbackRequest, Body()], authorization: Annotated[str | None, Header()] = None
) -> Response[dict[str, Any]]:
    key_hash = runtime.turn_router().authenticate(bearer_token(authorization))
    try:
        outcome = apply_explicit_feedback(runtime.store(), runtime.config(), key_hash, request)
    except RateLimited:
        # Never dropped silently: the client gets a 429 and the operator sees the count.
        metrics.add_metric(name="ExplicitFeedbackRateLimited", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(
        name="ExplicitFeedbackApplied" if outcome.applied else "ExplicitFeedbackGated", unit=MetricUnit.Count, value=1
    )
    return Response(200 if outcome.applied else 202, content_types.APPLICATION_JSON, outcome_body(outcome))


def signal_batch(event: SQSEvent) -> dict[str, Any]:
    """Apply a batch of implicit signals (one transaction, `apply_implicit_batch`) and report the
    records that failed (ReportBatchItemFailures): each is retried, then goes to the DLQ. A batch
    whose every record failed is still a partial batch response, never an invocation error."""
    failed: list[str] = []
    ids: list[str] = []
    signals: list[Signal] = []
    for record in event.records:
        try:
            signals.append(Signal(*parse_signal_message(record.body)))
            ids.append(record.message_id)
        except PoisonMessage as exc:
            logger.warning("signal message rejected", extra={"message_id": record.message_id, "error": str(exc)[:200]})
            failed.append(record.message_id)
    for message_id, result in zip(ids, apply_implicit_batch(runtime.store(), runtime.config(), signals), strict=True):
        if isinstance(result, FeedbackOutcome):
            name = "ImplicitFeedbackApplied" if result.applied else "ImplicitFeedbackSkipped"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        else:
            logger.warning(
                "signal not applied; SQS retries it",
                extra={"message_id": message_id, "error": type(result).__name__, "detail": str(result)[:200]},
            )
            failed.append(message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return signal_batch(SQSEvent(event))
    return app.resolve(event, context)
