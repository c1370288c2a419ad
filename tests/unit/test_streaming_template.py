"""The streaming path as template.yaml deploys it: a Function URL in RESPONSE_STREAM mode served
through the Lambda Web Adapter, long enough for a long answer, with the chat function's exact
permissions, and one CloudFront base URL that sends /v1/chat/completions to it and every other
/v1 path to the HTTP API, uncached."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.aws_env import REGION, TEMPLATE, stack_template
from tools.local_stack.template import StackTemplate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
LWA_LAYER = re.compile(r"^arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64:\d+$")


def function_url(t: StackTemplate) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, t.properties(k)) for k in t.of_type("AWS::Lambda::Url")]
    return found


def test_the_stream_function_has_a_response_stream_url_open_to_clients_it_authenticates_itself() -> None:
    t = stack_template()
    url_id, url = function_url(t)
    assert url_id == "ChatStreamFunctionUrl"
    assert url["TargetFunctionArn"] == t.ref("ChatStreamFunction")
    assert (url["InvokeMode"], url["AuthType"]) == ("RESPONSE_STREAM", "NONE")
    assert {"x-router-model", "x-router-request-type", "x-router-session-id"} <= set(url["Cors"]["ExposeHeaders"])
    assert "http://localhost:8080" in url["Cors"]["AllowOrigins"]
    api_cors = t.resource("RouterApi")["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert sorted(url["Cors"]["AllowHeaders"]) == sorted(t.resolve(api_cors["allowHeaders"]))
    assert sorted(url["Cors"]["ExposeHeaders"]) == sorted(t.resolve(api_cors["exposeHeaders"]))


def test_the_stream_function_runs_chat_through_the_lambda_web_adapter() -> None:
    t = stack_template()
    props = t.properties("ChatStreamFunction")
    chat = t.properties("ChatFunction")
    assert props["Handler"] == "run.sh"
    assert props["Code"] == chat["Code"]  # the same package as the buffered chat function
    assert props["Architectures"] == ["arm64"] and props["Runtime"] == chat["Runtime"]
    raw_layers = t.resource("ChatStreamFunction")["Properties"]["Layers"]
    own = [x["Ref"] for x in raw_layers if isinstance(x, dict) and "Ref" in x]
    assert [t.resource(x)["Type"] for x in own] == ["AWS::Lambda::LayerVersion"]  # router core
    assert own == [x["Ref"] for x in t.resource("ChatFunction")["Properties"]["Layers"]]
    assert [x for x in props["Layers"] if isinstance(x, str) and LWA_LAYER.match(x)], props["Layers"]
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz"
    assert env["TABLE_NAME"] == chat["Environment"]["Variables"]["TABLE_NAME"]
    assert props["Timeout"] >= 60  # a 60-second streamed answer fits (HTTP APIs stop at 30 s)


def test_run_sh_is_executable_and_starts_the_stream_server() -> None:
    run = ROOT / "functions" / "chat" / "run.sh"
    assert run.stat().st_mode & stat.S_IXUSR
    mode = subprocess.run(
        ["git", "ls-files", "-s", "functions/chat/run.sh"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert mode == "100755"  # what `sam build` packages comes from the checkout
    assert re.search(r"\bexec python3 -m stream_server\b", run.read_text(encoding="utf-8"))
    assert (ROOT / "functions" / "chat" / "stream_server.py").is_file()


def test_the_stream_function_may_make_exactly_the_calls_the_chat_function_may_and_stream_bedrock() -> None:
    def statements(t: StackTemplate, role: str) -> list[Any]:
        return [s for p in t.properties(role).get("Policies", []) for s in p["PolicyDocument"]["Statement"]]

    for t in (
        stack_template(),
        StackTemplate.load(
            TEMPLATE,
            region=REGION,
            parameter_overrides={
                "UpstreamApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:k",
                "EnableBedrock": "true",
            },
        ),
    ):
        # The one difference: streamed Bedrock answers (ConverseStream) need their own action.
        streamed = statements(t, "ChatStreamFunctionRole")
        for statement in streamed:
            if "bedrock:InvokeModelWithResponseStream" in statement["Action"]:
                statement["Action"] = [a for a in statement["Action"] if a != "bedrock:InvokeModelWithResponseStream"]
        assert streamed == statements(t, "ChatFunctionRole")
        bedrock = [s for s in statements(t, "ChatStreamFunctionRole") if "bedrock:InvokeModel" in s["Action"]]
        assert all("bedrock:InvokeModelWithResponseStream" in s["Action"] for s in bedrock)
        managed = t.properties("ChatStreamFunctionRole").get("ManagedPolicyArns")
        assert managed == t.properties("ChatFunctionRole").get("ManagedPolicyArns")


def api_distribution(t: StackTemplate) -> dict[str, Any]:
    config: dict[str, Any] = t.properties("ApiDistribution")["DistributionConfig"]
    return config


def test_cloudfront_sends_chat_to_the_function_url_and_the_rest_of_v1_to_the_http_api_uncached() -> None:
    t = stack_template()
    config = api_distribution(t)
    origins = {o["Id"]: o["DomainName"] for o in config["Origins"]}
    behaviours = config["CacheBehaviors"]
    assert [b["PathPattern"] for b in behaviours] == ["/v1/chat/completions", "/v1/*"]  # first match wins
    stream, api = behaviours

    assert origins[stream["TargetOriginId"]] == urlsplit(t.get_att("ChatStreamFunctionUrl", "FunctionUrl")).netloc
    assert origins[api["TargetOriginId"]] == f"{t.ref('RouterApi')}.execute-api.{REGION}.amazonaws.com"
    for behaviour in behaviours:
        assert {"POST", "GET", "OPTIONS"} <= set(behaviour["AllowedMethods"])
        assert behaviour["CachePolicyId"] == CACHING_DISABLED
        assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert behaviour["ViewerProtocolPolicy"] == "https-only"  # a redirect would turn POST into GET
    assert stream["Compress"] is False
    for origin in config["Origins"]:
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    (chat_origin,) = [o for o in config["Origins"] if o["Id"] == stream["TargetOriginId"]]
    assert chat_origin["CustomOriginConfig"]["OriginReadTimeout"] >= 60


def test_the_base_url_output_is_the_distributions_v1() -> None:
    t = stack_template()
    assert t.outputs["BaseUrl"]["Value"] == {"Fn::Sub": "https://${ApiDistribution.DomainName}/v1"}
    assert "streamed" in t.outputs["BaseUrl"]["Description"]
    assert "ApiUrl" in t.outputs  # the HTTP API's own URL stays (non-streamed clients, SigV4 for /v1/state)


def test_concurrent_streams_are_capped_only_when_asked() -> None:
    # Default: nothing reserved (new accounts cannot reserve any); a limit becomes reserved
    # concurrency, the streaming path's throttle (past it the function URL answers 429).
    assert "ReservedConcurrentExecutions" not in stack_template().properties("ChatStreamFunction")
    limited = StackTemplate.load(TEMPLATE, region=REGION, parameter_overrides={"StreamConcurrencyLimit": "40"})
    assert limited.properties("ChatStreamFunction")["ReservedConcurrentExecutions"] in (40, "40")
