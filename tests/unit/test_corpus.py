"""The traffic corpus says what it means to the router's real classifier and signal detector.

Every labelled prompt is classified into its label as the last message of a session's opening
conversation; every satisfaction follow-up reads as satisfaction AND keeps the labelled type when
it is the last message of the conversation; complaints read as negative; neutral follow-ups read
as nothing. The evaluation cases are classified into their labels too.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from router_core.classifier import classify
from router_core.config import REQUEST_TYPES
from router_core.signals import detect_feedback

from tools.corpus import (
    NEGATIVE,
    NEUTRAL,
    PROMPTS,
    SATISFIED,
    SATISFIED_CONTINUATIONS,
    WARM_UPS,
    follow_up,
    opening_messages,
)
from tools.eval import DEFAULT_CASES, load_cases

pytestmark = pytest.mark.unit

LABELLED = [(t, p) for t, prompts in PROMPTS.items() for p in prompts]
ANSWER = "Here is what you asked for, step by step.\n\n[simulated answer by fast: satisfies the request]"


def _session(prompt: str, warm_up: tuple[str, str, str, str], follow: str | None = None) -> list[dict[str, Any]]:
    u1, a1, u2, a2 = warm_up
    messages = [
        {"role": "user", "content": u1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": u2},
        {"role": "assistant", "content": a2},
        {"role": "user", "content": prompt},
    ]
    if follow is not None:
        messages += [{"role": "assistant", "content": ANSWER}, {"role": "user", "content": follow}]
    return messages


def test_every_request_type_has_several_prompts() -> None:
    assert set(PROMPTS) == set(REQUEST_TYPES)
    for request_type, prompts in PROMPTS.items():
        assert len(prompts) >= 5, request_type
        assert len(set(prompts)) == len(prompts), request_type


@pytest.mark.parametrize(("label", "prompt"), LABELLED)
def test_labelled_prompt_is_classified_into_its_label_after_every_warm_up(label: str, prompt: str) -> None:
    for warm_up in WARM_UPS:
        got = classify(_session(prompt, warm_up))
        assert got.request_type == label, (prompt, warm_up[0], got)
        assert not got.inherited


def test_opening_conversation_passes_the_signal_gate_in_one_request() -> None:
    messages = opening_messages("What is the capital of Australia?", random.Random(3))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "What is the capital of Australia?"


def _satisfaction_follow_ups(label: str) -> list[str]:
    return [*SATISFIED_CONTINUATIONS.get(label, ()), *SATISFIED]


@pytest.mark.parametrize(("label", "prompt"), LABELLED)
def test_satisfaction_follow_up_reads_as_satisfaction_and_keeps_the_labelled_type(label: str, prompt: str) -> None:
    for follow in _satisfaction_follow_ups(label):
        signal = detect_feedback(follow, prompt)
        assert signal is not None and signal.kind == "satisfaction" and signal.reward == 1.0, (follow, signal)
        got = classify(_session(prompt, WARM_UPS[0], follow))
        assert got.request_type == label, (prompt, follow, got)


@pytest.mark.parametrize(("label", "prompt"), LABELLED)
def test_negative_follow_up_reads_as_negative_and_keeps_the_labelled_type(label: str, prompt: str) -> None:
    for follow in NEGATIVE:
        signal = detect_feedback(follow, prompt)
        assert signal is not None and signal.kind != "satisfaction" and signal.reward < 0.5, (follow, signal)
        assert classify(_session(prompt, WARM_UPS[1], follow)).request_type == label, (prompt, follow)


@pytest.mark.parametrize(("label", "prompt"), LABELLED)
def test_neutral_follow_up_reads_as_no_signal_and_keeps_the_labelled_type(label: str, prompt: str) -> None:
    for follow in NEUTRAL:
        assert detect_feedback(follow, prompt) is None, follow
        assert classify(_session(prompt, WARM_UPS[2], follow)).request_type == label, (prompt, follow)


def test_follow_up_kind_picks_from_the_matching_family() -> None:
    rng = random.Random(11)
    for label in PROMPTS:
        for _ in range(20):
            assert follow_up("satisfaction", label, rng) in _satisfaction_follow_ups(label)
            assert follow_up("negative", label, rng) in NEGATIVE
            assert follow_up("neutral", label, rng) in NEUTRAL


def test_satisfaction_follow_ups_use_both_praise_alone_and_same_type_continuations() -> None:
    rng = random.Random(5)
    drawn = {follow_up("satisfaction", "code_generation", rng) for _ in range(200)}
    assert drawn & set(SATISFIED) and drawn & set(SATISFIED_CONTINUATIONS["code_generation"])


def test_evaluation_cases_are_classified_into_their_labels() -> None:
    cases = load_cases(DEFAULT_CASES)
    assert {c.request_type for c in cases} == set(REQUEST_TYPES)
    for case in cases:
        got = classify(opening_messages(case.prompt, random.Random(case.id)))
        assert got.request_type == case.request_type, (case.id, got)


def test_the_traffic_tools_default_oracle_is_the_simulated_models_table() -> None:
    # One table: the simulated models answer from it and the traffic tool rolls its dice from it.
    from router_core.config import SimulatedProviderConfig, load_config

    from tools.traffic import load_oracle

    simulated = next(p for p in load_config().providers.values() if isinstance(p, SimulatedProviderConfig))
    oracle = load_oracle(None)
    assert {t: dict(row) for t, row in oracle.table.items()} == simulated.oracle
    assert oracle.default_quality == simulated.default_quality
