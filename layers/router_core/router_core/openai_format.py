"""Turning a routed turn into OpenAI-format response bodies (JSON objects or buffered SSE) and router headers."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from router_core.config import GatewayConfig
from router_core.providers.chunks import choice_deltas, usage_of
from router_core.turns import RoutedTurn, TurnStream


def router_headers(turn: RoutedTurn | TurnStream) -> dict[str, str]:
    """The x-router-* headers (exposed through CORS) and a Server-Timing breakdown."""
    headers = {
        "x-router-model": turn.model,
        "x-router-request-type": turn.request_type,
        "x-router-session-id": turn.session_id,
        "server-timing": ", ".join(f"{name};dur={ms:.2f}" for name, ms in turn.timings_ms.items()),
        "cache-control": "no-store",
    }
    if turn.turn_id:
        headers["x-router-turn-id"] = turn.turn_id
    if turn.propensity is not None:
        headers["x-router-propensity"] = f"{turn.propensity:.6f}"
    if turn.fallback:
        headers["x-router-fallback"] = turn.fallback
    return headers


def router_facts(turn: RoutedTurn) -> dict[str, Any]:
    """The `router` object added to the body: the same facts as the headers, and more."""
    facts: dict[str, Any] = {
        "router": turn.router,
        "model": turn.model,
        "request_type": turn.request_type,
        "classifier_rule": turn.classification_rule,
        "turn_id": turn.turn_id,
        "session_id": turn.session_id,
        "propensity": turn.propensity,
        "cost_usd": round(turn.cost_usd, 9),
        "baseline_cost_usd": round(turn.baseline_usd, 9),
        "fallback": turn.fallback,
        "attempts": [{"model": a.model, "outcome": a.outcome, "status": a.status} for a in turn.result.attempts],
        "feedback_gate": {
            "messages": turn.gate_messages,
            "required": turn.gate_required,
            "passed": turn.gate_passed,
        },
    }
    if turn.outcome != "completed":
        facts["outcome"] = turn.outcome
    if turn.implicit_feedback is not None and turn.implicit_feedback.queued:
        facts["implicit_feedback"] = {
            "turn_id": turn.implicit_feedback.turn_id,
            "kind": turn.implicit_feedback.kind,
            "reward": turn.implicit_feedback.reward,
        }
    return facts


def chunk_id(turn_or_session_id: str) -> str:
    """The response id: `chatcmpl-` and the turn id (the session id without one)."""
    return "chatcmpl-" + turn_or_session_id.replace(".", "-")


def _ids(turn: RoutedTurn) -> tuple[str, int]:
    return chunk_id(turn.turn_id or turn.session_id), int(time.time())


def _usage(turn: RoutedTurn) -> dict[str, Any]:
    return usage_of(turn.result.completion)


def _upstream_facts(turn: RoutedTurn) -> dict[str, Any]:
    c = turn.result.completion
    facts: dict[str, Any] = {}
    if c.system_fingerprint is not None:
        facts["system_fingerprint"] = c.system_fingerprint
    if c.service_tier is not None:
        facts["service_tier"] = c.service_tier
    return facts


def completion_body(turn: RoutedTurn) -> dict[str, Any]:
    """A `chat.completion` object: every choice as the model gave it (content, tool_calls,
    refusal, logprobs, finish_reason), its usage with details, `system_fingerprint`."""
    cid, created = _ids(turn)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": turn.model,
        "choices": turn.result.completion.response_choices(),
        "usage": _usage(turn),
        **_upstream_facts(turn),
        "router": router_facts(turn),
    }


def sse_body(turn: RoutedTurn, *, include_usage: bool = False) -> str:
    """The same answer as `chat.completion.chunk` server-sent events (buffered: API Gateway
    HTTP APIs deliver a Lambda response whole).

    Per choice: a role chunk, the content (or refusal) in one chunk, one chunk per tool call
    (id, type and name with empty arguments, then the arguments), and a finish chunk; the
    router's facts ride on the last finish chunk. With `include_usage` every chunk carries
    `usage: null` and a last chunk with `choices: []` carries the usage, as OpenAI streams do."""
    cid, created = _ids(turn)
    base: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": turn.model}
    base |= _upstream_facts(turn)
    if include_usage:
        base["usage"] = None
    choices = turn.result.completion.response_choices()
    chunks: list[dict[str, Any]] = []
    for choice in choices:
        chunks += [{**base, "choices": [delta]} for delta in choice_deltas(choice)]
    chunks[-1]["router"] = router_facts(turn)
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(turn)})
    return "".join(sse_event(ch) for ch in chunks) + sse_event("[DONE]")


def sse_event(payload: dict[str, Any] | str) -> str:
    """One server-sent event carrying `payload` (a chunk, an error, or "[DONE]")."""
    # Compact, and text as UTF-8 (an escaped character would take 6 bytes or 12): as OpenAI sends it.
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n"


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when an Accept-Encoding header allows gzip (`gzip` or `*`, without `q=0`)."""
    for item in (accept_encoding or "").lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


class GzipEventStream:
    """gzip for an event stream that must still arrive event by event: every piece is
    compressed and flushed, so a client decodes each one as it lands.

    A token-by-token answer repeats the same chunk envelope (id, object, created, model, field
    names) in every event; compressed, an event costs a few bytes besides its new text instead
    of ~230 (bytes to the internet are billed per GB on the streaming path: `make bench-cost`).
    Z_PARTIAL_FLUSH ends each piece with an empty 10-bit block rather than Z_SYNC_FLUSH's
    5-byte marker, and still lets an inflater deliver everything sent so far."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9)

    def piece(self, data: bytes) -> bytes:
        """`data` compressed and flushed: the bytes to send now."""
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_PARTIAL_FLUSH)

    def end(self) -> bytes:
        """The gzip trailer (send after the last piece)."""
        return self._compressor.flush(zlib.Z_FINISH)


def models_body(config: GatewayConfig) -> dict[str, Any]:
    """GET /v1/models: routers first, then every model."""
    created = 0
    data = [{"id": name, "object": "model", "created": created, "owned_by": "router"} for name in config.routers]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": m.provider} for name, m in config.models.items()
    ]
    return {"object": "list", "data": data}
