"""Every bad request gets the right status and an OpenAI-style error body, and loses nothing."""

from __future__ import annotations

import json

import pytest

from tests.aws_env import http_event
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

OK_MESSAGES = [{"role": "user", "content": "What's the capital of France?"}]


def assert_openai_error(response: dict, status: int, code: str | None = None, mentions: str | None = None) -> dict:
    assert response["statusCode"] == status, response
    error = json.loads(response["body"])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code:
        assert error["code"] == code
    if mentions:
        assert mentions in error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions"),
    [
        ("{not json", 400, "invalid_json", "not valid JSON"),
        ("", 400, "invalid_json", "empty"),
        ("[1, 2]", 400, "invalid_json", "JSON object"),
        (json.dumps({"model": "smart-cheap-router"}), 400, "invalid_request", "messages"),
        (json.dumps({"model": "smart-cheap-router", "messages": []}), 400, "invalid_request", "messages"),
        (json.dumps({"model": "smart-cheap-router", "messages": "hello"}), 400, "invalid_request", "messages"),
        (json.dumps({"model": 42, "messages": OK_MESSAGES}), 400, "invalid_request", "model"),
        (
            json.dumps({"model": "smart-cheap-router", "messages": [{"role": "user", "content": "  "}]}),
            400,
            None,
            "no text",
        ),
        (
            json.dumps({"model": "smart-cheap-router", "messages": [{"role": "wizard", "content": "x"}]}),
            400,
            None,
            "role",
        ),
        (
            json.dumps({"model": "smart-cheap-router", "messages": OK_MESSAGES, "temperature": 9}),
            400,
            None,
            "temperature",
        ),
        (json.dumps({"model": "smart-cheap-router", "messages": OK_MESSAGES, "n": 129}), 400, None, "n"),
        (json.dumps({"model": "no-such-router", "messages": OK_MESSAGES}), 404, "model_not_found", "no-such-router"),
    ],
    ids=[
        "malformed-json",
        "empty-body",
        "not-an-object",
        "no-messages-field",
        "empty-messages",
        "messages-wrong-type",
        "model-wrong-type",
        "empty-content",
        "unknown-role",
        "temperature-out-of-range",
        "n-above-128",
        "unknown-router",
    ],
)
def test_bad_chat_bodies_are_rejected_clearly(
    stack: Stack, body: str, status: int, code: str | None, mentions: str
) -> None:
    assert_openai_error(stack.chat_request(body), status, code, mentions)
    assert stack.router_state()["counts"]["turns"] == 0


def test_a_five_megabyte_body_is_413(stack: Stack) -> None:
    big = json.dumps({"model": "smart-cheap-router", "messages": [{"role": "user", "content": "x" * 5_000_000}]})
    assert_openai_error(stack.chat_request(big), 413, "request_too_large", "limit")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer rk-wrong-key", "Bearer sk-not-ours"],
    ids=["missing", "empty", "basic-scheme", "empty-bearer", "unknown-key", "foreign-prefix"],
)
def test_missing_or_wrong_key_is_401(stack: Stack, authorization: str | None) -> None:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    body = json.dumps({"model": "smart-cheap-router", "messages": OK_MESSAGES})
    response = stack.call(stack.chat, http_event("POST", "/v1/chat/completions", body=body, headers=headers))
    assert_openai_error(response, 401, "invalid_api_key")
    models = stack.call(stack.chat, http_event("GET", "/v1/models", headers=headers))
    assert_openai_error(models, 401, "invalid_api_key")


def test_unknown_router_is_401_before_404_for_a_wrong_key(stack: Stack) -> None:
    body = {"model": "no-such-router", "messages": OK_MESSAGES}
    assert_openai_error(stack.chat_request(body, key="rk-not-a-real-key"), 401, "invalid_api_key")


def test_invalid_session_id_header_is_400(stack: Stack) -> None:
    response = stack.chat_request({"model": "smart-cheap-router", "messages": OK_MESSAGES}, session="../../etc/passwd")
    assert_openai_error(response, 400, mentions="session id")


def test_unsigned_state_call_is_403(stack: Stack) -> None:
    error = assert_openai_error(stack.state_request(signed=False), 403, "forbidden")
    assert error["type"] == "permission_error"


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ("{oops", 400, "JSON"),
        (json.dumps({"turn_id": "abc.0.x"}), 400, "exactly one"),
        (json.dumps({"turn_id": "abc.0.x", "rating": "up", "reward": 1}), 400, "exactly one"),
        (json.dumps({"turn_id": "abc.0.x", "rating": "meh"}), 400, "rating"),
        (json.dumps({"turn_id": "abc.0.x", "reward": 1.5}), 400, "reward"),
        (json.dumps({"turn_id": "not-a-turn", "rating": "up"}), 404, "turn"),
        (json.dumps({"turn_id": "abc.0.deadbeef", "rating": "up"}), 404, "turn"),
    ],
    ids=["malformed", "no-rating", "both", "bad-rating", "reward-out-of-range", "malformed-turn-id", "unknown-turn"],
)
def test_bad_feedback_is_rejected_clearly(stack: Stack, body: str, status: int, mentions: str) -> None:
    assert_openai_error(stack.feedback_request(body), status, mentions=mentions)


def test_feedback_with_wrong_key_is_401(stack: Stack) -> None:
    assert_openai_error(stack.feedback_request({"turn_id": "a.0.b", "rating": "up"}, key="rk-bogus"), 401)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "multipart/mixed"]
)
def test_a_json_body_sent_as_another_content_type_is_400_naming_it(stack: Stack, content_type: str) -> None:
    headers = {"authorization": f"Bearer {stack.api_key}", "content-type": content_type}
    body = json.dumps({"model": "smart-cheap-router", "messages": OK_MESSAGES})
    response = stack.call(stack.chat, http_event("POST", "/v1/chat/completions", body=body, headers=headers))
    assert_openai_error(response, 400, "invalid_json", "application/json")
    assert stack.router_state()["counts"]["turns"] == 0


def test_a_bad_body_is_400_before_the_key_is_checked(stack: Stack) -> None:
    assert_openai_error(stack.feedback_request({"turn_id": "a.0.b"}, key="rk-bogus"), 400, mentions="exactly one")
    response = stack.call(
        stack.chat,
        http_event("POST", "/v1/chat/completions", body="{oops", headers={"content-type": "application/json"}),
    )
    assert_openai_error(response, 400, "invalid_json")


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/feedback"])
def test_a_body_that_is_not_utf8_is_400_not_a_retry(stack: Stack, route: str) -> None:
    headers = {"authorization": f"Bearer {stack.api_key}", "content-type": "application/json"}
    event = http_event("POST", route, body=b'{"model": "\xff\xfe"}', headers=headers)
    module = stack.chat if route.endswith("completions") else stack.feedback
    assert_openai_error(stack.call(module, event), 400, code="invalid_json", mentions="UTF-8")


@pytest.mark.parametrize("route", ["chat", "feedback"])
def test_json_nested_a_thousand_levels_deep_is_400(stack: Stack, route: str) -> None:
    body = "[" * 1000 + "]" * 1000
    request = stack.chat_request if route == "chat" else stack.feedback_request
    assert_openai_error(request('{"x": ' + body + "}"), 400, code="invalid_json", mentions="nested")


@pytest.mark.parametrize(
    "turn_id",
    ["a.².b", "abc.٣.deadbeef", "abc.0.*", "abc.0.DEADBEEF", "abc.0.deadbee", "a b.0.deadbeef", "abc.1234567.deadbeef"],
    ids=["superscript-digit", "arabic-digit", "wildcard-nonce", "upper-hex", "short-nonce", "space", "long-index"],
)
def test_a_turn_id_not_shaped_as_issued_is_404(stack: Stack, turn_id: str) -> None:
    assert_openai_error(stack.feedback_request({"turn_id": turn_id, "rating": "up"}), 404, mentions="turn")
