"""Pydantic models of the HTTP API (requests), and the 400/413 answers for bodies that do not fit them.

The chat body is the OpenAI Chat Completions request. Every documented field is validated here
(types and ranges as OpenAI documents them, so a malformed field is a 400 that names it, never a
silent drop) and then forwarded as the client sent it: `ChatCompletionRequest.upstream_fields`
is the client's own JSON minus the fields the router answers itself (`model`, `stream`,
`stream_options`). Fields this version does not know are forwarded too (`extra="allow"`): the
upstream is the authority on what it accepts (OpenAI answers 400 for an unknown argument, and
that 400 reaches the client), and a new client release must not break on a router that has not
caught up. docs/API.md lists every field and what happens to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from router_core.errors import InvalidRequest, PayloadTooLarge

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"
"""OpenAI's rule for function, tool and JSON schema names."""

ROUTER_FIELDS: frozenset[str] = frozenset({"model", "stream", "stream_options"})
"""Request fields the router answers itself and never forwards: `model` becomes the chosen
model's id, and the upstream call is never streamed (the router answers SSE from the whole answer)."""

Strict = Field(strict=True)
StrictFloat = Annotated[float, Strict]
StrictInt = Annotated[int, Strict]
StrictBool = Annotated[bool, Strict]


class _Open(BaseModel):
    """A part of the request whose undocumented fields are kept and forwarded."""

    model_config = ConfigDict(extra="allow")


class ImageUrl(_Open):
    url: Annotated[str, Field(min_length=1)]
    detail: Literal["auto", "low", "high"] | None = None


class InputAudio(_Open):
    data: Annotated[str, Field(min_length=1)]
    format: Annotated[str, Field(min_length=1)]


class FileRef(_Open):
    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FileRef:
        if not self.file_id and not self.file_data:
            raise ValueError("a file part needs file.file_id or file.file_data")
        return self


class ContentPart(_Open):
    """One part of a message's content: text, refusal, image_url, input_audio or file.

    Other part types are kept as sent (forwarded to OpenAI-compatible models)."""

    type: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Strict] | None = None
    refusal: Annotated[str, Strict] | None = None
    image_url: ImageUrl | None = None
    input_audio: InputAudio | None = None
    file: FileRef | None = None

    @model_validator(mode="after")
    def _payload_present(self) -> ContentPart:
        needs: dict[str, object] = {"text": self.text, "refusal": self.refusal, "image_url": self.image_url}
        needs |= {"input_audio": self.input_audio, "file": self.file}
        if self.type in needs and needs[self.type] is None:
            raise ValueError(f"a {self.type!r} part needs its {self.type!r} field")
        return self


class FunctionCall(_Open):
    name: Annotated[str, Field(min_length=1)]
    arguments: Annotated[str, Strict]
    """A JSON text, as the model produced it."""


class ToolCall(_Open):
    """A tool call in an assistant message of the history."""

    id: Annotated[str, Field(min_length=1)]
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = None
    custom: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _payload_present(self) -> ToolCall:
        if getattr(self, self.type) is None:
            raise ValueError(f"a {self.type!r} tool call needs its {self.type!r} field")
        return self


Content = Annotated[str, Strict] | Annotated[list[ContentPart], Field(max_length=500)]


class ChatMessage(_Open):
    """One OpenAI chat message; undocumented fields are kept and forwarded."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content | None = None
    name: Annotated[str, Strict] | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=128)] | None = None
    tool_call_id: Annotated[str, Field(min_length=1)] | None = None
    function_call: dict[str, Any] | None = None
    refusal: Annotated[str, Strict] | None = None

    @model_validator(mode="after")
    def _fits_role(self) -> ChatMessage:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs tool_call_id (the id of the call it answers)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        speaks = self.tool_calls or self.function_call is not None or self.refusal is not None
        if self.content is None and not (self.role == "assistant" and speaks):
            raise ValueError(f"a {self.role} message needs content")
        return self

    def text(self) -> str:
        """The message's text (text parts joined by newlines; other parts contribute nothing)."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text or "" for p in self.content if p.type == "text")

    def has_content(self) -> bool:
        """True when the message says something: non-blank text or any non-text part."""
        if isinstance(self.content, list):
            return any(p.type != "text" or (p.text or "").strip() for p in self.content)
        return bool(self.content and self.content.strip())


class FunctionDefinition(_Open):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: Annotated[str, Strict] | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class CustomDefinition(_Open):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]


class FunctionTool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(_Open):
    type: Literal["custom"]
    custom: CustomDefinition


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class NamedFunction(_Open):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]


class NamedToolChoice(_Open):
    """`{"type": "function", "function": {"name": ...}}` (or custom, or allowed_tools)."""

    type: Literal["function", "custom", "allowed_tools"]
    function: NamedFunction | None = None
    custom: NamedFunction | None = None
    allowed_tools: dict[str, Any] | None = None

    def named(self) -> str | None:
        chosen = self.function if self.type == "function" else self.custom if self.type == "custom" else None
        return chosen.name if chosen else None


class JsonSchemaFormat(_Open):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: Annotated[str, Strict] | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: StrictBool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs its json_schema field")
        return self


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


Penalty = Annotated[float, Field(ge=-2.0, le=2.0, strict=True)]
OutputTokens = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]


class ChatCompletionRequest(_Open):
    """The OpenAI chat completions body: documented fields validated, every field kept as sent."""

    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=2000)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0, strict=True)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0, strict=True)] | None = None
    max_tokens: OutputTokens | None = None
    max_completion_tokens: OutputTokens | None = None
    n: Annotated[int, Field(ge=1, le=128, strict=True)] | None = None
    stop: Annotated[str, Strict] | Annotated[list[Annotated[str, Strict]], Field(max_length=4)] | None = None
    seed: StrictInt | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100, strict=True)]] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20, strict=True)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: Annotated[list[FunctionDefinition], Field(max_length=128)] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    response_format: ResponseFormat | None = None
    user: Annotated[str, Field(max_length=256, strict=True)] | None = None
    safety_identifier: Annotated[str, Field(max_length=256, strict=True)] | None = None
    prompt_cache_key: Annotated[str, Strict] | None = None
    metadata: dict[str, Annotated[str, Strict]] | None = None
    store: StrictBool | None = None
    service_tier: Annotated[str, Strict] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: Annotated[str, Strict] | None = None
    verbosity: Annotated[str, Strict] | None = None
    web_search_options: dict[str, Any] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_as_sent(cls, data: Any, handler: Any) -> ChatCompletionRequest:
        """Keep the client's own JSON: it is what reaches the model, unchanged."""
        request: ChatCompletionRequest = handler(data)
        if isinstance(data, Mapping):
            request._raw = dict(data)
        else:
            request._raw = request.model_dump(exclude_unset=True, by_alias=True)
        return request

    @model_validator(mode="after")
    def _coherent(self) -> ChatCompletionRequest:
        users = [m for m in self.messages if m.role == "user"]
        if not users:
            raise ValueError("messages must contain at least one user message")
        if not users[-1].has_content():
            raise ValueError("the last user message has no text and no other content")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        self._check_tool_choice()
        _check_tool_history(self.messages)
        return self

    def _check_tool_choice(self) -> None:
        if self.tool_choice is None:
            return
        if not self.tools:
            raise ValueError("tool_choice is only allowed when tools are given")
        if isinstance(self.tool_choice, NamedToolChoice):
            named = self.tool_choice.named()
            declared = {t.function.name if isinstance(t, FunctionTool) else t.custom.name for t in self.tools}
            if named is not None and named not in declared:
                raise ValueError(f"tool_choice names {named!r}, which is not one of the tools")

    def output_limit(self) -> int | None:
        """Maximum output tokens the client asked for, if any."""
        return self.max_completion_tokens or self.max_tokens

    def plain_messages(self) -> list[dict[str, Any]]:
        """The messages as the client sent them (for the classifier, signals and providers)."""
        raw = self._raw.get("messages")
        if isinstance(raw, list) and len(raw) == len(self.messages):
            return raw
        return [m.model_dump(exclude_unset=True) for m in self.messages]

    def upstream_fields(self) -> dict[str, Any]:
        """Every field the client sent except `messages` and the router's own (`ROUTER_FIELDS`),
        as sent: what an OpenAI-compatible model receives next to its model id and the messages."""
        return {k: v for k, v in self._raw.items() if k not in ROUTER_FIELDS and k != "messages"}

    def unknown_fields(self) -> list[str]:
        """Top-level fields this version does not document (forwarded as they are)."""
        return sorted(self.model_extra or ())

    def include_usage(self) -> bool:
        """True when a streamed answer must end with a usage chunk (`stream_options.include_usage`)."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def _check_tool_history(messages: Sequence[ChatMessage]) -> None:
    """Every tool message answers a tool call of the assistant message before it (OpenAI's rule;
    the ids tie results to calls, and Bedrock needs them paired)."""
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in open_calls:
                raise ValueError(
                    f"messages.{index}: a tool message must answer a tool call of the preceding assistant "
                    f"message (no call with id {message.tool_call_id!r})"
                )
            continue
        open_calls = {c.id for c in message.tool_calls or ()} if message.role == "assistant" else set()


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


def invalid_request(errors: Sequence[Mapping[str, Any]], content_type: str | None, body: Any = None) -> InvalidRequest:
    """The 400 for a request that failed validation, naming the first failing field.

    `errors` are pydantic's, each located from its request part: ("body", "messages", 0, "role").
    A body sent with another content type than JSON was never read as JSON: say that, rather
    than report every field as missing. With the parsed `body`, the location is the client's
    own path into it (pydantic's labels for union members, "stop.str", are left out).
    """
    first = errors[0]
    where, *path = first["loc"]
    if where == "body" and content_type and not content_type.strip().startswith("application/json"):
        return InvalidRequest(
            f"send the body as JSON with content-type: application/json (got {content_type!r})", code="invalid_json"
        )
    if where == "body" and not path and first["type"] == "missing":
        return InvalidRequest(EMPTY_BODY, code="invalid_json")
    if where == "body" and body is not None:
        # A value that fits no member of a union fails once per member: report the failure
        # that reaches deepest into what the client sent (the member it meant).
        located = [
            (_client_path(e["loc"][1:], body, missing=e["type"] == "missing"), e)
            for e in errors
            if e["loc"][0] == "body"
        ]
        path, first = max(located, key=lambda pe: len(pe[0]))
    loc = ".".join(str(p) for p in path)
    msg = str(first["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"{loc}: {msg}" if loc else msg, param=loc or None)


def _client_path(path: Sequence[Any], body: Any, *, missing: bool) -> list[Any]:
    """The segments of a pydantic location that exist in the client's JSON (a missing field's
    name is kept last)."""
    kept: list[Any] = []
    here = body
    for position, segment in enumerate(path):
        in_dict = isinstance(here, dict) and segment in here
        in_list = isinstance(here, list) and isinstance(segment, int) and 0 <= segment < len(here)
        if in_dict or in_list:
            here = here[segment]
        elif not (missing and position == len(path) - 1):
            continue
        kept.append(segment)
    return kept


def check_session_id(value: str | None) -> str | None:
    """A client-supplied session id, validated (letters, digits, _ and -, ≤ 64 chars)."""
    if value is None or value == "":
        return None
    if not SESSION_ID_PATTERN.match(value):
        raise InvalidRequest(
            "session id must be 1-64 characters of letters, digits, '_' or '-'", param="x-router-session-id"
        )
    return value
