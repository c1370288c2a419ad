"""The item-level rollback keeps TransactWriteItems all-or-nothing, as DynamoDB is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.aws_env import REGION, create_resources, fake_aws_environment, lock_moto

pytestmark = pytest.mark.integration


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """The router table from template.yaml on locked moto, and a DynamoDB client."""
    for k, v in fake_aws_environment().items():
        monkeypatch.setenv(k, v)
    lock_moto()
    with mock_aws():
        yield create_resources().table_name, boto3.client("dynamodb", region_name=REGION)


def test_a_failed_condition_undoes_the_items_already_written(table: tuple[str, Any]) -> None:
    name, ddb = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "cell"}, "sk": {"S": "1"}, "n": {"N": "5"}})
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"pk": {"S": "cell"}, "sk": {"S": "1"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": name, "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"pk": {"S": "turn"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET s = :s",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":s": {"S": "x"}},
                    }
                },
            ]
        )
    reasons = [r["Code"] for r in info.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    cell = ddb.get_item(TableName=name, Key={"pk": {"S": "cell"}, "sk": {"S": "1"}})["Item"]
    assert cell["n"] == {"N": "5"}
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "new"}, "sk": {"S": "1"}})
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "turn"}, "sk": {"S": "1"}})


def test_a_successful_transaction_applies_every_item(table: tuple[str, Any]) -> None:
    name, ddb = table
    ddb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": name,
                    "Key": {"pk": {"S": "cell"}, "sk": {"S": "1"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {"Put": {"TableName": name, "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
        ]
    )
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "cell"}, "sk": {"S": "1"}})["Item"]["n"] == {"N": "1"}
    assert "Item" in ddb.get_item(TableName=name, Key={"pk": {"S": "new"}, "sk": {"S": "1"}})
