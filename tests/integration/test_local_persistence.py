"""The local stack's durable state on moto: journal, recovery, compaction, nothing lost or torn."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.aws_env import fake_aws_environment, lock_moto
from tools.local_stack.aws import QueueInfo, TableInfo, create_from_definitions
from tools.local_stack.journal import segment_numbers, segment_path
from tools.local_stack.persistence import STATE_FILE, DurableState, RecoveryReport, dump_state

pytestmark = pytest.mark.integration
REGION = "us-east-1"
TABLE = TableInfo(
    "RouterTable",
    "router-table",
    ("pk", "sk"),
    "expires_at",
    {
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
    },
)
DLQ = QueueInfo("DeadLetters", "dead-letters", "", "", 30, None, None, {})
QUEUE = QueueInfo(
    "Signals",
    "signals",
    "",
    "",
    30,
    2,
    "DeadLetters",
    {
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:123456789012:dead-letters", "maxReceiveCount": "2"}
        )
    },
)
QUEUES = [DLQ, QUEUE]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake_aws_environment().items():
        monkeypatch.setenv(name, value)
    lock_moto()


class World:
    """One moto 'machine': fresh backends, the table and queues created, durable state on `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.mock = mock_aws()
        self.mock.start()
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        create_from_definitions([TABLE], QUEUES, self.dynamodb, self.sqs)
        self.queue_url = self.sqs.get_queue_url(QueueName=QUEUE.name)["QueueUrl"]
        self.durable = DurableState(state_dir, [TABLE], QUEUES, REGION, check_interval_s=3600)
        self.closed = False

    def state(self) -> dict[str, Any]:
        return dump_state([TABLE], QUEUES, REGION)

    def close(self) -> None:
        """Stop the machine (once: a test may stop it before the next `boot` would)."""
        if self.closed:
            return
        self.closed = True
        self.durable.stop()
        self.mock.stop()


Boot = Callable[..., tuple[World, RecoveryReport]]


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Boot]:
    """(Re)start the machine on `tmp_path`: the running one stops first (a restart), the new one
    recovers the saved state and, with `journal=True`, journals its writes from then on."""
    running: list[World] = []

    def start(*, journal: bool = True) -> tuple[World, RecoveryReport]:
        while running:
            running.pop().close()
        world = World(tmp_path)
        running.append(world)
        report = world.durable.recover()
        if journal:
            world.durable.start()
        return world, report

    yield start
    for world in running:
        with contextlib.suppress(Exception):
            world.close()


def _key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"TURN#{n % 3}"}, "sk": {"S": f"{n:06d}"}}


def _write_everything(world: World) -> None:
    db = world.dynamodb
    for n in range(30):
        db.put_item(TableName=TABLE.name, Item={**_key(n), "nonce": {"S": f"n{n}"}, "blob": {"B": bytes([n, 255])}})
    for n in range(10):
        db.update_item(
            TableName=TABLE.name,
            Key={"pk": {"S": "CELLS"}, "sk": {"S": f"cell#{n % 2}"}},
            UpdateExpression="ADD picks :one, alpha :a",
            ExpressionAttributeValues={":one": {"N": "1"}, ":a": {"N": "0.25"}},
        )
    with pytest.raises(db.exceptions.ConditionalCheckFailedException):  # fails: never journaled
        db.put_item(TableName=TABLE.name, Item=_key(1), ConditionExpression="attribute_not_exists(pk)")
    db.delete_item(TableName=TABLE.name, Key=_key(2))
    db.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE.name,
                    "Key": _key(3),
                    "UpdateExpression": "SET scored = :t",
                    "ExpressionAttributeValues": {":t": {"BOOL": True}},
                }
            },
            {"Put": {"TableName": TABLE.name, "Item": {"pk": {"S": "ACTIVITY"}, "sk": {"S": "a#3"}}}},
        ]
    )
    with pytest.raises(db.exceptions.TransactionCanceledException):  # cancelled: nothing applied
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE.name, "Item": {"pk": {"S": "ACTIVITY"}, "sk": {"S": "a#4"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE.name,
                        "Key": _key(4),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    for n in range(4):
        world.sqs.send_message(
            QueueUrl=world.queue_url,
            MessageBody=f"signal {n}",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "implicit"}},
        )
    received = world.sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=1)["Messages"]
    world.sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=received[0]["ReceiptHandle"])


def test_every_acknowledged_write_is_recovered_exactly_from_the_journal(boot: Boot) -> None:
    first, _ = boot()
    _write_everything(first)
    expected = first.state()

    second, report = boot(journal=False)
    assert report.snapshot_items == 0 and report.journal_records > 40
    assert second.state() == expected
    assert len(expected["queues"]["Signals"]) == 3
    assert not any(
        item["pk"] == {"S": "ACTIVITY"} and item["sk"] == {"S": "a#4"} for item in expected["tables"]["RouterTable"]
    )


def test_a_restored_message_keeps_its_id_so_a_later_delete_is_journaled_against_it(boot: Boot) -> None:
    first, _ = boot()
    first.sqs.send_message(QueueUrl=first.queue_url, MessageBody="one")
    sent = first.state()["queues"]["Signals"][0]["id"]

    second, _ = boot()
    (message,) = second.sqs.receive_message(QueueUrl=second.queue_url)["Messages"]
    assert message["MessageId"] == sent
    second.sqs.delete_message(QueueUrl=second.queue_url, ReceiptHandle=message["ReceiptHandle"])

    third, _ = boot(journal=False)
    assert third.state()["queues"]["Signals"] == []


def test_compaction_folds_the_journal_into_a_snapshot_that_recovers_the_same_state(tmp_path: Path, boot: Boot) -> None:
    first, _ = boot()
    _write_everything(first)
    assert first.durable.compact(timeout_s=120.0)
    first.dynamodb.put_item(TableName=TABLE.name, Item={**_key(99), "after": {"S": "snapshot"}})
    expected = first.state()
    first.close()

    snapshot = json.loads((tmp_path / STATE_FILE).read_text())
    assert snapshot["version"] == 2 and snapshot["through_segment"] == 1
    assert segment_numbers(tmp_path / "journal") == [2]  # the compacted segment is gone
    second, report = boot(journal=False)
    assert report.snapshot_items == len(snapshot["tables"]["RouterTable"])
    assert report.journal_records == 1
    assert second.state() == expected


def test_a_record_torn_by_a_crash_loses_only_that_unacknowledged_write(tmp_path: Path, boot: Boot) -> None:
    first, _ = boot()
    for n in range(5):
        first.dynamodb.put_item(TableName=TABLE.name, Item=_key(n))
    first.close()
    path = segment_path(tmp_path / "journal", 1)
    path.write_bytes(path.read_bytes()[:-3])

    second, _ = boot(journal=False)
    keys = sorted(item["sk"]["S"] for item in second.state()["tables"]["RouterTable"])
    assert keys == [f"{n:06d}" for n in range(4)]


def test_a_snapshot_saved_by_the_previous_format_is_still_restored(tmp_path: Path, boot: Boot) -> None:
    items = [{**_key(n), "blob": {"B": "AAE="}, "n": {"N": str(n)}} for n in range(3)]  # binary as base64
    (tmp_path / STATE_FILE).write_text(json.dumps({"version": 1, "tables": {"RouterTable": items}}))
    world, report = boot(journal=False)
    assert report.snapshot_items == 3
    got = world.dynamodb.get_item(TableName=TABLE.name, Key=_key(1))["Item"]
    assert got["blob"] == {"B": b"\x00\x01"} and got["n"] == {"N": "1"}
