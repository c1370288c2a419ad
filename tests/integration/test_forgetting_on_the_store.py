"""Forgetting on the real store (locked moto, tables from template.yaml): write, read, compaction.

Time is the store's clock, replaced by a settable one: weeks pass without sleeping. Every
evidence figure is read back through the store's own read path (Query + `aggregate_cells`,
or the state handler), never computed by the code under test.
"""

from __future__ import annotations

import json
import math
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION
from tests.integration.conftest import Stack
from tests.integration.test_chat_handler import CODE_PROMPT, five_message_conversation

pytestmark = pytest.mark.integration

HOUR = 3600.0
DAY = 24 * HOUR
HALF_LIFE_S = 168 * HOUR  # the shipped default
T0 = 1_800_000_000.0  # January 2027: any fixed time works, none is special
ROUTER = "smart-cheap-router"


class Clock:
    """A settable clock (Unix seconds): `t`, or `local.t` in a thread that set its own."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.local = threading.local()

    def __call__(self) -> float:
        return float(getattr(self.local, "t", self.t))


def install_clock(monkeypatch: pytest.MonkeyPatch, t: float) -> Clock:
    from router_core import runtime

    clock = Clock(t)
    monkeypatch.setattr(runtime.store(), "clock", clock)
    return clock


def one_model(router_settings: Any, **fields: Any) -> None:
    """The shipped router with only `smart`: every pick lands on one known cell."""
    router_settings(models=["smart"], default_model="smart", **fields)


def weight(elapsed_s: float) -> float:
    """The half-life curve, written out independently of the code under test."""
    return 0.5 ** (elapsed_s / HALF_LIFE_S)


def evidence(model: str = "smart", request_type: str = "code_generation") -> tuple[float, float]:
    """(α, β) evidence of one cell at the store's clock, through the store's read path."""
    from router_core import runtime
    from router_core.forgetting import half_life_seconds
    from router_core.store import aggregate_cells

    store = runtime.store()
    half_life = half_life_seconds(runtime.config().routers[ROUTER])
    cells = [
        c
        for c in aggregate_cells(store.query_cells(), now=store.clock(), half_life_s=half_life)
        if (c.router, c.request_type, c.model) == (ROUTER, request_type, model)
    ]
    if not cells:
        return 0.0, 0.0
    (cell,) = cells
    return cell.alpha_evidence, cell.beta_evidence


def shard_items(stack: Stack, model: str = "smart", request_type: str = "code_generation") -> list[dict[str, Any]]:
    """The cell's shard items as stored (typed DynamoDB attributes)."""
    items = boto3.client("dynamodb", region_name=REGION).query(
        TableName=stack.resources.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": "CELLS"}, ":sk": {"S": f"{ROUTER}#{request_type}#{model}#"}},
    )["Items"]
    return list(items)


def eras(item: dict[str, Any]) -> set[str]:
    """Era starts an item holds evidence for (attributes a_<start> / b_<start>)."""
    return {name.split("_", 1)[1] for name in item if name[:2] in {"a_", "b_"} and name[2:].isdigit()}


def chat(stack: Stack, messages: list[dict[str, str]], session: str | None = None) -> dict[str, Any]:
    response = stack.chat_request({"model": ROUTER, "messages": messages}, session=session)
    assert response["statusCode"] == 200, response
    assert response["headers"]["x-router-request-type"] == "code_generation"
    assert response["headers"]["x-router-model"] == "smart"
    return response


def gated_turn(stack: Stack) -> str:
    """A turn of the (code_generation, smart) cell whose conversation passes the signal gate."""
    turn_id: str = chat(stack, five_message_conversation(CODE_PROMPT))["headers"]["x-router-turn-id"]
    return turn_id


def rate(stack: Stack, turn_id: str, rating: str) -> None:
    response = stack.feedback_request({"turn_id": turn_id, "rating": rating})
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["applied"] is True


def next_era_start(t: float) -> float:
    from router_core.forgetting import era_seconds, era_start

    return float(era_start(t, HALF_LIFE_S) + era_seconds(HALF_LIFE_S))


def test_one_rating_after_four_weeks_of_picks_only_traffic_counts_in_full(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_model(router_settings)
    clock = install_clock(monkeypatch, T0)
    # 28 days of traffic nobody rates: picks, tokens and spend, no evidence.
    for day in range(28):
        for hour in (9, 13, 17):
            clock.t = T0 + day * DAY + hour * HOUR
            chat(stack, [{"role": "user", "content": CODE_PROMPT}])
    (item,) = shard_items(stack)
    assert int(item["picks"]["N"]) == 84
    assert evidence() == (0.0, 0.0)

    # Day 28, one minute before an era ends: one 👍 — it counts in full when read.
    rated_at = next_era_start(T0 + 28 * DAY) - 60.0
    clock.t = rated_at
    first, second = gated_turn(stack), gated_turn(stack)
    rate(stack, first, "up")
    alpha, beta = evidence()
    assert alpha >= 0.97
    assert alpha == pytest.approx(1.0, abs=1e-9) and beta == pytest.approx(0.0, abs=1e-12)
    cell = next(
        c for c in stack.router_state()["cells"] if (c["request_type"], c["model"]) == ("code_generation", "smart")
    )
    assert cell["alpha"] - cell["prior_alpha"] == pytest.approx(1.0, abs=1e-3)

    # Two minutes later, in the next era, a 👎: the cell now holds two eras ...
    clock.t = rated_at + 120.0
    rate(stack, second, "down")
    clock.t = rated_at + 180.0
    (item,) = shard_items(stack)
    assert len(eras(item)) == 2
    before = evidence()
    # ... so the next chat on the cell compacts it (one era left), and nothing read changes.
    chat(stack, [{"role": "user", "content": CODE_PROMPT}])
    (item,) = shard_items(stack)
    assert len(eras(item)) == 1 and "decayed_at" not in item
    alpha, beta = evidence()
    assert (alpha, beta) == pytest.approx(before, abs=1e-9)
    assert alpha >= 0.97
    assert alpha == pytest.approx(weight(180.0), abs=1e-9)
    assert beta == pytest.approx(weight(60.0), abs=1e-9)


@pytest.mark.parametrize("shard_known", [True, False], ids=["same-shard", "turn-scored-before-shards-were-recorded"])
def test_an_explicit_rating_replaces_an_implicit_one_in_full_on_a_sharded_cell(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch, shard_known: bool
) -> None:
    from router_core import runtime

    one_model(router_settings, cell_shards=4)
    clock = install_clock(monkeypatch, T0)
    turn_id = gated_turn(stack)
    follow_up = [*five_message_conversation(CODE_PROMPT), {"role": "assistant", "content": "def merge(): ..."}]
    follow_up.append({"role": "user", "content": "perfect, thanks!"})
    chat(stack, follow_up, session=turn_id.split(".")[0])
    assert stack.drain_signals() == {"batchItemFailures": []}
    assert evidence() == pytest.approx((1.0, 0.0), abs=1e-9)
    (holder,) = [i for i in shard_items(stack) if eras(i)]
    implicit_shard = int(holder["sk"]["S"].rsplit("#", 1)[1])

    if not shard_known:
        # A turn scored by an earlier version records no shard: the override then lands on
        # another shard (forced here), and the cell must still be corrected in full.
        session, index, _nonce = turn_id.split(".")
        from router_core.keys import hash_key

        boto3.client("dynamodb", region_name=REGION).update_item(
            TableName=stack.resources.table_name,
            Key={"pk": {"S": f"TURN#{hash_key(stack.api_key)[:32]}#{session}"}, "sk": {"S": f"{int(index):06d}"}},
            UpdateExpression="REMOVE scored_shard",
        )

        class OtherShard(random.Random):
            def randrange(self, *args: Any, **kwargs: Any) -> int:
                return (implicit_shard + 1) % 4

        monkeypatch.setattr(runtime.store(), "rng", OtherShard())

    # Two days later the user says 👎: the cell reads as if only the 👎 had ever been given.
    clock.t = T0 + 2 * DAY
    rate(stack, turn_id, "down")
    alpha, beta = evidence()
    assert alpha == pytest.approx(0.0, abs=1e-9)
    assert beta == pytest.approx(1.0, abs=1e-9)
    written = {int(i["sk"]["S"].rsplit("#", 1)[1]) for i in shard_items(stack) if eras(i)}
    assert written == ({implicit_shard} if shard_known else {implicit_shard, (implicit_shard + 1) % 4})
    state_cell = next(
        c for c in stack.router_state()["cells"] if (c["request_type"], c["model"]) == ("code_generation", "smart")
    )
    assert state_cell["alpha"] == pytest.approx(state_cell["prior_alpha"], abs=1e-4)
    assert state_cell["beta"] == pytest.approx(state_cell["prior_beta"] + 1.0, abs=1e-4)
    assert state_cell["feedback"] == 1


def test_evidence_from_long_ago_decays_as_the_half_life_says(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_model(router_settings)
    rated_at = next_era_start(T0) + 1234.5  # anywhere inside an era
    clock = install_clock(monkeypatch, rated_at)
    first, second = gated_turn(stack), gated_turn(stack)
    rate(stack, first, "up")
    for elapsed, expected in ((HALF_LIFE_S, 0.5), (2 * HALF_LIFE_S, 0.25), (4 * HALF_LIFE_S, 1 / 16)):
        clock.t = rated_at + elapsed
        alpha, _ = evidence()
        assert alpha == pytest.approx(expected, rel=1e-9)
    # A 👎 three days after the 👍 (turns live seven), then a chat at two half-lives compacts
    # the two eras: both ratings keep decaying by the same curve, before and after compaction.
    clock.t = rated_at + 3 * DAY
    rate(stack, second, "down")
    for elapsed in (2 * HALF_LIFE_S, 10 * HALF_LIFE_S):
        clock.t = rated_at + elapsed
        expected = (weight(elapsed), weight(elapsed - 3 * DAY))
        assert evidence() == pytest.approx(expected, rel=1e-9)
        if elapsed == 2 * HALF_LIFE_S:
            assert len(eras(shard_items(stack)[0])) == 2
            chat(stack, [{"role": "user", "content": CODE_PROMPT}])
            assert len(eras(shard_items(stack)[0])) == 1
            assert evidence() == pytest.approx(expected, rel=1e-9)


def test_cells_written_by_the_previous_version_are_read_then_folded_in(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_model(router_settings, cell_shards=2)
    clock = install_clock(monkeypatch, T0)
    # Before eras: evidence `a`, `b` as of `decayed_at` (here two days old, and a negative
    # leftover of a cross-shard correction on another shard, which must not make it improper).
    client = boto3.client("dynamodb", region_name=REGION)
    for shard, (a, b) in enumerate(((3.0, 1.0), (-0.5, 0.0))):
        client.put_item(
            TableName=stack.resources.table_name,
            Item={
                "pk": {"S": "CELLS"},
                "sk": {"S": f"{ROUTER}#code_generation#smart#{shard}"},
                "a": {"N": str(a)},
                "b": {"N": str(b)},
                "decayed_at": {"N": str(int(T0 - 2 * DAY))},
                "picks": {"N": "10"},
            },
        )
    expected = (2.5 * weight(2 * DAY), 1.0 * weight(2 * DAY))
    assert evidence() == pytest.approx(expected, rel=1e-9)
    turn_id = gated_turn(stack)  # this chat already compacts both legacy items
    assert all("decayed_at" not in i and "a" not in i and "b" not in i for i in shard_items(stack))
    assert evidence() == pytest.approx(expected, rel=1e-9)
    rate(stack, turn_id, "up")
    assert evidence() == pytest.approx((expected[0] + 1.0, expected[1]), rel=1e-9)
    clock.t = T0 + HALF_LIFE_S
    assert evidence() == pytest.approx(((expected[0] + 1.0) / 2, expected[1] / 2), rel=1e-9)
    for c in stack.router_state()["cells"]:
        assert math.isfinite(c["alpha"]) and math.isfinite(c["beta"]) and c["alpha"] > 0 and c["beta"] > 0


def test_concurrent_ratings_and_compactions_across_eras_lose_and_double_nothing(
    stack: Stack, router_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers only ADD; compactions race them (each thread has its own clock, moto is locked)."""
    from router_core import runtime
    from router_core.feedback import apply_feedback
    from router_core.keys import hash_key
    from router_core.store import Turn, TurnKey

    router_settings(models=["smart"], default_model="smart", cell_shards=2, feedback_per_minute_per_key=100_000)
    clock = install_clock(monkeypatch, T0)
    store, config = runtime.store(), runtime.config()
    key_hash = hash_key(stack.api_key)
    rng = random.Random(7)
    # 240 turns over three days (about ten eras), each rated once, in four writer threads.
    plan = sorted((T0 + rng.uniform(0, 3 * DAY), rng.choice((0.0, 0.25, 1.0))) for _ in range(240))
    turns = []
    for i, (at, _reward) in enumerate(plan):
        clock.local.t = at
        turn = Turn(
            key=TurnKey(key_hash, f"c{i}", 2, f"n{i}"),
            router=ROUTER,
            request_type="code_generation",
            model="smart",
            routed=True,
            gate_passed=True,
            conversation_messages=6,
            created_at=at,
        )
        store.record_turn(
            turn,
            input_tokens=10,
            output_tokens=10,
            cost_usd=0.0,
            baseline_usd=0.0,
            propensity=1.0,
            ttl_seconds=30 * DAY,
            shards=2,
        )
        turns.append(turn)
    del clock.local.t
    done = threading.Event()
    compactions: list[bool] = []
    client = boto3.client("dynamodb", region_name=REGION)

    def write(chunk: list[int]) -> None:
        for i in chunk:
            clock.local.t = plan[i][0]
            outcome = apply_feedback(
                store, config, turns[i].key, plan[i][1], source="implicit", kind="satisfaction", turn=turns[i]
            )
            assert outcome.applied

    def compact() -> None:
        while not done.is_set():
            clock.local.t = T0 + rng.uniform(0, 3.5 * DAY)
            for shard in range(2):
                item = shard_item(client, stack, shard)
                if item is not None:
                    compactions.append(store.compact_cell(item, HALF_LIFE_S))

    with ThreadPoolExecutor(max_workers=5) as pool:
        compactor = pool.submit(compact)
        writers = [pool.submit(write, list(range(k, len(plan), 4))) for k in range(4)]
        for w in writers:
            w.result()
        done.set()
        compactor.result()
    assert any(compactions), "no compaction interleaved with the writers"

    end = T0 + 4 * DAY
    clock.t = end
    expected = (
        sum(r * weight(end - at) for at, r in plan),
        sum((1 - r) * weight(end - at) for at, r in plan),
    )
    assert evidence() == pytest.approx(expected, rel=1e-9)
    for shard in range(2):  # a final compaction changes nothing either
        item = shard_item(client, stack, shard)
        assert item is not None
        store.compact_cell(item, HALF_LIFE_S)
    assert evidence() == pytest.approx(expected, rel=1e-9)
    assert all(len(eras(i)) <= 1 for i in shard_items(stack))


def shard_item(client: Any, stack: Stack, shard: int) -> dict[str, Any] | None:
    """One shard item of the (code_generation, smart) cell as stored, or None."""
    got: dict[str, Any] | None = client.get_item(
        TableName=stack.resources.table_name,
        Key={"pk": {"S": "CELLS"}, "sk": {"S": f"{ROUTER}#code_generation#smart#{shard}"}},
        ConsistentRead=True,
    ).get("Item")
    return got
