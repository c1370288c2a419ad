"""A built-in upstream whose models answer from the configured quality oracle.

With probability `oracle[request_type][model]` (else `default_quality`) an answer satisfies
the request. Every answer ends with one footer line saying which, e.g.
`[simulated answer by fast: satisfies the request]`, so people, the traffic generator and the
evaluator can see what happened (`read_footer`). Answers are plausible text about the latest
user message, as long as real answers of that kind (`ANSWER_TOKENS`, longer for bigger quality
tiers), and never repeat the conversation's previous assistant answer (a repeated answer would
look like a stuck model to the feedback signals).

Model name: the oracle is keyed by the router's model names (the keys of `config.models`), but
`complete()` receives a `ModelConfig`. The provider resolves the name by identity in the
configuration it was built from, then by equality, then falls back to the `upstream_model`.

Reproducibility: with `ChatParams.seed` set, the outcome and the text are a pure function of
(seed, model name, request type, messages); without it they are random.

Judge mode: when the latest user message quotes an answer carrying a footer and the request
(latest user message or a system message) asks for a PASS / FAIL verdict — both words in
capitals — the answer is two lines: `PASS` or `FAIL` read from the quoted footer, then one line
of reasoning. This lets an LLM-as-judge evaluator run without a real model.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from router_core.capabilities import FEATURES, model_limits, requirements_of
from router_core.config import ModelConfig, SimulatedProviderConfig
from router_core.providers.base import (
    ChatParams,
    Completion,
    UpstreamError,
    content_text,
    estimate_tokens,
    messages_text,
)
from router_core.providers.chunks import completion_chunks

_FOOTER_RE = re.compile(r"\[simulated answer by (?P<model>[^\]\n:]+): (?P<verdict>satisfies|misses) the request\]")
_VERDICT_REQUEST_RE = re.compile(r"\bPASS\b.*\bFAIL\b|\bFAIL\b.*\bPASS\b", re.DOTALL)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# Words that say "write code" rather than what the code does; kept out of function names.
_REQUEST_WORDING = (
    "write create implement make build give please can could you need want the and that which "
    "with for from into this python javascript typescript function method class script program code snippet using"
)
_REQUEST_WORDS = frozenset(_REQUEST_WORDING.split())

ANSWER_TOKENS: dict[str, int] = {
    "code_generation": 320,
    "code_understanding": 260,
    "technical_design": 380,
    "analytical_reasoning": 260,
    "writing": 220,
    "factual_lookup": 90,
    "general": 140,
}
"""Median output tokens of a mid-tier (tier 2) model's answer, per request type. Typical chat
answers: a function with its explanation runs to a few hundred tokens, a design or an analysis
longer, an email or a short draft about two hundred, a factual answer a sentence or a short
paragraph (tens to ~150). Spend and the router's cost term (the cells' observed output token
means) are only realistic if answer lengths are."""
TIER_LENGTH: dict[int, float] = {1: 0.7, 2: 1.0, 3: 1.4, 4: 2.0}
"""Answer length relative to tier 2: frontier models write fuller answers, reasoning models more."""
_MISS_LENGTH = 0.8
"""A missed answer is somewhat shorter (a partial attempt)."""
_LENGTH_SPREAD = 0.25
"""σ of log(length): most answers within about ×0.6–×1.6 of the median."""

_OPENERS_OK: dict[str, tuple[str, ...]] = {
    "code_generation": (
        "Here is an implementation for “{topic}”.",
        "Below is a working version of “{topic}”, edge cases included.",
        "This handles “{topic}” in a few clear steps.",
    ),
    "code_understanding": (
        "Here is what the code behind “{topic}” does.",
        "Walking through “{topic}” line by line:",
        "The key to “{topic}” is the order in which state changes.",
    ),
    "technical_design": (
        "A design for “{topic}” that stays simple to operate:",
        "For “{topic}”, I would split the system into three parts.",
        "Here is an architecture for “{topic}” with its trade-offs.",
    ),
    "analytical_reasoning": (
        "Working through “{topic}” step by step:",
        "The answer to “{topic}” follows from two observations.",
        "Let us reason about “{topic}” carefully.",
    ),
    "writing": (
        "Here is a draft for “{topic}”.",
        "A version of “{topic}” in a clear, friendly tone:",
        "Draft for “{topic}”, ready to send:",
    ),
    "factual_lookup": (
        "On “{topic}”: here are the facts.",
        "Short answer to “{topic}”, then the detail.",
        "Regarding “{topic}”, the established answer is as follows.",
    ),
    "general": (
        "Sure — about “{topic}”.",
        "Happy to help with “{topic}”.",
        "Here is my take on “{topic}”.",
    ),
}

_OPENERS_MISS: tuple[str, ...] = (
    "Here is a rough sketch related to “{topic}”.",
    "One possible direction for “{topic}”, though it may need changes.",
    "A partial attempt at “{topic}”.",
    "Some general thoughts that touch on “{topic}”.",
)

_BODY_OK: dict[str, tuple[str, ...]] = {
    "code_generation": (
        "The function validates its input first, so bad values fail early with a clear message.",
        "It runs in linear time and keeps memory constant apart from the result.",
        "Empty input returns an empty result instead of raising.",
        "The loop is written so the invariant holds after every iteration.",
        "Names follow the standard library's conventions, so it reads naturally next to existing code.",
        "I kept it free of dependencies so it drops into any project.",
        "Type hints document the contract and let a type checker catch misuse.",
        "A small test below pins the behaviour, including the boundary cases.",
    ),
    "code_understanding": (
        "The first block builds an index so later lookups are constant time.",
        "The bug you are seeing comes from mutating the list while iterating over it.",
        "Each call returns a new object, so callers never share state by accident.",
        "The guard clause handles the empty case before the main loop starts.",
        "Errors are converted to a single exception type at the boundary.",
        "The recursion terminates because every call shrinks the input by one.",
        "The cache is keyed by the arguments, so repeated calls are cheap.",
        "Reading it bottom-up makes the data flow easier to follow.",
    ),
    "technical_design": (
        "Requests enter through a thin API layer that only validates and routes.",
        "State lives in one store with conditional writes, so retries never double-count.",
        "A queue decouples slow work from the request path and absorbs bursts.",
        "Every component can be scaled independently and replaced without touching the others.",
        "Timeouts are set below the caller's own limit, so failures are answered, not hung.",
        "Metrics on latency, errors and saturation show problems before users do.",
        "The simplest version ships first; sharding is a configuration change, not a rewrite.",
        "Costs grow with usage, not with idle capacity.",
    ),
    "analytical_reasoning": (
        "First, fix what is given and what is asked, so nothing is assumed silently.",
        "The two cases are exhaustive, so checking each one settles the question.",
        "Substituting the bound back in confirms the result is consistent.",
        "An estimate from the other direction lands in the same range, which is reassuring.",
        "The key step is noticing that the quantity never decreases.",
        "A small example with concrete numbers shows the pattern clearly.",
        "The edge case at zero behaves the same way, so the conclusion holds there too.",
        "Therefore the answer follows directly from the first two steps.",
    ),
    "writing": (
        "The opening line states the point, so readers get it even if they skim.",
        "The tone is warm but direct, which suits a team message.",
        "Each paragraph carries one idea, which keeps it easy to read.",
        "The closing gives a clear next step and a date.",
        "I avoided jargon so it works for everyone on the list.",
        "It is short enough to read on a phone.",
        "The subject line is specific, so it is easy to find later.",
        "Feel free to adjust the names and dates to your situation.",
    ),
    "factual_lookup": (
        "This is well documented in standard references.",
        "The figure has been stable for years, so it is unlikely to have changed.",
        "The commonly quoted number is rounded; the precise value is close to it.",
        "It is often confused with a related fact, but the two are distinct.",
        "The original source is the official publication on the subject.",
        "Historically the answer was different, which explains older references.",
        "In everyday use the short answer is all you need.",
        "For a deeper look, the primary literature covers it in detail.",
    ),
    "general": (
        "The short answer is yes, with one caveat worth knowing.",
        "Most people find the second option easier to start with.",
        "It depends mainly on how much time you can give it each week.",
        "A small first step makes the rest much easier.",
        "Here are the main points in order of importance.",
        "If you tell me more about your situation I can be more specific.",
        "The common mistake is trying to do everything at once.",
        "Either way, you can change course later without losing much.",
    ),
}

_BODY_MISS: tuple[str, ...] = (
    "There are several ways to approach this, and each has its own trade-offs.",
    "It is worth considering the context before choosing a direction.",
    "Some details may depend on factors not covered here.",
    "This area is broad, so the specifics can vary a lot.",
    "In general, it helps to start simple and refine later.",
    "Different sources describe this differently.",
    "You may want to check the details against your own requirements.",
    "A complete answer would need more information about the setup.",
)

_CLOSERS: tuple[str, ...] = (
    "Let me know if you want it adapted to your setup.",
    "Happy to go deeper on any part of this.",
    "Tell me if anything is unclear.",
    "I can expand on any of these points.",
)


def footer(model_name: str, satisfied: bool) -> str:
    """The last line of every simulated answer, naming the model and the oracle's outcome."""
    verdict = "satisfies" if satisfied else "misses"
    return f"[simulated answer by {model_name}: {verdict} the request]"


def read_footer(text: str) -> tuple[str, bool] | None:
    """(model name, satisfied) from the last simulated-answer footer in `text`, or None."""
    found = list(_FOOTER_RE.finditer(text))
    if not found:
        return None
    last = found[-1]
    return last.group("model"), last.group("verdict") == "satisfies"


class SimulatedProvider:
    """Answers from the quality oracle; see the module docstring for the rules."""

    def __init__(
        self,
        name: str,
        config: SimulatedProviderConfig,
        models: Mapping[str, ModelConfig],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._config = config
        self._models = dict(models)  # holds the ModelConfig objects, so their ids stay valid
        self._names_by_id = {id(m): n for n, m in self._models.items()}
        self._sleep = sleep

    def model_name(self, model: ModelConfig) -> str:
        """The router's name for `model`: by identity, then by equality, else its upstream_model."""
        name = self._names_by_id.get(id(model))
        if name is not None:
            return name
        equal = [n for n, m in self._models.items() if m == model]
        return equal[0] if len(equal) == 1 else model.upstream_model

    def quality(self, model_name: str, request_type: str) -> float:
        """P(an answer by `model_name` satisfies a `request_type` request), from the oracle."""
        return self._config.oracle.get(request_type, {}).get(model_name, self._config.default_quality)

    def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
        """An oracle-driven answer (tool calls, JSON and images included: see `_choice`); raises
        UpstreamError(timeout) if the configured latency exceeds `timeout_s`, and a 400
        client_error for what the model's declared capabilities exclude (as a real model would)."""
        started = time.perf_counter()
        delay_s = self._config.latency_ms / 1000.0
        if delay_s > timeout_s:
            self._sleep(timeout_s)
            raise UpstreamError("timeout", f"simulated latency {delay_s:.2f} s exceeds {timeout_s:.2f} s")
        if delay_s > 0:
            self._sleep(delay_s)
        name = self.model_name(model)
        _check_capabilities(name, model, params)
        rng = _rng(params, name)
        n = params.options.get("n")
        choices = [self._choice(index, rng, name, model, params) for index in range(n if isinstance(n, int) else 1)]
        first = choices[0]["message"]
        written = [c["message"].get("content") or json.dumps(c["message"].get("tool_calls")) for c in choices]
        return Completion(
            text=first.get("content") or "",
            input_tokens=estimate_tokens(messages_text(params.messages)),
            output_tokens=sum(estimate_tokens(w) for w in written),
            finish_reason=choices[0]["finish_reason"],
            upstream_model=model.upstream_model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            usage_estimated=False,
            choices=tuple(choices),
        )

    def stream(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Iterator[dict[str, Any]]:
        """The same answer as `complete`, streamed: after `latency_ms`, chunks of
        `stream_piece_chars` characters `stream_interval_ms` apart, then the usage chunk."""
        completion = self.complete(model, params, timeout_s)
        interval_s = self._config.stream_interval_ms / 1000.0
        pause = (lambda: self._sleep(interval_s)) if interval_s > 0 else None
        yield from completion_chunks(completion, piece_chars=self._config.stream_piece_chars, pause=pause)

    def _choice(
        self, index: int, rng: random.Random, name: str, model: ModelConfig, params: ChatParams
    ) -> dict[str, Any]:
        """One choice: a judge's verdict; else a tool call (tools offered and either forced by
        tool_choice, or `auto` and the user spoke last); else JSON for a json_object /
        json_schema response format; else text from the oracle, ending with its footer."""
        latest_user = _latest(params.messages, "user")
        verdict = self._judge(params.messages, latest_user)
        message: dict[str, Any] = {"role": "assistant", "content": verdict}
        finish = "stop"
        call = None if verdict is not None else _tool_call(params, rng, latest_user)
        structured = None if verdict is not None or call else _structured(params.options, rng, latest_user)
        if call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        elif structured is not None:
            message["content"] = structured
        elif verdict is None:
            satisfied = rng.random() < self.quality(name, params.request_type)
            previous = _latest(params.messages, "assistant")
            lead = _lead(params.messages)
            for _ in range(8):  # a draw equal to the previous answer is drawn again
                body = lead + _answer(rng, model.quality_tier, params.request_type, latest_user, satisfied)
                text, finish = _fit(body, params.max_tokens, footer(name, satisfied))
                if text != previous:
                    break
            message["content"] = text
        choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": finish, "logprobs": None}
        if params.options.get("logprobs") and message["content"]:
            choice["logprobs"] = _logprobs(message["content"], params.options.get("top_logprobs") or 0, rng)
        return choice

    @staticmethod
    def _judge(messages: list[dict[str, Any]], latest_user: str) -> str | None:
        quoted = read_footer(latest_user)
        if quoted is None:
            return None
        instructions = [latest_user] + [content_text(m.get("content")) for m in messages if m.get("role") == "system"]
        if not any(_VERDICT_REQUEST_RE.search(text) for text in instructions):
            return None
        judged, satisfied = quoted
        if satisfied:
            return f"PASS\nThe answer by {judged} addresses the request fully and correctly."
        return f"FAIL\nThe answer by {judged} misses what the request asked for."


def _check_capabilities(name: str, model: ModelConfig, params: ChatParams) -> None:
    """A 400 for what the model's declared capabilities exclude (tools, images, JSON schema...)."""
    need = requirements_of(params.messages, params.options)
    limits = model_limits(model, "simulated")
    missing = [need.words(f) for f in FEATURES if f in need.features - limits.features]
    if missing:
        message = f"model {name} does not support {', '.join(missing)}"
        raise UpstreamError("client_error", message, status=400, invalid_request=False)


def _offered_tools(options: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = options.get("tools") or [{"type": "function", "function": f} for f in options.get("functions") or ()]
    return [t["function"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)]


def _tool_call(params: ChatParams, rng: random.Random, request: str) -> dict[str, Any] | None:
    """A call of one offered tool, or None: `tool_choice` none, or auto after a tool result."""
    offered = _offered_tools(params.options)
    choice = params.options.get("tool_choice", params.options.get("function_call", "auto"))
    if not offered or choice == "none":
        return None
    if choice == "auto" and _last_speaker(params.messages) != "user":
        return None  # the tool answered: now the model answers the user
    function = offered[0]
    if isinstance(choice, Mapping):
        named = (choice.get("function") or {}).get("name") or choice.get("name")
        function = next((f for f in offered if f.get("name") == named), function)
    arguments = _example(function.get("parameters") or {"type": "object"}, rng, _topic(request), depth=0)
    call_id = "call_" + "".join(rng.choice("0123456789abcdef") for _ in range(24))
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": function.get("name"), "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _structured(options: Mapping[str, Any], rng: random.Random, request: str) -> str | None:
    """JSON content for a json_object / json_schema response format (None for text)."""
    response_format = options.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        return json.dumps({"answer": f"About “{_topic(request)}”.", "confidence": round(rng.random(), 2)})
    if kind == "json_schema":
        schema = (response_format or {}).get("json_schema", {}).get("schema") or {"type": "object"}
        return json.dumps(_example(schema, rng, _topic(request), depth=0), ensure_ascii=False)
    return None


def _example(schema: Any, rng: random.Random, topic: str, *, depth: int) -> Any:
    """A value that fits a JSON schema (types, enums, consts, required properties, array
    bounds, number bounds, anyOf/oneOf); local `$ref`s and deep nesting become empty objects."""
    if not isinstance(schema, Mapping) or depth > 8 or "$ref" in schema:
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example(schema[key][0], rng, topic, depth=depth + 1)
    return _typed_example(schema, rng, topic, depth=depth)


def _typed_example(schema: Mapping[str, Any], rng: random.Random, topic: str, *, depth: int) -> Any:
    """A value of the schema's `type` (an object's properties and an array's items filled in)."""
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _example(v, rng, topic, depth=depth + 1) for k, v in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [_example(schema.get("items") or {}, rng, topic, depth=depth + 1) for _ in range(count)]
    return _scalar_example(kind, schema, rng, topic)


def _scalar_example(kind: str, schema: Mapping[str, Any], rng: random.Random, topic: str) -> Any:
    """A number, boolean, null or string that fits `schema`."""
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
        value = rng.uniform(low, high)
        return int(value) if kind == "integer" else round(value, 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if schema.get("format") == "date":
        return "2026-01-15"
    return topic[: schema.get("maxLength", 60)]


def _last_speaker(messages: list[dict[str, Any]]) -> str | None:
    """The role of the last message that is not a system or developer instruction."""
    for message in reversed(messages):
        role = message.get("role")
        if role not in ("system", "developer"):
            return str(role)
    return None


def _lead(messages: list[dict[str, Any]]) -> str:
    """What the answer says first about images read and tool results used (empty otherwise)."""
    lead = ""
    images = sum(
        1
        for m in messages
        if m.get("role") == "user" and isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, Mapping) and p.get("type") == "image_url"
    )
    if images:
        lead += f"I looked at the {images} image{'s' if images > 1 else ''} you sent. "
    if _last_speaker(messages) == "tool":
        lead += "Using the tool results: "
    return lead


def _logprobs(text: str, top: int, rng: random.Random) -> dict[str, Any]:
    """OpenAI-shaped logprobs, one entry per word of `text` (the simulated model's 'tokens')."""
    entries = []
    for token in re.findall(r"\S+\s*", text)[:256]:
        logprob = round(-rng.random() * 0.5, 4)
        alternatives = [
            {"token": f"{token.strip()}{i}", "logprob": round(logprob - 1 - i, 4), "bytes": None} for i in range(top)
        ]
        entries.append(
            {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": alternatives}
        )
    return {"content": entries, "refusal": None}


def _rng(params: ChatParams, model_name: str) -> random.Random:
    if params.seed is None:
        return random.Random()
    digest = hashlib.sha256()
    conversation = [[m.get("role"), content_text(m.get("content"))] for m in params.messages]
    for part in (str(params.seed), model_name, params.request_type, json.dumps(conversation, ensure_ascii=False)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return random.Random(int.from_bytes(digest.digest()[:8], "big"))


def _latest(messages: list[dict[str, Any]], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return content_text(message.get("content"))
    return ""


def _topic(text: str) -> str:
    """A short quote of the request: its first sentence, cut at a word boundary near 60 chars."""
    plain = " ".join(_FOOTER_RE.sub(" ", text).split())
    first = re.split(r"(?<=[.!?])\s", plain, maxsplit=1)[0].strip(" .!?:;,\"'“”")
    if len(first) > 60:
        first = first[:60].rsplit(" ", 1)[0] + "…"
    return first or "your request"


def answer_tokens(rng: random.Random, tier: int, request_type: str, satisfied: bool) -> int:
    """Target length of one answer, tokens: the type's median × the tier's factor, log-normal spread."""
    median = ANSWER_TOKENS.get(request_type, ANSWER_TOKENS["general"]) * TIER_LENGTH.get(tier, 1.0)
    if not satisfied:
        median *= _MISS_LENGTH
    return max(12, round(median * rng.lognormvariate(0.0, _LENGTH_SPREAD)))


def _answer(rng: random.Random, tier: int, request_type: str, request: str, satisfied: bool) -> str:
    kind = request_type if request_type in _BODY_OK else "general"
    target_chars = 4 * answer_tokens(rng, tier, kind, satisfied)
    opener = rng.choice(_OPENERS_OK[kind] if satisfied else _OPENERS_MISS).format(topic=_topic(request))
    pool = _BODY_OK[kind] if satisfied else _BODY_MISS
    tail = [_code(rng, request, tier, satisfied)] if kind == "code_generation" else []
    if tier >= 2:
        tail.append(rng.choice(_CLOSERS))
    budget = target_chars - len(opener) - sum(len(t) + 2 for t in tail)
    # Paragraphs of up to four sentences, drawn without repeats until the pool is used up.
    paragraphs: list[str] = []
    sentences: list[str] = []
    deck: list[str] = []
    used = 0
    while used < budget or not (paragraphs or sentences):
        if not deck:
            deck = rng.sample(pool, len(pool))
        sentence = deck.pop()
        sentences.append(sentence)
        used += len(sentence) + 1
        if len(sentences) == 4:
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join([opener, *paragraphs, *tail])


def _code(rng: random.Random, request: str, tier: int, satisfied: bool) -> str:
    words = [w for w in (w.lower() for w in _WORD_RE.findall(request)) if len(w) > 2 and w not in _REQUEST_WORDS]
    words = words[:3] or ["solve"]
    fn = "_".join(words)
    arg = rng.choice(("items", "values", "data", "records"))
    if satisfied:
        lines = [
            f"def {fn}({arg}: list[int]) -> list[int]:",
            f'    """{fn.replace("_", " ").capitalize()}; returns a new list."""',
            f"    if not {arg}:",
            "        return []",
            f"    return sorted({arg})",
        ]
        if tier >= 3:
            lines += ["", "", f"def test_{fn}() -> None:", f"    assert {fn}([3, 1, 2]) == [1, 2, 3]"]
    else:
        lines = [f"def {fn}({arg}):", "    # TODO: handle the remaining cases", "    raise NotImplementedError"]
    return "```python\n" + "\n".join(lines) + "\n```"


def _fit(text: str, max_tokens: int | None, footer_line: str) -> tuple[str, str]:
    """Body cut to `max_tokens` (≈ 4 chars per token) when needed; the footer always stays."""
    if max_tokens is not None and estimate_tokens(text) > max_tokens:
        budget = max(0, max_tokens * 4 - len(footer_line) - 1)
        cut = text[:budget].rsplit(" ", 1)[0] if budget else ""
        return (f"{cut}\n{footer_line}" if cut else footer_line), "length"
    return f"{text}\n\n{footer_line}", "stop"
