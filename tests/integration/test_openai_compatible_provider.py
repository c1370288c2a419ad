"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1 (tests/fake_upstream.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import boto3
import pytest
from moto import mock_aws
from router_core.config import ModelConfig, OpenAICompatibleProviderConfig
from router_core.providers import ChatParams, OpenAICompatibleProvider, UpstreamError
from router_core.providers.openai_compatible import retry_after_seconds

from tests.fake_upstream import Behaviour, FakeUpstream, unused_port

pytestmark = pytest.mark.integration

MODEL = ModelConfig(provider="openai", upstream_model="gpt-test-mini", input_usd_per_mtok=0.15, output_usd_per_mtok=0.6)
PARAMS = ChatParams(
    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is the capital of France?"}],
    temperature=0.2,
    max_tokens=64,
)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def _provider(base_url: str, **key: str) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        "openai", OpenAICompatibleProviderConfig(type="openai_compatible", base_url=base_url, **key)
    )


def _error(provider: OpenAICompatibleProvider, timeout_s: float = 2.0) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        provider.complete(MODEL, PARAMS, timeout_s)
    return caught.value


def test_a_successful_call_sends_the_openai_body_and_parses_text_usage_and_finish(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.ok("Paris."))
    provider = _provider(upstream.base_url)
    completion = provider.complete(MODEL, PARAMS, 2.0)
    assert completion.text == "Paris."
    assert completion.finish_reason == "stop"
    assert completion.upstream_model == "gpt-test-mini"
    assert completion.usage_estimated is False
    assert (completion.input_tokens, completion.output_tokens) == (
        max(1, len("be briefWhat is the capital of France?") // 4),
        1,
    )
    assert completion.latency_ms > 0
    (request,) = upstream.requests
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "gpt-test-mini",
        "messages": PARAMS.messages,
        "stream": False,
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert "authorization" not in request.headers  # no key configured: Ollama / vLLM style


def test_unset_temperature_and_max_tokens_are_not_sent(upstream: FakeUpstream) -> None:
    _provider(upstream.base_url).complete(MODEL, ChatParams(messages=[{"role": "user", "content": "hi"}]), 2.0)
    assert set(upstream.requests[0].body) == {"model", "messages", "stream"}


def test_missing_usage_is_estimated_and_flagged(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.ok("x" * 30, usage=False))
    completion = _provider(upstream.base_url).complete(MODEL, PARAMS, 2.0)
    assert completion.usage_estimated is True
    assert completion.output_tokens == math.ceil(30 / 4)
    assert completion.input_tokens == math.ceil(len("be brief\nWhat is the capital of France?") / 4)


def test_connections_are_pooled_across_calls(upstream: FakeUpstream) -> None:
    provider = _provider(upstream.base_url)
    for _ in range(3):
        provider.complete(MODEL, PARAMS, 2.0)
    assert len({r.client_port for r in upstream.requests}) == 1


def test_a_slow_upstream_times_out(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.slow(3.0))
    err = _error(_provider(upstream.base_url), timeout_s=0.3)
    assert (err.kind, err.retryable, err.status) == ("timeout", True, None)


def test_a_500_is_a_retryable_server_error(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(500))
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.status, err.retryable, err.invalid_request) == ("server_error", 500, True, False)


def test_a_429_is_rate_limited_with_its_retry_after(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.rate_limited("2"))
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.status, err.retryable, err.retry_after_s) == ("rate_limited", 429, True, 2.0)


def test_a_429_retry_after_may_be_an_http_date(upstream: FakeUpstream) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    upstream.set_behaviour(Behaviour.rate_limited(format_datetime(when, usegmt=True)))
    err = _error(_provider(upstream.base_url))
    assert err.retry_after_s is not None
    assert 25.0 <= err.retry_after_s <= 31.0


def test_retry_after_ms_wins_over_retry_after_and_garbage_is_ignored() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_malformed_json_is_a_bad_response(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.malformed())
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.retryable) == ("bad_response", True)


def test_an_answer_without_choices_is_a_bad_response(upstream: FakeUpstream) -> None:
    # A 200 whose JSON lacks the fields we need: the error body shape stands in for one.
    upstream.set_behaviour(Behaviour.error(200, "not a completion"))
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.status) == ("bad_response", 200)


def test_a_closed_connection_is_unavailable(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.close())
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.retryable) == ("unavailable", True)


def test_connection_refused_is_unavailable() -> None:
    err = _error(_provider(f"http://127.0.0.1:{unused_port()}/v1"))
    assert (err.kind, err.retryable, err.status) == ("unavailable", True, None)


def test_a_400_is_an_invalid_request_carrying_the_upstreams_message(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(400, "Invalid value for 'temperature': must be <= 2."))
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.status, err.retryable, err.invalid_request) == ("client_error", 400, False, True)
    assert str(err) == "Invalid value for 'temperature': must be <= 2."


def test_a_context_length_400_is_model_specific(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(
        Behaviour.error(400, "This model's maximum context length is 8192 tokens.", code="context_length_exceeded")
    )
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.invalid_request, err.retryable) == ("context_length", False, False)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_not_found_errors_are_model_specific_client_errors(upstream: FakeUpstream, status: int) -> None:
    upstream.set_behaviour(Behaviour.error(status, "nope"))
    err = _error(_provider(upstream.base_url))
    assert (err.kind, err.status, err.retryable, err.invalid_request) == ("client_error", status, False, False)


def test_a_408_is_a_timeout(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(408, "request timeout"))
    assert _error(_provider(upstream.base_url)).kind == "timeout"


def test_the_key_from_an_environment_variable_is_sent_as_bearer(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "sk-local-123")
    upstream.api_key = "sk-local-123"
    completion = _provider(upstream.base_url, api_key_env="FAKE_UPSTREAM_KEY").complete(MODEL, PARAMS, 2.0)
    assert completion.text
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-local-123"


def test_a_configured_but_unset_key_variable_is_unavailable_and_nothing_is_sent(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_UPSTREAM_KEY", raising=False)
    err = _error(_provider(upstream.base_url, api_key_env="FAKE_UPSTREAM_KEY"))
    assert err.kind == "unavailable"
    assert "FAKE_UPSTREAM_KEY" in str(err)
    assert upstream.requests == []


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def test_the_key_from_secrets_manager_is_sent_and_cached(
    upstream: FakeUpstream, aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The secret lives in another region than the function: the ARN's region is used.
    secrets = boto3.client("secretsmanager", region_name="us-west-2")
    arn = secrets.create_secret(Name="router/openai", SecretString="sk-from-secrets")["ARN"]
    upstream.api_key = "sk-from-secrets"
    provider = _provider(upstream.base_url, api_key_secret_arn=arn)
    provider.complete(MODEL, PARAMS, 2.0)
    secrets.put_secret_value(SecretId=arn, SecretString="sk-changed")  # cached copy still used
    provider.complete(MODEL, PARAMS, 2.0)
    assert [r.headers["authorization"] for r in upstream.requests] == ["Bearer sk-from-secrets"] * 2
    assert "sk-from-secrets" not in caplog.text


def test_a_rotated_secret_is_reread_once_after_a_401(upstream: FakeUpstream, aws: None) -> None:
    secrets = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = secrets.create_secret(Name="router/openai", SecretString=json.dumps({"api_key": "sk-old"}))["ARN"]
    provider = _provider(upstream.base_url, api_key_secret_arn=arn)
    upstream.api_key = "sk-old"
    provider.complete(MODEL, PARAMS, 2.0)
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_key": "sk-new"}))
    upstream.api_key = "sk-new"
    completion = provider.complete(MODEL, PARAMS, 2.0)
    assert completion.text
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer sk-old",
        "Bearer sk-old",
        "Bearer sk-new",
    ]


def test_a_missing_secret_is_unavailable_without_calling_the_upstream(upstream: FakeUpstream, aws: None) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:router/missing-AbCdEf"
    err = _error(_provider(upstream.base_url, api_key_secret_arn=arn))
    assert err.kind == "unavailable"
    assert "Secrets Manager" in str(err)
    assert upstream.requests == []


def test_the_key_from_an_ssm_secure_string_is_sent(upstream: FakeUpstream, aws: None) -> None:
    boto3.client("ssm", region_name="eu-west-1").put_parameter(
        Name="/router/openai-key", Value="sk-from-ssm", Type="SecureString"
    )
    upstream.api_key = "sk-from-ssm"
    _provider(upstream.base_url, api_key_ssm_parameter="/router/openai-key").complete(MODEL, PARAMS, 2.0)
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-from-ssm"
