"""Pure parts of the store: turn ids, shard aggregation with decay, key handling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from router_core.errors import AuthenticationFailed
from router_core.keys import KEY_PREFIX, KeyCache, bearer_token, generate_key, hash_key
from router_core.store import ClientKey, TurnKey, aggregate_cells

pytestmark = pytest.mark.unit


def test_turn_id_round_trips_and_is_bound_to_the_key() -> None:
    key = TurnKey("ab" * 32, "sess-1", 3, "9f00a1b2")
    parsed = TurnKey.parse(key.turn_id, "ab" * 32)
    assert parsed == key
    other = TurnKey.parse(key.turn_id, "cd" * 32)
    assert other is not None and other.pk != key.pk


@pytest.mark.parametrize("bad", ["", "a", "a.b", "a.x.n", "a.1", ".1.n", "a.1.", "a.1234567.n", "a.1.n.extra"])
def test_malformed_turn_ids_are_rejected(bad: str) -> None:
    assert TurnKey.parse(bad, "00" * 32) is None


def shard(sk: str, **attrs: float) -> dict:
    return {"pk": "CELLS", "sk": sk, **attrs}


def test_shards_are_summed_into_one_cell() -> None:
    cells = aggregate_cells(
        [
            shard("r#writing#fast#0", a=2, b=1, picks=3, feedback=3, out_tok=30, decayed_at=100),
            shard("r#writing#fast#1", a=1, b=0, picks=2, feedback=1, out_tok=20, decayed_at=100),
            shard("r#writing#smart#0", a=0, b=4, picks=4, feedback=4, decayed_at=100),
        ],
        now=100,
        half_life_s=None,
    )
    by_model = {c.model: c for c in cells}
    assert by_model["fast"].alpha_evidence == 3 and by_model["fast"].beta_evidence == 1
    assert by_model["fast"].picks == 5 and by_model["fast"].output_tokens == 50
    assert by_model["smart"].beta_evidence == 4


def test_evidence_halves_after_one_half_life() -> None:
    (cell,) = aggregate_cells([shard("r#code#m#0", a=8, b=4, decayed_at=0)], now=3600, half_life_s=3600)
    assert cell.alpha_evidence == pytest.approx(4.0)
    assert cell.beta_evidence == pytest.approx(2.0)


@given(a=st.floats(-1e6, 1e6), b=st.floats(-1e6, 1e6), age=st.floats(0, 1e9))
def test_aggregated_evidence_is_never_negative(a: float, b: float, age: float) -> None:
    (cell,) = aggregate_cells([shard("r#t#m#0", a=a, b=b, decayed_at=0)], now=age, half_life_s=3600)
    assert cell.alpha_evidence >= 0 and cell.beta_evidence >= 0


def test_model_names_with_slashes_are_kept_whole() -> None:
    (cell,) = aggregate_cells([shard("r#writing#openai/gpt-4o#0", a=1, b=1, decayed_at=0)], now=0, half_life_s=None)
    assert (cell.router, cell.request_type, cell.model) == ("r", "writing", "openai/gpt-4o")


def test_keys_are_random_prefixed_and_hashed() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) > 40
    assert hash_key(a) != a and len(hash_key(a)) == 64


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer  ", "Token rk-x", "Bearer sk-other", "Bearer " + "rk-" + "x" * 300]
)
def test_malformed_authorization_is_401(header: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        bearer_token(header)


def test_bearer_token_accepts_case_insensitive_scheme() -> None:
    assert bearer_token("bearer rk-abc") == "rk-abc"


def test_key_cache_expires() -> None:
    now = [0.0]
    cache = KeyCache(clock=lambda: now[0])
    cache.put(ClientKey("h", "n"))
    assert cache.get("h") is not None
    now[0] = 61.0
    assert cache.get("h") is None
