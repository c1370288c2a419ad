"""Test plumbing for moto and handler events, built on the local stack's own modules.

Tables and queues come from template.yaml (through the SAM transform), moto runs behind the one
global lock with item-level transaction rollback, and events are the exact API Gateway v2.0
events the local HTTP API builds: integration tests, benchmarks and the local stack share one
implementation, so none of them can drift from what is deployed.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from tools.local_stack import aws as local_aws
from tools.local_stack.apigw import HttpRequest, build_event
from tools.local_stack.moto_items import patch_item_construction
from tools.local_stack.moto_transactions import patch_transactions
from tools.local_stack.routes import ApiSpec, read_api
from tools.local_stack.runtime import LambdaContext
from tools.local_stack.sigv4 import Credential
from tools.local_stack.sqs_poller import sqs_record
from tools.local_stack.template import ACCOUNT_ID, StackTemplate

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = ACCOUNT_ID
DASHBOARD_USER = Credential(
    access_key_id="AKIATESTDASHBOARD000",
    secret_access_key="unused-by-handler-tests",
    account_id=ACCOUNT,
    user_arn=f"arn:aws:iam::{ACCOUNT}:user/dashboard",
    user_id="AIDATESTDASHBOARD000",
)


def lock_moto() -> None:
    """Serialise every in-process moto request, with item-level transaction rollback (idempotent)."""
    local_aws.patch_moto_lock()
    patch_transactions()
    patch_item_construction()


def fake_aws_environment() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_METRICS_NAMESPACE": "AdaptiveRouterTest",
        "POWERTOOLS_SERVICE_NAME": "adaptive-router",
    }


@lru_cache(maxsize=1)
def stack_template() -> StackTemplate:
    return StackTemplate.load(TEMPLATE, region=REGION)


@lru_cache(maxsize=1)
def api_spec() -> ApiSpec:
    return read_api(stack_template(), ("http://localhost:8080",))


@dataclass(frozen=True)
class Resources:
    table_name: str
    queue_url: str
    dlq_url: str


def create_resources() -> Resources:
    """The DynamoDB table and SQS queues exactly as template.yaml declares them (inside mock_aws)."""
    made = local_aws.create_resources(
        stack_template(), boto3.client("dynamodb", region_name=REGION), boto3.client("sqs", region_name=REGION)
    )
    return Resources(
        table_name=made.tables["RouterTable"].name,
        queue_url=made.queues["SignalQueue"].url,
        dlq_url=made.queues["SignalDeadLetterQueue"].url,
    )


FUNCTIONS = {"chat": "ChatFunction", "feedback": "FeedbackFunction", "state": "StateFunction"}


def load_handler(function: str) -> ModuleType:
    """Import `functions/<function>/app.py` fresh (a cold start), as the template's Handler names it."""
    spec = api_spec().functions[FUNCTIONS[function]]
    module_spec = importlib.util.spec_from_file_location(f"{function}_handler_app", spec.code_dir / "app.py")
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def lambda_context(function: str) -> LambdaContext:
    """The context Lambda passes the function (memory and timeout from template.yaml)."""
    return LambdaContext(api_spec().functions[FUNCTIONS[function]], REGION, ACCOUNT, clock=time.monotonic)


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    signed: bool = False,
) -> dict[str, Any]:
    """The API Gateway HTTP API v2.0 event for a request on one of the template's routes.

    `signed` adds the IAM caller context API Gateway adds after verifying a SigV4 signature.
    """
    found = api_spec().find(method, path)
    if found is None:
        raise ValueError(f"{method} {path} is not a route of template.yaml")
    route, params = found
    hdrs = {"host": "api.example.com", "user-agent": "pytest", **(headers or {})}
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    request = HttpRequest(
        method=method,
        raw_path=path,
        raw_query="&".join(f"{k}={v}" for k, v in (query or {}).items()),
        headers=tuple(hdrs.items()),
        body=raw,
    )
    return build_event(
        request,
        route,
        params,
        api_id="testapi",
        account_id=ACCOUNT,
        request_id=uuid.uuid4().hex,
        caller=DASHBOARD_USER if signed else None,
    )


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS batch event as Lambda's event source mapping delivers it (ReceiveMessage results)."""
    return {"Records": [sqs_record(m, queue_arn, REGION) for m in messages]}
