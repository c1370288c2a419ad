"""`python -m tools.keys create`: prints a key once, stores only its hash, and the key works."""

from __future__ import annotations

import boto3
import pytest

from tests.aws_env import REGION
from tests.integration.conftest import Stack
from tools.keys import main

pytestmark = pytest.mark.integration


def test_created_key_is_printed_once_stored_hashed_and_accepted(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from router_core.keys import hash_key

    assert main(["create", "--name", "alice", "--table", stack.resources.table_name, "--region", REGION]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("rk-")
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.resources.table_name)["Items"]
    stored = [i for i in items if i["pk"]["S"] == f"KEY#{hash_key(key)}"]
    assert len(stored) == 1 and stored[0]["name"]["S"] == "alice"
    assert all(key not in str(i) for i in items)
    response = stack.chat_request(
        {"model": "smart-cheap-router", "messages": [{"role": "user", "content": "hi"}]}, key=key
    )
    assert response["statusCode"] == 200


def test_missing_table_is_a_clear_error(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "--name", "bob", "--table", "no-such-table", "--region", REGION]) == 1
    assert "error:" in capsys.readouterr().err
