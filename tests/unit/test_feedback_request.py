"""The explicit feedback body: exactly one of a thumbs rating or a reward in [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError
from router_core.api import FeedbackRequest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"rating": "up"}, 1.0),
        ({"rating": "down"}, 0.0),
        ({"reward": 0.0}, 0.0),
        ({"reward": 1.0}, 1.0),
        ({"reward": 0.35}, 0.35),
        ({"reward": 1}, 1.0),
    ],
)
def test_a_thumb_or_a_number_is_the_reward(body: dict[str, Any], expected: float) -> None:
    assert FeedbackRequest.model_validate({"turn_id": "s.1.ab", **body}).value() == expected


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rating": "up", "reward": 1.0},
        {"rating": "down", "reward": 0.0},
        {"rating": "sideways"},
        {"reward": -0.01},
        {"reward": 1.01},
        {"reward": math.nan},
        {"reward": math.inf},
        {"reward": True},
        {"reward": "0.5"},
    ],
)
def test_anything_else_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate({"turn_id": "s.1.ab", **body})
