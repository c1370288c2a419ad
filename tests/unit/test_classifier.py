"""Request classification: demo presets, realistic phrasings, traps and the session rule."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from router_core.classifier import (
    MAX_EARLIER_USER_MESSAGES,
    RULES,
    TIE_BREAK_ORDER,
    Classification,
    classify,
    message_text,
)
from router_core.config import REQUEST_TYPES

pytestmark = pytest.mark.unit

Message = dict[str, Any]


def user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def conversation(*turns: str, system: str | None = None) -> list[Message]:
    """Alternating user/assistant messages, starting with the user."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


# The demo chat page's presets (system prompt + starter message).
DEBUG_MY_CODE = (
    "I have a Python function that should return the sum of a list, but it always returns 0:\n\n"
    "```python\ndef sum_list(items):\n    total = 0\n    for item in items:\n        total + item\n"
    "    return total\n\nprint(sum_list([1, 2, 3]))  # prints 0, expected 6\n```\n\nWhat's wrong with it?"
)
BRAINSTORM_A_FEATURE = (
    "I'm building a note-taking app for developers. What are 5 differentiated features that would make it stand "
    "out from Notion or Obsidian? Focus on things that would genuinely solve developer pain points."
)
EXPLAIN_A_CONCEPT = (
    "Can you explain how the Thompson Sampling algorithm works and why it's better than epsilon-greedy for "
    "multi-armed bandit problems? Use a concrete example if it helps."
)
WRITE_SOMETHING = (
    "Write a short Slack message to my team letting them know our weekly standup is moving from 9am to 10am "
    "starting next Monday. Keep it brief, friendly, and include a clear ask for them to update their calendars."
)
PYTHON_TRACEBACK_QUESTION = """I'm getting this error when I run my script:

Traceback (most recent call last):
  File "app.py", line 12, in <module>
    main()
  File "app.py", line 8, in main
    print(data["name"])
KeyError: 'name'

How do I fix it?"""


@pytest.mark.parametrize(
    ("system", "starter", "expected"),
    [
        ("You are an expert debugging assistant.", DEBUG_MY_CODE, "code_understanding"),
        # Ideation on a software product's features is product/technical design, not prose writing.
        ("You are a product thinking partner.", BRAINSTORM_A_FEATURE, "technical_design"),
        # A concept explained without code in hand is analytical reasoning; code_understanding needs code.
        ("You are a clear, concise technical educator.", EXPLAIN_A_CONCEPT, "analytical_reasoning"),
        ("You are a skilled writer.", WRITE_SOMETHING, "writing"),
    ],
    ids=["debug-my-code", "brainstorm-a-feature", "explain-a-concept", "write-something"],
)
def test_demo_chat_presets_classify_as_documented(system: str, starter: str, expected: str) -> None:
    result = classify(conversation(starter, system=system))
    assert result.request_type == expected
    assert not result.inherited


DEMO_TRAFFIC = {
    "code_generation": [
        "Write a Python function that flattens a nested list",
        "Create a TypeScript function that debounces another function",
        "Build a Rust function that parses a CSV string",
        "Generate a SQL function that returns running totals",
        "Write a Python function that flattens a nested list of arbitrary depth.",
        "Write a Python decorator that retries a function up to 3 times on exception.",
        "Write a SQL query that returns the top 5 customers by total order value.",
    ],
    "factual_lookup": [
        "What is the capital of New Zealand?",
        "What is the capital of Australia?",
        "When was the Treaty of Westphalia signed?",
        "Who is the current Secretary General of the UN?",
        "Where is Mount Kilimanjaro located?",
        "In what year did World War II end?",
        "What is the chemical symbol for gold?",
        "What's the capital of France?",
    ],
    "writing": [
        "Write an email declining a meeting politely",
        "Draft a paragraph introducing a product launch",
        "Compose a short blog post about morning routines",
        "Rewrite this sentence to be more concise: ...",
        "Write a short, polite email declining a meeting request because of a scheduling conflict.",
        "Write a one-paragraph product description for noise-cancelling headphones.",
        "Draft an email to my landlord asking when the heating will be repaired",
    ],
}


REALISTIC = {
    "code_generation": [
        "write a function in go that reverses a slice",
        "Can you write me a regex that matches email addresses?",
        "I need a python script that renames all files in a folder to lowercase",
        "Give me a bash one-liner to count lines in all .py files",
        "Write unit tests for this function:\n```python\ndef add(a, b):\n    return a + b\n```",
        "Add type hints to this code:\n```python\ndef f(x):\n    return x * 2\n```",
        "Create a React component that shows a countdown timer",
        "Generate a Dockerfile for a FastAPI app",
        "How do I read a CSV file with pandas?",
        "Write a SQL query to find duplicate emails in the users table",
        "Implement an LRU cache in Java",
        "Port this JavaScript to Python: `const x = arr.map(a => a * 2)`",
        "how can i list all files in a directory using bash",
        "Write a Rust struct for a 2D point with an add method",
        "make a python class for a bank account with deposit and withdraw",
        "Show me how to make an HTTP request in Node.js",
        "Write a Terraform module for an S3 bucket with versioning",
        "Optimize this SQL query:\n```sql\nSELECT * FROM orders WHERE status = 'open';\n```",
        "Write a Kotlin data class for a User with name and email",
        "could you code up a binary search in C++?",
        "Generate Python code to download a file from a URL and save it",
        "I want a JavaScript snippet that copies text to the clipboard",
        "Write a GitHub Actions workflow that runs pytest on every push",
        "Create an Express endpoint that returns the current time as JSON",
        "Write a PowerShell script that lists running services",
        "Convert this for loop into a list comprehension: `for x in xs: out.append(x+1)`",
        "How do I sort a dictionary by value in Python?",
        "Write a function that checks whether a string is a palindrome",
        "Build a CLI in Go that pings a list of hosts",
        "write me a quick python snippet to merge two dicts",
        "Please implement a trie with insert and search",
        "Scaffold a Flask app with a /health route",
        "Write a TypeScript type for a paginated API response",
        "Make a simple HTML page with a contact form",
        "Implement quicksort",
        "Refactor this function to use a list comprehension:\n"
        "```python\nresult = []\nfor x in xs:\n    result.append(x*2)\n```",
        "Write a bash script to rename all .txt files",
    ],
    "code_understanding": [
        PYTHON_TRACEBACK_QUESTION,
        "What does this function do?\n```js\nfunction f(a){return a.reduce((x,y)=>x+y,0)}\n```",
        "Why does my Python script crash with KeyError: 'id'?",
        "Can you explain this code?\n```python\nprint([x for x in range(10) if x % 2])\n```",
        "Review my PR diff:\n```diff\n- a = 1\n+ a = 2\n```",
        "I get `TypeError: Cannot read properties of undefined (reading 'map')` in my React app. Why?",
        "My Java program throws NullPointerException at line 42, what's going on?",
        "why isn't my css flexbox centering the div",
        "What's the difference between a list and a tuple in Python?",
        "Explain what `functools.wraps` does",
        "```python\nfor i in range(10):\n    print(i)\n    i += 2\n```\nwhy doesn't the increment work?",
        "Segmentation fault (core dumped) when I run my C program, help",
        "error[E0382]: borrow of moved value: `v`\nhow do I get past this?",
        "How does async/await work in JavaScript?",
        "What does the `yield` keyword do in Python?",
        "Here is my function:\n```go\nfunc add(a int, b int) int {\n    return a - b\n}\n```\n"
        "It returns the wrong result.",
        "Why am I getting 'undefined is not a function' here?\n```js\nconst x = obj.foo();\nconsole.log(x);\n```",
        "what is wrong with my code\n\nfor (let i = 0; i < 10; i++) {\n  setTimeout(() => console.log(i), 100);\n}",
        "Can you walk me through what this SQL does?\n"
        "```sql\nSELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1;\n```",
        "My pytest test fails with AssertionError: assert 3 == 4. Any idea why?",
        "ModuleNotFoundError: No module named 'requests'",
        "Is there a bug in this function? `def mean(xs): return sum(xs) / len(xs) - 1`",
        "Explain the difference between let and var in JavaScript",
        "Why does this regex not match newlines? `/^.*$/`",
        "what does `git rebase -i HEAD~3` do?",
        "This loop never ends, why?\n```python\nwhile i < 10:\n    print(i)\n```",
        "How does Python's garbage collector work?",
        "my docker container exits immediately with exit code 1, how do I debug it?",
        "What is a closure in JavaScript?",
        "Why is my React component re-rendering on every keystroke?",
        "Can you review my PR?",
    ],
    "technical_design": [
        "Design a rate limiter for a public API",
        "How should I structure a monorepo with three services and a shared library?",
        "Should we use Kafka or SQS for our event pipeline?",
        "What's the best way to design a schema for a multi-tenant SaaS app?",
        "Microservices vs monolith for a team of 5 engineers?",
        "What are the pros and cons of GraphQL compared to REST for a mobile backend?",
        "How would you architect a real-time chat system that scales to a million users?",
        "Which database should I use for time-series metrics?",
        "I'm building a habit-tracking app. What features would make it different from the competition?",
        "Propose an architecture for a serverless image processing pipeline on AWS with S3 and Lambda",
        "What's a good architecture for a multiplayer game backend?",
        "Postgres or MongoDB for an e-commerce catalog?",
        "How should we handle idempotency in our payment service?",
        "Design the database schema for a library management system",
        "What are the trade-offs of using serverless for a high-traffic API?",
        "We are building a SaaS for dentists. Brainstorm features that would differentiate the product.",
        "Event sourcing or CRUD for an inventory system?",
        "How do I design a notification service that supports email, SMS and push?",
        "Should I split my Django monolith into services?",
        "Should I use Postgres or DynamoDB for a chat app?",
        "What are the tradeoffs between REST and gRPC?",
        "Design a URL shortener that handles 10k requests per second",
    ],
    "analytical_reasoning": [
        "Solve for x: 2x + 3 = 11",
        "What is the derivative of x^2 * sin(x)?",
        "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies?",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost?",
        "Why did the Roman Empire fall?",
        "Explain the intuition behind Bayes' theorem",
        "What's the expected value of rolling a fair die?",
        "Compare capitalism and socialism in terms of incentives",
        "Think step by step: how many weekdays are there between March 1 and March 31 2024?",
        "Explain how vaccines train the immune system",
        "What would happen if the moon disappeared?",
        "Calculate the compound interest on $1000 at 5% for 3 years",
        "If I flip a coin 3 times, what's the probability of getting exactly two heads?",
        "Prove that there are infinitely many primes",
        "Why do economies go into recession?",
        "A farmer has 17 sheep and all but 9 run away. How many are left?",
        "What is the integral of 1/x?",
        "What is 17 * 23?",
        "If x + y = 10 and x - y = 2, what are x and y?",
        "What are the chances of two people in a room of 23 sharing a birthday?",
        "Prove that the square root of 2 is irrational",
        "What is 15% of 240?",
        "Why is the sky blue?",
        "If a train leaves at 3pm going 60 mph, how long does it take to travel 180 miles?",
    ],
    "writing": [
        "Write a cover letter for a junior data analyst position",
        "Can you proofread my essay? It is about climate change and I think the intro is weak.",
        "Make this email sound more professional: hey guys, meeting moved, pls come",
        "Write a haiku about autumn",
        "Draft a LinkedIn post announcing my new job",
        "Summarize the following text in three bullet points: The company reported record revenue...",
        "Rephrase this so it sounds friendlier: Your request has been denied.",
        "Give me 10 catchy slogans for a coffee shop",
        "Write a wedding toast for my best friend",
        "Write a short story about a robot learning to paint",
        "Help me write an apology email to a customer whose order was late",
        "Can you rewrite this paragraph to be more concise? Our team has been working hard for months.",
        "Write a thank-you note to my teacher",
        "Compose an out-of-office reply for next week",
        "Polish this sentence: me and him goes to the store yesterday",
        "Write a product description for a handmade leather wallet",
        "Write a limerick about a cat who codes",
        "Draft a resignation letter, polite but brief",
        "Write a tweet announcing our product launch",
        "Fix the grammar in this paragraph: their going to the park tomorow",
        "Turn these notes into a formal memo: budget cut, hiring freeze",
        "Write a commit message for this diff",
        "Write a script for my YouTube video about hiking",
        "brainstorm names for my bakery",
        "Tell me a joke",
        "Translate 'good morning' into Spanish",
        "Make it more formal",
    ],
    "factual_lookup": [
        "Who painted the Mona Lisa?",
        "what's the tallest mountain in africa",
        "When did the Berlin Wall fall?",
        "How tall is the Eiffel Tower?",
        "Which planet is closest to the sun?",
        "What does NASA stand for?",
        "What is the boiling point of water in Fahrenheit?",
        "Who's the CEO of Microsoft?",
        "Where's the Louvre?",
        "how many bones are in the human body",
        "What currency does Japan use?",
        "Do you know who invented the telephone?",
        "tell me who won the 2018 world cup",
        "What year did the Titanic sink?",
        "What is the population of Canada?",
        "Who discovered penicillin?",
        "What language do they speak in Brazil?",
        "Which country has the most islands?",
        "How old is the universe?",
        "Who was the first person on the moon?",
        "Who created Python?",
        "Define photosynthesis",
        "Who wrote Pride and Prejudice?",
        "How far is the moon from Earth?",
        "Which element has the atomic number 6?",
    ],
    "general": [
        "hi",
        "hello there!",
        "ok continue",
        "ok, noted",
        "I assume you know me",
        "who are you?",
        "what's up",
        "Can you help me?",
        "lol",
        "yes",
        "What do you think about remote work?",
        "good morning",
        "tell me more",
        "What can you do?",
        "Great Wall of China, how long is it?",
    ],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, kind) for table in (DEMO_TRAFFIC, REALISTIC) for kind, texts in table.items() for text in texts],
)
def test_demo_traffic_and_realistic_requests_classify_to_their_type(text: str, expected: str) -> None:
    assert classify(user(text)).request_type == expected


@pytest.mark.parametrize(
    ("follow_up", "expected"),
    [
        ("thanks, that works! now write me a python function that does the inverse", "code_generation"),
        ("perfect, thanks! who is the current prime minister?", "factual_lookup"),
        ("great, thanks! now write a follow-up email confirming attendance", "writing"),
        ("no, I meant: write it as a Rust function", "code_generation"),
    ],
)
def test_leading_feedback_is_removed_and_the_request_after_it_decides(follow_up: str, expected: str) -> None:
    # The demo traffic shape: a labelled prompt, two neutral turns, then the follow-up.
    messages = conversation("Tell me a joke", "Got it.", "ok continue", "Got it.", "ok, noted", "Got it.", follow_up)
    result = classify(messages)
    assert (result.request_type, result.inherited) == (expected, False)


def test_i_assume_you_know_me_is_not_analytical_reasoning() -> None:
    assert classify(user("I assume you know me")).request_type != "analytical_reasoning"


@pytest.mark.parametrize("follow_up", ["thanks, that worked", "Thanks!", "perfect", "ok continue", "ok, noted", "hmm"])
def test_follow_up_without_evidence_inherits_the_earlier_type(follow_up: str) -> None:
    messages = conversation("Why does my Python script crash with KeyError: 'id'?", "Use dict.get.", follow_up)
    result = classify(messages)
    assert result.request_type == "code_understanding"
    assert result.inherited
    assert result.rule.startswith("inherited:code:")


def test_demo_round_one_inherits_the_labelled_type_from_the_first_prompt() -> None:
    messages = conversation(
        "Write a Python function that flattens a nested list", "Got it.", "ok continue", "Got it.", "ok, noted"
    )
    assert classify(messages) == Classification(
        "code_generation",
        "inherited:code:write-code",
        classify(messages).evidence,
        True,
    )


def test_correction_without_its_own_evidence_keeps_the_earlier_type() -> None:
    messages = conversation(
        "Write a Python function that flattens a nested list", "def flatten...", "no, I meant in Rust"
    )
    result = classify(messages)
    assert (result.request_type, result.inherited) == ("code_generation", True)


def test_a_new_request_with_evidence_is_not_inherited() -> None:
    messages = conversation("Write a Python function that flattens a nested list", "def flatten...", "Write a haiku")
    result = classify(messages)
    assert (result.request_type, result.inherited) == ("writing", False)


def test_inheritance_takes_the_closest_earlier_message_with_evidence() -> None:
    messages = conversation(
        "What is the capital of Peru?", "Lima.", "Write a haiku about Lima", "...", "ok", "...", "thanks!"
    )
    result = classify(messages)
    assert (result.request_type, result.inherited) == ("writing", True)


def test_inheritance_looks_back_a_bounded_number_of_user_messages() -> None:
    neutral = ["ok continue", "Got it."] * (MAX_EARLIER_USER_MESSAGES + 1)
    messages = conversation("Write a Python function that flattens a nested list", "Got it.", *neutral, "ok")
    result = classify(messages)
    assert result.request_type == "general"
    assert not result.inherited


def test_feedback_alone_never_creates_a_type() -> None:
    result = classify(user("thanks, that worked"))
    assert result == Classification("general", "general:feedback-only", result.evidence, False)


def test_a_request_without_user_messages_is_general() -> None:
    result = classify([{"role": "system", "content": "Write Python code."}])
    assert (result.request_type, result.rule) == ("general", "general:no-user-message")
    assert classify([]).request_type == "general"


def test_system_and_assistant_text_do_not_decide_the_type() -> None:
    messages = conversation("hello", "Here is a Python function: def f(): ...", system="You write Python functions.")
    assert classify(messages).request_type == "general"


def test_a_type_the_router_does_not_learn_maps_to_general() -> None:
    result = classify(user("Write a haiku about autumn"), request_types=("code_generation", "general"))
    assert result.request_type == "general"
    assert result.rule.startswith("writing:")
    assert "not learned" in result.evidence


def test_a_learned_type_is_kept_for_a_subset_router() -> None:
    result = classify(
        user("Write a Python function that flattens a list"), request_types=("code_generation", "general")
    )
    assert result.request_type == "code_generation"


def test_list_content_parts_are_joined_and_non_text_parts_ignored() -> None:
    message: Message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is the capital"},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
            {"type": "text", "text": "of France?"},
        ],
    }
    assert message_text(message) == "What is the capital\nof France?"
    assert classify([message]).request_type == "factual_lookup"


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain", "plain"),
        (None, ""),
        ([], ""),
        ([{"type": "text", "text": 3}], ""),
        ([{"type": "input_text", "text": "a"}, "b"], "a\nb"),
        (42, ""),
    ],
)
def test_message_text_never_raises_on_odd_content(content: object, text: str) -> None:
    assert message_text({"role": "user", "content": content}) == text


def test_a_long_message_is_read_at_its_start_and_end() -> None:
    log = "INFO all good here\n" * 2000
    text = f"Here is my build log:\n```\n{log}```\nWhat's wrong with my Python build? It fails."
    assert len(text) > 30_000
    assert classify(user(text)).request_type == "code_understanding"


def test_a_fence_cut_by_the_scan_bound_stays_code() -> None:
    code = "x = compute(x)\n" * 400
    text = f"```python\n{code}```\nWhat is the capital of France?"
    assert classify(user(text)).request_type == "code_understanding"


def test_classification_cost_does_not_grow_with_message_size() -> None:
    huge = user("Write a Python function that " + "flattens nested lists and " * 20_000 + "returns a list.")
    classify(huge)
    start = time.process_time()
    for _ in range(20):
        assert classify(huge).request_type == "code_generation"
    per_call = (time.process_time() - start) / 20
    assert per_call < 0.005, f"{per_call * 1e6:.0f} µs per call"


def test_tie_break_order_and_rules_cover_exactly_the_request_types() -> None:
    assert set(TIE_BREAK_ORDER) | {"general"} == set(REQUEST_TYPES)
    assert len(TIE_BREAK_ORDER) == len(set(TIE_BREAK_ORDER))
    assert {rule.request_type for rule in RULES} == set(TIE_BREAK_ORDER)
    assert len({rule.id for rule in RULES}) == len(RULES)


def test_rule_and_evidence_name_only_fixed_phrases() -> None:
    for texts in REALISTIC.values():
        for text in texts:
            result = classify(user(text))
            assert result.rule in {r.id for r in RULES} | {"general:no-evidence", "general:feedback-only"}
            allowed = {r.evidence for r in RULES} | {
                "no request-type evidence",
                "only feedback, and no earlier request to continue",
            }
            assert set(result.evidence.split("; ")) <= allowed


_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool", "developer"]),
        "content": st.one_of(
            st.none(),
            st.text(max_size=300),
            st.lists(
                st.one_of(
                    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=80)}),
                    st.fixed_dictionaries({"type": st.just("image_url")}),
                ),
                max_size=3,
            ),
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGE, max_size=8))
def test_classify_never_raises_and_is_deterministic(messages: list[Message]) -> None:
    first = classify(messages)
    assert first.request_type in REQUEST_TYPES
    assert classify(messages) == first
    assert first.inherited == first.rule.startswith("inherited:")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_rule_and_evidence_never_contain_user_text(noise: str) -> None:
    marker = "qzxjvmarker"
    for template in (
        f"Write a Python function named {marker} {noise}",
        f"{noise} {marker} what is the capital of Peru?",
    ):
        result = classify(user(template))
        assert marker not in result.rule and marker not in result.evidence
