"""DynamoDB and SQS in moto (in-process), behind one lock, with resources built from the template.

moto's backends do unlocked read-modify-writes: concurrent `UpdateItem ADD`s on one item lose
updates. Every call through moto therefore takes one global lock, patched around
`BotocoreStubber.__call__` on the class (measured: no visible cost). Listeners hear about each
call after the lock is released; the SQS poller uses that to wake up when a message is sent
instead of long-polling inside the lock (which would stall every other AWS call).

Tables and queues are created from the template's `AWS::DynamoDB::Table` and `AWS::SQS::Queue`
definitions (key schema, TTL, redrive policy...), never written down a second time here.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.local_stack.template import StackTemplate

MOTO_LOCK = threading.RLock()
_listeners: list[Callable[[str], None]] = []
_patched = False
_recorder: Recorder | None = None


class Recorder(Protocol):
    """Sees every moto call under the lock (the journal); see `persistence.Recorder`."""

    def apply(self, event_name: str, request: Any, call: Callable[[], Any]) -> Any: ...


FAKE_ACCESS_KEY_ID = "AKIAMOTOLOCALSTACK00"
"""Credentials boto3 signs moto calls with; moto never checks them. Never a real key."""
FAKE_SECRET = "moto-local-stack-secret-not-a-real-key"


def isolate_environment(region: str) -> None:
    """Point every boto3 client of this process at moto's fake account, never at real AWS.

    Real credentials and profiles are removed from the environment and the shared config files
    are ignored, so nothing the stack does can reach an AWS account.
    """
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # botocore >= 1.44 sends some calls to account-based hosts in-process moto does not route.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
    )


def add_listener(callback: Callable[[str], None]) -> None:
    """Call `callback(event_name)` (e.g. "before-send.sqs.SendMessage") after every moto call."""
    _listeners.append(callback)


def remove_listener(callback: Callable[[str], None]) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def set_recorder(recorder: Recorder | None) -> None:
    """Install (or remove, with None) the hook that journals every state change."""
    global _recorder
    _recorder = recorder


def patch_moto_lock() -> None:
    """Serialise every call into moto's backends (idempotent)."""
    global _patched
    if _patched:
        return
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def locked_call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with MOTO_LOCK:
            recorder = _recorder
            if recorder is None:
                response = original(self, event_name, request, **kwargs)
            else:
                response = recorder.apply(event_name, request, lambda: original(self, event_name, request, **kwargs))
        for listener in list(_listeners):
            listener(event_name)
        return response

    BotocoreStubber.__call__ = locked_call  # type: ignore[method-assign]
    _patched = True


class MotoSession:
    """moto's in-process mock, started once for the life of the stack."""

    def __init__(self) -> None:
        self._mock: Any = None

    def start(self) -> None:
        patch_moto_lock()
        from moto import mock_aws

        from tools.local_stack.moto_items import patch_item_construction
        from tools.local_stack.moto_transactions import patch_transactions

        # Without it every TransactWriteItems deep-copies the table: feedback slows as turns pile up.
        patch_transactions()
        # Without it building an item is quadratic in its attributes (every PutItem, every restart).
        patch_item_construction()

        self._mock = mock_aws()
        self._mock.start()

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    @staticmethod
    def client(service: str, region: str) -> Any:
        """A boto3 client (call after `start`, so moto intercepts it)."""
        import boto3

        return boto3.client(service, region_name=region)


@dataclass(frozen=True)
class TableInfo:
    logical_id: str
    name: str
    key_attributes: tuple[str, ...]
    ttl_attribute: str | None
    definition: dict[str, Any] = field(default_factory=dict, compare=False)
    """The CreateTable parameters (without TableName), to create the table again elsewhere."""

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id,
            "name": self.name,
            "key_attributes": list(self.key_attributes),
            "ttl_attribute": self.ttl_attribute,
            "definition": self.definition,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableInfo:
        return cls(
            data["logical_id"],
            data["name"],
            tuple(data["key_attributes"]),
            data.get("ttl_attribute"),
            dict(data.get("definition") or {}),
        )


@dataclass(frozen=True)
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str
    visibility_timeout_s: int
    max_receive_count: int | None
    dead_letter_queue: str | None
    """Logical id of the redrive target."""
    attributes: dict[str, str] = field(default_factory=dict, compare=False)
    """The CreateQueue attributes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id,
            "name": self.name,
            "url": self.url,
            "arn": self.arn,
            "visibility_timeout_s": self.visibility_timeout_s,
            "max_receive_count": self.max_receive_count,
            "dead_letter_queue": self.dead_letter_queue,
            "attributes": self.attributes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueInfo:
        return cls(**{**data, "attributes": dict(data.get("attributes") or {})})


@dataclass(frozen=True)
class Resources:
    tables: dict[str, TableInfo]
    queues: dict[str, QueueInfo]


_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TableClass",
)
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
)


def create_resources(template: StackTemplate, dynamodb: Any, sqs: Any) -> Resources:
    """Create every table and queue of the template in moto; returns what was made."""
    tables = {lid: _create_table(template, lid, dynamodb) for lid in template.of_type("AWS::DynamoDB::Table")}
    queue_ids = list(template.of_type("AWS::SQS::Queue"))
    # Dead-letter queues first: a redrive policy must name a queue that exists.
    queue_ids.sort(key=lambda lid: "RedrivePolicy" in (template.resource(lid).get("Properties") or {}))
    arn_to_id = {template.get_att(lid, "Arn"): lid for lid in queue_ids}
    queues = {lid: _create_queue(template, lid, sqs, arn_to_id) for lid in queue_ids}
    return Resources(tables=tables, queues=queues)


def _create_table(template: StackTemplate, logical_id: str, dynamodb: Any) -> TableInfo:
    props = template.properties(logical_id)
    name = template.physical_name(logical_id)
    params: dict[str, Any] = {k: props[k] for k in _TABLE_KEYS if k in props}
    if "StreamSpecification" in params:
        params["StreamSpecification"] = {"StreamEnabled": True, **params["StreamSpecification"]}
    sse = props.get("SSESpecification")
    if sse:
        params["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))}
    dynamodb.create_table(TableName=name, **params)
    ttl = props.get("TimeToLiveSpecification") or {}
    ttl_attribute = ttl.get("AttributeName") if ttl.get("Enabled") else None
    if ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl_attribute, "Enabled": True}
        )
    keys = tuple(k["AttributeName"] for k in props.get("KeySchema", []))
    return TableInfo(
        logical_id=logical_id, name=name, key_attributes=keys, ttl_attribute=ttl_attribute, definition=params
    )


def _create_queue(template: StackTemplate, logical_id: str, sqs: Any, arn_to_id: dict[str, str]) -> QueueInfo:
    props = template.properties(logical_id)
    name = template.physical_name(logical_id)
    attributes = {k: _attribute_text(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    redrive = props.get("RedrivePolicy")
    dead_letter: str | None = None
    max_receive: int | None = None
    if redrive:
        policy = json.loads(redrive) if isinstance(redrive, str) else dict(redrive)
        max_receive = int(policy["maxReceiveCount"])
        dead_letter = arn_to_id.get(str(policy["deadLetterTargetArn"]))
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": str(max_receive)}
        )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return QueueInfo(
        logical_id=logical_id,
        name=name,
        url=url,
        arn=str(template.get_att(logical_id, "Arn")),
        visibility_timeout_s=int(props.get("VisibilityTimeout", 30)),
        max_receive_count=max_receive,
        dead_letter_queue=dead_letter,
        attributes=attributes,
    )


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def create_from_definitions(tables: list[TableInfo], queues: list[QueueInfo], dynamodb: Any, sqs: Any) -> None:
    """Create tables and queues again from the definitions `create_resources` recorded."""
    for table in tables:
        dynamodb.create_table(TableName=table.name, **table.definition)
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=table.name, TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True}
            )
    for queue in sorted(queues, key=lambda q: "RedrivePolicy" in q.attributes):
        sqs.create_queue(QueueName=queue.name, Attributes=queue.attributes)
