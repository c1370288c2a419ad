"""Malformed requests for every route, as hypothesis strategies, and the rule every answer obeys.

Shared by the property tests (`tests/integration/test_malformed_requests.py`, a fixed number
of examples per route in CI) and the fuzz benchmark (`benchmarks/fuzz.py`, many more). Each
strategy draws a `Probe`: what a client could put on the wire for one route (raw body bytes,
JSON nested deep, Unicode in every field, header and id, odd query strings), or the body of an
SQS signal record. `Driver` turns a probe into the real API Gateway v2.0 (or SQS) event, calls
the handler in-process and returns `problem(...)`: None when the answer is acceptable (a status
below 500; an OpenAI-shaped error body for every 4xx; a well-formed partial batch response
for SQS).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from tests.aws_env import http_event, lambda_context, sqs_event

ROUTES = ("chat", "models", "feedback", "state", "sqs")
ROUTER = "smart-cheap-router"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:signals"

# ------------------------------------------------------------------ building blocks

any_char = st.characters(codec=None)  # every code point, lone surrogates included
no_surrogate = st.characters(exclude_categories=("Cs",))
unicode_text = st.text(any_char, max_size=40)
header_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=60)
tricky_strings = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a.².b",
        "abc.٣.deadbeef",
        "x.0.*",
        "../../etc/passwd",
        "%00",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "\u202e\u0000\ufeff",
        "\ud800",
        "\udfff",
        "ＡＢＣ１２３",
        "NaN",
        "1e309",
        "-0",
        "a" * 300,
        "#",
        "KEY#x",
        "smart-cheap-router#general#fast#0",
    ]
)
strings = st.one_of(unicode_text, tricky_strings)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    """JSON text nested `depth` levels deep (arrays, objects or both), possibly unbalanced."""
    depth = draw(st.sampled_from([2, 50, 200, 999, 1000, 1001, 5000, 50_000]))
    kind = draw(st.sampled_from(["array", "object", "mixed"]))
    if kind == "array":
        opened, closed = "[" * depth, "]" * depth
    elif kind == "object":
        opened, closed = '{"a":' * depth + "1", "}" * depth
    else:
        opened, closed = '[{"a":' * depth + "1", "}]" * depth
    if draw(st.booleans()):
        closed = closed[: len(closed) // 2]  # unbalanced
    return opened + closed


def encode(value: Any, draw: st.DrawFn) -> bytes:
    """JSON text of `value` as bytes: ASCII-escaped, or raw UTF-8 (lone surrogates as surrogatepass
    bytes, which are not valid UTF-8)."""
    if draw(st.booleans()):
        return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------ probes


@dataclass(frozen=True)
class Probe:
    """One generated request: `family` names the strategy that made it (for reports)."""

    route: str
    family: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    auth: str = "valid"
    """"valid" (the test key), "none", or a literal Authorization header value."""
    signed: bool = True
    records: tuple[bytes, ...] = ()
    """SQS record bodies (route "sqs")."""


auth_choice = st.one_of(
    st.just("valid"),
    st.just("valid"),
    st.just("valid"),
    st.just("none"),
    header_text,
    st.builds(lambda s: "Bearer rk-" + s, header_text),
)
content_types = st.one_of(
    st.just("application/json"),
    st.just("application/json"),
    st.sampled_from(["", "text/plain", "application/json; charset=latin-1", "multipart/form-data", "*/*"]),
    header_text,
)


def _valid_chat(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(min_value=0, max_value=3))
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for _ in range(turns):
        messages += [{"role": "user", "content": "Explain closures."}, {"role": "assistant", "content": "Sure."}]
    messages.append({"role": "user", "content": "Write a Python function to sort a list."})
    return {"model": ROUTER, "messages": messages, "temperature": 0.5, "metadata": {"session_id": "s1"}}


def _unicode_contents(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with the content of some messages replaced by Unicode text or a list of parts."""
    for message in doc["messages"]:
        if draw(st.booleans()):
            text = draw(st.one_of(unicode_text, st.text(any_char, min_size=100, max_size=600)))
            message["content"] = text if draw(st.booleans()) else [{"type": "text", "text": text}]
    return doc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for k, v in items:
        found.append((*prefix, k))
        found.extend(_paths(v, (*prefix, k)))
    return found


def _mutate(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with one to three places replaced by arbitrary JSON, Unicode text, or removed."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "unicode", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(strings)] = draw(json_values)
        elif action == "unicode":
            parent[path[-1]] = draw(strings)
        else:
            parent[path[-1]] = draw(json_values)
    return doc


@st.composite
def _unicode_everywhere(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every string (keys kept) replaced by drawn Unicode, shape intact."""

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str) and draw(st.booleans()):
            return draw(strings)
        return v

    result: dict[str, Any] = walk(doc)
    return result


def _raw_body(draw: st.DrawFn) -> tuple[str, bytes]:
    """A body and the family that made it: bytes, text, nesting, JSON of any shape."""
    family = draw(st.sampled_from(["bytes", "text", "nesting", "json_any", "invalid_utf8_json"]))
    if family == "bytes":
        return family, draw(st.binary(max_size=200))
    if family == "text":
        return family, draw(st.text(no_surrogate, max_size=200)).encode("utf-8")
    if family == "nesting":
        inner = draw(deep_nesting())
        wrap = draw(st.sampled_from(["{}", '{"model": "smart-cheap-router", "messages": {}}', '{"turn_id": {}}']))
        return family, wrap.replace("{}", inner, 1).encode() if wrap != "{}" else inner.encode()
    if family == "invalid_utf8_json":
        return family, b'{"model": "' + draw(st.binary(min_size=1, max_size=20)) + b'", "messages": []}'
    return family, encode(draw(json_values), draw)


@st.composite
def chat_probes(draw: st.DrawFn) -> Probe:
    family = draw(st.sampled_from(["raw", "mutated", "unicode", "content", "headers"]))
    headers = {"content-type": draw(content_types) if family == "headers" else "application/json"}
    if family == "content":  # a well-formed conversation whose texts are any Unicode at all
        body = encode(_unicode_contents(draw, _valid_chat(draw)), draw)
    elif family == "raw":
        family, body = _raw_body(draw)
    elif family == "mutated":
        body = encode(_mutate(draw, _valid_chat(draw)), draw)
    elif family == "unicode":
        body = encode(draw(_unicode_everywhere(_valid_chat(draw))), draw)
    else:
        body = encode(_valid_chat(draw), draw)
        headers["x-router-session-id"] = draw(st.one_of(header_text, tricky_strings.filter(_header_safe)))
        headers[draw(st.sampled_from(["x-forwarded-for", "user-agent", "accept", draw(header_name)]))] = draw(
            header_text
        )
    return Probe("chat", family, body=body, headers=headers, auth=draw(auth_choice))


header_name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"), min_size=1, max_size=20)


def _header_safe(s: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF or c in "\r\n" for c in s)


@st.composite
def models_probes(draw: st.DrawFn) -> Probe:
    headers = {draw(header_name): draw(header_text) for _ in range(draw(st.integers(0, 3)))}
    query = draw(st.dictionaries(st.text(no_surrogate, min_size=1, max_size=10), header_text, max_size=3))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=50)))
    return Probe("models", "headers_query", body=body, headers=headers, query=query, auth=draw(auth_choice))


def _valid_feedback(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"turn_id": "s1.1.deadbeef", "rating": draw(st.sampled_from(["up", "down"]))}
    return {"turn_id": "s1.1.deadbeef", "reward": draw(st.floats(min_value=0, max_value=1))}


turn_ids = st.one_of(
    strings,
    st.builds(
        lambda s, i, n: f"{s}.{i}.{n}",
        st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), unicode_text),
        st.one_of(st.integers(min_value=-5, max_value=10**8).map(str), unicode_text),
        st.one_of(st.from_regex(r"[0-9a-f]{8}", fullmatch=True), unicode_text),
    ),
)


@st.composite
def feedback_probes(draw: st.DrawFn) -> Probe:
    family = draw(st.sampled_from(["raw", "mutated", "unicode", "turn_id"]))
    if family == "raw":
        family, body = _raw_body(draw)
    elif family == "mutated":
        body = encode(_mutate(draw, _valid_feedback(draw)), draw)
    elif family == "unicode":
        body = encode(draw(_unicode_everywhere(_valid_feedback(draw))), draw)
    else:
        body = encode({**_valid_feedback(draw), "turn_id": draw(turn_ids)}, draw)
    return Probe("feedback", family, body=body, headers={"content-type": "application/json"}, auth=draw(auth_choice))


@st.composite
def state_probes(draw: st.DrawFn) -> Probe:
    # Mostly odd router names (a full snapshot is the slow answer; a few are enough).
    shape = draw(st.sampled_from(["router"] * 6 + ["router_and_more"] * 3 + ["none"]))
    router = draw(st.one_of(header_text.filter(bool), tricky_strings.filter(_header_safe)))
    if draw(st.sampled_from([False] * 9 + [True])):
        router = ROUTER
    query: dict[str, str] = {}
    if shape == "router_and_more":
        query = draw(st.dictionaries(st.text(no_surrogate, min_size=1, max_size=10), header_text, max_size=3))
    if shape != "none":
        query["router"] = router
    headers = {draw(header_name): draw(header_text) for _ in range(draw(st.integers(0, 2)))}
    signed = draw(st.sampled_from([True] * 9 + [False]))
    return Probe("state", "query", query=query, headers=headers, signed=signed, auth="none")


def _valid_signal(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "v": 1,
        "turn_id": "s1.1.deadbeef",
        "key_hash": "0" * 64,
        "router": ROUTER,
        "request_type": draw(st.sampled_from(["general", "writing", "code_generation"])),
        "model": draw(st.sampled_from(["fast", "smart"])),
        "reward": 1.0,
        "kind": "satisfaction",
        "rule": "satisfaction:gratitude",
        "at": 1764000000.0,
    }


@st.composite
def sqs_probes(draw: st.DrawFn) -> Probe:
    records = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        family = draw(st.sampled_from(["raw", "raw", "mutated", "mutated", "unicode", "unicode", "valid"]))
        if family == "raw":
            records.append(_raw_body(draw)[1])
        elif family == "mutated":
            records.append(encode(_mutate(draw, _valid_signal(draw)), draw))
        elif family == "unicode":
            records.append(encode(draw(_unicode_everywhere(_valid_signal(draw))), draw))
        else:
            records.append(encode(_valid_signal(draw), draw))
    return Probe("sqs", "records", records=tuple(records))


STRATEGIES: dict[str, st.SearchStrategy[Probe]] = {
    "chat": chat_probes(),
    "models": models_probes(),
    "feedback": feedback_probes(),
    "state": state_probes(),
    "sqs": sqs_probes(),
}


# ------------------------------------------------------------------ driving and judging


def _event_body(raw: bytes) -> str | bytes:
    """What the gateway puts in the event: text when the bytes are UTF-8, else the raw bytes
    (the event builder base64-encodes them)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


@dataclass
class Driver:
    """Calls the handlers (already imported, on moto) with probes; records every answer's status."""

    chat: ModuleType
    feedback: ModuleType
    state: ModuleType
    api_key: str
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: list[tuple[Probe, str]] = field(default_factory=list)

    def event(self, probe: Probe) -> tuple[ModuleType, str, dict[str, Any]]:
        if probe.route == "sqs":
            messages = [
                {
                    "MessageId": str(uuid.UUID(int=i)),
                    "ReceiptHandle": f"rh-{i}",
                    "Body": body.decode("utf-8", "replace"),
                    "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
                    "MD5OfBody": "",
                }
                for i, body in enumerate(probe.records)
            ]
            return self.feedback, "feedback", sqs_event(messages, QUEUE_ARN)
        headers = dict(probe.headers)
        if probe.auth == "valid":
            headers["authorization"] = f"Bearer {self.api_key}"
        elif probe.auth != "none":
            headers["authorization"] = probe.auth
        method, path, module, function = {
            "chat": ("POST", "/v1/chat/completions", self.chat, "chat"),
            "models": ("GET", "/v1/models", self.chat, "chat"),
            "feedback": ("POST", "/v1/feedback", self.feedback, "feedback"),
            "state": ("GET", "/v1/state", self.state, "state"),
        }[probe.route]
        event = http_event(
            method, path, body=_event_body(probe.body), headers=headers, query=probe.query, signed=probe.signed
        )
        if probe.query:  # keep every drawn parameter exactly, whatever the raw query string says
            event["queryStringParameters"] = dict(probe.query)
        return module, function, event

    def run(self, probe: Probe) -> str | None:
        """Send `probe`; the problem with its answer, or None. Records status and time."""
        module, function, event = self.event(probe)
        started = time.perf_counter()
        try:
            result = module.lambda_handler(event, lambda_context(function))
        except Exception as exc:  # an invocation error: API Gateway answers 500, SQS retries the batch
            result = {"statusCode": 500, "body": f"handler raised {type(exc).__name__}: {exc}"}
        self.seconds[probe.route] = self.seconds.get(probe.route, 0.0) + time.perf_counter() - started
        problem = judge(probe, event, result)
        status = 200 if probe.route == "sqs" and problem is None else int(result.get("statusCode", 500))
        counts = self.statuses.setdefault(probe.route, {})
        counts[status] = counts.get(status, 0) + 1
        if problem is not None:
            self.failures.append((probe, problem))
        return problem


def judge(probe: Probe, event: dict[str, Any], result: Any) -> str | None:
    """None when `result` is an acceptable answer to `probe`, else what is wrong with it."""
    if probe.route == "sqs":
        return _judge_batch(event, result)
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return f"not a structured response: {result!r:.200}"
    status = result["statusCode"]
    if status >= 500:
        return f"{status}: {result.get('body')!r:.300}"
    if status >= 400:
        return _openai_error_problem(status, result.get("body"))
    return None


def _openai_error_problem(status: int, body: Any) -> str | None:
    try:
        error = json.loads(body)["error"]
    except (TypeError, ValueError, KeyError) as exc:
        return f"{status} without an OpenAI error body ({type(exc).__name__}): {body!r:.200}"
    if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
        return f"{status} error body has keys {sorted(error) if isinstance(error, dict) else error!r}"
    if not (isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)):
        return f"{status} error body without message or type: {error!r:.200}"
    if not isinstance(error["code"], str) or not (error["param"] is None or isinstance(error["param"], str)):
        return f"{status} error body with a bad code or param: {error!r:.200}"
    return None


def _judge_batch(event: dict[str, Any], result: Any) -> str | None:
    if not isinstance(result, dict) or not isinstance(result.get("batchItemFailures"), list):
        return f"not a partial batch response: {result!r:.300}"
    ids = {r["messageId"] for r in event["Records"]}
    for failure in result["batchItemFailures"]:
        if not isinstance(failure, dict) or failure.get("itemIdentifier") not in ids:
            return f"batch item failure names no record of the batch: {failure!r}"
    return None


def summary_rows(driver: Driver) -> list[dict[str, Any]]:
    """One row per route: probes sent, statuses seen, responses ≥ 500, mean handler time."""
    rows = []
    for route in ROUTES:
        counts = driver.statuses.get(route, {})
        total = sum(counts.values())
        rows.append(
            {
                "route": route,
                "probes": total,
                "statuses": {str(k): v for k, v in sorted(counts.items())},
                "responses_5xx": sum(v for k, v in counts.items() if k >= 500),
                "problems": sum(1 for p, _ in driver.failures if p.route == route),
                "mean_ms": round(1000 * driver.seconds.get(route, 0.0) / total, 3) if total else None,
            }
        )
    return rows


ProbeRunner = Callable[[Probe], str | None]
