"""Turning a routed turn into OpenAI-format response bodies (JSON objects or buffered SSE) and router headers."""

from __future__ import annotations

import json
import time
from typing import Any

from router_core.config import GatewayConfig
from router_core.turns import RoutedTurn


def router_headers(turn: RoutedTurn) -> dict[str, str]:
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
    if turn.implicit_feedback is not None:
        facts["implicit_feedback"] = {
            "turn_id": turn.implicit_feedback.turn_id,
            "kind": turn.implicit_feedback.kind,
            "reward": turn.implicit_feedback.reward,
        }
    return facts


def _ids(turn: RoutedTurn) -> tuple[str, int]:
    return "chatcmpl-" + (turn.turn_id or turn.session_id).replace(".", "-"), int(time.time())


def _usage(turn: RoutedTurn) -> dict[str, int]:
    c = turn.result.completion
    return {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
    }


def completion_body(turn: RoutedTurn) -> dict[str, Any]:
    """A `chat.completion` object."""
    cid, created = _ids(turn)
    c = turn.result.completion
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": turn.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
        ],
        "usage": _usage(turn),
        "router": router_facts(turn),
    }


def sse_body(turn: RoutedTurn) -> str:
    """The same answer as `chat.completion.chunk` server-sent events (buffered: API Gateway
    HTTP APIs deliver a Lambda response whole)."""
    cid, created = _ids(turn)
    c = turn.result.completion
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": turn.model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": c.text}, "finish_reason": None}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": c.finish_reason}],
            "usage": _usage(turn),
            "router": router_facts(turn),
        },
    ]
    return "".join(f"data: {json.dumps(ch)}\n\n" for ch in chunks) + "data: [DONE]\n\n"


def models_body(config: GatewayConfig) -> dict[str, Any]:
    """GET /v1/models: routers first, then every model."""
    created = 0
    data = [{"id": name, "object": "model", "created": created, "owned_by": "router"} for name in config.routers]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": m.provider} for name, m in config.models.items()
    ]
    return {"object": "list", "data": data}
