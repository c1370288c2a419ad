"""The message an implicit signal travels in, from the chat function to the feedback consumer."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from router_core.store import Turn, TurnKey


class SignalMessage(BaseModel):
    """Everything the consumer needs to score the previous turn without reading it first."""

    model_config = ConfigDict(extra="ignore")
    v: int = 1
    turn_id: Annotated[str, Field(min_length=3, max_length=200)]
    key_hash: Annotated[str, Field(min_length=16, max_length=64)]
    router: str
    request_type: str
    model: str
    reward: Annotated[float, Field(ge=0.0, le=1.0)]
    kind: str
    rule: str = ""
    at: float = 0.0


class PoisonMessage(ValueError):
    """A queue message that can never be applied (it goes to the DLQ after its retries)."""


def parse_signal_message(body: str) -> tuple[TurnKey, Turn, float, str]:
    """Key, turn facts, reward and kind from a queue message; PoisonMessage when malformed."""
    try:
        msg = SignalMessage.model_validate(json.loads(body))
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise PoisonMessage(f"malformed signal message: {exc}") from exc
    key = TurnKey.parse(msg.turn_id, msg.key_hash)
    if key is None:
        raise PoisonMessage("malformed turn id in signal message")
    turn = Turn(
        key=key,
        router=msg.router,
        request_type=msg.request_type,
        model=msg.model,
        routed=True,
        gate_passed=True,
        conversation_messages=0,
        created_at=msg.at,
    )
    return key, turn, msg.reward, msg.kind
