"""Pydantic models of the HTTP API (requests), and the 400/413 answers for bodies that do not fit them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_core.errors import InvalidRequest, PayloadTooLarge

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One OpenAI chat message; extra fields (name, tool_calls...) are passed through."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The message's text (list parts joined by newlines)."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text or "" for p in self.content if p.type == "text")


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat completions body; unknown fields are ignored, as OpenAI servers do."""

    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=2000)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, str] | None = None
    stream: bool = False
    n: Annotated[int, Field(ge=1, le=1)] | None = None

    @model_validator(mode="after")
    def _has_user_text(self) -> ChatCompletionRequest:
        users = [m for m in self.messages if m.role == "user"]
        if not users:
            raise ValueError("messages must contain at least one user message")
        if not users[-1].text().strip():
            raise ValueError("the last user message has no text content")
        return self

    def output_limit(self) -> int | None:
        """Maximum output tokens the client asked for, if any."""
        return self.max_completion_tokens or self.max_tokens

    def plain_messages(self) -> list[dict[str, Any]]:
        """Messages as plain dicts (for the classifier, signals and providers)."""
        return [m.model_dump(exclude_none=True) for m in self.messages]


class FeedbackRequest(BaseModel):
    """Explicit feedback on one turn: a thumbs rating or a reward in [0, 1]."""

    model_config = ConfigDict(extra="forbid")
    turn_id: Annotated[str, Field(min_length=3, max_length=200)]
    rating: Literal["up", "down"] | None = None
    reward: Annotated[float, Field(ge=0.0, le=1.0, strict=True)] | None = None
    """A JSON number (a boolean or a string is refused)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> FeedbackRequest:
        if (self.rating is None) == (self.reward is None):
            raise ValueError("send exactly one of rating ('up' or 'down') or reward (0..1)")
        return self

    def value(self) -> float:
        """The reward in [0, 1]."""
        if self.reward is not None:
            return self.reward
        return 1.0 if self.rating == "up" else 0.0


EMPTY_BODY = "request body is empty; send a JSON object"

FEEDBACK_MAX_BYTES = 16_384
"""Largest POST /v1/feedback body (bytes): a turn id and a rating fit in a few hundred."""


def json_object(raw: str, max_bytes: int) -> dict[str, Any]:
    """A request body as a JSON object (the resolvers' body deserializer): PayloadTooLarge above
    `max_bytes` before anything is parsed, InvalidRequest `invalid_json` for anything else."""
    if not raw.strip():
        raise InvalidRequest(EMPTY_BODY, code="invalid_json")
    size = len(raw.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(f"request body is {size} bytes; the limit is {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return data


def invalid_request(errors: Sequence[Mapping[str, Any]], content_type: str | None) -> InvalidRequest:
    """The 400 for a request that failed validation, naming the first failing field.

    `errors` are pydantic's, each located from its request part: ("body", "messages", 0, "role").
    A body sent with another content type than JSON was never read as JSON: say that, rather
    than report every field as missing.
    """
    first = errors[0]
    where, *path = first["loc"]
    if where == "body" and content_type and not content_type.strip().startswith("application/json"):
        return InvalidRequest(
            f"send the body as JSON with content-type: application/json (got {content_type!r})", code="invalid_json"
        )
    if where == "body" and not path and first["type"] == "missing":
        return InvalidRequest(EMPTY_BODY, code="invalid_json")
    loc = ".".join(str(p) for p in path)
    msg = str(first["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"{loc}: {msg}" if loc else msg, param=loc or None)


def check_session_id(value: str | None) -> str | None:
    """A client-supplied session id, validated (letters, digits, _ and -, ≤ 64 chars)."""
    if value is None or value == "":
        return None
    if not SESSION_ID_PATTERN.match(value):
        raise InvalidRequest(
            "session id must be 1-64 characters of letters, digits, '_' or '-'", param="x-router-session-id"
        )
    return value
