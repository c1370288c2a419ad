"""Least privilege: each function's role allows exactly the calls its code makes, on its own resources."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws_env import REGION, TEMPLATE, stack_template
from tools.local_stack.template import StackTemplate

pytestmark = pytest.mark.unit


def statements(template: StackTemplate, role: str) -> list[dict[str, Any]]:
    return [s for p in template.properties(role).get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def actions(template: StackTemplate, role: str) -> set[str]:
    out: set[str] = set()
    for s in statements(template, role):
        acts = s["Action"]
        out.update([acts] if isinstance(acts, str) else acts)
    return out


def test_each_function_may_make_only_the_calls_its_code_makes() -> None:
    t = stack_template()
    assert actions(t, "ChatFunctionRole") == {
        "dynamodb:BatchGetItem",  # key, previous turn and cells in one read
        "dynamodb:GetItem",  # key lookups on a cache miss
        "dynamodb:PutItem",  # the turn
        "dynamodb:UpdateItem",  # cell counters, decay compaction
        "sqs:SendMessage",  # implicit signals
    }
    # TransactWriteItems is authorised per contained action: Update (turn, cell, rate) and Put (activity).
    assert actions(t, "FeedbackFunctionRole") == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert actions(t, "StateFunctionRole") == {"dynamodb:Query", "dynamodb:PutItem"}
    # The state route writes only its history points (partition key HISTORY).
    (put,) = [s for s in statements(t, "StateFunctionRole") if "dynamodb:PutItem" in s["Action"]]
    assert put["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["HISTORY"]}}


def test_no_statement_uses_a_wildcard_action_or_the_whole_account() -> None:
    t = stack_template()
    for role in ("ChatFunctionRole", "ChatStreamFunctionRole", "FeedbackFunctionRole", "StateFunctionRole"):
        for s in statements(t, role):
            acts = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
            assert all("*" not in a for a in acts), (role, acts)
            resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
            assert all(r != "*" for r in resources), (role, resources)


def test_the_upstream_secret_and_bedrock_are_granted_only_when_configured() -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-key-AbCdEf"
    t = StackTemplate.load(
        TEMPLATE, region=REGION, parameter_overrides={"UpstreamApiKeySecretArn": secret, "EnableBedrock": "true"}
    )
    chat = statements(t, "ChatFunctionRole")
    secret_grants = [s for s in chat if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Resource"] for s in secret_grants] == [secret]
    assert any("bedrock:InvokeModel" in s["Action"] for s in chat)
    assert "secretsmanager:GetSecretValue" not in actions(stack_template(), "ChatFunctionRole")
    assert "bedrock:InvokeModel" not in actions(stack_template(), "ChatFunctionRole")
