"""call_with_fallback against real HTTP failures (tests/fake_upstream.py) and an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from router_core.config import GatewayConfig, ModelConfig, load_config
from router_core.providers import (
    ChatParams,
    Completion,
    Provider,
    UpstreamError,
    provider_for,
    read_footer,
    reset_providers,
)
from router_core.upstream import (
    MAX_BACKOFF_S,
    AllUpstreamsFailed,
    Attempt,
    call_with_fallback,
)

from tests.fake_upstream import Behaviour, FakeUpstream, unused_port

pytestmark = pytest.mark.integration

PARAMS = ChatParams(messages=[{"role": "user", "content": "Summarise the plot of Hamlet in one line."}])
ORDER = ("primary", "backup", "third")


def _config(
    base_url: str, *, timeout_s: float = 2.0, deadline_s: float = 20.0, primary_url: str | None = None
) -> GatewayConfig:
    def model(provider: str, upstream: str) -> dict[str, Any]:
        return {"provider": provider, "upstream_model": upstream, "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}

    providers: dict[str, Any] = {"fake": {"type": "openai_compatible", "base_url": base_url}}
    if primary_url is not None:
        providers["down"] = {"type": "openai_compatible", "base_url": primary_url}
    return GatewayConfig.model_validate(
        {
            "providers": providers,
            "models": {
                "primary": model("down" if primary_url else "fake", "m-primary"),
                "backup": model("fake", "m-backup"),
                "third": model("fake", "m-third"),
            },
            "routers": {"test-router": {"models": list(ORDER), "default_model": "primary"}},
            "upstream_timeout_seconds": timeout_s,
            "request_deadline_seconds": deadline_s,
        }
    )


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server
    reset_providers()


class Sleeps(list[float]):
    """Records requested pauses instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _outcomes(attempts: tuple[Attempt, ...]) -> list[tuple[str, str, int | None]]:
    return [(a.model, a.outcome, a.status) for a in attempts]


def test_a_failing_model_is_retried_once_then_the_next_model_answers(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(500), model="m-primary")
    upstream.set_behaviour(Behaviour.ok("Prince avenges father; nearly everyone dies."), model="m-backup")
    sleeps = Sleeps()
    result = call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=sleeps)
    assert result.model == "backup"
    assert result.completion.text == "Prince avenges father; nearly everyone dies."
    assert _outcomes(result.attempts) == [
        ("primary", "server_error", 500),
        ("primary", "server_error", 500),
        ("backup", "ok", None),
    ]
    assert all(a.elapsed_ms >= 0 for a in result.attempts)
    assert (upstream.count("m-primary"), upstream.count("m-backup"), upstream.count("m-third")) == (2, 1, 0)
    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= MAX_BACKOFF_S


def test_a_retry_that_succeeds_keeps_the_first_choice(upstream: FakeUpstream) -> None:
    upstream.script(Behaviour.malformed(), model="m-primary")
    result = call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=Sleeps())
    assert result.model == "primary"
    assert _outcomes(result.attempts) == [("primary", "bad_response", 200), ("primary", "ok", None)]


def test_retry_after_up_to_one_second_is_honoured_before_the_retry(upstream: FakeUpstream) -> None:
    upstream.script(Behaviour.rate_limited("0.5"), model="m-primary")
    sleeps = Sleeps()
    result = call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=sleeps)
    assert result.model == "primary"
    assert sleeps == [0.5]
    assert _outcomes(result.attempts) == [("primary", "rate_limited", 429), ("primary", "ok", None)]


def test_a_long_retry_after_falls_back_at_once_when_another_model_remains(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.rate_limited("30"), model="m-primary")
    sleeps = Sleeps()
    result = call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=sleeps)
    assert result.model == "backup"
    assert sleeps == []
    assert _outcomes(result.attempts) == [("primary", "rate_limited", 429), ("backup", "ok", None)]


def test_a_long_retry_after_on_the_last_model_waits_at_most_one_second(upstream: FakeUpstream) -> None:
    upstream.script(Behaviour.rate_limited("30"), model="m-primary")
    sleeps = Sleeps()
    result = call_with_fallback(["primary"], PARAMS, _config(upstream.base_url), sleep=sleeps)
    assert result.model == "primary"
    assert sleeps == [1.0]


def test_a_400_is_never_retried_nor_sent_to_another_model(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(400, "messages[0].content must not be empty"), model="m-primary")
    with pytest.raises(UpstreamError) as caught:
        call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=Sleeps())
    err = caught.value
    assert (err.kind, err.status, err.invalid_request) == ("client_error", 400, True)
    assert str(err) == "messages[0].content must not be empty"
    assert _outcomes(err.attempts) == [("primary", "client_error", 400)]
    assert upstream.count() == 1


def test_a_model_specific_client_error_falls_back_without_a_retry(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.error(404, "The model `m-primary` does not exist"), model="m-primary")
    sleeps = Sleeps()
    result = call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=sleeps)
    assert result.model == "backup"
    assert _outcomes(result.attempts) == [("primary", "client_error", 404), ("backup", "ok", None)]
    assert sleeps == []


def test_connection_failures_fall_back_to_a_model_on_another_provider(upstream: FakeUpstream) -> None:
    config = _config(upstream.base_url, primary_url=f"http://127.0.0.1:{unused_port()}/v1")
    result = call_with_fallback(ORDER, PARAMS, config, sleep=Sleeps())
    assert result.model == "backup"
    assert _outcomes(result.attempts) == [
        ("primary", "unavailable", None),
        ("primary", "unavailable", None),
        ("backup", "ok", None),
    ]


def test_every_model_failing_raises_502_with_every_attempt(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(503))
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), sleep=Sleeps())
    assert caught.value.status == 502
    assert _outcomes(caught.value.attempts) == [(m, "server_error", 503) for m in ORDER for _ in range(2)]
    assert upstream.count() == 6


def test_max_models_bounds_the_fallback_chain(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.close())
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(ORDER, PARAMS, _config(upstream.base_url), max_models=2, sleep=Sleeps())
    assert {a.model for a in caught.value.attempts} == {"primary", "backup"}
    assert caught.value.status == 502
    assert upstream.count("m-third") == 0


def test_timeouts_everywhere_raise_504_and_a_timed_out_model_is_retried_only_when_it_is_the_last(
    upstream: FakeUpstream,
) -> None:
    upstream.set_behaviour(Behaviour.slow(5.0))
    config = _config(upstream.base_url, timeout_s=0.25, deadline_s=10.0)
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(ORDER, PARAMS, config, sleep=Sleeps())
    assert caught.value.status == 504
    assert _outcomes(caught.value.attempts) == [
        ("primary", "timeout", None),
        ("backup", "timeout", None),
        ("third", "timeout", None),
        ("third", "timeout", None),
    ]


def test_the_status_follows_the_last_failure(upstream: FakeUpstream) -> None:
    upstream.set_behaviour(Behaviour.server_error(500), model="m-primary")
    upstream.set_behaviour(Behaviour.slow(5.0), model="m-backup")
    config = _config(upstream.base_url, timeout_s=0.25)
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(["primary", "backup"], PARAMS, config, sleep=Sleeps())
    assert caught.value.status == 504
    upstream.set_behaviour(Behaviour.slow(5.0), model="m-primary")
    upstream.set_behaviour(Behaviour.server_error(500), model="m-backup")
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(["primary", "backup"], PARAMS, config, sleep=Sleeps())
    assert caught.value.status == 502


@dataclass
class FakeClock:
    """Seconds that pass only when a fake provider works or the fallback logic sleeps."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedProvider:
    """A provider that spends fake time and fails (or answers) as told; records each timeout."""

    clock: FakeClock
    spend_s: float | None  # None: spend the whole timeout
    error: UpstreamError | None
    timeouts: list[tuple[str, float]] = field(default_factory=list)

    def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
        self.timeouts.append((model.upstream_model, timeout_s))
        self.clock.now += timeout_s if self.spend_s is None else min(self.spend_s, timeout_s)
        if self.error is not None:
            raise self.error
        return Completion("fine", 3, 1, "stop", model.upstream_model, 1.0)


def _lookup(provider: ScriptedProvider) -> Any:
    def lookup(name: str, config: GatewayConfig) -> Provider:
        return provider

    return lookup


def test_attempt_timeouts_shrink_to_the_time_left_and_nothing_starts_past_the_deadline() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(clock, spend_s=None, error=UpstreamError("timeout", "too slow"))
    config = _config("http://127.0.0.1:9/v1", timeout_s=3.0, deadline_s=5.0)
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(ORDER, PARAMS, config, clock=clock, sleep=clock.sleep, providers=_lookup(provider))
    assert provider.timeouts == [("m-primary", 3.0), ("m-backup", 2.0)]
    assert caught.value.status == 504
    assert clock.now == pytest.approx(1005.0)
    assert "deadline" in str(caught.value)


def test_a_retry_is_skipped_when_its_pause_would_leave_too_little_time() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(clock, spend_s=0.9, error=UpstreamError("server_error", "boom", status=500))
    config = _config("http://127.0.0.1:9/v1", timeout_s=3.0, deadline_s=2.0)
    with pytest.raises(AllUpstreamsFailed) as caught:
        call_with_fallback(
            ORDER, PARAMS, config, clock=clock, sleep=clock.sleep, providers=_lookup(provider), jitter=lambda: 1.0
        )
    # primary at t=0 (2 s left), no retry (0.85 s would be left after the 0.25 s pause),
    # backup with the 1.1 s left, then nothing fits: the deadline ended the request.
    assert [m for m, _ in provider.timeouts] == ["m-primary", "m-backup"]
    assert provider.timeouts[1][1] == pytest.approx(1.1)
    assert caught.value.status == 504


def test_an_explicit_deadline_overrides_the_configured_one() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(clock, spend_s=0.1, error=None)
    config = _config("http://127.0.0.1:9/v1", timeout_s=8.0, deadline_s=20.0)
    result = call_with_fallback(ORDER, PARAMS, config, deadline_s=4.5, clock=clock, providers=_lookup(provider))
    assert result.model == "primary"
    assert provider.timeouts == [("m-primary", 4.5)]
    assert result.attempts[0].elapsed_ms == pytest.approx(100.0)


def test_a_provider_defect_is_reported_and_the_next_model_answers(upstream: FakeUpstream) -> None:
    class Broken:
        def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
            raise KeyError("choices")

    def lookup(name: str, config: GatewayConfig) -> Provider:
        return Broken() if name == "down" else provider_for(name, config)

    config = _config(upstream.base_url, primary_url="http://127.0.0.1:9/v1")
    result = call_with_fallback(ORDER, PARAMS, config, providers=lookup, sleep=Sleeps())
    assert result.model == "backup"
    assert _outcomes(result.attempts) == [("primary", "unavailable", None), ("backup", "ok", None)]


def test_an_empty_or_unknown_order_is_a_programming_error() -> None:
    config = _config("http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="no model"):
        call_with_fallback([], PARAMS, config)
    with pytest.raises(ValueError, match="unknown"):
        call_with_fallback(["primary", "nope"], PARAMS, config)


def test_the_shipped_simulated_models_answer_through_the_fallback_path() -> None:
    config = load_config()
    params = ChatParams(
        messages=[{"role": "user", "content": "write a function to merge sorted lists"}],
        request_type="code_generation",
        seed=11,
    )
    result = call_with_fallback(["smart", "fast"], params, config)
    assert result.model == "smart"
    assert _outcomes(result.attempts) == [("smart", "ok", None)]
    assert read_footer(result.completion.text) is not None
