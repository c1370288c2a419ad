"""Any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama, OpenRouter, Groq...).

One `httpx.Client` per provider, created on first use, keeps connections warm across
invocations of the same execution environment. Every failure becomes an `UpstreamError` whose
kind the fallback logic understands. The API key comes from Secrets Manager or SSM through
Powertools' parameters utility (cached for `KEY_MAX_AGE_S`), or from an environment variable
for local use; with none configured no Authorization header is sent (Ollama, vLLM). The key is
never logged and never put in an error message.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from router_core.config import ModelConfig, OpenAICompatibleProviderConfig
from router_core.providers.base import (
    ChatParams,
    Completion,
    UpstreamError,
    content_text,
    estimate_tokens,
    messages_text,
)
from router_core.providers.chunks import completion_chunks

logger = logging.getLogger(__name__)

KEY_MAX_AGE_S = 300
"""Seconds a key read from Secrets Manager / SSM is reused before it is read again (rotation)."""
CONNECT_TIMEOUT_S = 3.0
"""Upper bound on TCP + TLS connection setup, seconds (never above the attempt's own timeout)."""
MAX_RESPONSE_BYTES = 8_000_000
"""Largest upstream response body read, bytes; a bigger one is a bad response, not a memory spike."""
MAX_ERROR_MESSAGE_CHARS = 500
"""Upstream error messages are cut to this many characters before they travel further."""

_USER_AGENT = "adaptive-llm-router"
# A 400 with one of these codes depends on the model's context window: another model may answer.
_MODEL_SPECIFIC_CODES = frozenset({"context_length_exceeded", "string_above_max_length", "model_not_found"})


class ApiKeySource:
    """Where one provider's API key comes from; `get()` returns None when no key is configured."""

    def __init__(self, provider_name: str, config: OpenAICompatibleProviderConfig) -> None:
        self._provider_name = provider_name
        self._config = config
        self._store: Any = None  # Powertools SecretsProvider / SSMProvider, created on first use
        self._lock = threading.Lock()

    @property
    def refreshable(self) -> bool:
        """True when the key lives in a store that rotation can change (Secrets Manager, SSM)."""
        return bool(self._config.api_key_secret_arn or self._config.api_key_ssm_parameter)

    def get(self, *, force_refresh: bool = False) -> str | None:
        """The key, read through a cache of `KEY_MAX_AGE_S` seconds; `force_refresh` skips the cache."""
        cfg = self._config
        if cfg.api_key_secret_arn:
            raw = self._read("secretsmanager", cfg.api_key_secret_arn, force_refresh)
            return _key_from_secret(raw, self._provider_name)
        if cfg.api_key_ssm_parameter:
            return self._read("ssm", cfg.api_key_ssm_parameter, force_refresh).strip()
        if cfg.api_key_env:
            value = os.environ.get(cfg.api_key_env, "").strip()
            if not value:
                raise UpstreamError(
                    "unavailable",
                    f"provider {self._provider_name!r}: environment variable {cfg.api_key_env} is not set",
                )
            return value
        return None

    def _read(self, service: str, name: str, force_refresh: bool) -> str:
        # Imported here: boto3 is only needed when a key actually lives in AWS.
        from aws_lambda_powertools.utilities import parameters

        where = "Secrets Manager" if service == "secretsmanager" else "SSM"
        try:
            with self._lock:
                if self._store is None:
                    self._store = _parameter_store(service, name)
            if service == "secretsmanager":
                value = self._store.get(name, max_age=KEY_MAX_AGE_S, force_fetch=force_refresh)
            else:
                value = self._store.get(name, max_age=KEY_MAX_AGE_S, force_fetch=force_refresh, decrypt=True)
        except parameters.exceptions.GetParameterError as exc:
            # The boto error names the resource and the reason, never the secret value.
            logger.warning("api key read failed", extra={"provider": self._provider_name, "store": where})
            raise UpstreamError(
                "unavailable", f"provider {self._provider_name!r}: cannot read its API key from {where}"
            ) from exc
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if not isinstance(value, str) or not value.strip():
            raise UpstreamError("unavailable", f"provider {self._provider_name!r}: its API key in {where} is empty")
        return value


def _parameter_store(service: str, name: str) -> Any:
    import boto3
    from aws_lambda_powertools.utilities import parameters

    # A full ARN names its region; a bare name lives in the function's own region.
    region = name.split(":")[3] if name.startswith("arn:") and name.count(":") >= 5 else None
    client = boto3.client(service, region_name=region or None)
    if service == "secretsmanager":
        return parameters.SecretsProvider(boto3_client=client)
    return parameters.SSMProvider(boto3_client=client)


def _key_from_secret(raw: str, provider_name: str) -> str:
    """A secret holds either the bare key or a JSON object with an `api_key` field."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        key = doc.get("api_key") if isinstance(doc, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise UpstreamError("unavailable", f"provider {provider_name!r}: its secret has no 'api_key' field")
        return key.strip()
    return text


class OpenAICompatibleProvider:
    """POST {base_url}/chat/completions (whole or streamed), with explicit timeouts and pooling."""

    def __init__(
        self,
        name: str,
        config: OpenAICompatibleProviderConfig,
        *,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._keys = ApiKeySource(name, config)
        self._max_connections = max_connections
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(12.0, connect=CONNECT_TIMEOUT_S),
                    limits=httpx.Limits(
                        max_connections=self._max_connections,
                        max_keepalive_connections=self._max_connections,
                        keepalive_expiry=30.0,
                    ),
                    headers={"user-agent": _USER_AGENT},
                    transport=self._transport,
                )
            return self._client

    def close(self) -> None:
        """Close pooled connections (the next call opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def complete(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Completion:
        """One chat completion; total time bounded by `timeout_s` (+ at most one read of the body).

        Raises UpstreamError: timeout (httpx timeouts, 408), rate_limited (429, Retry-After
        parsed), server_error (5xx), bad_response (not JSON, missing fields), unavailable
        (connection refused/reset, key unreadable), client_error (other 4xx, with the
        upstream's message).
        """
        body = request_body(model, params)
        started = time.perf_counter()
        deadline = started + timeout_s
        key = self._keys.get()
        status, headers, raw = self._post(body, key, timeout_s, deadline)
        if status == 401 and self._keys.refreshable:
            # A rotated key answers 401 until our cached copy expires: re-read it once now.
            fresh = self._keys.get(force_refresh=True)
            remaining = deadline - time.perf_counter()
            if fresh != key and remaining > 0:
                status, headers, raw = self._post(body, fresh, remaining, deadline)
        latency_ms = (time.perf_counter() - started) * 1000.0
        if 200 <= status < 300:
            return _parse_completion(raw, model, params, latency_ms, status)
        raise _status_error(status, headers, raw)

    def stream(self, model: ModelConfig, params: ChatParams, timeout_s: float) -> Iterator[dict[str, Any]]:
        """The upstream's own SSE stream (`stream: true`, usage asked for), chunk by chunk.

        `timeout_s` bounds connecting and each wait for data (the first chunk and every gap).
        A non-2xx answer raises the same UpstreamError as `complete`, before any chunk; an
        upstream that answers JSON despite `stream: true` is turned into chunks; an `error`
        event, a broken connection, or a stream that closes before any finish_reason and
        without `[DONE]` raises UpstreamError mid-stream (server_error / unavailable / timeout).
        Closing the generator closes the upstream connection."""
        body = request_body(model, params, stream=True)
        started = time.perf_counter()
        key = self._keys.get()
        headers = {"authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        try:
            with self._http().stream("POST", self._url, json=body, headers=headers, timeout=timeout) as resp:
                if not 200 <= resp.status_code < 300:
                    raise _status_error(resp.status_code, resp.headers, _read_bounded(resp.iter_bytes()))
                if "text/event-stream" not in resp.headers.get("content-type", ""):
                    raw = _read_bounded(resp.iter_bytes())
                    latency_ms = (time.perf_counter() - started) * 1000.0
                    yield from completion_chunks(_parse_completion(raw, model, params, latency_ms, resp.status_code))
                    return
                finished = False
                for data in sse_data(resp.iter_lines()):
                    if data == "[DONE]":
                        return
                    chunk = _stream_chunk(data)
                    finished = finished or any(
                        isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ()
                    )
                    yield chunk
                if not finished:  # closed without [DONE] or a finish_reason: cut off, not complete
                    raise UpstreamError("unavailable", "the upstream closed the stream before the answer ended")
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", f"{type(exc).__name__}: no data within {timeout_s:.1f} s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError("unavailable", f"{type(exc).__name__}: {_short(str(exc))}") from exc

    def _post(
        self, body: dict[str, Any], key: str | None, timeout_s: float, deadline: float
    ) -> tuple[int, httpx.Headers, bytes]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        try:
            with self._http().stream("POST", self._url, json=body, headers=headers, timeout=timeout) as resp:
                chunks: list[bytes] = []
                size = 0
                # Streaming the body lets us stop a server that drips bytes past our deadline.
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise UpstreamError("bad_response", f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.perf_counter() > deadline:
                        raise UpstreamError("timeout", f"no complete response within {timeout_s:.1f} s")
                    chunks.append(chunk)
                return resp.status_code, resp.headers, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", f"{type(exc).__name__} after {timeout_s:.1f} s") from exc
        except httpx.HTTPError as exc:
            # Refused, reset or closed without an answer: the upstream is not reachable now.
            raise UpstreamError("unavailable", f"{type(exc).__name__}: {_short(str(exc))}") from exc


def request_body(model: ModelConfig, params: ChatParams, *, stream: bool = False) -> dict[str, Any]:
    """The upstream body: the client's fields as sent (`params.options`), the model's id, the
    messages, and `stream` (streamed: with `stream_options.include_usage`, so the turn is
    priced from the upstream's own token counts)."""
    body: dict[str, Any] = {**params.options, "model": model.upstream_model, "messages": params.messages}
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    if params.temperature is not None and "temperature" not in body:
        body["temperature"] = params.temperature
    if params.max_tokens is not None and "max_tokens" not in body and "max_completion_tokens" not in body:
        body["max_tokens"] = params.max_tokens
    return body


def _parse_completion(raw: bytes, model: ModelConfig, params: ChatParams, latency_ms: float, status: int) -> Completion:
    doc, choice = _first_choice(raw, status)
    text = content_text(_message_content(choice, status))
    finish = choice.get("finish_reason")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
    tokens = _reported_tokens(usage)
    if tokens is None:
        # No usable usage report: estimate both sides the same way and say so.
        tokens = estimate_tokens(messages_text(params.messages)), estimate_tokens(text or _calls_text(choice))
    upstream_model = doc.get("model")
    return Completion(
        text=text,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        finish_reason=finish if isinstance(finish, str) and finish else "unknown",
        upstream_model=upstream_model if isinstance(upstream_model, str) and upstream_model else model.upstream_model,
        latency_ms=latency_ms,
        usage_estimated=usage is None or _reported_tokens(usage) is None,
        choices=tuple(_client_choice(i, c) for i, c in enumerate(doc["choices"]) if isinstance(c, dict)),
        usage=usage if _reported_tokens(usage) is not None else None,
        system_fingerprint=_text_field(doc, "system_fingerprint"),
        service_tier=_text_field(doc, "service_tier"),
    )


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each server-sent event (multi-line data joined by newlines); comments,
    `event:`, `id:` and `retry:` fields are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _stream_chunk(data: str) -> dict[str, Any]:
    """One event's chunk; an `error` event or a malformed one raises UpstreamError."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise UpstreamError("bad_response", "stream event is not valid JSON") from exc
    if not isinstance(chunk, dict):
        raise UpstreamError("bad_response", "stream event is not a JSON object")
    if "error" in chunk:
        message, _ = _error_details(data.encode("utf-8"))
        raise UpstreamError("server_error", f"upstream stream error: {message}" if message else "upstream stream error")
    return chunk


def _read_bounded(chunks: Iterable[bytes]) -> bytes:
    out: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamError("bad_response", f"response larger than {MAX_RESPONSE_BYTES} bytes")
        out.append(chunk)
    return b"".join(out)


def _reported_tokens(usage: dict[str, Any] | None) -> tuple[int, int] | None:
    """(prompt, completion) tokens as the upstream reported them, or None without a usable report."""
    if usage is None:
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    return None if prompt is None or completion is None else (prompt, completion)


def _text_field(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) else None


def _client_choice(position: int, choice: dict[str, Any]) -> dict[str, Any]:
    """One upstream choice as the client gets it: everything the upstream said (tool_calls,
    refusal, annotations, audio, logprobs...), with the fields a client relies on present."""
    message = dict(choice.get("message") or {})
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    finish = choice.get("finish_reason")
    return {
        **choice,
        "index": choice.get("index", position),
        "message": message,
        "finish_reason": finish if isinstance(finish, str) and finish else "stop",
        "logprobs": choice.get("logprobs"),
    }


def _calls_text(choice: dict[str, Any]) -> str:
    """The tool calls of a choice as text (only to estimate output tokens when usage is missing)."""
    message = choice.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    return json.dumps(calls) if calls else ""


def _first_choice(raw: bytes, status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The response document and its first choice; bad_response when either is missing."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise UpstreamError("bad_response", "response is not valid JSON", status=status) from exc
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError("bad_response", "response has no choices", status=status)
    return doc, choices[0]


def _message_content(choice: dict[str, Any], status: int) -> str | list[Any] | None:
    """The choice's message content (its refusal when there is no content); text or parts."""
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UpstreamError("bad_response", "response choice has no message", status=status)
    content = message.get("content")
    if content is None and isinstance(message.get("refusal"), str):
        content = message["refusal"]
    if content is not None and not isinstance(content, str | list):
        raise UpstreamError("bad_response", "response message content is neither text nor parts", status=status)
    return content


def _count(value: object) -> int | None:
    """A token count as reported, or None when it is missing or not a non-negative integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _status_error(status: int, headers: httpx.Headers, raw: bytes) -> UpstreamError:
    message, code = _error_details(raw)
    text = f"upstream answered {status}: {message}" if message else f"upstream answered {status}"
    if status == 429:
        return UpstreamError("rate_limited", text, status=status, retry_after_s=retry_after_seconds(headers))
    if status == 408:
        return UpstreamError("timeout", text, status=status)
    if status >= 500:
        return UpstreamError("server_error", text, status=status, retry_after_s=retry_after_seconds(headers))
    if 400 <= status < 500:
        lowered = message.lower()
        if code == "context_length_exceeded" or ("context" in lowered and "length" in lowered):
            return UpstreamError("context_length", message or text, status=status, invalid_request=False)
        model_specific = code in _MODEL_SPECIFIC_CODES
        return UpstreamError(
            "client_error",
            message or text,
            status=status,
            invalid_request=status in (400, 422) and not model_specific,
        )
    return UpstreamError("bad_response", text, status=status)


def _error_details(raw: bytes) -> tuple[str, str | None]:
    """(message, code) from an OpenAI-style error body, or the body's start when it is not one."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return _short(raw.decode("utf-8", errors="replace").strip()), None
    error = doc.get("error", doc) if isinstance(doc, dict) else doc
    if isinstance(error, str):
        return _short(error), None
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("detail") or ""
        code = error.get("code")
        return _short(str(message)), str(code) if code is not None else None
    return "", None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked us to wait: `retry-after-ms`, else `Retry-After` (seconds or a date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[:MAX_ERROR_MESSAGE_CHARS] + "…"
