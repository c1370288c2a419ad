"""Test plumbing for moto: one global lock, resources built from template.yaml, real v2.0 events.

moto's backends do read-modify-write without a lock, so concurrent ADDs get lost; one lock
around the botocore stubber (one request at a time, like a real service's atomic items) makes
concurrency tests meaningful.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from moto.core.botocore_stubber import BotocoreStubber
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "template.yaml")
REGION = "us-east-1"
ACCOUNT = "123456789012"

_moto_lock = threading.RLock()
_original_call = BotocoreStubber.__call__


def _locked_call(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
    with _moto_lock:
        return _original_call(self, *args, **kwargs)


def lock_moto() -> None:
    """Serialise every in-process moto request, with item-level transaction rollback (idempotent)."""
    from tools.local_stack.moto_transactions import patch_transactions

    BotocoreStubber.__call__ = _locked_call  # type: ignore[method-assign]
    patch_transactions()


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


def template_resources() -> dict[str, Any]:
    with open(TEMPLATE, encoding="utf-8") as fh:
        return dict(yaml_parse(fh.read())["Resources"])


@dataclass(frozen=True)
class Resources:
    table_name: str
    queue_url: str
    dlq_url: str


def create_resources() -> Resources:
    """The DynamoDB table and SQS queues exactly as template.yaml declares them."""
    res = template_resources()
    table = res["RouterTable"]["Properties"]
    ddb = boto3.client("dynamodb", region_name=REGION)
    name = "RouterTable-" + uuid.uuid4().hex[:8]
    ddb.create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode=table["BillingMode"],
    )
    ttl = table["TimeToLiveSpecification"]
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_props = res["SignalDeadLetterQueue"]["Properties"]
    dlq_url = sqs.create_queue(
        QueueName="signals-dlq-" + name[-8:],
        Attributes={"MessageRetentionPeriod": str(dlq_props["MessageRetentionPeriod"])},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = res["SignalQueue"]["Properties"]
    queue_url = sqs.create_queue(
        QueueName="signals-" + name[-8:],
        Attributes={
            "VisibilityTimeout": str(q["VisibilityTimeout"]),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(q["RedrivePolicy"]["maxReceiveCount"])}
            ),
        },
    )["QueueUrl"]
    return Resources(table_name=name, queue_url=queue_url, dlq_url=dlq_url)


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    timeout_s: float = 29.0

    def __post_init__(self) -> None:
        self._deadline = time.time() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    iam_access_key: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event, as API Gateway sends it to Lambda."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.setdefault("host", "api.example.com")
    hdrs.setdefault("user-agent", "pytest")
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    is_b64 = isinstance(body, bytes)
    authorizer: dict[str, Any] | None = None
    if iam_access_key is not None:
        authorizer = {
            "iam": {
                "accessKey": iam_access_key,
                "accountId": ACCOUNT,
                "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT}:user/dashboard",
                "userId": "AIDAEXAMPLE",
            }
        }
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": hdrs,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "api",
            "domainName": hdrs["host"],
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    return event


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS batch event as Lambda's event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }
