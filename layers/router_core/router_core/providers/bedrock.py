"""Amazon Bedrock through the Converse API, authorised by the function's IAM role (no key).

OpenAI messages become Converse input: `system` / `developer` messages become `system` blocks;
user and assistant messages become text content blocks; consecutive messages of one role are
merged, and a conversation that opens with the assistant gets a short user turn first, because
Converse requires strict user/assistant alternation starting with the user. Tool results are
passed as user text. Non-text parts (images) are refused with a client error so the request
falls back to a model that may take them.

botocore's own retries are off (the fallback logic retries); botocore fixes timeouts per client,
so clients are cached per (region, read timeout rounded up to whole seconds).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from router_core.config import BedrockProviderConfig, ModelConfig
from router_core.providers.base import ChatParams, Completion, ErrorKind, UpstreamError, content_text

CONNECT_TIMEOUT_S = 3.0
"""Upper bound on connection setup to the Bedrock endpoint, seconds."""

_OPENING_USER_TEXT = "(continuing the conversation)"

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


def to_converse(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(messages, system) in Converse shape from OpenAI messages; see the module docstring.

    Raises UpstreamError(client_error) for image/audio parts and for a request with no user or
    assistant text at all.
    """
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type", "text") != "text" for p in content
        ):
            raise UpstreamError("client_error", "bedrock provider accepts text content only", invalid_request=False)
        text = content_text(content)
        if not text.strip():
            continue  # Converse refuses blank text blocks; an empty message carries nothing
        if role in ("system", "developer"):
            system.append({"text": text})
            continue
        if role == "tool":
            role, text = "user", f"[tool result]\n{text}"
        converse_role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == converse_role:
            turns[-1]["content"].append({"text": text})
        else:
            turns.append({"role": converse_role, "content": [{"text": text}]})
    if not turns:
        raise UpstreamError("client_error", "no user or assistant message with text", invalid_request=False)
    if turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": [{"text": _OPENING_USER_TEXT}]})
    return turns, system


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
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        messages, system = to_converse(params.messages)
        request: dict[str, Any] = {"modelId": model.upstream_model, "messages": messages}
        if system:
            request["system"] = system
        inference: dict[str, Any] = {}
        if params.temperature is not None:
            inference["temperature"] = params.temperature
        if params.max_tokens is not None:
            inference["maxTokens"] = params.max_tokens
        if inference:
            request["inferenceConfig"] = inference
        started = time.perf_counter()
        try:
            response = self._client_factory(self._region, timeout_s).converse(**request)
        except ClientError as exc:
            raise _client_error(exc) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise UpstreamError("timeout", f"{type(exc).__name__} after {timeout_s:.1f} s") from exc
        except NoCredentialsError as exc:
            raise UpstreamError("unavailable", "no AWS credentials for Bedrock") from exc
        except BotoCoreError as exc:
            # Connection refused/closed, endpoint unreachable: nothing answered.
            raise UpstreamError("unavailable", type(exc).__name__) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return _parse(response, model, latency_ms)


def _client_error(exc: Any) -> UpstreamError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    kind: ErrorKind | None = _ERROR_KINDS.get(code)
    if kind is None:
        kind = "rate_limited" if status == 429 else "server_error" if (status or 500) >= 500 else "client_error"
    if code == "ValidationException" and _CONTEXT_LENGTH_RE.search(message):
        kind = "context_length"
    # Bedrock's validation errors are mostly model-specific (context window, unsupported
    # parameter, unknown model id), so they fall back rather than fail the request.
    return UpstreamError(kind, f"{code}: {message}", status=status, invalid_request=False)


def _parse(response: Mapping[str, Any], model: ModelConfig, latency_ms: float) -> Completion:
    try:
        blocks = response["output"]["message"]["content"]
        usage = response["usage"]
        input_tokens = int(usage["inputTokens"])
        output_tokens = int(usage["outputTokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError("bad_response", f"Converse response lacks {exc}") from exc
    text = "\n".join(b["text"] for b in blocks if isinstance(b, Mapping) and isinstance(b.get("text"), str))
    stop = str(response.get("stopReason", ""))
    return Completion(
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=_STOP_REASONS.get(stop, stop or "unknown"),
        upstream_model=model.upstream_model,
        latency_ms=latency_ms,
        usage_estimated=False,
    )
