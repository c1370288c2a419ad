"""What every upstream provider accepts, returns and raises.

Providers are the only code that talks to models. Each one turns `ChatParams` into one upstream
call and returns a `Completion`, or raises `UpstreamError` with a `kind` that says what went
wrong in terms the fallback logic (`router_core.upstream`) can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from router_core.config import ModelConfig

ErrorKind = Literal[
    "timeout", "rate_limited", "server_error", "bad_response", "client_error", "context_length", "unavailable"
]
"""How a call failed. `context_length`: the conversation does not fit this model's context window
(another model may have a larger one; when none does, the client gets 400 context_length_exceeded)."""

_NOT_RETRYABLE: frozenset[str] = frozenset({"client_error", "context_length"})

# Statuses whose client error describes the request itself, so every model would refuse it too.
_INVALID_REQUEST_STATUSES: frozenset[int] = frozenset({400, 422})


@dataclass(frozen=True, slots=True)
class ChatParams:
    """One chat request as the router forwards it to a model.

    `messages` are OpenAI-format messages exactly as the client sent them. `options` are the
    client's other request fields as sent (tools, response_format, stop, top_p...; never
    `model`, `messages` or `stream`): an OpenAI-compatible upstream receives them unchanged,
    Bedrock maps the ones Converse has. `temperature` and `max_tokens` (the client's output
    limit, from `max_completion_tokens` or `max_tokens`) are also given on their own. `request_type` is the
    router's classification and `seed` makes the simulated provider reproducible; real
    upstreams ignore both.
    """

    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    request_type: str = "general"
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completion:
    """One model answer.

    Token counts are the upstream's own report; where the upstream reported none they are
    estimated (≈ 4 characters per token) and `usage_estimated` is True. `latency_ms` is the
    wall time of the upstream call in milliseconds.

    `text` and `finish_reason` are the first choice's (what learning and storage read).
    `choices` are the OpenAI-format choices as the client gets them (`index`, `message` with
    `content`, `tool_calls`, `refusal`..., `finish_reason`, `logprobs`); empty means one plain
    text choice built from `text`. `usage` is the upstream's own usage object, details
    included, when it reported one; `system_fingerprint` and `service_tier` are passed on.
    """

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    upstream_model: str
    latency_ms: float
    usage_estimated: bool = False
    choices: tuple[dict[str, Any], ...] = ()
    usage: dict[str, Any] | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None

    def response_choices(self) -> list[dict[str, Any]]:
        """The choices as the client gets them (one text choice when the provider gave none)."""
        if self.choices:
            return [dict(c) for c in self.choices]
        message = {"role": "assistant", "content": self.text}
        return [{"index": 0, "message": message, "finish_reason": self.finish_reason, "logprobs": None}]


class UpstreamError(Exception):
    """An upstream call failed; `kind` says how, `retryable` whether trying again can help.

    `status` is the upstream HTTP status when there was one. `retry_after_s` is the upstream's
    Retry-After in seconds, when it sent one. `invalid_request` is True when the upstream
    rejected the request itself (for example HTTP 400 for a malformed message list): every
    other model would refuse it too, so the caller answers the client 400 instead of falling
    back. A client error that is specific to one model or provider (401, 403, 404, a context
    window too small) has `invalid_request` False. The message is the upstream's own error
    message (never prompt text added by us, never a credential). `attempts` is filled in by
    `call_with_fallback` when it re-raises the error, so the caller can report every attempt.
    """

    kind: ErrorKind
    status: int | None
    retryable: bool
    retry_after_s: float | None
    invalid_request: bool
    attempts: tuple[Any, ...]

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        invalid_request: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = kind not in _NOT_RETRYABLE
        self.retry_after_s = retry_after_s
        if invalid_request is None:
            invalid_request = kind == "client_error" and status in _INVALID_REQUEST_STATUSES
        self.invalid_request = invalid_request
        self.attempts = ()

    def __repr__(self) -> str:
        return f"UpstreamError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


class Provider(Protocol):
    """Calls one kind of upstream. Implementations are safe to share between threads."""

    def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
        """Answer `params` with `model`, giving up after `timeout_s` seconds (raises UpstreamError)."""
        ...

    def stream(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Iterator[dict[str, Any]]:
        """The answer as it is produced: a generator of OpenAI `chat.completion.chunk`-shaped
        dicts (`router_core.streaming`), ending with a `{"choices": [], "usage": ...}` chunk
        when the upstream reports usage.

        Nothing is sent before the first `next()`: a failed call raises UpstreamError there
        (the router may still retry or fall back); one raised later means the stream broke.
        `timeout_s` bounds the wait for the first chunk and between two chunks. Closing the
        generator early releases the upstream connection (the model stops generating)."""
        ...


def content_text(content: Any) -> str:
    """The text of an OpenAI message `content`: a string, or the text parts of a part list.

    Non-text parts (images, audio) contribute nothing; `None` (an assistant message that only
    calls tools) is the empty string.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        ]
        return "\n".join(t for t in texts if t)
    return str(content)


def messages_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """All message texts joined by newlines (what token estimates are computed from)."""
    return "\n".join(content_text(m.get("content")) for m in messages)


def estimate_tokens(text: str) -> int:
    """Rough token count of `text`: one token per 4 characters, rounded up, at least 1."""
    return max(1, math.ceil(len(text) / 4))
