"""Pydantic models of the HTTP API (requests), and parsing that names the failing field."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_core.errors import InvalidRequest, PayloadTooLarge

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ModelT = TypeVar("ModelT", bound=BaseModel)


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


def _first_error(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return loc, msg


def parse_body(raw: str | None, model: type[ModelT], max_bytes: int) -> ModelT:
    """Parse a JSON body into `model`; InvalidRequest names the field, PayloadTooLarge the limit."""
    if raw is None or not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object", code="invalid_json")
    size = len(raw.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(f"request body is {size} bytes; the limit is {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        loc, msg = _first_error(exc)
        raise InvalidRequest(f"{loc}: {msg}" if loc else msg, param=loc or None) from exc


def check_session_id(value: str | None) -> str | None:
    """A client-supplied session id, validated (letters, digits, _ and -, ≤ 64 chars)."""
    if value is None or value == "":
        return None
    if not SESSION_ID_PATTERN.match(value):
        raise InvalidRequest(
            "session id must be 1-64 characters of letters, digits, '_' or '-'", param="x-router-session-id"
        )
    return value
