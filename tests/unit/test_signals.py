"""Implicit feedback signals, the signal gate and explicit rewards."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from router_core.signals import (
    REWARDS,
    Signal,
    content_words,
    conversation_length,
    detect_feedback,
    gate_passed,
    is_retry,
    leading_feedback_end,
    strip_code,
)

pytestmark = pytest.mark.unit

# The demo traffic's satisfaction follow-ups (and its evaluator's) must read as satisfaction.
DEMO_SATISFACTION = [
    "thanks, that works! now write me a python function that does the inverse",
    "perfect, thanks! who is the current prime minister?",
    "great, thanks! now write a follow-up email confirming attendance",
    "great, thanks!",
]

SATISFACTION = [
    *DEMO_SATISFACTION,
    "thanks!",
    "Thank you so much!",
    "thank you, that fixed it",
    "Thanks a lot, that was really helpful.",
    "thx",
    "ty!",
    "cheers, that did the trick",
    "Much appreciated.",
    "I appreciate it!",
    "perfect",
    "Perfect!!",
    "Great, now can you add tests?",
    "Awesome, thanks",
    "excellent answer",
    "Nice, that's exactly what I needed",
    "Exactly what I was looking for, thanks!",
    "that's it!",
    "That's right, thank you",
    "This is perfect.",
    "Very helpful, thanks!",
    "Looks good to me",
    "LGTM",
    "spot on",
    "You nailed it.",
    "Well done!",
    "Love it!",
    "that worked",
    "It works!",
    "works now, thanks",
    "Works like a charm 🎉",
    "That fixed it.",
    "That did the trick!",
    "it's working now",
    "Problem solved, thanks!",
    "All tests pass now!",
    "Fixed!",
    "ok great, thanks",
    "Oh wow, that's perfect",
    "Yes! That works.",
    "Thank you for the quick fix! Can you also explain why it happened?",
    "thanks for the help — now, what's the capital of Peru?",
    "Perfect, thanks! One more thing: how do I deploy it?",
    "great it works",
    "That’s perfect, thanks",
    "I tried it and it works!",
    "i tried your code, works perfectly",
]

DISSATISFACTION = [
    "that's wrong",
    "That is wrong.",
    "This is incorrect",
    "wrong",
    "Wrong!",
    "incorrect.",
    "that's not right",
    "It's not correct, the capital is Canberra",
    "doesn't work",
    "It doesn't work.",
    "this does not work for negative numbers",
    "Didn't work, same error",
    "still failing",
    "Still broken.",
    "still getting the same error",
    "It still doesn't compile",
    "it still throws a KeyError",
    "the code returns the wrong result",
    "Same error.",
    "Same problem as before",
    "not what I asked",
    "That's not what I asked for.",
    "This isn't what I wanted",
    "you misunderstood me",
    "You didn't answer my question",
    "You're wrong",
    "you made that up",
    "forget it",
    "I give up, I'll do it myself",
    "thanks for nothing",
    "This isn't helping.",
    "that doesn't make sense",
    "That makes no sense",
    "no, that's wrong",
    "Nope, still broken",
    "Hmm, that's not right",
    "Unfortunately it still doesn't work",
    "I tried your code and it still throws an error",
    "I ran it and it crashes",
    "not working",
    "useless",
    "nice try",
    "That’s wrong",
]

MIXED_NEGATIVE = [
    "thanks, but that's still wrong",
    "Thanks! But it still doesn't work.",
    "great, but it crashes on empty input",
    "Perfect... except it doesn't compile",
    "thank you, however that is not what I asked",
    "nice, but still failing",
    "Thanks. Still getting the same error though.",
    "great, it still doesn't work",
]

CORRECTION = [
    "no, I meant in Python",
    "No, I mean the other function",
    "I meant the Java version",
    "sorry, I meant 2023 not 2024",
    "That's not what I meant",
    "not quite, I need it sorted descending",
    "Close, but it should return a list",
    "Actually, the capital is Canberra",
    "actually I need it in TypeScript",
    "No, use pandas instead",
    "no, it should handle empty lists too",
    "it should return 6, not 0",
    "To clarify: I want the sum, not the product",
    "let me rephrase: how do I reverse a linked list?",
    "I was asking about the second option",
    "thanks, but I meant the other one",
    "The function should return None for empty input",
]

EXPLICIT_RETRY = [
    "try again",
    "Try again please",
    "please try again",
    "retry",
    "Regenerate",
    "one more time",
    "again, please",
    "give it another shot",
    "try again, but in Rust",
]

# Ordinary follow-ups and requests: neither praise nor complaint.
NO_SIGNAL = [
    "ok, noted",
    "ok continue",
    "ok",
    "now make it handle dicts",
    "Now write a test for it",
    "Can you also add logging?",
    "What about negative numbers?",
    "Write a great intro for my blog",
    "Write a great README for this project",
    "How do I stop a docker container?",
    "Stop words in NLP: what are they?",
    "Great Wall of China — how long is it?",
    "Perfect squares under 100?",
    "Nice to meet you. What's the weather like on Mars?",
    "Good morning! What should I cook today?",
    "Thanks in advance! Can you write a poem?",
    "Thank you letter for my teacher please",
    "thank you note for a colleague",
    "Explain why my code doesn't work",
    "Why doesn't this work?",
    "Write a function that doesn't crash on empty input",
    "It's bad practice to use globals, right?",
    "it works on my machine but not in prod",
    "Retry logic for my HTTP client?",
    "Not right now, thanks",
    "No thanks",
    "no problem!",
    "no",
    "nope",
    "yes",
    "cool",
    "Actually, can you also add tests?",
    "Nope, I'm good",
    "No, that's all",
    "Actually, I figured it out",
    "Actually, that's all I needed",
    "actually, how does it scale?",
    "Isn't Python slower than C?",
    "Doesn't matter, use whatever you like",
    "thanks, but can you make it shorter?",
    "Great question: what's the best database for this?",
    "Wrong answers on my quiz: how should I grade them?",
    "I mean, it's fine, but could it be faster?",
    "`thanks`",
    "```\nprint('thanks')\n```",
    '"thanks" is what the button should say',
    "> thanks, that works\nwhat did you mean by this?",
    "print('perfect')",
    "",
    "   ",
]


SIGNAL_KINDS = [
    *((text, "satisfaction") for text in SATISFACTION),
    *((text, "dissatisfaction") for text in DISSATISFACTION + MIXED_NEGATIVE),
    *((text, "correction") for text in CORRECTION),
    *((text, "retry") for text in EXPLICIT_RETRY),
]


@pytest.mark.parametrize(("text", "kind"), SIGNAL_KINDS)
def test_follow_up_reads_as_its_signal_kind_with_that_kinds_reward(text: str, kind: str) -> None:
    signal = detect_feedback(text)
    assert signal is not None and (signal.kind, signal.reward) == (kind, REWARDS[kind]), signal


@pytest.mark.parametrize("text", DEMO_SATISFACTION)
def test_demo_traffic_satisfaction_follow_ups_read_as_satisfaction(text: str) -> None:
    # In the demo the follow-up answers a turn whose user message was "ok, noted".
    signal = detect_feedback(text, previous_user="ok, noted")
    assert signal is not None and (signal.kind, signal.reward) == ("satisfaction", 1.0)


@pytest.mark.parametrize("text", MIXED_NEGATIVE)
def test_complaint_after_praise_wins(text: str) -> None:
    assert detect_feedback(text) == Signal("dissatisfaction", 0.0, "dissatisfaction:praise-then-complaint")


@pytest.mark.parametrize("text", NO_SIGNAL)
def test_ordinary_follow_ups_and_requests_carry_no_signal(text: str) -> None:
    assert detect_feedback(text) is None


@pytest.mark.parametrize(
    ("previous", "follow_up"),
    [
        ("Write a Python function that flattens a nested list", "write a python function to flatten a nested list"),
        ("Write a Python function that flattens a nested list", "Write a Python function that flattens a nested list"),
        ("What is the capital of Australia?", "what's the capital of australia??"),
        ("What is the capital of Australia?", "Please answer: what is the capital of Australia"),
        ("Draft an email declining the meeting", "draft an email declining the meeting, please"),
        (
            "Explain how Thompson sampling works",
            "Explain how Thompson sampling works again",
        ),
        (
            "Write a Python function that flattens a nested list",
            "Write a Python function that flattens a deeply nested list",
        ),
    ],
)
def test_near_verbatim_re_ask_is_a_retry(previous: str, follow_up: str) -> None:
    signal = detect_feedback(follow_up, previous_user=previous)
    assert signal == Signal("retry", 0.0, "retry:repeated-request")


@pytest.mark.parametrize(
    ("previous", "follow_up"),
    [
        ("Write a Python function that flattens a nested list", "now make it handle dicts"),
        (
            "Write a Python function that flattens a nested list",
            "Write a Python function that flattens a nested list of arbitrary depth using recursion and type hints",
        ),
        ("Write a Python function that flattens a nested list", "Write a Rust function that sorts a vector"),
        ("What is the capital of Australia?", "What is the capital of Austria?"),
        ("What is the capital of Australia?", "And its population?"),
        ("ok, noted", "ok, noted"),
        ("thanks!", "thanks!"),
        ("Draft an email declining the meeting", "Draft a LinkedIn post announcing the meeting"),
    ],
)
def test_revisions_and_normal_follow_ups_are_not_retries(previous: str, follow_up: str) -> None:
    signal = detect_feedback(follow_up, previous_user=previous)
    assert signal is None or signal.kind != "retry"
    assert not is_retry(follow_up, previous)


def test_praise_repeated_twice_is_still_satisfaction_not_a_retry() -> None:
    assert detect_feedback("thanks, that works!", previous_user="thanks, that works!") == Signal(
        "satisfaction", 1.0, "satisfaction:success"
    )


def test_hedged_praise_gives_no_signal() -> None:
    assert detect_feedback("thanks, but could you make it shorter?") is None
    assert detect_feedback("Great, however I'd like a version in Go") is None


def test_praise_then_clarification_is_a_correction() -> None:
    assert detect_feedback("thanks, but I meant the other one") == Signal(
        "correction", REWARDS["correction"], "correction:praise-then-clarification"
    )


def test_praise_and_complaint_words_inside_a_request_are_read_the_same_way() -> None:
    # Symmetry: neither kind of word counts when it is part of a request rather than about the answer.
    assert detect_feedback("Write a great intro for my blog") is None
    assert detect_feedback("Write an intro that doesn't sound wrong for my blog") is None
    assert detect_feedback("Explain why my code doesn't work") is None
    assert detect_feedback("Explain why the perfect hash works") is None


def test_feedback_in_code_or_quotes_is_ignored_but_feedback_after_code_counts() -> None:
    assert detect_feedback("```python\nprint('thanks, that works!')\n```") is None
    assert detect_feedback("`great`") is None
    assert detect_feedback("'thanks' is the label on the button") is None
    assert detect_feedback("thanks! ```python\nx = 1\n```") == Signal("satisfaction", 1.0, "satisfaction:gratitude")


@pytest.mark.parametrize(
    ("rule_text", "rule"),
    [
        ("thanks!", "satisfaction:gratitude"),
        ("perfect!", "satisfaction:approval"),
        ("thanks, that works!", "satisfaction:success"),
        ("that's wrong", "dissatisfaction:wrong"),
        ("still failing", "dissatisfaction:not-working"),
        ("you misunderstood", "dissatisfaction:misunderstood"),
        ("forget it", "dissatisfaction:gave-up"),
        ("no, I meant in Python", "correction:clarification"),
        ("No, use pandas instead", "correction:no-redirect"),
        ("actually, it's 1945", "correction:actually"),
        ("try again", "retry:asked-again"),
    ],
)
def test_rule_names_the_pattern_family(rule_text: str, rule: str) -> None:
    signal = detect_feedback(rule_text)
    assert signal is not None and signal.rule == rule


def test_reward_mapping_is_the_documented_one() -> None:
    assert REWARDS == {"satisfaction": 1.0, "dissatisfaction": 0.0, "correction": 0.25, "retry": 0.0}


def test_positive_and_negative_evidence_have_the_same_number_of_families() -> None:
    positive = {detect_feedback(t).rule for t in SATISFACTION}  # type: ignore[union-attr]
    negative_explicit = {detect_feedback(t).rule for t in DISSATISFACTION}  # type: ignore[union-attr]
    assert positive == {"satisfaction:gratitude", "satisfaction:approval", "satisfaction:success"}
    assert negative_explicit >= {
        "dissatisfaction:wrong",
        "dissatisfaction:not-working",
        "dissatisfaction:misunderstood",
    }


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("thanks, that works! now write me a python function", "now write me a python function"),
        ("perfect, thanks! who is the current prime minister?", "who is the current prime minister?"),
        ("no, I meant in Python", " in Python"),
        ("thanks, but can you make it shorter?", "can you make it shorter?"),
        ("that doesn't work for negative numbers", " for negative numbers"),
        ("try again, but in Rust", "in Rust"),
        ("What is the capital of France?", "What is the capital of France?"),
        ("Great Wall of China", "Great Wall of China"),
    ],
)
def test_leading_feedback_end_marks_where_the_request_starts(text: str, rest: str) -> None:
    assert text[leading_feedback_end(text) :] == rest


def test_strip_code_removes_code_and_quotes_but_keeps_contractions() -> None:
    stripped = strip_code("it's `x = 1` and \"quoted\" and 'single'\n```py\nthanks\n```\n> quoted reply\ndon't")
    assert "x = 1" not in stripped and "quoted" not in stripped and "single" not in stripped
    assert "thanks" not in stripped and "quoted reply" not in stripped
    assert stripped.startswith("it's") and stripped.endswith("don't")


def test_content_words_drop_stop_words_and_stem_lightly() -> None:
    assert content_words("Could you please write a Python function that flattens nested lists?") == {
        "write",
        "python",
        "function",
        "flatten",
        "nest",
        "list",
    }


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], 0),
        ([{"role": "system", "content": "be brief"}], 0),
        ([{"role": "user", "content": "hi"}], 1),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
                {"role": "tool", "content": "t"},
                {"role": "developer", "content": "d"},
                {"role": "user", "content": "u2"},
            ],
            3,
        ),
    ],
)
def test_conversation_length_counts_user_and_assistant_messages(messages: list[dict[str, str]], expected: int) -> None:
    assert conversation_length(messages) == expected


@pytest.mark.parametrize(
    ("before", "minimum", "passed"),
    [(0, 1, True), (1, 4, False), (2, 4, False), (3, 4, True), (5, 4, True), (4, 6, False), (99, 100, True)],
)
def test_gate_counts_the_answer_as_one_more_message(before: int, minimum: int, passed: bool) -> None:
    assert gate_passed(before, minimum) is passed


def test_demo_conversation_shapes_against_the_default_gate() -> None:
    five_messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(5)]
    assert gate_passed(conversation_length(five_messages), 4)
    one_message = five_messages[:1]
    assert not gate_passed(conversation_length(one_message), 4)
    with_system = [{"role": "system", "content": "s"}, *five_messages[:2]]
    assert not gate_passed(conversation_length(with_system), 4)  # system prompt does not count


@pytest.mark.parametrize(("before", "minimum"), [(-1, 4), (3, 0), (3, -2)])
def test_gate_rejects_impossible_arguments(before: int, minimum: int) -> None:
    with pytest.raises(ValueError):
        gate_passed(before, minimum)


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=1, max_value=100))
def test_gate_is_monotonic_in_conversation_length(before: int, minimum: int) -> None:
    if gate_passed(before, minimum):
        assert gate_passed(before + 1, minimum)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400), st.one_of(st.none(), st.text(max_size=200)))
def test_detect_feedback_never_raises_and_rewards_stay_in_unit_interval(text: str, previous: str | None) -> None:
    signal = detect_feedback(text, previous)
    if signal is not None:
        assert 0.0 <= signal.reward <= 1.0
        assert signal.reward == REWARDS[signal.kind]
        assert signal.rule.startswith(f"{signal.kind}:")


_NEUTRAL_REQUESTS = [
    "now write me a python function that does the inverse",
    "who is the current prime minister?",
    "can you also add a docstring?",
    "what's next?",
    "",
]


@given(
    st.sampled_from(
        [t.rstrip("!.") for t in ("thanks!", "thank you", "perfect", "great, thanks", "that works", "it works")]
    ),
    st.sampled_from(["! ", ", ", ". ", " — ", "!! "]),
    st.sampled_from(_NEUTRAL_REQUESTS),
)
def test_praise_followed_by_any_ordinary_request_is_satisfaction(praise: str, sep: str, request: str) -> None:
    signal = detect_feedback(praise + sep + request)
    assert signal is not None and signal.kind == "satisfaction"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=60))
def test_rule_never_contains_user_text(noise: str) -> None:
    marker = "zqxwvmarker"
    for text in (f"thanks, {marker} {noise}", f"that's wrong, {marker} {noise}", f"no, I meant {marker} {noise}"):
        signal = detect_feedback(text)
        assert signal is not None and marker not in signal.rule


def test_adversarial_input_stays_cheap() -> None:
    nasty = ["thanks" + " ," * 20_000, "no " * 20_000, "'" * 50_000, "```" * 10_000, "thank you for " + "x " * 20_000]
    start = time.process_time()
    for text in nasty:
        detect_feedback(text, previous_user=text)
    assert time.process_time() - start < 1.0


def _m(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([_m("user", "A"), _m("assistant", "a"), _m("user", "F")], ("F", "A")),
        ([_m("system", "s"), _m("user", "A"), _m("assistant", "a"), _m("user", "B"), _m("user", "B")], ("B", "A")),
        ([_m("user", "A"), _m("assistant", "a"), _m("user", "F"), _m("assistant", "prefill")], None),
        ([_m("user", "F")], None),
        ([_m("assistant", "hello"), _m("user", "F")], ("F", None)),
    ],
    ids=["plain", "unanswered-message-resent", "assistant-prefill", "first-message", "assistant-opens"],
)
def test_a_follow_up_is_compared_with_the_request_the_last_answer_replied_to(
    messages: list[dict[str, str]], expected: tuple[str, str | None] | None
) -> None:
    """A message sent again after a failed request is compared with the answered request, never
    with its own first copy (a retry of a failed request is no verdict on the earlier answer)."""
    from router_core.signals import follow_up_of_previous_answer

    assert follow_up_of_previous_answer(messages) == expected
