"""The stack's alarms and CloudWatch dashboard, pinned: what each watches, its threshold, where it
notifies, and that every router metric they read is one the chat handler publishes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws_env import REGION, TEMPLATE, stack_template
from tools.local_stack.template import StackTemplate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "arn:aws:sns:us-east-1:123456789012:router-alarms"
FUNCTIONS = ("ChatFunction", "ChatStreamFunction", "FeedbackFunction", "StateFunction")


def published_metrics(handler: str) -> set[str]:
    """Metric names a handler passes to `metrics.add_metric(name=...)` (read from its source)."""
    tree = ast.parse((ROOT / "functions" / handler / "app.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_metric":
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    names.add(kw.value.value)
    return names


def alarms(t: StackTemplate) -> dict[str, dict[str, Any]]:
    return {name: t.properties(name) for name in t.of_type("AWS::CloudWatch::Alarm")}


def single_metric(props: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
    return props["Namespace"], props["MetricName"], dims


def math_inputs(props: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, str]]]:
    out = {}
    for m in props["Metrics"]:
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            out[m["Id"]] = (metric["Namespace"], metric["MetricName"], dims)
    return out


def returned_expression(props: dict[str, Any]) -> str:
    (expr,) = [m["Expression"] for m in props["Metrics"] if m.get("ReturnData", True) and "Expression" in m]
    return str(expr)


def test_every_alarm_is_pinned() -> None:
    t = stack_template()
    a = alarms(t)
    expected = {
        "SignalDeadLetterAlarm",
        "Api5xxRateAlarm",
        "StreamUrl5xxRateAlarm",
        "FallbackRateAlarm",
        "ImplicitSignalsDroppedAlarm",
        "TableThrottleAlarm",
        *(f"{fn}{kind}Alarm" for fn in FUNCTIONS for kind in ("Errors", "Throttles")),
    }
    assert set(a) == expected

    dlq = a["SignalDeadLetterAlarm"]
    assert single_metric(dlq) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": t.get_att("SignalDeadLetterQueue", "QueueName")},
    )
    assert (dlq["Statistic"], dlq["Threshold"], dlq["ComparisonOperator"]) == ("Maximum", 0, "GreaterThanThreshold")

    api = t.ref("RouterApi")
    five = a["Api5xxRateAlarm"]
    assert math_inputs(five) == {
        "errors": ("AWS/ApiGateway", "5xx", {"ApiId": api}),
        "requests": ("AWS/ApiGateway", "Count", {"ApiId": api}),
    }
    assert returned_expression(five) == "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)"
    assert (five["Threshold"], five["ComparisonOperator"]) == (5, "GreaterThanThreshold")

    stream = a["StreamUrl5xxRateAlarm"]
    function = t.ref("ChatStreamFunction")
    assert math_inputs(stream) == {
        "errors": ("AWS/Lambda", "Url5xxCount", {"FunctionName": function}),
        "requests": ("AWS/Lambda", "UrlRequestCount", {"FunctionName": function}),
    }
    assert returned_expression(stream) == "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)"
    assert (stream["Threshold"], stream["ComparisonOperator"]) == (5, "GreaterThanThreshold")

    fallback = a["FallbackRateAlarm"]
    assert {k: v[1] for k, v in math_inputs(fallback).items()} == {"fallbacks": "Fallbacks", "routed": "RoutedTurns"}
    assert returned_expression(fallback) == "IF(routed >= 20, 100 * FILL(fallbacks, 0) / routed, 0)"
    assert (fallback["Threshold"], fallback["EvaluationPeriods"], fallback["DatapointsToAlarm"]) == (10, 2, 2)

    dropped = a["ImplicitSignalsDroppedAlarm"]
    assert single_metric(dropped) == ("AdaptiveRouter", "ImplicitSignalsDropped", {"service": "adaptive-router"})
    assert (dropped["Statistic"], dropped["Threshold"], dropped["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )

    table = a["TableThrottleAlarm"]
    assert math_inputs(table) == {
        "reads": ("AWS/DynamoDB", "ReadThrottleEvents", {"TableName": t.ref("RouterTable")}),
        "writes": ("AWS/DynamoDB", "WriteThrottleEvents", {"TableName": t.ref("RouterTable")}),
    }
    assert (table["Threshold"], table["ComparisonOperator"]) == (0, "GreaterThanThreshold")

    for fn in FUNCTIONS:
        for kind in ("Errors", "Throttles"):
            props = a[f"{fn}{kind}Alarm"]
            assert single_metric(props) == ("AWS/Lambda", kind, {"FunctionName": t.ref(fn)})
            assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == (
                "Sum",
                0,
                "GreaterThanThreshold",
            )

    for name, props in a.items():
        assert props["TreatMissingData"] == "notBreaching", name  # an idle stack is healthy
        assert props.get("AlarmDescription"), name


def test_alarms_notify_the_topic_parameter_and_exist_without_it() -> None:
    without = alarms(stack_template())
    assert all("AlarmActions" not in p and "OKActions" not in p for p in without.values())
    with_topic = alarms(StackTemplate.load(TEMPLATE, region=REGION, parameter_overrides={"AlarmTopicArn": TOPIC}))
    assert set(with_topic) == set(without)
    for name, props in with_topic.items():
        assert props["AlarmActions"] == [TOPIC], name
        assert props["OKActions"] == [TOPIC], name


def router_metric_refs(t: StackTemplate) -> list[tuple[str, dict[str, str]]]:
    """(metric name, dimensions) of every AdaptiveRouter metric the alarms and dashboard read."""
    refs = []
    for props in alarms(t).values():
        inputs = math_inputs(props).values() if "Metrics" in props else [single_metric(props)]
        refs += [(name, dims) for ns, name, dims in inputs if ns == "AdaptiveRouter"]
    for widget in dashboard(t)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if row and row[0] == "AdaptiveRouter":
                plain = [x for x in row if not isinstance(x, dict)]
                refs.append((plain[1], dict(zip(plain[2::2], plain[3::2], strict=True))))
    return refs


def test_router_metrics_read_by_alarms_and_dashboard_are_published_by_the_chat_handler() -> None:
    t = stack_template()
    env = t.properties("ChatFunction")["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AdaptiveRouter"
    refs = router_metric_refs(t)
    assert {name for name, _ in refs} == published_metrics("chat")
    # Powertools adds the service as the only dimension (the handler adds none).
    assert all(dims == {"service": env["POWERTOOLS_SERVICE_NAME"]} for _, dims in refs)


def dashboard(t: StackTemplate) -> dict[str, Any]:
    (name,) = t.of_type("AWS::CloudWatch::Dashboard")
    body: dict[str, Any] = json.loads(t.properties(name)["DashboardBody"])
    return body


def test_the_dashboard_shows_routed_requests_cost_savings_fallbacks_latency_and_every_alarm() -> None:
    t = stack_template()
    widgets = {w["properties"]["title"]: w for w in dashboard(t)["widgets"]}
    assert set(widgets) == {
        "Routed requests (per 5 min)",
        "Model cost and savings (USD per 5 min)",
        "Fallbacks and broken streams",
        "Latency (ms)",
        "Errors and throttles",
        "Alarms",
    }

    def names(title: str) -> set[str]:
        return {row[1] for row in widgets[title]["properties"]["metrics"] if isinstance(row[0], str)}

    assert names("Routed requests (per 5 min)") == {"RoutedTurns", "DirectTurns"}
    assert names("Model cost and savings (USD per 5 min)") == {"CostUSD", "SavingsUSD"}
    assert names("Fallbacks and broken streams") == {"Fallbacks", "StreamsFailed", "RoutedTurns"}
    assert names("Latency (ms)") == {"Latency", "Duration"}
    watched = {"5xx", "Errors", "ReadThrottleEvents", "WriteThrottleEvents", "ApproximateNumberOfMessagesVisible"}
    assert watched <= names("Errors and throttles")
    assert sorted(widgets["Alarms"]["properties"]["alarms"]) == sorted(
        t.get_att(name, "Arn") for name in t.of_type("AWS::CloudWatch::Alarm")
    )
    for widget in widgets.values():
        assert widget["properties"].get("region", REGION) == REGION


def test_the_table_is_on_demand_unless_provisioned_capacity_is_chosen() -> None:
    default = stack_template()
    assert default.parameters["TableCapacityMode"] == "on-demand"
    table = default.properties("RouterTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST" and "ProvisionedThroughput" not in table
    scaling = ("TableReadScaling", "TableReadScalingPolicy", "TableWriteScaling", "TableWriteScalingPolicy")
    assert all(not default.condition(default.resource(name)["Condition"]) for name in scaling)


def test_provisioned_capacity_scales_reads_and_writes_to_70_percent_between_the_bounds() -> None:
    t = StackTemplate.load(
        TEMPLATE,
        region=REGION,
        parameter_overrides={"TableCapacityMode": "provisioned", "TableMinCapacity": "7", "TableMaxCapacity": "300"},
    )
    table = t.properties("RouterTable")
    assert table["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"] == {"ReadCapacityUnits": "7", "WriteCapacityUnits": "7"}
    for dimension, metric in (
        ("Read", "DynamoDBReadCapacityUtilization"),
        ("Write", "DynamoDBWriteCapacityUtilization"),
    ):
        target_id, policy_id = f"Table{dimension}Scaling", f"Table{dimension}ScalingPolicy"
        assert t.condition(t.resource(target_id)["Condition"]) and t.condition(t.resource(policy_id)["Condition"])
        target = t.properties(target_id)
        assert target["ServiceNamespace"] == "dynamodb"
        assert target["ScalableDimension"] == f"dynamodb:table:{dimension}CapacityUnits"
        assert target["ResourceId"] == f"table/{t.physical_name('RouterTable')}"
        assert (target["MinCapacity"], target["MaxCapacity"]) == ("7", "300")
        assert "RoleARN" not in target  # Application Auto Scaling's service-linked role
        policy = t.properties(policy_id)
        assert policy["PolicyType"] == "TargetTrackingScaling"
        assert policy["ScalingTargetId"] == t.physical_name(target_id)
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == 70
        assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": metric}
