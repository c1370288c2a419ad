"""Synthetic chat sessions that teach the router, then a summary of what it learned.

    python -m tools.traffic --api-key rk-... [--router smart-cheap-router] [--rounds 100] [--interval 0.5] [--stream]

`--interval` is the number of seconds between the starts of two sessions (`--rate` is an older
name for the same flag, still accepted; it never meant sessions per second).

Each round is one session. The first request is a five-message conversation ending with a
labelled prompt (`tools.corpus`), so the routed turn passes the signal gate in one request. The
tool reads the router's pick (`x-router-model`) and request type (`x-router-request-type`),
rolls a Bernoulli draw against the quality oracle for (labelled type, picked model), and sends
the follow-up in the same session: the real answer plus a satisfaction follow-up on success, a
neutral one on failure (or a complaint with `--negative-signals`). The router reads that
follow-up as implicit feedback on the first turn (`router.implicit_feedback` in the answer): a
neutral follow-up as its weak `neutral` observation (the router's `neutral_follow_up_reward`).

With `--stream` every chat request asks for a streamed answer (`stream: true`, usage included)
and reads it event by event: the same facts, plus the time to the first content chunk and the
number of content chunks per answer (the summary's median and p95). An `error` event or a
stream that ends without `data: [DONE]` fails the session like any other failed request.

With AWS credentials the tool also reads the IAM-signed `GET /v1/state` before and after the
run: the router's pick share per type, regret against the oracle, and how many turns and
signals the router counted (which must match what this tool sent).

Exit codes: 0 done, 1 some sessions failed, 2 bad arguments or the API cannot be used
(wrong URL, wrong key, unknown router, bad oracle file), 130 interrupted (summary printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import signal
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tools.corpus import PROMPTS, REQUEST_TYPES, FollowUpKind, corpus_types, follow_up, opening_messages

DEFAULT_API_URL = "http://127.0.0.1:3000"
DEFAULT_ROUTER = "smart-cheap-router"
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "layers" / "router_core" / "router_core" / "routers.yaml"
"""The router config shipped with the layer: its simulated provider holds the demo's quality oracle
(P(an answer satisfies the user) per request type and model), the one table the simulated
models, this tool and the benchmarks share."""
DEFAULT_QUALITY = 0.7
"""P(success) for (type, model) pairs the oracle does not name."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------- errors


class UsageError(Exception):
    """The tool cannot run as asked: a one-line message, exit code 2."""


class ApiError(Exception):
    """The router API answered with an error (after retries) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, fatal: bool = False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.fatal = fatal
        """True when every later request would fail the same way (connection refused, bad key)."""


# --------------------------------------------------------------------------- oracle


@dataclass(frozen=True)
class Oracle:
    """P(success) per (request type, model); pairs it does not name get `default_quality`."""

    table: Mapping[str, Mapping[str, float]]
    default_quality: float = DEFAULT_QUALITY

    def quality(self, request_type: str, model: str) -> float:
        """Probability in [0, 1] that `model` satisfies a `request_type` request."""
        return float(self.table.get(request_type, {}).get(model, self.default_quality))

    def models(self) -> set[str]:
        """Every model the oracle names."""
        return {m for row in self.table.values() for m in row}

    def best_quality(self, request_type: str, models: Iterable[str]) -> tuple[str, float]:
        """The model among `models` with the highest quality for the type (ties: first name)."""
        ranked = sorted(models, key=lambda m: (-self.quality(request_type, m), m))
        if not ranked:
            return "", self.default_quality
        return ranked[0], self.quality(request_type, ranked[0])


def parse_oracle(data: Any, source: str) -> Oracle:
    """Validate an oracle mapping: `{type: {model: p}}`, optionally under `oracle:` with `default_quality:`."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: the oracle must be a mapping of request type -> model -> probability")
    default = DEFAULT_QUALITY
    if "oracle" in data:
        unexpected = set(data) - {"oracle", "default_quality"}
        if unexpected:
            raise UsageError(f"{source}: unexpected top-level key(s) {sorted(unexpected)}")
        default = _probability(data.get("default_quality", DEFAULT_QUALITY), f"{source}: default_quality")
        data = data["oracle"]
        if not isinstance(data, dict):
            raise UsageError(f"{source}: 'oracle' must be a mapping of request type -> model -> probability")
    elif "default_quality" in data:
        default = _probability(data.pop("default_quality"), f"{source}: default_quality")
    table: dict[str, dict[str, float]] = {}
    for request_type, row in data.items():
        if request_type not in REQUEST_TYPES:
            raise UsageError(f"{source}: unknown request type {request_type!r}; known: {', '.join(REQUEST_TYPES)}")
        if not isinstance(row, dict) or not row:
            raise UsageError(f"{source}: {request_type} must map model names to probabilities")
        table[request_type] = {
            str(model): _probability(p, f"{source}: {request_type}.{model}") for model, p in row.items()
        }
    if not table:
        raise UsageError(f"{source}: the oracle names no request type")
    return Oracle(table, default)


def _probability(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise UsageError(f"{where}: expected a probability between 0 and 1, got {value!r}")
    return float(value)


def demo_oracle() -> Oracle:
    """The demo's oracle: the simulated provider's table in the shipped router config."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    simulated = next(p for p in config["providers"].values() if p.get("type") == "simulated")
    return parse_oracle(
        {"oracle": simulated["oracle"], "default_quality": simulated.get("default_quality", DEFAULT_QUALITY)},
        str(SHIPPED_CONFIG),
    )


def load_oracle(path: str | None) -> Oracle:
    """The oracle from a YAML or JSON file (JSON is YAML), or the demo's table when `path` is None."""
    if path is None:
        return demo_oracle()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--oracle {path}: cannot read it ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"--oracle {path}: not valid YAML or JSON ({str(exc).splitlines()[0]})") from exc
    return parse_oracle(data, f"--oracle {path}")


# --------------------------------------------------------------------------- AWS credentials


@dataclass(frozen=True)
class AwsIdentity:
    """Credentials and region for signing `GET /v1/state` (service execute-api)."""

    credentials: Credentials
    region: str
    source: str


def resolve_aws_identity(
    profile: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
    region: str | None,
) -> AwsIdentity | None:
    """Explicit keys, else a named profile, else the standard environment and shared files.

    The instance-metadata provider is left out on purpose: this tool never calls a link-local
    metadata address. Returns None when no credentials are found (the state read is skipped).
    """
    if bool(access_key_id) != bool(secret_access_key):
        raise UsageError("--aws-access-key-id and --aws-secret-access-key must be given together")
    try:
        session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
        chosen_region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.get_config_variable("region")
        )
        if access_key_id and secret_access_key:
            creds = Credentials(access_key_id, secret_access_key, session_token or None)
            source = "command line"
        else:
            resolver = session.get_component("credential_provider")
            resolver.remove("iam-role")
            found = resolver.load_credentials()
            if found is None:
                if profile:
                    raise UsageError(f"--aws-profile {profile}: the profile has no credentials")
                return None
            creds = found
            source = f"profile {profile}" if profile else getattr(found, "method", "environment")
    except BotoCoreError as exc:
        raise UsageError(f"AWS credentials: {exc}") from exc
    return AwsIdentity(creds, str(chosen_region or "us-east-1"), source)


# --------------------------------------------------------------------------- HTTP client


@dataclass(frozen=True)
class ChatReply:
    """What one routed (or direct) chat request answered."""

    model: str
    request_type: str
    turn_id: str | None
    session_id: str
    content: str
    cost_usd: float
    baseline_cost_usd: float
    propensity: float | None
    fallback: str | None
    gate_passed: bool
    implicit_feedback: dict[str, Any] | None
    usage: dict[str, int]
    first_content_s: float | None = None
    """Streamed answers: seconds from sending the request to the first content chunk (None when
    the answer had no content, or was not streamed)."""
    content_chunks: int | None = None
    """Streamed answers: how many chunks carried content (None when not streamed)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff for 429, 5xx and connection errors."""

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempt + 1` (Retry-After honoured up to the cap)."""
        if retry_after:
            try:
                wait_s = float(retry_after)
            except ValueError:
                wait_s = -1.0
            if wait_s >= 0.0:
                return min(self.max_delay_s, wait_s)
        return min(self.max_delay_s, self.base_delay_s * (2.0**attempt)) * (0.5 + rng.random() / 2)


class RouterApi:
    """The router's HTTP API with client-key auth, bounded retries and clear error messages."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        aws: AwsIdentity | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = normalize_api_url(api_url)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.aws = aws
        self._sleep = sleep
        self._jitter = random.Random()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers={"authorization": f"Bearer {api_key}", "user-agent": "router-traffic/1"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RouterApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- routes

    def list_models(self) -> list[dict[str, Any]]:
        """`GET /v1/models`: routers (`owned_by == "router"`) and models."""
        data = self._json("GET", "/v1/models")
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ApiError(f"{self.api_url}/v1/models did not answer a model list: is this the router API?", fatal=True)
        return [r for r in rows if isinstance(r, dict)]

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        session_id: str | None = None,
        *,
        temperature: float | None = None,
        stream: bool = False,
    ) -> ChatReply:
        """`POST /v1/chat/completions` with the session header; the answer and the router's facts.

        `stream` asks for the answer as events (`stream: true`, usage included) and reads them as
        they arrive (`read_chat_stream`); the reply then also says when content started and in
        how many chunks it came.
        """
        headers = {"x-router-session-id": session_id} if session_id else {}
        request: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            request["temperature"] = temperature
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
            opened = self._open("POST", "/v1/chat/completions", body=request, headers=headers, stream=True)
            with opened as (response, sent_at):
                try:
                    streamed = read_chat_stream(response.iter_lines(), sent_at)
                except httpx.RequestError as exc:  # after the head: not retried, the answer is lost
                    raise ApiError(
                        f"POST {self.api_url}/v1/chat/completions: the stream broke after it started "
                        f"({exc.__class__.__name__}: {exc})"
                    ) from exc
            return _chat_reply(
                response.headers,
                streamed.router,
                streamed.content,
                streamed.usage,
                session_id,
                first_content_s=streamed.first_content_s,
                content_chunks=streamed.content_chunks,
            )
        response = self._send("POST", "/v1/chat/completions", body=request, headers=headers)
        body = _json_body(response)
        try:
            content = body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise ApiError("the chat answer has no choices[0].message.content") from exc
        facts = _mapping(body.get("router"))
        facts = {**facts, "model": facts.get("model") or body.get("model")}
        return _chat_reply(response.headers, facts, str(content), _mapping(body.get("usage")), session_id)

    def feedback(self, turn_id: str, rating: str) -> tuple[int, dict[str, Any]]:
        """`POST /v1/feedback {turn_id, rating}`: (status, body); 409 (already rated) is not an error."""
        response = self._send("POST", "/v1/feedback", body={"turn_id": turn_id, "rating": rating}, accept=(409,))
        return response.status_code, _json_body(response)

    def state(self, router: str | None = None) -> dict[str, Any]:
        """`GET /v1/state` signed with SigV4 (service execute-api); needs `aws`."""
        if self.aws is None:
            raise UsageError("reading /v1/state needs AWS credentials")
        path = "/v1/state" + (f"?router={quote(router, safe='')}" if router else "")
        data = self._json("GET", path, signed=True)
        if not isinstance(data, dict) or not isinstance(data.get("routers"), list):
            raise ApiError("/v1/state did not answer a state snapshot")
        return data

    # -- plumbing

    def _json(self, method: str, path: str, *, signed: bool = False) -> Any:
        return _json_body(self._send(method, path, signed=signed))

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        signed: bool = False,
        accept: Sequence[int] = (),
    ) -> httpx.Response:
        """The whole answer (see `_open`)."""
        with self._open(method, path, body=body, headers=headers, signed=signed, accept=accept) as (response, _):
            return response

    @contextmanager
    def _open(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        signed: bool = False,
        accept: Sequence[int] = (),
        stream: bool = False,
    ) -> Iterator[tuple[httpx.Response, float]]:
        """The answer and when (`time.monotonic()`) its request was sent, after bounded retries.

        429, 5xx and transport errors are retried (RetryPolicy); other answers outside 2xx and
        `accept` raise ApiError with the server's message. With `stream` a 2xx body is left
        unread for the caller (an error body is always read first, for its message); nothing
        that fails once the caller reads a stream is retried. The response is closed on exit.
        """
        url = self.api_url + path
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        last_error: Exception | None = None
        for attempt in range(self.retry.attempts):
            send_headers = dict(headers or {})
            if payload is not None:
                send_headers["content-type"] = "application/json"
            if signed:
                send_headers.update(self._sigv4_headers(method, url))
            with ExitStack() as answer:
                sent_at = time.monotonic()
                try:
                    response = answer.enter_context(
                        self._client.stream(method, url, content=payload, headers=send_headers)
                    )
                    if not stream or not response.is_success:
                        response.read()
                except httpx.TransportError as exc:
                    last_error = exc
                    if attempt + 1 >= self.retry.attempts:
                        raise self._transport_error(exc) from exc
                    wait_s = self.retry.delay(attempt, None, self._jitter)
                else:
                    if response.status_code in RETRY_STATUSES and attempt + 1 < self.retry.attempts:
                        wait_s = self.retry.delay(attempt, response.headers.get("retry-after"), self._jitter)
                    elif response.is_success or response.status_code in accept:
                        yield response, sent_at
                        return
                    else:
                        raise self._http_error(method, path, response, signed=signed)
            self._sleep(wait_s)
        raise ApiError(f"{method} {path}: gave up after {self.retry.attempts} attempts ({last_error})")

    def _sigv4_headers(self, method: str, url: str) -> dict[str, str]:
        assert self.aws is not None
        request = AWSRequest(method=method, url=url)
        SigV4Auth(self.aws.credentials, "execute-api", self.aws.region).add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}

    def _transport_error(self, exc: httpx.TransportError) -> ApiError:
        if isinstance(exc, httpx.ConnectError):
            return ApiError(
                f"cannot connect to {self.api_url} (connection refused or unreachable): is the router API "
                "running there? Check --api-url",
                fatal=True,
            )
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(f"no answer from {self.api_url} within {self.timeout_s:g} s (raise --timeout?)")
        return ApiError(f"the connection to {self.api_url} failed: {exc.__class__.__name__}: {exc}")

    def _http_error(self, method: str, path: str, response: httpx.Response, *, signed: bool) -> ApiError:
        status = response.status_code
        message, code = _error_message(response)
        where = f"{method} {self.api_url}{path.split('?')[0]}"
        if status == 401:
            return ApiError(
                f"the router rejected the client key (401 {code or 'invalid_api_key'}): check --api-key or "
                "ROUTER_API_KEY",
                status=status,
                code=code,
                fatal=True,
            )
        if status == 403 and signed:
            return ApiError(
                f"{where}: 403 — the AWS credentials were refused ({message}). Use credentials allowed to "
                "invoke GET /v1/state (execute-api:Invoke), the API's region (--region), and a correct clock",
                status=status,
                code=code,
                fatal=True,
            )
        if status == 404 and code is None:
            return ApiError(
                f"{where}: 404 — no such route; is --api-url the router API's base URL (e.g. {DEFAULT_API_URL})?",
                status=status,
                fatal=True,
            )
        return ApiError(
            f"{where}: {status} {code or ''} {message}".replace("  ", " ").strip(), status=status, code=code
        )


def normalize_api_url(url: str) -> str:
    """Base URL without a trailing slash or `/v1` (both spellings are accepted)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url {url!r}: expected an http:// or https:// URL")
    return url.removesuffix("/v1")


def _chat_reply(
    headers: httpx.Headers,
    facts: dict[str, Any],
    content: str,
    usage: dict[str, Any],
    session_id: str | None,
    *,
    first_content_s: float | None = None,
    content_chunks: int | None = None,
) -> ChatReply:
    """A chat answer from the router headers, its `router` facts (headers win), content and usage."""
    gate = _mapping(facts.get("feedback_gate"))
    implicit = facts.get("implicit_feedback")
    propensity = headers.get("x-router-propensity")
    turn_id = headers.get("x-router-turn-id") or facts.get("turn_id")
    return ChatReply(
        model=headers.get("x-router-model") or str(facts.get("model") or ""),
        request_type=headers.get("x-router-request-type") or str(facts.get("request_type") or ""),
        turn_id=str(turn_id) if turn_id else None,
        session_id=headers.get("x-router-session-id") or str(facts.get("session_id") or session_id or ""),
        content=content,
        cost_usd=float(facts.get("cost_usd") or 0.0),
        baseline_cost_usd=float(facts.get("baseline_cost_usd") or 0.0),
        propensity=float(propensity) if propensity else None,
        fallback=headers.get("x-router-fallback"),
        gate_passed=bool(gate.get("passed", False)),
        implicit_feedback=implicit if isinstance(implicit, dict) else None,
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int)},
        first_content_s=first_content_s,
        content_chunks=content_chunks,
    )


@dataclass
class StreamedAnswer:
    """A streamed chat answer, assembled from its events."""

    content: str = ""
    router: dict[str, Any] = field(default_factory=dict)
    """The `router` facts of the last event that carried them (the finish chunk)."""
    usage: dict[str, Any] = field(default_factory=dict)
    first_content_s: float | None = None
    content_chunks: int = 0


def event_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each event of a `text/event-stream`, in order.

    An event is its `data:` lines joined by newlines and ends at a blank line; comments (`:`)
    and other fields are skipped. Data left at the end of the stream is the last event. (The
    router's providers have their own reader; this client reads the router independently.)
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


def read_chat_stream(
    lines: Iterable[str], sent_at: float, clock: Callable[[], float] = time.monotonic
) -> StreamedAnswer:
    """Read a streamed chat answer to its `data: [DONE]`: content, router facts, usage and timing.

    `sent_at` is the `clock()` reading when the request was sent; `first_content_s` is measured
    from it to the first chunk whose delta has content. Raises ApiError for an `error` event
    (with the server's message), an event that is not a JSON object, or a stream that ends
    without `[DONE]`.
    """
    answer = StreamedAnswer()
    pieces: list[str] = []
    done = False
    failure: ApiError | None = None
    for data in event_data(lines):
        if done or failure:  # read to the end, so the connection is left clean
            continue
        if data.strip() == "[DONE]":
            done = True
            continue
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise ApiError(f"the chat stream sent an event that is not JSON: {data[:80]!r}") from exc
        if not isinstance(event, dict):
            raise ApiError(f"the chat stream sent an event that is not a JSON object: {data[:80]!r}")
        if isinstance(event.get("router"), dict):
            answer.router = event["router"]
        if "error" in event:
            error = _mapping(event["error"])
            code = str(error["code"]) if error.get("code") else None
            failure = ApiError(
                f"the chat stream ended with an error event ({code or 'no code'}): {error.get('message') or ''}",
                code=code,
            )
            continue
        if isinstance(event.get("usage"), dict):
            answer.usage = event["usage"]
        for choice in event.get("choices") or []:
            content = _mapping(_mapping(choice).get("delta")).get("content")
            if isinstance(content, str) and content:
                if answer.first_content_s is None:
                    answer.first_content_s = clock() - sent_at
                answer.content_chunks += 1
                pieces.append(content)
    if failure is not None:
        raise failure
    if not done:
        raise ApiError("the chat stream ended without data: [DONE] (the answer is incomplete)")
    answer.content = "".join(pieces)
    return answer


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (answers are read defensively)."""
    return value if isinstance(value, dict) else {}


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ApiError(f"{response.request.url}: answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(f"{response.request.url}: answered JSON that is not an object")
    return data


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return str(err.get("message") or ""), (str(err["code"]) if err.get("code") else None)
    if isinstance(data, dict) and "message" in data:
        return str(data["message"]), None
    return str(data)[:200], None


def check_router(api: RouterApi, router: str, *, judge_model: str | None = None) -> list[dict[str, Any]]:
    """Preflight `GET /v1/models`: the URL answers, the key is valid, the router (and judge) exist."""
    rows = api.list_models()
    routers = sorted(str(r.get("id")) for r in rows if r.get("owned_by") == "router")
    models = sorted(str(r.get("id")) for r in rows if r.get("owned_by") != "router")
    if router not in routers:
        raise UsageError(f"unknown router {router!r} (404 model_not_found); routers at this API: {', '.join(routers)}")
    if judge_model is not None and judge_model not in models:
        hint = " (a router learns from its calls: name a model)" if judge_model in routers else ""
        raise UsageError(f"--judge-model {judge_model!r} is not a configured model{hint}; models: {', '.join(models)}")
    return rows


# --------------------------------------------------------------------------- sessions


@dataclass
class SessionResult:
    """One session: the routed first turn, the oracle's draw, the follow-up and what the router read."""

    index: int
    labelled_type: str
    classified_type: str = ""
    model: str = ""
    propensity: float | None = None
    fallback: str | None = None
    gate_passed: bool = False
    success: bool | None = None
    expected_quality: float = 0.0
    best_quality: float = 0.0
    follow_up_kind: str = ""
    follow_up_type: str = ""
    follow_up_model: str = ""
    signal_kind: str | None = None
    signal_reward: float | None = None
    turns: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    first_content_s: list[float] = field(default_factory=list)
    """Streamed answers that had content: seconds from each request to its first content chunk."""
    content_chunks: list[int] = field(default_factory=list)
    """Streamed answers: content chunks per answer, in the order of the requests."""
    error: str | None = None
    fatal: bool = False


@dataclass(frozen=True)
class TrafficPlan:
    """Everything a session needs besides the API."""

    router: str
    types: tuple[str, ...]
    oracle: Oracle
    negative_signals: bool
    seed: int | None
    router_models: tuple[str, ...]
    stream: bool = False
    """Ask for every answer as a stream of events (`--stream`)."""


def session_rng(seed: int | None, index: int) -> random.Random:
    """Per-session randomness: reproducible per (seed, index) whatever the concurrency."""
    return random.Random(f"{seed}:{index}") if seed is not None else random.Random()


def run_session(api: RouterApi, plan: TrafficPlan, index: int) -> SessionResult:
    """One session: the gated first turn, the oracle's draw, the follow-up (see the module doc).

    Never raises for API trouble: the error is kept on the result (`fatal` when every later
    request would fail the same way).
    """
    rng = session_rng(plan.seed, index)
    labelled = rng.choice(plan.types)
    result = SessionResult(index=index, labelled_type=labelled)
    try:
        _converse(api, plan, rng, result)
    except ApiError as exc:
        result.error, result.fatal = str(exc), exc.fatal
    except Exception as exc:  # an unexpected answer shape: report it and keep the run going
        result.error = f"{exc.__class__.__name__}: {exc}"
    return result


def _converse(api: RouterApi, plan: TrafficPlan, rng: random.Random, result: SessionResult) -> None:
    labelled = result.labelled_type
    messages = opening_messages(rng.choice(PROMPTS[labelled]), rng)
    first = api.chat(plan.router, messages, "traffic-" + uuid.uuid4().hex[:24], stream=plan.stream)
    result.turns = 1
    _record_stream(result, first)
    result.classified_type = first.request_type
    result.model = first.model
    result.propensity = first.propensity
    result.fallback = first.fallback
    result.gate_passed = first.gate_passed
    result.cost_usd += first.cost_usd
    result.baseline_usd += first.baseline_cost_usd
    models = plan.router_models or tuple(sorted(plan.oracle.models() | {first.model}))
    result.expected_quality = plan.oracle.quality(labelled, first.model)
    result.best_quality = plan.oracle.best_quality(labelled, models)[1]
    result.success = rng.random() < result.expected_quality
    kind: FollowUpKind = "satisfaction" if result.success else ("negative" if plan.negative_signals else "neutral")
    result.follow_up_kind = kind
    conversation = [*messages, {"role": "assistant", "content": first.content}]
    conversation.append({"role": "user", "content": follow_up(kind, labelled, rng)})
    second = api.chat(plan.router, conversation, first.session_id, stream=plan.stream)
    result.turns = 2
    _record_stream(result, second)
    result.follow_up_type = second.request_type
    result.follow_up_model = second.model
    result.cost_usd += second.cost_usd
    result.baseline_usd += second.baseline_cost_usd
    signal = second.implicit_feedback
    if signal and (first.turn_id is None or signal.get("turn_id") == first.turn_id):
        result.signal_kind = str(signal.get("kind"))
        result.signal_reward = float(signal.get("reward", 0.0))


def _record_stream(result: SessionResult, reply: ChatReply) -> None:
    if reply.content_chunks is not None:
        result.content_chunks.append(reply.content_chunks)
    if reply.first_content_s is not None:
        result.first_content_s.append(reply.first_content_s)


# --------------------------------------------------------------------------- the run


@dataclass
class RunOutcome:
    """Results of every session that finished, plus how the run ended."""

    results: list[SessionResult] = field(default_factory=list)
    interrupted: bool = False
    stopped_reason: str | None = None
    duration_s: float = 0.0


INTERRUPT_GRACE_S = 3.0
"""After Ctrl-C, how long the sessions in flight may take to finish their current request."""


def _ignore_further_interrupts() -> None:
    """Once interrupted, further SIGINT/SIGTERM must not cut the wind-down or the summary."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def drive(
    api: RouterApi,
    plan: TrafficPlan,
    *,
    rounds: int,
    rate_s: float,
    concurrency: int,
    max_duration_s: float,
    on_result: Callable[[SessionResult], None] | None = None,
) -> RunOutcome:
    """Run `rounds` sessions, starting one every `rate_s` seconds with at most `concurrency` in flight.

    Bounded: never more than `rounds` sessions and never past `max_duration_s`. Ctrl-C stops
    starting sessions, lets the requests in flight finish (at most INTERRUPT_GRACE_S, so no
    connection is cut mid-response) and returns what finished (`interrupted`); a second Ctrl-C
    (or the SIGINT a supervisor sends after the terminal's) is ignored meanwhile. A fatal API
    error (connection refused, rejected key) stops the run (`stopped_reason`).
    """
    outcome = RunOutcome()
    started = time.monotonic()
    lock = threading.Lock()
    finished: list[SessionResult] = []
    slots = threading.BoundedSemaphore(concurrency)
    stop = threading.Event()
    work: queue.Queue[int | None] = queue.Queue()

    def worker() -> None:
        while True:
            index = work.get()
            if index is None:
                return
            try:
                result = run_session(api, plan, index)
                with lock:
                    finished.append(result)
                    if result.fatal:
                        outcome.stopped_reason = outcome.stopped_reason or result.error
                if result.fatal:
                    stop.set()
                if on_result is not None:
                    on_result(result)
            finally:
                slots.release()

    def free_slot() -> bool:
        while not slots.acquire(timeout=0.2):
            if stop.is_set() or time.monotonic() > deadline:
                return False
        return True

    # Daemon threads: on Ctrl-C the summary is printed without waiting for requests in flight.
    threads = [threading.Thread(target=worker, daemon=True, name=f"session-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    deadline = started + max_duration_s
    try:
        for index in range(rounds):
            if not free_slot():
                break
            paced_out = index > 0 and rate_s > 0 and stop.wait(rate_s)
            if paced_out or stop.is_set() or time.monotonic() > deadline:
                slots.release()
                break
            work.put(index)
        if time.monotonic() > deadline and not stop.is_set():
            outcome.stopped_reason = f"stopped after --max-duration {max_duration_s:g} s"
        for _ in threads:
            work.put(None)
        # In-flight sessions end within their bounded retries; never wait longer than that.
        join_by = time.monotonic() + 2 * api.timeout_s * api.retry.attempts
        for t in threads:
            t.join(timeout=max(0.0, join_by - time.monotonic()))
    except KeyboardInterrupt:
        outcome.interrupted = True
        stop.set()
        _ignore_further_interrupts()
        for _ in threads:
            work.put(None)
        grace_until = time.monotonic() + INTERRUPT_GRACE_S
        for t in threads:
            t.join(timeout=max(0.0, grace_until - time.monotonic()))
    outcome.duration_s = time.monotonic() - started
    with lock:  # after Ctrl-C, sessions still in flight must not change the summary being printed
        outcome.results = sorted(finished, key=lambda r: r.index)
    return outcome


# --------------------------------------------------------------------------- summary


def _router_state(snapshot: dict[str, Any] | None, router: str) -> dict[str, Any] | None:
    if not snapshot:
        return None
    for row in snapshot.get("routers", []):
        if isinstance(row, dict) and row.get("router") == router:
            return row
    return None


def _counts(state: dict[str, Any] | None) -> dict[str, int]:
    counts = (state or {}).get("counts") or {}
    return {"turns": int(counts.get("turns", 0)), "feedback": int(counts.get("feedback", 0))}


def state_report(
    before: dict[str, Any] | None, after: dict[str, Any], oracle: Oracle, types: Sequence[str]
) -> dict[str, Any]:
    """What the router says it learned: pick share per type, regret against the oracle, counts.

    Regret is per session of that type: quality lost = best oracle quality − Σ share·quality;
    utility regret uses the router's own trade (weights, `cost_reference_usd` and each cell's
    expected cost) to name the oracle's best trade and what the current shares lose against it.
    """
    weights = after.get("weights") or {"quality": 0.7, "cost": 0.3}
    reference = float(after.get("cost_reference_usd") or 0.01)
    models = [str(m.get("name")) for m in after.get("models", []) if isinstance(m, dict)]
    cells: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for cell in after.get("cells", []):
        cells[str(cell.get("request_type"))][str(cell.get("model"))] = cell
    before_cells = {
        (str(c.get("request_type")), str(c.get("model"))): c
        for c in (before or {}).get("cells", [])
        if isinstance(c, dict)
    }
    per_type: dict[str, Any] = {}
    for request_type in types:
        row = cells.get(request_type, {})
        if not row:
            continue
        shares = {m: float(row[m].get("pick_share", 0.0)) for m in models if m in row}
        best_q_model, best_q = oracle.best_quality(request_type, shares)
        expected_q = sum(s * oracle.quality(request_type, m) for m, s in shares.items())

        def utility(m: str, rt: str = request_type, r: dict[str, Any] = row) -> float:
            cost_units = float(r[m].get("expected_cost_usd", 0.0)) / reference
            return float(weights["quality"]) * oracle.quality(rt, m) - float(weights["cost"]) * cost_units

        best_trade = max(shares, key=lambda m: (utility(m), -models.index(m)))
        expected_u = sum(s * utility(m) for m, s in shares.items())
        per_type[request_type] = {
            "pick_share": shares,
            "best_quality_model": best_q_model,
            "expected_quality": round(expected_q, 4),
            "quality_lost_per_session": round(max(0.0, best_q - expected_q), 4),
            "best_trade_model": best_trade,
            "share_of_best_trade": round(shares.get(best_trade, 0.0), 4),
            "utility_regret_per_session": round(max(0.0, utility(best_trade) - expected_u), 4),
            "cells": {
                m: {
                    "alpha": c.get("alpha"),
                    "beta": c.get("beta"),
                    "mean": c.get("mean"),
                    "routed": c.get("routed"),
                    "feedback": c.get("feedback"),
                    "routed_delta": int(c.get("routed", 0))
                    - int(before_cells.get((request_type, m), {}).get("routed", 0)),
                    "feedback_delta": int(c.get("feedback", 0))
                    - int(before_cells.get((request_type, m), {}).get("feedback", 0)),
                }
                for m, c in row.items()
            },
        }
    n = len(per_type) or 1
    after_counts, before_counts = _counts(after), _counts(before)
    return {
        "turns_delta": after_counts["turns"] - before_counts["turns"],
        "feedback_delta": after_counts["feedback"] - before_counts["feedback"],
        "counts": after_counts,
        "spend": after.get("spend"),
        "types": per_type,
        "quality_lost_per_session": round(sum(t["quality_lost_per_session"] for t in per_type.values()) / n, 4),
        "utility_regret_per_session": round(sum(t["utility_regret_per_session"] for t in per_type.values()) / n, 4),
    }


def summarize(
    outcome: RunOutcome,
    plan: TrafficPlan,
    *,
    api_url: str,
    rounds: int,
    state_before: dict[str, Any] | None,
    state_after: dict[str, Any] | None,
    notes: Sequence[str],
) -> dict[str, Any]:
    """The run in numbers (the `--json` document; the table shows the same)."""
    done = [r for r in outcome.results if r.error is None]
    failed = [r for r in outcome.results if r.error is not None]
    picks: dict[str, Counter[str]] = defaultdict(Counter)
    halves: dict[str, tuple[Counter[str], Counter[str]]] = defaultdict(lambda: (Counter(), Counter()))
    middle = rounds / 2
    for r in done:
        picks[r.labelled_type][r.model] += 1
        halves[r.labelled_type][0 if r.index < middle else 1][r.model] += 1
    sent = Counter(r.follow_up_kind for r in done)
    read = Counter(r.signal_kind for r in done if r.signal_kind)
    by_cell: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in done:
        if r.signal_kind:  # the signal scores the first turn: its classified type and model
            cell = by_cell[r.classified_type].setdefault(r.model, {"kinds": Counter(), "alpha": 0.0, "beta": 0.0})
            reward = r.signal_reward if r.signal_reward is not None else 0.0
            cell["kinds"][r.signal_kind] += 1
            cell["alpha"] += reward
            cell["beta"] += 1.0 - reward
    expected = sum(r.expected_quality for r in done)
    best = sum(r.best_quality for r in done)
    actual_usd = sum(r.cost_usd for r in outcome.results)
    baseline_usd = sum(r.baseline_usd for r in outcome.results)
    summary: dict[str, Any] = {
        "api_url": api_url,
        "router": plan.router,
        "types": list(plan.types),
        "oracle": {t: dict(row) for t, row in plan.oracle.table.items()},
        "negative_signals": plan.negative_signals,
        "rounds_requested": rounds,
        "sessions": {"completed": len(done), "failed": len(failed)},
        "turns_sent": sum(r.turns for r in outcome.results),
        "interrupted": outcome.interrupted,
        "stopped_reason": outcome.stopped_reason,
        "duration_s": round(outcome.duration_s, 2),
        "picks": {t: dict(sorted(c.items())) for t, c in sorted(picks.items())},
        "learning": {
            t: {"first_half": dict(sorted(a.items())), "second_half": dict(sorted(b.items()))}
            for t, (a, b) in sorted(halves.items())
        },
        "classification": {
            "first_turn_as_labelled": sum(1 for r in done if r.classified_type == r.labelled_type),
            "follow_up_as_labelled": sum(1 for r in done if r.follow_up_type == r.labelled_type),
            "sessions": len(done),
        },
        "quality": {
            "expected": round(expected / len(done), 4) if done else None,
            "oracle_best": round(best / len(done), 4) if done else None,
            "kept": round(expected / best, 4) if best else None,
        },
        "spend": {
            "actual_usd": round(actual_usd, 8),
            "baseline_usd": round(baseline_usd, 8),
            "savings_usd": round(baseline_usd - actual_usd, 8),
            "savings_ratio": round(1 - actual_usd / baseline_usd, 4) if baseline_usd > 0 else None,
        },
        "signals": {
            "sent": {k: sent.get(k, 0) for k in ("satisfaction", "neutral", "negative")},
            "read_by_router": dict(sorted(read.items())),
            "by_cell": {
                t: {
                    m: {"kinds": dict(sorted(c["kinds"].items())), "alpha": c["alpha"], "beta": c["beta"]}
                    for m, c in sorted(row.items())
                }
                for t, row in sorted(by_cell.items())
            },
            # A neutral follow-up is read as the router's weak "neutral" observation (or as nothing
            # when the router's neutral_follow_up_reward is off); never as praise or a complaint.
            "unread": sum(1 for r in done if r.follow_up_kind != "neutral" and r.signal_kind is None),
            "unexpected": sum(
                1 for r in done if r.follow_up_kind == "neutral" and r.signal_kind not in (None, "neutral")
            ),
        },
        "errors": dict(Counter(str(r.error) for r in failed).most_common(5)),
        "state": None,
        "notes": list(notes),
    }
    if plan.stream:
        summary["streaming"] = streaming_report(outcome.results)
    if state_after is not None:
        summary["state"] = state_report(state_before, state_after, plan.oracle, plan.types)
    return summary


def streaming_report(results: Sequence[SessionResult]) -> dict[str, Any]:
    """Streamed answers read to their end (failed sessions' earlier answers included): time to
    the first content chunk in seconds (median, p95 by nearest rank) and content chunks per answer."""
    first = sorted(s for r in results for s in r.first_content_s)
    chunks = [n for r in results for n in r.content_chunks]
    return {
        "answers": len(chunks),
        "first_content_s": {
            "median": round(statistics.median(first), 4) if first else None,
            "p95": round(first[max(0, math.ceil(0.95 * len(first)) - 1)], 4) if first else None,
        },
        "chunks_per_answer": {"median": statistics.median(chunks) if chunks else None},
    }


def _share(counter: Mapping[str, int], models: Sequence[str]) -> str:
    total = sum(counter.values())
    if not total:
        return "—"
    return "  ".join(f"{m} {counter.get(m, 0) / total:.0%}" for m in models if counter.get(m, 0))


def render_summary(summary: dict[str, Any], console: Console) -> None:
    """The summary as tables: picks, learning, quality and spend, signals, the router's state."""
    models = sorted({m for row in summary["picks"].values() for m in row} | set(_state_models(summary)))
    title = f"{summary['router']}: {summary['sessions']['completed']} sessions"
    if summary["interrupted"]:
        title += " (interrupted)"
    picks = Table(title=title, title_justify="left")
    picks.add_column("request type")
    for m in models:
        picks.add_column(f"{m} picks", justify="right")
    picks.add_column("first half", justify="left")
    picks.add_column("second half", justify="left")
    for request_type, row in summary["picks"].items():
        halves = summary["learning"][request_type]
        picks.add_row(
            request_type,
            *[str(row.get(m, 0)) for m in models],
            _share(halves["first_half"], models),
            _share(halves["second_half"], models),
        )
    console.print(picks)

    q, spend, sig, cls = summary["quality"], summary["spend"], summary["signals"], summary["classification"]
    facts = Table(show_header=False, title="Quality, spend and signals", title_justify="left")
    facts.add_column("what")
    facts.add_column("value")
    if q["expected"] is not None:
        facts.add_row(
            "oracle quality of picks", f"{q['expected']:.3f} vs best {q['oracle_best']:.3f} (kept {q['kept']:.1%})"
        )
    ratio = spend["savings_ratio"]
    facts.add_row(
        "spend",
        f"${spend['actual_usd']:.4f} vs ${spend['baseline_usd']:.4f} always the most expensive model"
        + (f" (saved {ratio:.1%})" if ratio is not None else ""),
    )
    facts.add_row("turns sent", str(summary["turns_sent"]))
    facts.add_row("follow-ups sent", ", ".join(f"{k} {v}" for k, v in sig["sent"].items()))
    read = ", ".join(f"{k} {v}" for k, v in sig["read_by_router"].items()) or "none"
    facts.add_row("signals read by the router", f"{read} (unread {sig['unread']}, unexpected {sig['unexpected']})")
    facts.add_row(
        "classified as labelled",
        f"first turn {cls['first_turn_as_labelled']}/{cls['sessions']}, "
        f"follow-up {cls['follow_up_as_labelled']}/{cls['sessions']}",
    )
    streaming = summary.get("streaming")
    if streaming:
        first = streaming["first_content_s"]
        facts.add_row(
            "time to first content",
            f"median {first['median']:.3f} s, p95 {first['p95']:.3f} s" if first["median"] is not None else "—",
        )
        median_chunks = streaming["chunks_per_answer"]["median"]
        facts.add_row(
            "content chunks per answer",
            f"median {median_chunks:g} ({streaming['answers']} streamed answers)" if median_chunks is not None else "—",
        )
    if summary["sessions"]["failed"]:
        facts.add_row("failed sessions", f"{summary['sessions']['failed']}: " + "; ".join(summary["errors"]))
    if summary["stopped_reason"]:
        facts.add_row("stopped", summary["stopped_reason"])
    console.print(facts)

    state = summary.get("state")
    if state:
        table = Table(title="The router's current picks (GET /v1/state)", title_justify="left")
        table.add_column("request type")
        table.add_column("pick share")
        table.add_column("oracle's best trade")
        table.add_column("quality lost / session", justify="right")
        table.add_column("utility regret / session", justify="right")
        for request_type, row in state["types"].items():
            share = "  ".join(f"{m} {s:.0%}" for m, s in row["pick_share"].items())
            table.add_row(
                request_type,
                share,
                f"{row['best_trade_model']} ({row['share_of_best_trade']:.0%})",
                f"{row['quality_lost_per_session']:.3f}",
                f"{row['utility_regret_per_session']:.3f}",
            )
        console.print(table)
        console.print(
            f"state counts: +{state['turns_delta']} turns, +{state['feedback_delta']} feedback "
            f"(this run: turns sent {summary['turns_sent']}, "
            f"signals read {sum(sig['read_by_router'].values())})"
        )
    for note in summary["notes"]:
        console.print(f"note: {note}")


def _state_models(summary: dict[str, Any]) -> list[str]:
    state = summary.get("state") or {}
    return [m for row in state.get("types", {}).values() for m in row.get("pick_share", {})]


def wait_for_feedback(
    api: RouterApi, router: str, baseline: int, expected: int, settle_s: float
) -> dict[str, Any] | None:
    """Poll the state until `expected` more feedback events landed (signals are applied
    asynchronously through the queue) or `settle_s` passed; the last snapshot."""
    deadline = time.monotonic() + settle_s
    snapshot = _router_state(api.state(router), router)
    while snapshot is not None and _counts(snapshot)["feedback"] - baseline < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        snapshot = _router_state(api.state(router), router)
    return snapshot


# --------------------------------------------------------------------------- CLI


def parse_types(raw: str | None, oracle: Oracle) -> tuple[str, ...]:
    """`--types`: a comma list, `all`, or (default) the types the oracle names."""
    if raw is None:
        chosen = [t for t in REQUEST_TYPES if t in oracle.table]
    elif raw.strip() == "all":
        chosen = list(corpus_types())
    else:
        chosen = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in PROMPTS]
    if unknown or not chosen:
        raise UsageError(
            f"--types: unknown request type(s) {unknown or raw!r}; known: {', '.join(corpus_types())}, all"
        )
    return tuple(dict.fromkeys(chosen))


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The flags every tool that talks to the router API shares."""
    parser.add_argument("--api-url", default=DEFAULT_API_URL, help=f"router API base URL (default {DEFAULT_API_URL})")
    parser.add_argument("--api-key", default=None, help="client key (default: $ROUTER_API_KEY)")
    parser.add_argument("--router", default=DEFAULT_ROUTER, help=f"router name (default {DEFAULT_ROUTER})")
    parser.add_argument("--seed", type=int, default=None, help="seed for prompts and draws (reproducible choices)")
    parser.add_argument("--concurrency", type=_positive_int, default=1, help="sessions in flight at once (default 1)")
    parser.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds per HTTP request (default 30)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _positive_float(value: str) -> float:
    x = float(value)
    if not x > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return x


def _non_negative_float(value: str) -> float:
    x = float(value)
    if not x >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return x


def console(*, stderr: bool) -> Console:
    """A rich console; wide enough for the tables when the output is a file or a pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 132)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.traffic",
        description="Drive labelled chat sessions through the router so it learns; summarise what it learned.",
    )
    add_connection_args(parser)
    parser.add_argument("--rounds", type=_positive_int, default=100, help="sessions to drive (default 100)")
    parser.add_argument(
        "--interval",
        "--rate",
        dest="interval",
        type=_non_negative_float,
        default=0.5,
        help="seconds between the starts of two sessions, 0 for back to back (default 0.5; --rate is the old name)",
    )
    parser.add_argument(
        "--oracle", default=None, help="YAML/JSON file: {type: {model: P(success)}} (default: the demo's)"
    )
    parser.add_argument("--types", default=None, help="comma list of request types, or 'all' (default: the oracle's)")
    parser.add_argument(
        "--negative-signals", action="store_true", help="on failure send a complaint instead of a neutral follow-up"
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="ask for every answer as a stream of events and report the time to first content and chunks per answer",
    )
    parser.add_argument("--max-duration", type=_positive_float, default=3600.0, help="stop after this many seconds")
    parser.add_argument(
        "--settle",
        type=_non_negative_float,
        default=10.0,
        help="seconds to wait for queued signals before the state read",
    )
    aws = parser.add_argument_group("AWS credentials for GET /v1/state (optional; also the standard AWS_* variables)")
    aws.add_argument("--aws-profile", default=None)
    aws.add_argument("--aws-access-key-id", default=None)
    aws.add_argument("--aws-secret-access-key", default=None)
    aws.add_argument("--aws-session-token", default=None)
    aws.add_argument("--region", default=None, help="region of the API (default: AWS_REGION, the profile's, us-east-1)")
    return parser


def api_key_from(args: argparse.Namespace) -> str:
    """`--api-key`, else $ROUTER_API_KEY; UsageError when neither is set."""
    key = args.api_key or os.environ.get("ROUTER_API_KEY")
    if not key:
        raise UsageError("--api-key is required (or set ROUTER_API_KEY)")
    return str(key)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a supervisor stopping the tool) ends the run like Ctrl-C: summary first."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _interrupt_on_sigterm()
    err = console(stderr=True)
    out = console(stderr=args.json)
    try:
        return _run(args, err, out)
    except (UsageError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after the sessions (they print their own summary)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, err: Console, out: Console) -> int:
    api_key = api_key_from(args)
    oracle = load_oracle(args.oracle)
    types = parse_types(args.types, oracle)
    aws = resolve_aws_identity(
        args.aws_profile, args.aws_access_key_id, args.aws_secret_access_key, args.aws_session_token, args.region
    )
    notes: list[str] = []
    if aws is None:
        notes.append("no AWS credentials: skipped the /v1/state read (pass --aws-profile or keys to see pick shares)")
    else:
        notes.append(f"state read with AWS credentials from {aws.source}, region {aws.region}")
    with RouterApi(args.api_url, api_key, timeout_s=args.timeout, aws=aws) as api:
        check_router(api, args.router)
        before = _router_state(api.state(args.router), args.router) if aws else None
        router_models: tuple[str, ...] = ()
        if before is not None:
            router_models = tuple(str(m.get("name")) for m in before.get("models", []) if isinstance(m, dict))
        plan = TrafficPlan(args.router, types, oracle, args.negative_signals, args.seed, router_models, args.stream)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        picks: Counter[tuple[str, str]] = Counter()
        picks_lock = threading.Lock()

        done_count = [0]

        def on_result(result: SessionResult) -> None:
            with picks_lock:
                done_count[0] += 1
                if result.error is None:
                    picks[(result.labelled_type, result.model)] += 1
                top = sorted(picks.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
                status = "  ".join(f"{t[:9]}→{m} {n}" for (t, m), n in top)
                if progress.disable and done_count[0] % 10 == 0:  # a log, not a terminal: a line every 10
                    print(f"[{done_count[0]:>4}/{args.rounds}] {status}", file=sys.stderr, flush=True)
            progress.update(task, advance=1, status=status)

        with progress:
            task = progress.add_task("sessions", total=args.rounds, status="")
            outcome = drive(
                api,
                plan,
                rounds=args.rounds,
                rate_s=args.interval,
                concurrency=args.concurrency,
                max_duration_s=args.max_duration,
                on_result=on_result,
            )
        after = None
        if aws is not None and not outcome.interrupted:
            read = sum(1 for r in outcome.results if r.signal_kind)
            try:
                after = wait_for_feedback(api, args.router, _counts(before)["feedback"], read, args.settle)
            except ApiError as exc:  # the sessions are done: keep their summary, say what failed
                notes.append(f"the final state read failed: {exc}")
            if after is not None and _counts(after)["feedback"] - _counts(before)["feedback"] < read:
                notes.append(
                    "fewer feedback events in the state than signals the router read: some are still queued, "
                    "or were dropped by the per-key feedback rate limit"
                )
        elif aws is not None:
            notes.append("interrupted: the state was not read again")
    neutral = [r for r in outcome.results if r.follow_up_kind == "neutral"]
    if neutral:
        weak = sum(1 for r in neutral if r.signal_kind == "neutral")
        notes.append(
            f"failed answers with a neutral follow-up: {len(neutral)}, of which the router read {weak} as its weak "
            "'neutral' observation (neutral_follow_up_reward); --negative-signals answers failures with a complaint"
        )
    summary = summarize(
        outcome, plan, api_url=api.api_url, rounds=args.rounds, state_before=before, state_after=after, notes=notes
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    render_summary(summary, out)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.stopped_reason and summary["sessions"]["completed"] == 0:
        print(f"error: {outcome.stopped_reason}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILURES if summary["sessions"]["failed"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
