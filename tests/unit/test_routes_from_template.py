"""The local API's routes, auth, CORS, throttling and functions come from template.yaml itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.local_stack.routes import ApiSpec, Route, read_api
from tools.local_stack.template import StackTemplate, TemplateError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SITE_ORIGINS = ("http://localhost:8080", "http://127.0.0.1:8080")


@pytest.fixture(scope="module")
def template() -> StackTemplate:
    return StackTemplate.load(ROOT / "template.yaml", region="us-east-1")


@pytest.fixture(scope="module")
def api(template: StackTemplate) -> ApiSpec:
    return read_api(template, SITE_ORIGINS)


def test_every_route_of_the_template_is_served_by_its_function(api: ApiSpec) -> None:
    assert {(r.method, r.path, r.function) for r in api.routes} == {
        ("POST", "/v1/chat/completions", "ChatFunction"),
        ("GET", "/v1/models", "ChatFunction"),
        ("POST", "/v1/feedback", "FeedbackFunction"),
        ("GET", "/v1/state", "StateFunction"),
    }
    assert all(r.payload_format == "2.0" for r in api.routes)


def test_only_the_state_route_requires_iam(api: ApiSpec) -> None:
    assert {r.route_key for r in api.routes if r.iam} == {"GET /v1/state"}


def test_cors_exposes_every_router_header_the_pages_read(api: ApiSpec) -> None:
    assert set(api.cors.expose_headers) >= {
        "x-router-model",
        "x-router-request-type",
        "x-router-turn-id",
        "x-router-session-id",
        "x-router-propensity",
        "x-router-fallback",
    }


def test_cors_allows_the_headers_browsers_send_for_sigv4_and_sessions(api: ApiSpec) -> None:
    assert set(api.cors.allow_headers) >= {
        "authorization",
        "content-type",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-router-session-id",
    }
    assert set(api.cors.allow_methods) == {"GET", "POST", "OPTIONS"}
    assert api.cors.max_age_s == 600


def test_the_cloudfront_origin_resolves_to_the_local_site_origins(api: ApiSpec) -> None:
    assert set(api.cors.allow_origins) == set(SITE_ORIGINS)


def test_the_extra_cors_origin_parameter_is_honoured() -> None:
    template = StackTemplate.load(
        ROOT / "template.yaml",
        region="us-east-1",
        parameter_overrides={"ExtraCorsOrigin": "http://localhost:5173"},
    )
    assert "http://localhost:5173" in read_api(template, SITE_ORIGINS).cors.allow_origins


def test_route_throttling_comes_from_the_stage_parameters(api: ApiSpec) -> None:
    assert api.throttle is not None
    assert (api.throttle.rate_per_s, api.throttle.burst) == (50.0, 100)
    custom = StackTemplate.load(
        ROOT / "template.yaml",
        region="us-east-1",
        parameter_overrides={"ThrottleRatePerSecond": "5000", "ThrottleBurst": "9000"},
    )
    throttle = read_api(custom, SITE_ORIGINS).throttle
    assert throttle is not None and (throttle.rate_per_s, throttle.burst) == (5000.0, 9000)


def test_unknown_or_disallowed_parameter_overrides_fail_with_the_parameter_name() -> None:
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        StackTemplate.load(ROOT / "template.yaml", region="us-east-1", parameter_overrides={"NoSuchParameter": "1"})
    with pytest.raises(TemplateError, match="LogLevel"):
        StackTemplate.load(ROOT / "template.yaml", region="us-east-1", parameter_overrides={"LogLevel": "LOUD"})


def test_functions_keep_their_code_directory_handler_timeout_and_layer(api: ApiSpec) -> None:
    chat = api.functions["ChatFunction"]
    assert chat.code_dir == ROOT / "functions" / "chat"
    assert chat.handler == "app.lambda_handler"
    assert (chat.module, chat.attribute) == ("app", "lambda_handler")
    assert chat.timeout_s == 29  # its own Timeout beats Globals
    assert api.functions["StateFunction"].timeout_s == 10  # Globals
    assert api.functions["FeedbackFunction"].timeout_s == 20
    assert all(fn.layer_dirs == (ROOT / "layers" / "router_core",) for fn in api.functions.values())


def test_function_environment_points_at_the_table_and_queue_the_stack_creates(
    api: ApiSpec, template: StackTemplate
) -> None:
    env = api.functions["FeedbackFunction"].environment
    assert env["TABLE_NAME"] == template.physical_name("RouterTable")
    assert env["SIGNAL_QUEUE_URL"].endswith("/" + template.physical_name("SignalQueue"))
    assert env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] == "disabled"
    assert "ROUTER_CONFIG_PATH" not in env  # the template's condition is false without the parameter


def test_the_signal_queue_feeds_the_feedback_function_with_partial_batch_failures(api: ApiSpec) -> None:
    (trigger,) = api.triggers
    assert (trigger.queue, trigger.function) == ("SignalQueue", "FeedbackFunction")
    assert trigger.batch_size == 10
    assert trigger.batching_window_s == 1.0
    assert trigger.report_batch_item_failures


def test_the_signal_queue_redrives_to_its_dead_letter_queue(template: StackTemplate) -> None:
    props = template.properties("SignalQueue")
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == template.get_att("SignalDeadLetterQueue", "Arn")
    assert int(props["RedrivePolicy"]["maxReceiveCount"]) == 5
    assert template.properties("RouterTable")["TimeToLiveSpecification"]["AttributeName"] == "expires_at"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/state", "GET /v1/state"),
        ("POST", "/v1/chat/completions", "POST /v1/chat/completions"),
        ("POST", "/v1/state", None),
        ("GET", "/v1/state/", None),
        ("GET", "/v1/chat/completions", None),
        ("GET", "/", None),
    ],
)
def test_requests_match_routes_by_exact_method_and_path(
    api: ApiSpec, method: str, path: str, expected: str | None
) -> None:
    found = api.find(method, path)
    assert (found[0].route_key if found else None) == expected


def test_path_parameters_and_greedy_paths_match_like_api_gateway() -> None:
    items = Route("GET", "/v1/items/{id}", "Fn", iam=False)
    proxy = Route("ANY", "/files/{proxy+}", "Fn", iam=False)
    assert items.match("GET", "/v1/items/42") == {"id": "42"}
    assert items.match("GET", "/v1/items/42/more") is None
    assert proxy.match("DELETE", "/files/a/b/c.txt") == {"proxy": "a/b/c.txt"}
    assert items.match("POST", "/v1/items/42") is None


def test_reserved_concurrency_limits_a_function_and_is_absent_by_default(tmp_path: Path) -> None:
    assert all(
        fn.reserved_concurrency is None
        for fn in read_api(StackTemplate.load(ROOT / "template.yaml", region="us-east-1"), []).functions.values()
    )
    text = (ROOT / "template.yaml").read_text()
    marker = "      Timeout: 29\n"
    assert marker in text
    custom = tmp_path / "template.yaml"
    custom.write_text(text.replace(marker, marker + "      ReservedConcurrentExecutions: 3\n", 1))
    for directory in ("functions", "layers", "static_site"):
        (tmp_path / directory).symlink_to(ROOT / directory)
    spec = read_api(StackTemplate.load(custom, region="us-east-1"), [])
    assert spec.functions["ChatFunction"].reserved_concurrency == 3
