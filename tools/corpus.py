"""Labelled prompts and follow-up phrases shared by the traffic generator and the evaluator.

Every request type the router knows has several varied prompts. A session opens with a
five-message conversation (two short warm-up exchanges, then the labelled prompt as the latest
user message), so the routed turn passes the signal gate (4 messages) in one request and is
classified by the prompt itself. The follow-up that answers that turn is one of three kinds:

* satisfaction — praise first, then (often) a new request of the SAME type, so the router reads
  it as satisfaction with the previous answer and the follow-up turn keeps the labelled type;
* neutral — an acknowledgement that is neither praise nor complaint (no signal);
* negative — an explicit complaint or correction (a dissatisfaction signal).

`tests/unit/test_corpus.py` pins all of this against the real classifier and signal detector.
"""

from __future__ import annotations

__all__ = [
    "NEGATIVE",
    "NEUTRAL",
    "PROMPTS",
    "REQUEST_TYPES",
    "SATISFIED",
    "SATISFIED_CONTINUATIONS",
    "WARM_UPS",
    "FollowUpKind",
    "corpus_types",
    "follow_up",
    "opening_messages",
]

import random
import sys
from pathlib import Path
from typing import Any, Literal

try:
    from router_core.config import REQUEST_TYPES
except ModuleNotFoundError:  # run from a checkout without PYTHONPATH: the layer lives beside tools/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "router_core"))
    from router_core.config import REQUEST_TYPES

FollowUpKind = Literal["satisfaction", "neutral", "negative"]

PROMPTS: dict[str, tuple[str, ...]] = {
    "code_generation": (
        "Write a Python function that returns the n-th Fibonacci number without recursion.",
        "Implement a JavaScript function that debounces another function by a given delay in milliseconds.",
        "Create a Python class for a bounded LRU cache with get and put methods.",
        "Write a SQL query that returns the ten customers with the highest total order value.",
        "Write a bash script that deletes log files older than seven days from /var/log/myapp.",
        "Generate a TypeScript function that checks whether a string is a valid IPv4 address.",
        "Write a Go function that reverses a slice of integers in place.",
    ),
    "code_understanding": (
        "What does this code do?\n\n```python\ndef f(xs):\n    return [x for x in xs if x % 2 == 0][::-1]\n```",
        "I get this when I run my script:\n\nTraceback (most recent call last):\n"
        '  File "app.py", line 12, in <module>\n    total = sum(prices)\n'
        "TypeError: unsupported operand type(s) for +: 'int' and 'str'\n\nWhy does this happen?",
        "Why does my Java method throw a NullPointerException when the list passed to it is empty?",
        "Can you review this function and tell me if it has a bug?\n\n```js\nfunction total(a) {\n"
        "  let t = 0;\n  for (let i = 0; i <= a.length; i++) t += a[i];\n  return t;\n}\n```",
        "Explain how this recursive function computes its result: "
        "`def fact(n): return 1 if n <= 1 else n * fact(n - 1)`",
        "What's wrong with this code? It never stops.\n\n```python\ni = 0\nwhile i < 10:\n    print(i)\n```",
    ),
    "technical_design": (
        "How should I design the database schema for a multi-tenant invoicing app?",
        "Design a rate limiter service that handles 10,000 requests per second across three regions.",
        "Should I use PostgreSQL or DynamoDB for an event-sourced system with heavy writes?",
        "Recommend an architecture for a real-time chat service with a million users, and explain the trade-offs.",
        "Propose a microservice architecture for an online checkout, including how the services communicate.",
        "What are the trade-offs between a message queue and an event stream for order processing?",
    ),
    "analytical_reasoning": (
        "A bag holds 3 red and 5 blue marbles. If I draw two without replacement, "
        "what is the probability that both are red?",
        "Solve the equation 3x + 7 = 2x - 5 and show each step.",
        "A train leaves at 3pm at 60 km/h and a second one follows an hour later at 90 km/h. "
        "Calculate when the second train catches up.",
        "Prove that the sum of two odd integers is always even.",
        "Calculate the compound interest on $5,000 at 4% per year over 10 years.",
        "If every manager is an employee and some employees are remote, does it follow that some managers are remote?",
    ),
    "writing": (
        "Draft an email to my team announcing that the office is closed on Friday.",
        "Write a short blog post introduction about the benefits of remote work.",
        "Write a short Slack message telling the team that standup moves from 9am to 10am.",
        "Rewrite this paragraph so it sounds more professional: hey all, the report is late again, sorry.",
        "Compose a thank-you letter to a mentor who helped me land my first job.",
        "Write a product description for a reusable water bottle that keeps drinks cold for a day.",
    ),
    "factual_lookup": (
        "What is the capital of Australia?",
        "Who wrote the novel Pride and Prejudice?",
        "When did the Berlin Wall fall?",
        "What's the boiling point of water at sea level in Fahrenheit?",
        "How many bones are there in the adult human body?",
        "In what year did the Second World War end?",
        "Which planet is the largest in the solar system?",
    ),
    "general": (
        "Any tips for staying focused while working from home?",
        "Hello! How is your day going?",
        "I'd like some advice on keeping houseplants alive.",
        "Can you recommend a good habit for sleeping better?",
        "I'm planning a picnic this weekend. Anything I should not forget?",
        "How can I be more patient with myself when learning something new?",
    ),
}
"""Labelled prompts per request type: the type is the label, the prompt is the latest user message."""

WARM_UPS: tuple[tuple[str, str, str, str], ...] = (
    ("Hi there.", "Hello! How can I help you today?", "I have a request for you.", "Sure, go ahead."),
    ("Hello!", "Hi! What can I do for you?", "Something came up that I need help with.", "Of course. Tell me."),
    ("Good morning.", "Good morning! What do you need?", "One question, if you have a moment.", "Happy to help."),
    ("Hey.", "Hey! What's on your mind?", "Could you help me with one thing?", "Certainly, what is it?"),
)
"""(user, assistant, user, assistant) openings with no request in them: the prompt decides the type."""

SATISFIED_CONTINUATIONS: dict[str, tuple[str, ...]] = {
    "code_generation": (
        "Thanks, that works! Now write a Python function that does the inverse.",
        "Perfect, that did it. Now write a unit test for that function.",
        "Great, thank you! Can you also write a version of that function in JavaScript?",
    ),
    "code_understanding": (
        "Thanks, that explains it! Why does the loop in that code need the index check?",
        "Perfect, thank you. What does the return statement in that function do exactly?",
    ),
    "technical_design": (
        "Thanks, that's a solid design! How should I design the caching layer for it?",
        "Perfect, thank you. How would you design that service to be highly available?",
    ),
    "analytical_reasoning": (
        "Thanks, that makes sense! Now what is the probability that both marbles are blue?",
        "Perfect, thank you. Can you also prove that the product of two odd integers is odd?",
    ),
    "writing": (
        "Great, thanks! Now draft a follow-up email confirming the new date.",
        "Perfect, thank you. Write a shorter version of that message for Slack.",
    ),
    "factual_lookup": (
        "Perfect, thanks! And what is the capital of Canada?",
        "Thanks, that's right! Who painted the Mona Lisa?",
    ),
    "general": (),
}
"""Praise for the previous answer followed by a new request of the same type."""

SATISFIED: tuple[str, ...] = (
    "Thanks, that works perfectly!",
    "Perfect, exactly what I needed.",
    "Great answer, thank you!",
    "That did it, thanks a lot.",
    "Thank you, that's really helpful.",
)
"""Praise alone: the follow-up turn inherits the type of the request it praises."""

NEUTRAL: tuple[str, ...] = (
    "Ok, noted.",
    "Let me think about that for a bit.",
    "Alright.",
    "I'll get back to you on that later.",
    "Hmm, okay.",
)
"""Acknowledgements that are neither praise nor complaint: the router must read no signal."""

NEGATIVE: tuple[str, ...] = (
    "That's wrong, it doesn't do what I asked.",
    "This doesn't work at all.",
    "That's not what I asked for.",
    "No, that's incorrect. It still doesn't answer my question.",
    "This is wrong and not helpful.",
)
"""Explicit complaints: the router must read a negative signal (reward below 0.5)."""


def corpus_types() -> tuple[str, ...]:
    """Request types that have prompts, in the router's display order."""
    return tuple(t for t in REQUEST_TYPES if PROMPTS.get(t))


def opening_messages(prompt: str, rng: random.Random) -> list[dict[str, Any]]:
    """The five-message conversation that opens a session: warm-up, then `prompt` (last, user).

    Five messages (user, assistant, user, assistant, user) plus the answer make six, so the
    routed turn passes a signal gate of up to 6 messages in one request.
    """
    u1, a1, u2, a2 = rng.choice(WARM_UPS)
    return [
        {"role": "user", "content": u1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": u2},
        {"role": "assistant", "content": a2},
        {"role": "user", "content": prompt},
    ]


def follow_up(kind: FollowUpKind, request_type: str, rng: random.Random) -> str:
    """A follow-up message of `kind` for a session labelled `request_type`.

    Satisfaction follow-ups continue in the same request type half of the time when the type has
    continuations, and otherwise praise alone (which inherits the type).
    """
    if kind == "satisfaction":
        continuations = SATISFIED_CONTINUATIONS.get(request_type, ())
        if continuations and rng.random() < 0.5:
            return rng.choice(continuations)
        return rng.choice(SATISFIED)
    if kind == "negative":
        return rng.choice(NEGATIVE)
    return rng.choice(NEUTRAL)
