"""Amazon Bedrock through the Converse API, authorised by the function's IAM role (no key).

The OpenAI request maps onto Converse (`to_converse`, `converse_request`):

* `system` / `developer` messages → `system` blocks; user and assistant messages → content
  blocks (text; images, audio and files from base64 `data:` URLs → `image` / `audio` /
  `document` blocks); an assistant's `tool_calls` → `toolUse` blocks; `tool` messages →
  `toolResult` blocks in a user turn. Consecutive messages of one role are merged, and a
  conversation that opens with the assistant gets a short user turn first, because Converse
  requires strict user/assistant alternation starting with the user.
* `tools` (or `functions`) → `toolConfig.tools`; `tool_choice` auto / required / a named
  function → `toolChoice` auto / any / tool; `tool_choice: none` → no `toolConfig` at all.
* `response_format` json_object / json_schema → structured output through a forced tool whose
  input schema is the requested schema; its input comes back as the message content (JSON).
* `temperature`, `top_p`, `max_completion_tokens` / `max_tokens`, `stop` → `inferenceConfig`.
* `user`, `safety_identifier`, `prompt_cache_key`, `metadata`, `store`, `service_tier`,
  `seed` (best effort everywhere) and `prediction` (an optimisation only) have no Converse
  field and are not sent; `parallel_tool_calls: true` is Converse's own behaviour.

What Converse cannot do (logprobs, logit_bias, penalties, n > 1, audio output, custom tools,
images by URL, files by id, structured output together with tools...) is listed in
`capabilities.PROVIDER_LACKS`: the router never routes such a request to a Bedrock model, and
a request that reaches one anyway is refused here with a 400 that names the feature.

Streaming (`stream`) calls ConverseStream with the same request and turns its events into
OpenAI `chat.completion.chunk` dicts (`_ChunkTranslation`):

* `messageStart` → the role chunk (`{"role": "assistant", "content": ""}`).
* `contentBlockStart` with `toolUse {toolUseId, name}` → a tool call's opening (`index` is its
  position among the answer's tool calls); `contentBlockDelta` with `text` → a content delta,
  with `toolUse.input` (a piece of the input's JSON text) → that tool call's arguments delta.
  The forced structured-output tool opens nothing: its input pieces are content deltas, and any
  text before it is dropped, as `complete` does. `reasoningContent`, `citation`, `image` and
  `toolResult` deltas have no place in an OpenAI chunk and are not sent; `contentBlockStop`
  sends nothing.
* `messageStop {stopReason}` → the finish chunk (empty delta, finish_reason as `complete`
  maps it); `metadata {usage}` → a last chunk with no choices and the OpenAI usage object.
* The exception events (`modelStreamErrorException`, `internalServerException`,
  `throttlingException`, `validationException`, `serviceUnavailableException`) raise
  UpstreamError with the kinds of the same errors answered before the stream began.

IAM: ConverseStream is authorised by `bedrock:InvokeModelWithResponseStream` (Converse by
`bedrock:InvokeModel`).

botocore's own retries are off (the fallback logic retries); botocore fixes timeouts per client,
so clients are cached per (region, read timeout rounded up to whole seconds). The read timeout
bounds the wait for a Converse answer, and for ConverseStream the wait for its first event and
between two events.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from router_core.capabilities import FEATURES, PROVIDER_LACKS, requirements_of
from router_core.config import BedrockProviderConfig, ModelConfig
from router_core.providers.base import ChatParams, Completion, ErrorKind, UpstreamError, content_text

CONNECT_TIMEOUT_S = 3.0
"""Upper bound on connection setup to the Bedrock endpoint, seconds."""

_OPENING_USER_TEXT = "(continuing the conversation)"
_JSON_TOOL = "json_answer"
"""Name of the forced tool that carries `response_format: json_object`."""
_EMPTY: dict[str, Any] = {"type": "object", "properties": {}}
_DATA_URL_RE = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?:;[\w=-]+)*;base64,(?P<data>.*)$", re.S)
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_DOCUMENT_FORMATS: dict[str, str] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DOC_NAME_RE = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
"""Characters a Converse document name may not hold (letters, digits, spaces, - ( ) [ ] only)."""

_STOP_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse stopReason → OpenAI finish_reason (the router answers in OpenAI format)."""

_ERROR_KINDS: dict[str, ErrorKind] = {
    "ThrottlingException": "rate_limited",
    "TooManyRequestsException": "rate_limited",
    "ServiceQuotaExceededException": "rate_limited",
    "ModelTimeoutException": "timeout",
    "ServiceUnavailableException": "server_error",
    "InternalServerException": "server_error",
    "ModelNotReadyException": "server_error",
    "ModelErrorException": "server_error",
    "ModelStreamErrorException": "server_error",
    "ValidationException": "client_error",
    "AccessDeniedException": "client_error",
    "ResourceNotFoundException": "client_error",
    "UnrecognizedClientException": "client_error",
}

_CONTEXT_LENGTH_RE = re.compile(r"too long|context (length|window)|maximum context|too many (input )?tokens", re.I)
"""Bedrock's ValidationException messages for a prompt larger than the model's context window."""

ClientFactory = Callable[[str | None, float], Any]
"""(region, read timeout s) → a boto3 `bedrock-runtime` client."""

_clients: dict[tuple[str | None, int], Any] = {}
_clients_lock = threading.Lock()


def bedrock_client(region: str | None, timeout_s: float) -> Any:
    """A cached `bedrock-runtime` client for `region` whose read timeout is ≥ `timeout_s`, seconds."""
    bucket = max(1, math.ceil(timeout_s))
    with _clients_lock:
        client = _clients.get((region, bucket))
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "bedrock-runtime",
                region_name=region,
                config=Config(
                    connect_timeout=min(CONNECT_TIMEOUT_S, float(bucket)),
                    read_timeout=bucket,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                ),
            )
            _clients[(region, bucket)] = client
        return client


def _refused(message: str) -> UpstreamError:
    """A request Converse cannot carry: the client's 400 (every Bedrock model would refuse it)."""
    return UpstreamError("client_error", message, status=400, invalid_request=True)


def _data_url(url: str, what: str) -> tuple[str, bytes]:
    """(media type, bytes) of a base64 `data:` URL."""
    match = _DATA_URL_RE.match(url)
    if match is None:
        raise _refused(f"Bedrock takes {what} as base64 data: URLs only")
    try:
        return match.group("media").lower(), base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refused(f"the {what} data URL is not valid base64") from exc


def _image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    media, data = _data_url(str((part.get("image_url") or {}).get("url", "")), "images")
    fmt = media.removeprefix("image/").replace("jpg", "jpeg")
    if fmt not in _IMAGE_FORMATS:
        raise _refused(f"Bedrock takes png, jpeg, gif or webp images, not {media}")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _audio_block(part: Mapping[str, Any]) -> dict[str, Any]:
    audio = part.get("input_audio") or {}
    try:
        data = base64.b64decode(str(audio.get("data", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refused("input_audio.data is not valid base64") from exc
    return {"audio": {"format": str(audio.get("format", "")), "source": {"bytes": data}}}


def _document_block(part: Mapping[str, Any], number: int) -> dict[str, Any]:
    file = part.get("file") or {}
    if not file.get("file_data"):
        raise _refused("Bedrock takes files as file_data (base64), not by file_id")
    media, data = _data_url(str(file["file_data"]), "files")
    filename = str(file.get("filename") or "")
    fmt = _DOCUMENT_FORMATS.get(media) or filename.rsplit(".", 1)[-1].lower()
    if fmt not in _DOCUMENT_FORMATS.values():
        raise _refused(f"Bedrock cannot read files of type {media}")
    stem = " ".join(_DOC_NAME_RE.sub(" ", filename.rsplit(".", 1)[0]).split())[:200]
    return {"document": {"format": fmt, "name": stem or f"document {number}", "source": {"bytes": data}}}


_TEXT_FIELDS: dict[str, str] = {"text": "text", "input_text": "text", "refusal": "refusal"}
"""Content part types that are text, and the field holding it."""
_USER_PARTS: dict[str, Callable[[Mapping[str, Any], int], dict[str, Any]]] = {
    "image_url": lambda part, _: _image_block(part),
    "input_audio": lambda part, _: _audio_block(part),
    "file": _document_block,
}
"""Non-text content part types a user message may carry, and their Converse block."""


def _content_blocks(content: Any, role: str) -> list[dict[str, Any]]:
    """Converse blocks of one message's content (blank text is dropped: Converse refuses it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        kind = part.get("type", "text") if isinstance(part, Mapping) else "unknown"
        if kind in _TEXT_FIELDS:
            text = part.get(_TEXT_FIELDS[kind])
            if isinstance(text, str) and text.strip():
                blocks.append({"text": text})
        elif role != "user":
            raise _refused(f"Bedrock takes only text in {role} messages, not {kind!r} parts")
        elif kind in _USER_PARTS:
            blocks.append(_USER_PARTS[kind](part, len(blocks) + 1))
        else:
            raise _refused(f"Bedrock cannot take {kind!r} content parts")
    return blocks


def _tool_use_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError as exc:
            raise _refused(f"tool call {call.get('id')!r}: arguments are not JSON") from exc
        blocks.append({"toolUse": {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}})
    return blocks


def to_converse(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(messages, system) in Converse shape from OpenAI messages; see the module docstring.

    Raises UpstreamError (client_error, status 400, invalid_request) for what Converse cannot
    carry, and for a request with no user or assistant content at all.
    """
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": b["text"]} for b in _content_blocks(message.get("content"), "system"))
            continue
        if role == "tool":
            text = content_text(message.get("content"))
            result = {
                "toolUseId": message.get("tool_call_id"),
                "content": [{"text": text if text.strip() else "(empty)"}],
            }
            converse_role, blocks = "user", [{"toolResult": result}]
        elif role == "assistant":
            converse_role = "assistant"
            blocks = _content_blocks(message.get("content"), "assistant") + _tool_use_blocks(message)
        elif role == "user":
            converse_role, blocks = "user", _content_blocks(message.get("content"), "user")
        else:
            raise _refused(f"Bedrock cannot take {role!r} messages")
        if not blocks:
            continue  # an empty message carries nothing
        if turns and turns[-1]["role"] == converse_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": converse_role, "content": blocks})
    if not turns:
        raise UpstreamError("client_error", "no user or assistant message with content", invalid_request=False)
    if turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": [{"text": _OPENING_USER_TEXT}]})
    return turns, system


def _tool_specs(options: Mapping[str, Any]) -> list[dict[str, Any]]:
    declared = options.get("tools") or [{"type": "function", "function": f} for f in options.get("functions") or ()]
    specs = []
    for tool in declared:
        if tool.get("type", "function") != "function":
            raise _refused(f"Bedrock cannot take {tool.get('type')!r} tools")
        function = tool.get("function") or {}
        spec: dict[str, Any] = {
            "name": function.get("name"),
            "inputSchema": {"json": function.get("parameters") or _EMPTY},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    return specs


def _tool_choice(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """Converse toolChoice for `tool_choice` (or the legacy `function_call`); None = Converse's default (auto)."""
    choice = options.get("tool_choice", options.get("function_call"))
    if choice == "required":
        return {"any": {}}
    if choice == "auto":
        return {"auto": {}}
    if isinstance(choice, Mapping):
        named = (choice.get("function") or {}).get("name") or choice.get("name")
        if choice.get("type", "function") != "function" or not named:
            raise _refused("Bedrock takes tool_choice auto, required, none or a named function")
        return {"tool": {"name": named}}
    return None


def _structured_output(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The forced tool that carries a json_object / json_schema response format, or None."""
    response_format = options.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_object":
        spec = {"name": _JSON_TOOL, "description": "Answer with one JSON object.", "inputSchema": {"json": _EMPTY}}
    elif kind == "json_schema":
        wanted = response_format.get("json_schema") or {}
        schema = wanted.get("schema") or _EMPTY
        if schema.get("type") != "object":
            raise _refused("Bedrock structured output needs a JSON schema whose top level is an object")
        description = wanted.get("description") or "Answer with JSON that fits this schema."
        spec = {"name": wanted.get("name") or _JSON_TOOL, "description": description, "inputSchema": {"json": schema}}
    else:
        return None
    return spec


def converse_request(model: ModelConfig, params: ChatParams) -> tuple[dict[str, Any], str | None]:
    """(the Converse request, the name of the forced structured-output tool if any)."""
    options = params.options
    need = requirements_of(params.messages, options)
    lacking = [need.words(f) for f in FEATURES if f in need.features & PROVIDER_LACKS["bedrock"]]
    if lacking:
        raise _refused(f"Bedrock models cannot serve {', '.join(lacking)}")
    messages, system = to_converse(params.messages)
    request: dict[str, Any] = {"modelId": model.upstream_model, "messages": messages}
    if system:
        request["system"] = system
    inference = _inference_config(params)
    if inference:
        request["inferenceConfig"] = inference
    forced = _structured_output(options)
    if forced is not None:
        request["toolConfig"] = {"tools": [{"toolSpec": forced}], "toolChoice": {"tool": {"name": forced["name"]}}}
        return request, str(forced["name"])
    specs = _tool_specs(options) if options.get("tool_choice") != "none" else []
    if specs:
        request["toolConfig"] = {"tools": specs}
        choice = _tool_choice(options)
        if choice is not None:
            request["toolConfig"]["toolChoice"] = choice
    return request, None


def _inference_config(params: ChatParams) -> dict[str, Any]:
    """temperature, top_p, the output limit and stop sequences as Converse's inferenceConfig."""
    inference: dict[str, Any] = {}
    if params.temperature is not None:
        inference["temperature"] = params.temperature
    if params.options.get("top_p") is not None:
        inference["topP"] = params.options["top_p"]
    if params.max_tokens is not None:
        inference["maxTokens"] = params.max_tokens
    stop = params.options.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return inference


class BedrockProvider:
    """Calls `bedrock-runtime:Converse` with the model's `upstream_model` as modelId."""

    def __init__(
        self, name: str, config: BedrockProviderConfig, *, client_factory: ClientFactory = bedrock_client
    ) -> None:
        self.name = name
        self._region = config.region
        self._client_factory = client_factory

    def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
        """One Converse call; token counts are Bedrock's usage report; raises UpstreamError."""
        request, forced = converse_request(model, params)
        started = time.perf_counter()
        with _upstream_errors(timeout_s):
            response = self._client_factory(self._region, timeout_s).converse(**request)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return _parse(response, model, latency_ms, forced)

    def stream(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Iterator[dict[str, Any]]:
        """One ConverseStream call as OpenAI `chat.completion.chunk` dicts (see the module docstring).

        Nothing is sent before the first `next()`: a request Converse cannot carry, and any
        failure before the first event, is raised (UpstreamError) by that first `next()`. A
        failure later raises UpstreamError between chunks. `timeout_s` bounds the wait for the
        first event and between two events, seconds. Closing the generator early closes the
        event stream, so Bedrock stops generating.
        """
        request, forced = converse_request(model, params)
        with _upstream_errors(timeout_s):
            response = self._client_factory(self._region, timeout_s).converse_stream(**request)
        events = response["stream"]
        translation = _ChunkTranslation(forced)
        finished = False
        try:
            for event in _events(events, timeout_s):
                yield from translation.chunks(event)
            if not translation.stopped:
                raise UpstreamError("bad_response", "ConverseStream ended without messageStop")
            finished = True
        finally:
            # Closed early or failed: drop the connection. A stream read to its end has already
            # returned its connection to the pool, so it is left alone.
            if not finished:
                events.close()


def _events(events: Any, timeout_s: float) -> Iterator[Mapping[str, Any]]:
    """The parsed events of a ConverseStream event stream; read failures raise UpstreamError."""
    iterator = iter(events)
    while True:
        with _upstream_errors(timeout_s):
            event = next(iterator, None)
        if event is None:
            return
        yield event


@contextmanager
def _upstream_errors(timeout_s: float) -> Iterator[None]:
    """Raises what botocore (or urllib3, while an event stream is read) raised as UpstreamError."""
    from botocore.eventstream import ParserError
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        NoCredentialsError,
        ReadTimeoutError,
    )
    from urllib3.exceptions import HTTPError as HTTPConnectionError
    from urllib3.exceptions import ReadTimeoutError as StreamReadTimeoutError

    try:
        yield
    except ClientError as exc:
        raise _client_error(exc) from exc
    except (ReadTimeoutError, ConnectTimeoutError, StreamReadTimeoutError) as exc:
        raise UpstreamError("timeout", f"{type(exc).__name__} after {timeout_s:.1f} s") from exc
    except NoCredentialsError as exc:
        raise UpstreamError("unavailable", "no AWS credentials for Bedrock") from exc
    except BotoCoreError as exc:
        # Connection refused/closed, endpoint unreachable: nothing answered.
        raise UpstreamError("unavailable", type(exc).__name__) from exc
    except HTTPConnectionError as exc:
        # The connection broke while an event stream was being read (botocore does not wrap these).
        raise UpstreamError("server_error", f"event stream broken: {type(exc).__name__}") from exc
    except ParserError as exc:
        raise UpstreamError("bad_response", f"event stream unreadable: {exc}") from exc


def _client_error(exc: Any) -> UpstreamError:
    """Bedrock's error answer, or an exception event inside an event stream, as UpstreamError."""
    from botocore.exceptions import EventStreamError

    error = exc.response.get("Error", {})
    # An exception event is named like its exception in lower camel case (throttlingException).
    code = str(error.get("Code", ""))
    code = code[:1].upper() + code[1:]
    message = str(error.get("Message", "")) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(exc, EventStreamError):
        status = None  # the stream's HTTP status was 200; botocore reports 400 for every exception event
    kind: ErrorKind | None = _ERROR_KINDS.get(code)
    if kind is None:
        kind = "rate_limited" if status == 429 else "server_error" if (status or 500) >= 500 else "client_error"
    if code == "ValidationException" and _CONTEXT_LENGTH_RE.search(message):
        kind = "context_length"
    # Bedrock's validation errors are mostly model-specific (context window, unsupported
    # parameter, unknown model id), so they fall back rather than fail the request.
    return UpstreamError(kind, f"{code}: {message}", status=status, invalid_request=False)


def _parse(response: Mapping[str, Any], model: ModelConfig, latency_ms: float, forced: str | None) -> Completion:
    """A Converse answer as a Completion with one OpenAI choice (see `_message`)."""
    try:
        blocks = response["output"]["message"]["content"]
        usage = response["usage"]
        input_tokens = int(usage["inputTokens"])
        output_tokens = int(usage["outputTokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError("bad_response", f"Converse response lacks {exc}") from exc
    message, finish = _message(blocks, _finish_reason(response.get("stopReason")), forced)
    return Completion(
        text=message["content"] or "",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=finish,
        upstream_model=model.upstream_model,
        latency_ms=latency_ms,
        usage_estimated=False,
        choices=({"index": 0, "message": message, "finish_reason": finish, "logprobs": None},),
        usage=_usage(input_tokens, output_tokens, usage.get("cacheReadInputTokens")),
    )


def _finish_reason(stop: Any) -> str:
    """The OpenAI finish_reason of a Converse stopReason (an unknown reason is passed on)."""
    stop = str(stop or "")
    return _STOP_REASONS.get(stop, stop or "unknown")


def _usage(input_tokens: int, output_tokens: int, cached: Any) -> dict[str, Any]:
    """The OpenAI usage object of Bedrock's token counts (cached: cacheReadInputTokens, if reported)."""
    usage: dict[str, Any] = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if isinstance(cached, int):
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def _message(blocks: Any, finish: str, forced: str | None) -> tuple[dict[str, Any], str]:
    """(the OpenAI assistant message, its finish_reason) from Converse content blocks: text →
    content, toolUse → tool_calls; the forced structured-output tool's input → JSON content."""
    texts = [b["text"] for b in blocks if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
    uses = [b["toolUse"] for b in blocks if isinstance(b, Mapping) and isinstance(b.get("toolUse"), Mapping)]
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    structured = next((u for u in uses if forced is not None and u.get("name") == forced), None)
    if structured is not None:
        message["content"] = json.dumps(structured.get("input"), ensure_ascii=False)
        return message, "stop" if finish == "tool_calls" else finish
    if uses:
        message["tool_calls"] = [
            {
                "id": u.get("toolUseId"),
                "type": "function",
                "function": {"name": u.get("name"), "arguments": json.dumps(u.get("input"), ensure_ascii=False)},
            }
            for u in uses
        ]
    return message, finish


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


class _ChunkTranslation:
    """ConverseStream events → OpenAI chunks for one answer (see the module docstring).

    What accumulates from the chunks equals what `_message` makes of the same answer: text
    blocks joined by newlines, tool calls in order, the forced tool's input as the content
    (and any text before it dropped), finish "stop" when the forced tool answered.
    """

    def __init__(self, forced: str | None) -> None:
        self._forced = forced
        self._started = False
        self._tool_calls: dict[int, int] = {}
        """contentBlockIndex → the OpenAI tool-call index of each (unforced) toolUse block."""
        self._forced_block: int | None = None
        """contentBlockIndex of the forced tool's first toolUse (the one `_message` answers with)."""
        self._text_block: int | None = None
        self._held: list[str] = []
        """Text deltas held back while a forced tool may still answer (then they are dropped)."""
        self.stopped = False

    def chunks(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event produces, in order (often none)."""
        out: list[dict[str, Any]] = []
        if not self._started:  # the role chunk comes first, whichever event does
            self._started = True
            out.append(_chunk({"role": "assistant", "content": ""}))
        if "contentBlockStart" in event:
            out.extend(self._block_start(event["contentBlockStart"]))
        elif "contentBlockDelta" in event:
            out.extend(self._block_delta(event["contentBlockDelta"]))
        elif "messageStop" in event:
            out.extend(self._stop(event["messageStop"]))
        elif "metadata" in event:
            usage = event["metadata"].get("usage")
            if isinstance(usage, Mapping):
                tokens = (int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0)))
                out.append({"choices": [], "usage": _usage(*tokens, usage.get("cacheReadInputTokens"))})
        return out

    def _block_start(self, start_event: Mapping[str, Any]) -> list[dict[str, Any]]:
        use = (start_event.get("start") or {}).get("toolUse")
        if not isinstance(use, Mapping):
            return []
        block = int(start_event.get("contentBlockIndex", -1))
        if self._forced is not None and use.get("name") == self._forced:
            if self._forced_block is None:
                self._forced_block = block
                self._held.clear()
            return []
        index = self._tool_calls[block] = len(self._tool_calls)
        function = {"name": use.get("name"), "arguments": ""}
        opening = {"index": index, "id": use.get("toolUseId"), "type": "function", "function": function}
        return [_chunk({"tool_calls": [opening]})]

    def _block_delta(self, delta_event: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = delta_event.get("delta") or {}
        block = int(delta_event.get("contentBlockIndex", -1))
        text = delta.get("text")
        if isinstance(text, str) and text:
            if self._text_block is not None and self._text_block != block:
                text = "\n" + text  # `complete` joins text blocks with a newline
            self._text_block = block
            if self._forced is None:
                return [_chunk({"content": text})]
            if self._forced_block is None:
                self._held.append(text)
            return []
        piece = (delta.get("toolUse") or {}).get("input")
        if not isinstance(piece, str) or not piece:
            return []  # reasoning, citations, images, tool results: nothing an OpenAI client reads
        if block == self._forced_block:
            return [_chunk({"content": piece})]
        if block in self._tool_calls:
            return [_chunk({"tool_calls": [{"index": self._tool_calls[block], "function": {"arguments": piece}}]})]
        return []

    def _stop(self, stop_event: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.stopped = True
        finish = _finish_reason(stop_event.get("stopReason"))
        out = [_chunk({"content": "".join(self._held)})] if self._held else []
        self._held.clear()
        if self._forced_block is not None and finish == "tool_calls":
            finish = "stop"
        return [*out, _chunk({}, finish)]
