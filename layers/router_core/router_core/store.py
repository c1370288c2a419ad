"""The state store: the only module that talks to DynamoDB (and to the signal queue).

One table, keys chosen so every path is a bounded number of round trips:

| item            | pk                              | sk                                   |
|-----------------|---------------------------------|--------------------------------------|
| cell counters   | `CELLS`                         | `{router}#{type}#{model}#{shard}`    |
| turn            | `TURN#{key hash}#{session}`     | `{turn index:06d}`                   |
| client key      | `KEY#{sha256 of the key}`       | `KEY`                                |
| activity event  | `ACTIVITY`                      | `{iso time}#{turn id}` (a batch: its first) |
| feedback rate   | `RATE#{key hash}`               | `{minute}`                           |
| history point   | `HISTORY`                       | `{epoch seconds:012d}`               |
| model health    | `CELLS`                         | `~health#{model}`                    |

* A chat reads the key, the previous turn and the (router, type) cells in ONE BatchGetItem
  (their keys are all known in advance), then writes the turn (PutItem) and ADDs to the
  answering cell (UpdateItem): three round trips.
* Cell evidence decays (forgetting): `router_core.forgetting` owns what is stored (α/β per
  era, `a_<era start>` / `b_<era start>`), how it is read at time t, what a write ADDs and how
  a conditional "compaction" write folds closed eras together. This module only runs those
  plans: writes are plain atomic ADDs (no read first), compaction is conditional on the exact
  values it read, so concurrent writers never lose or double-count evidence.
* Hot cells: `cell_shards` > 1 spreads a cell over several items; writers pick a shard at
  random (an override corrects the shard its turn was scored into), readers sum them before
  clamping. A configuration change, not a rewrite.
* Model health (`breaker`) is written only when a container's breaker for a model opens or
  closes; it lives in the cells' partition (sort keys starting with `~`, which no router name
  does) so the state route reads it with the cells, in the same Query.
* Feedback is one TransactWriteItems: mark the turn scored (conditions make it exactly once),
  ADD to the cell, log the activity event, count the key's feedback rate. Implicit signals
  arrive in SQS batches and a batch is ONE transaction: every turn's mark, one ADD per cell the
  batch moves (deltas merged) and one activity item listing the batch's events (`events`), so a
  signal costs its turn's write plus a share of the cells' instead of three writes of its own.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from router_core import forgetting

_TURN_ID = re.compile(r"(?P<session>[A-Za-z0-9_-]{1,64})\.(?P<index>[0-9]{1,6})\.(?P<nonce>[0-9a-f]{8})", re.ASCII)
"""A turn id as `turns` issues it: session id (the API's session-id alphabet), index, nonce."""
CELLS_PK = "CELLS"
HEALTH_SK_PREFIX = "~health#"
"""Model health items share the cells' partition; `~` sorts after every router name."""
ACTIVITY_PK = "ACTIVITY"
HISTORY_PK = "HISTORY"
NANO = 1_000_000_000
"""Dollar amounts are stored as integer nano-dollars so ADD stays exact."""


def _n(value: float | int | Decimal) -> dict[str, str]:
    """A DynamoDB number attribute (repr keeps floats exact enough; fixed-point, never exponents)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, Decimal):
        return {"N": format(value, "f")}
    return {"N": format(Decimal(repr(float(value))), "f")}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _value(attr: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as plain Python (numbers: int when integral, else float)."""
    ((kind, raw),) = attr.items()
    if kind == "S" or kind == "B":
        return raw
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _value(v) for k, v in raw.items()}
    if kind == "L":
        return [_value(v) for v in raw]
    if kind in {"SS", "BS"}:
        return set(raw)
    if kind == "NS":
        return {_value({"N": n}) for n in raw}
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in item.items()}


# botocore directly rather than boto3: the chat function needs two low-level clients, and
# skipping boto3's resource layer (and s3transfer) takes ~70 ms off every cold start.
_RETRIES = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


@lru_cache(maxsize=1)
def _session() -> Any:
    return botocore.session.get_session()


@lru_cache(maxsize=1)
def _client() -> Any:
    # Created lazily (after test mocks or the local stack set endpoints), cached per environment.
    return _session().create_client("dynamodb", config=_RETRIES)


@lru_cache(maxsize=1)
def _sqs() -> Any:
    return _session().create_client("sqs", config=_RETRIES)


def reset_clients() -> None:
    """Forget cached AWS clients (tests that swap endpoints or mocks call this)."""
    _client.cache_clear()
    _sqs.cache_clear()
    _session.cache_clear()


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CellCounters:
    """Everything stored for one (router, type, model) cell, shards summed, decay applied."""

    router: str
    request_type: str
    model: str
    alpha_evidence: float = 0.0
    beta_evidence: float = 0.0
    picks: int = 0
    feedback: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nusd: int = 0
    baseline_nusd: int = 0

    def average_output_tokens(self, expected: int) -> float:
        """Observed mean output tokens, shrunk toward `expected` by one pseudo-answer."""
        return (self.output_tokens + expected) / (self.picks + 1)


@dataclass(frozen=True, slots=True)
class TurnKey:
    """Where a turn lives; `turn_id` is what clients see."""

    key_hash: str
    session_id: str
    index: int
    nonce: str

    @property
    def pk(self) -> str:
        return f"TURN#{self.key_hash[:32]}#{self.session_id}"

    @property
    def sk(self) -> str:
        return f"{self.index:06d}"

    @property
    def turn_id(self) -> str:
        return f"{self.session_id}.{self.index}.{self.nonce}"

    @classmethod
    def parse(cls, turn_id: str, key_hash: str) -> TurnKey | None:
        """The key of a client-supplied turn id, or None unless it has the issued shape
        `<session id>.<index, ASCII digits>.<nonce, 8 lowercase hex digits>` (so no wildcard or
        Unicode digit ever reaches a key)."""
        match = _TURN_ID.fullmatch(turn_id)
        if match is None:
            return None
        return cls(key_hash=key_hash, session_id=match["session"], index=int(match["index"]), nonce=match["nonce"])


@dataclass(frozen=True, slots=True)
class Turn:
    """A recorded turn (one answered request)."""

    key: TurnKey
    router: str
    request_type: str
    model: str
    routed: bool
    gate_passed: bool
    conversation_messages: int
    created_at: float
    scored_source: str | None = None
    reward: float | None = None
    scored_at: float | None = None
    """When the turn was scored (store clock): an override takes out what is left of `reward`."""
    scored_shard: int | None = None
    """The cell shard its reward went to: an override corrects that shard."""
    outcome: str = "completed"
    """"completed", or for a streamed answer "stopped" (the client went away) or "failed" (the
    upstream broke mid-stream: never scored). Stored only when not "completed"."""


@dataclass(frozen=True, slots=True)
class ClientKey:
    key_hash: str
    name: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    at: str
    router: str
    request_type: str
    model: str
    reward: float
    kind: str
    source: str
    turn_id: str
    delta_alpha: float
    delta_beta: float


@dataclass(frozen=True, slots=True)
class ImplicitReward:
    """One implicit signal of a batch: the turn it scores, its cell and the router's settings."""

    key: TurnKey
    router: str
    request_type: str
    model: str
    reward: float
    kind: str
    shards: int
    half_life_s: float | None


@dataclass
class _CellDelta:
    """What one batch of implicit signals adds to one cell (on one shard)."""

    shard: int
    half_life_s: float | None
    alpha: float = 0.0
    beta: float = 0.0
    feedback: int = 0


@dataclass
class CallStats:
    """Round trips and consumed capacity, per operation (benchmarks and Server-Timing read it)."""

    calls: dict[str, int] = field(default_factory=dict)
    read_units: float = 0.0
    write_units: float = 0.0
    seconds: float = 0.0

    def add(self, op: str, response: Mapping[str, Any], seconds: float) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        self.seconds += seconds
        consumed = response.get("ConsumedCapacity") or []
        if isinstance(consumed, dict):
            consumed = [consumed]
        for c in consumed:
            self.read_units += float(c.get("ReadCapacityUnits", 0.0) or 0.0)
            self.write_units += float(c.get("WriteCapacityUnits", 0.0) or 0.0)
            if "ReadCapacityUnits" not in c and "WriteCapacityUnits" not in c:
                # On-demand tables report only CapacityUnits; attribute by operation.
                units = float(c.get("CapacityUnits", 0.0) or 0.0)
                if op in {"BatchGetItem", "GetItem", "Query"}:
                    self.read_units += units
                else:
                    self.write_units += units

    @property
    def round_trips(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True, slots=True)
class ChatReads:
    """What one BatchGetItem returns for a chat request."""

    client_key: ClientKey | None
    previous_turn: Turn | None
    cells: dict[str, CellCounters]
    """By model name."""
    stale_cells: tuple[dict[str, Any], ...] = ()
    """Shard items (as DynamoDB returned them, typed) that `compact_cell` should compact."""


class TransactionConflict(Exception):
    """A feedback transaction was cancelled; `reasons` holds one code per item ('None' = fine)."""

    def __init__(self, reasons: Sequence[str], items: Sequence[Mapping[str, Any] | None]) -> None:
        super().__init__(f"transaction cancelled: {list(reasons)}")
        self.reasons = list(reasons)
        self.items = list(items)


def _scoring_condition(key: TurnKey, source: str, replaces: float | None) -> tuple[str, dict[str, Any]]:
    """The condition that makes scoring a turn exactly-once: it exists with this nonce and was
    never scored (implicit signals: and it passed the signal gate); or, for an explicit rating
    replacing an implicit one, it still holds exactly that implicit reward."""
    values: dict[str, Any] = {":nonce": _s(key.nonce)}
    if replaces is not None:
        values |= {":implicit": _s("implicit"), ":old": _n(replaces)}
        return "attribute_exists(pk) AND nonce = :nonce AND scored_source = :implicit AND reward = :old", values
    condition = "attribute_exists(pk) AND nonce = :nonce AND attribute_not_exists(scored_source)"
    if source == "implicit":
        condition += " AND gate_passed = :true"
        values[":true"] = {"BOOL": True}
    return condition, values


# --------------------------------------------------------------------------- the store


class RouterStore:
    """DynamoDB access for the router. Stateless apart from the cached client and stats."""

    def __init__(
        self,
        table_name: str | None = None,
        queue_url: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.table_name = table_name or os.environ.get("TABLE_NAME", "")
        self.queue_url = queue_url or os.environ.get("SIGNAL_QUEUE_URL", "")
        if not self.table_name:
            raise RuntimeError("TABLE_NAME is not set: the router needs its DynamoDB table")
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = CallStats()
        self.client: Any = None
        """The DynamoDB client; None means the cached default (set one to wrap or meter calls)."""

    # -- plumbing

    @contextmanager
    def _timed(self, op: str) -> Iterator[dict[str, Any]]:
        holder: dict[str, Any] = {}
        start = time.perf_counter()
        try:
            yield holder
        finally:
            self.stats.add(op, holder.get("response", {}), time.perf_counter() - start)

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client or _client(), _snake(op))
        with self._timed(op) as holder:
            response: dict[str, Any] = method(ReturnConsumedCapacity="TOTAL", **kwargs)
            holder["response"] = response
        return response

    # -- keys of items

    @staticmethod
    def cell_sk(router: str, request_type: str, model: str, shard: int) -> str:
        return f"{router}#{request_type}#{model}#{shard}"

    @staticmethod
    def key_item_key(key_hash: str) -> dict[str, Any]:
        return {"pk": _s(f"KEY#{key_hash}"), "sk": _s("KEY")}

    # -- chat path

    def read_for_chat(
        self,
        *,
        key_hash: str,
        need_key: bool,
        previous: TurnKey | None,
        router: str | None,
        request_type: str | None,
        models: Sequence[str],
        shards: int,
        half_life_s: float | None,
    ) -> ChatReads:
        """One BatchGetItem for the key, the previous turn and every shard of the type's cells.

        Cells come back with their decayed evidence at the store's clock; shard items that hold
        more than one era (or pre-era attributes) are returned in `stale_cells` for compaction.
        """
        keys: list[dict[str, Any]] = [self.key_item_key(key_hash)] if need_key else []
        if previous is not None:
            keys.append({"pk": _s(previous.pk), "sk": _s(previous.sk)})
        if router is not None and request_type is not None:
            keys += self._cell_keys(router, request_type, models, shards)
        client_key: ClientKey | None = None
        prev_turn: Turn | None = None
        raw_cells: list[dict[str, Any]] = []
        typed_cells: list[dict[str, Any]] = []
        for raw in self._batch_get(keys):
            plain = _plain(raw)
            pk = plain["pk"]
            if pk.startswith("KEY#"):
                client_key = ClientKey(
                    key_hash=key_hash, name=str(plain.get("name", "")), disabled=bool(plain.get("disabled", False))
                )
            elif pk.startswith("TURN#") and previous is not None:
                prev_turn = _turn_from_item(plain, previous)
            elif pk == CELLS_PK:
                raw_cells.append(plain)
                typed_cells.append(raw)
        now = self.clock()
        cells = aggregate_cells(raw_cells, now=now, half_life_s=half_life_s)
        stale = tuple(
            typed
            for plain, typed in zip(raw_cells, typed_cells, strict=True)
            if forgetting.plan_compaction(plain, now=now, half_life_s=half_life_s) is not None
        )
        return ChatReads(
            client_key=client_key,
            previous_turn=prev_turn,
            cells={c.model: c for c in cells if c.router == router and c.request_type == request_type},
            stale_cells=stale,
        )

    def _cell_keys(self, router: str, request_type: str, models: Sequence[str], shards: int) -> list[dict[str, Any]]:
        return [
            {"pk": _s(CELLS_PK), "sk": _s(self.cell_sk(router, request_type, model, shard))}
            for model in models
            for shard in range(shards)
        ]

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every item of `keys` that exists, typed as DynamoDB returned it (100 keys per call;
        unprocessed keys retried with jittered backoff, at most 5 times, then RuntimeError)."""
        items: list[dict[str, Any]] = []
        attempt = 0
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table_name: {"Keys": keys[start : start + 100]}}
            while request:
                response = self._call("BatchGetItem", RequestItems=request)
                items.extend(response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    if attempt > 5:
                        raise RuntimeError("DynamoDB kept keys unprocessed (throttled)")
                    time.sleep(min(0.05 * 2**attempt, 0.5) * self.rng.random())
        return items

    def record_turn(
        self,
        turn: Turn,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        baseline_usd: float,
        propensity: float | None,
        ttl_seconds: float,
        shards: int,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the turn (PutItem) and, for routed turns, ADD to the answering cell (UpdateItem).

        Picks, tokens and spend are plain counters: they never decay, so this write carries no
        decay state at all (forgetting concerns only the α/β evidence feedback writes).
        """
        now = self.clock()
        item: dict[str, Any] = {
            "pk": _s(turn.key.pk),
            "sk": _s(turn.key.sk),
            "nonce": _s(turn.key.nonce),
            "router": _s(turn.router),
            "request_type": _s(turn.request_type),
            "model": _s(turn.model),
            "routed": {"BOOL": turn.routed},
            "gate_passed": {"BOOL": turn.gate_passed},
            "messages": _n(turn.conversation_messages),
            "created_at": _n(round(now, 3)),
            "expires_at": _n(int(now + ttl_seconds)),
            "in_tok": _n(input_tokens),
            "out_tok": _n(output_tokens),
            "cost_n": _n(round(cost_usd * NANO)),
            "base_n": _n(round(baseline_usd * NANO)),
        }
        if propensity is not None:
            item["propensity"] = _n(round(propensity, 6))
        if turn.outcome != "completed":
            item["outcome"] = _s(turn.outcome)
        for k, v in (extra or {}).items():
            item[k] = _s(str(v))
        self._call("PutItem", TableName=self.table_name, Item=item)
        if not turn.routed:
            return
        shard = self.rng.randrange(shards)
        self._call(
            "UpdateItem",
            TableName=self.table_name,
            Key={"pk": _s(CELLS_PK), "sk": _s(self.cell_sk(turn.router, turn.request_type, turn.model, shard))},
            UpdateExpression="ADD picks :one, in_tok :in, out_tok :out, cost_n :cost, base_n :base",
            ExpressionAttributeValues={
                ":one": _n(1),
                ":in": _n(input_tokens),
                ":out": _n(output_tokens),
                ":cost": _n(round(cost_usd * NANO)),
                ":base": _n(round(baseline_usd * NANO)),
            },
        )

    def compact_cell(self, raw: Mapping[str, Any], half_life_s: float | None) -> bool:
        """Run `forgetting.plan_compaction` on one shard item; False if skipped.

        `raw` is the item as DynamoDB returned it (typed, e.g. from `ChatReads.stale_cells`): the
        write is conditional on every attribute it removes still holding exactly the value read,
        so a concurrent ADD or compaction makes it fail (False) and nothing is lost.
        """
        plain = _plain(raw)
        plan = forgetting.plan_compaction(plain, now=self.clock(), half_life_s=half_life_s)
        if plan is None:
            return False
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds, removes, conditions = [], [], []
        for i, (name, amount) in enumerate(plan.add.items()):
            names[f"#add{i}"] = name
            values[f":add{i}"] = _n(amount)
            adds.append(f"#add{i} :add{i}")
        for i, name in enumerate(plan.remove):
            names[f"#rm{i}"] = name
            values[f":rm{i}"] = raw[name]
            removes.append(f"#rm{i}")
            conditions.append(f"#rm{i} = :rm{i}")
        expression = " ".join(
            part for part in (("ADD " + ", ".join(adds)) if adds else "", "REMOVE " + ", ".join(removes)) if part
        )
        try:
            self._call(
                "UpdateItem",
                TableName=self.table_name,
                Key={"pk": raw["pk"], "sk": raw["sk"]},
                UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_model_health(
        self, model: str, *, state: str, reason: str, at: float, retry_at: float | None, failures: int
    ) -> None:
        """Report a model's breaker state (written on a transition only; the last report wins)."""
        item: dict[str, Any] = {
            "pk": _s(CELLS_PK),
            "sk": _s(HEALTH_SK_PREFIX + model),
            "state": _s(state),
            "reason": _s(reason),
            "at": _n(round(at, 3)),
            "failures": _n(failures),
        }
        if retry_at is not None:
            item["retry_at"] = _n(round(retry_at, 3))
        self._call("PutItem", TableName=self.table_name, Item=item)

    def enqueue_signal(self, message: Mapping[str, Any]) -> None:
        """Send one implicit feedback signal to the SQS queue."""
        if not self.queue_url:
            raise RuntimeError("SIGNAL_QUEUE_URL is not set")
        start = time.perf_counter()
        _sqs().send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message, separators=(",", ":")))
        self.stats.calls["SQS.SendMessage"] = self.stats.calls.get("SQS.SendMessage", 0) + 1
        self.stats.seconds += time.perf_counter() - start

    # -- keys

    def get_client_key(self, key_hash: str) -> ClientKey | None:
        response = self._call("GetItem", TableName=self.table_name, Key=self.key_item_key(key_hash))
        if "Item" not in response:
            return None
        plain = _plain(response["Item"])
        return ClientKey(
            key_hash=key_hash, name=str(plain.get("name", "")), disabled=bool(plain.get("disabled", False))
        )

    def put_client_key(self, key_hash: str, name: str) -> None:
        self._call(
            "PutItem",
            TableName=self.table_name,
            Item={**self.key_item_key(key_hash), "name": _s(name), "created_at": _n(int(self.clock()))},
            ConditionExpression="attribute_not_exists(pk)",
        )

    # -- feedback path

    def get_turn(self, key: TurnKey) -> Turn | None:
        response = self._call(
            "GetItem", TableName=self.table_name, Key={"pk": _s(key.pk), "sk": _s(key.sk)}, ConsistentRead=True
        )
        if "Item" not in response:
            return None
        plain = _plain(response["Item"])
        if float(plain.get("expires_at", 0)) and float(plain["expires_at"]) < self.clock():
            return None  # expired but not yet deleted by DynamoDB's TTL sweeper
        return _turn_from_item(plain, key)

    def apply_reward(
        self,
        key: TurnKey,
        *,
        router: str,
        request_type: str,
        model: str,
        reward: float,
        source: str,
        kind: str,
        replaces: float | None,
        rate_limit_per_minute: int | None,
        shards: int,
        activity_ttl_seconds: float,
        half_life_s: float | None,
        replaced_at: float | None = None,
        replaced_shard: int | None = None,
    ) -> ActivityEvent:
        """One transaction: score the turn once, move the cell, log the event, count the rate.

        `rate_limit_per_minute` bounds the key's scored feedback per minute (the transaction fails
        on the rate item past it); None leaves the rate out (implicit signals, which the chat
        traffic itself bounds: at most one per routed turn).

        The reward counts in full now, however long the cell sat idle (`forgetting.evidence_add`).
        `replaces` is the implicit reward an explicit rating overrides, given at `replaced_at`
        into shard `replaced_shard` (the turn's `scored_at` / `scored_shard`): what is left of it
        is taken out of that shard and the new reward added in full (`forgetting.replacement_delta`).
        None for a first score. Raises TransactionConflict when a condition fails.
        """
        now = self.clock()
        if replaces is None:
            d_alpha, d_beta, d_feedback = reward, 1.0 - reward, 1
        else:
            d_alpha, d_beta = forgetting.replacement_delta(
                reward, replaces, replaced_at, now=now, half_life_s=half_life_s
            )
            d_feedback = 0
        at = _activity_time(now)
        minute = int(now // 60)
        if replaces is not None and replaced_shard is not None and 0 <= replaced_shard < shards:
            shard = replaced_shard
        else:
            shard = self.rng.randrange(shards)
        cell_update = self._evidence_add(
            (router, request_type, model, shard), d_alpha, d_beta, d_feedback, now=now, half_life_s=half_life_s
        )
        event = ActivityEvent(
            at=at,
            router=router,
            request_type=request_type,
            model=model,
            reward=reward,
            kind=kind,
            source=source,
            turn_id=key.turn_id,
            delta_alpha=d_alpha,
            delta_beta=d_beta,
        )
        items = [
            self._turn_mark(key, source=source, reward=reward, now=now, shard=shard, replaces=replaces),
            cell_update,
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        "pk": _s(ACTIVITY_PK),
                        "sk": _s(f"{at}#{key.turn_id}"),
                        "router": _s(router),
                        "request_type": _s(request_type),
                        "model": _s(model),
                        "reward": _n(reward),
                        "kind": _s(kind),
                        "source": _s(source),
                        "turn_id": _s(key.turn_id),
                        "da": _n(round(d_alpha, 6)),
                        "db": _n(round(d_beta, 6)),
                        "expires_at": _n(int(now + activity_ttl_seconds)),
                    },
                }
            },
        ]
        if rate_limit_per_minute is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": _s(f"RATE#{key.key_hash[:32]}"), "sk": _s(str(minute))},
                        "UpdateExpression": "ADD n :one SET expires_at = :exp",
                        "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                        "ExpressionAttributeValues": {
                            ":one": _n(1),
                            ":limit": _n(rate_limit_per_minute),
                            ":exp": _n(int(now + 180)),
                        },
                    }
                }
            )
        self._transact(items)
        return event

    def apply_implicit_rewards(
        self, rewards: Sequence[ImplicitReward], *, activity_ttl_seconds: float
    ) -> list[ActivityEvent]:
        """Score a batch of implicit signals in ONE transaction (see the module doc).

        Item i of the transaction is the mark of `rewards[i]` (so a TransactionConflict's
        `reasons[i]` says whether that turn was already scored); then one ADD per (cell, shard),
        each cell's deltas summed (its shard drawn once per batch); then one activity item whose
        `events` attribute lists the batch's events. Every turn must appear once.
        """
        if not rewards:
            return []
        if len({r.key for r in rewards}) != len(rewards):
            raise ValueError("a turn appears twice in one batch")
        now = self.clock()
        at = _activity_time(now)
        cells: dict[tuple[str, str, str], _CellDelta] = {}
        marks: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for reward in rewards:
            cell_key = (reward.router, reward.request_type, reward.model)
            if cell_key not in cells:
                cells[cell_key] = _CellDelta(shard=self.rng.randrange(reward.shards), half_life_s=reward.half_life_s)
            cell = cells[cell_key]
            cell.alpha += reward.reward
            cell.beta += 1.0 - reward.reward
            cell.feedback += 1
            marks.append(
                self._turn_mark(reward.key, source="implicit", reward=reward.reward, now=now, shard=cell.shard)
            )
            rows.append(
                [reward.key.turn_id, reward.router, reward.request_type, reward.model, reward.reward, reward.kind]
            )
        updates = [
            self._evidence_add(
                (*cell_key, cell.shard), cell.alpha, cell.beta, cell.feedback, now=now, half_life_s=cell.half_life_s
            )
            for cell_key, cell in cells.items()
        ]
        activity = {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": _s(ACTIVITY_PK),
                    "sk": _s(f"{at}#{rewards[0].key.turn_id}"),
                    "events": _s(json.dumps(rows, separators=(",", ":"))),
                    "expires_at": _n(int(now + activity_ttl_seconds)),
                },
            }
        }
        self._transact([*marks, *updates, activity])
        return [_event_from_row(at, row) for row in rows]

    def _evidence_add(
        self,
        cell: tuple[str, str, str, int],
        d_alpha: float,
        d_beta: float,
        d_feedback: int,
        *,
        now: float,
        half_life_s: float | None,
    ) -> dict[str, Any]:
        """The transaction item that ADDs feedback evidence to a (router, type, model, shard) cell
        item at `now` (`forgetting.evidence_add`: the current era's attributes)."""
        router, request_type, model, shard = cell
        evidence = forgetting.evidence_add(d_alpha, d_beta, now=now, half_life_s=half_life_s)
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": _s(CELLS_PK), "sk": _s(self.cell_sk(router, request_type, model, shard))},
            "UpdateExpression": "ADD " + ", ".join(["feedback :df", *(f"#ev{i} :ev{i}" for i in range(len(evidence)))]),
            "ExpressionAttributeValues": {":df": _n(d_feedback)}
            | {f":ev{i}": _n(amount) for i, amount in enumerate(evidence.values())},
        }
        if evidence:
            update["ExpressionAttributeNames"] = {f"#ev{i}": name for i, name in enumerate(evidence)}
        return {"Update": update}

    def _turn_mark(
        self, key: TurnKey, *, source: str, reward: float, now: float, shard: int, replaces: float | None = None
    ) -> dict[str, Any]:
        """The transaction item that scores a turn, under `_scoring_condition` (exactly once)."""
        condition, values = _scoring_condition(key, source, replaces)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _s(key.pk), "sk": _s(key.sk)},
                "UpdateExpression": "SET scored_source = :src, reward = :r, scored_at = :at, scored_shard = :shard",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {
                    ":src": _s(source),
                    ":r": _n(reward),
                    ":at": _n(round(now, 3)),
                    ":shard": _n(shard),
                    **values,
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems; a cancellation is raised as TransactionConflict with one reason
        code (and the old item, where DynamoDB returned it) per item."""
        try:
            self._call("TransactWriteItems", TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            codes = [str(r.get("Code", "None")) for r in reasons]
            olds = [(_plain(r["Item"]) if r.get("Item") else None) for r in reasons]
            if not codes:
                codes = _reasons_from_message(str(exc.response["Error"].get("Message", "")))
                olds = [None] * len(codes)
            raise TransactionConflict(codes, olds) from exc

    # -- state path

    def query_cells(self) -> list[dict[str, Any]]:
        """Every cell shard item of every router (one Query, paginated past 1 MB)."""
        return self._query_all(CELLS_PK)

    def query_activity(self, limit: int) -> list[ActivityEvent]:
        """The newest `limit` activity events, newest first (one Query)."""
        now = self.clock()
        response = self._call(
            "Query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(ACTIVITY_PK)},
            ScanIndexForward=False,
            Limit=limit,
        )
        events: list[ActivityEvent] = []
        for raw in response.get("Items", []):
            p = _plain(raw)
            if float(p.get("expires_at", now + 1)) <= now:
                continue
            if "events" in p:  # a batch of implicit signals: newest last in the item
                at = str(p["sk"]).split("#", 1)[0]
                events.extend(_event_from_row(at, row) for row in reversed(json.loads(str(p["events"]))))
                continue
            events.append(
                ActivityEvent(
                    at=str(p["sk"]).split("#", 1)[0],
                    router=str(p["router"]),
                    request_type=str(p["request_type"]),
                    model=str(p["model"]),
                    reward=float(p["reward"]),
                    kind=str(p["kind"]),
                    source=str(p["source"]),
                    turn_id=str(p["turn_id"]),
                    delta_alpha=float(p.get("da", 0.0)),
                    delta_beta=float(p.get("db", 0.0)),
                )
            )
        return events[:limit]

    def query_history(self, *, since: int | None, limit: int) -> list[tuple[int, str]]:
        """The newest `limit` history points (epoch seconds, body), oldest first; only those
        after `since` when given (one Query, newest first, so a poll reads only new points)."""
        now = self.clock()
        values: dict[str, Any] = {":pk": _s(HISTORY_PK)}
        condition = "pk = :pk"
        if since is not None:
            values[":since"] = _s(f"{max(0, since):012d}")
            condition += " AND sk > :since"
        response = self._call(
            "Query",
            TableName=self.table_name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        points = []
        for raw in response.get("Items", []):
            p = _plain(raw)
            if float(p.get("expires_at", now + 1)) <= now:
                continue
            points.append((int(str(p["sk"])), str(p.get("p", "{}"))))
        return points[::-1]

    def put_history_point(self, at: int, body: str, ttl_seconds: float) -> bool:
        """Record the history point of time `at` unless one exists (False then)."""
        try:
            self._call(
                "PutItem",
                TableName=self.table_name,
                Item={
                    "pk": _s(HISTORY_PK),
                    "sk": _s(f"{at:012d}"),
                    "p": _s(body),
                    "expires_at": _n(int(at + ttl_seconds)),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _query_all(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
        }
        while True:
            response = self._call("Query", **kwargs)
            items.extend(_plain(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


# --------------------------------------------------------------------------- pure helpers


def aggregate_cells(
    raw_items: Sequence[Mapping[str, Any]], *, now: float, half_life_s: float | None
) -> list[CellCounters]:
    """Sum shard items into cells; evidence decayed to `now` by `forgetting.cell_evidence`."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for item in raw_items:
        if str(item["sk"]).startswith(HEALTH_SK_PREFIX):
            continue
        router, request_type, model, _shard = str(item["sk"]).rsplit("#", 3)
        groups.setdefault((router, request_type, model), []).append(item)
    cells = []
    for (r, t, m), items in groups.items():
        alpha, beta = forgetting.cell_evidence(items, now=now, half_life_s=half_life_s)
        sums = {
            name: sum(int(item.get(name, 0)) for item in items)
            for name in ("picks", "feedback", "in_tok", "out_tok", "cost_n", "base_n")
        }
        cells.append(
            CellCounters(
                router=r,
                request_type=t,
                model=m,
                alpha_evidence=alpha,
                beta_evidence=beta,
                picks=sums["picks"],
                feedback=sums["feedback"],
                input_tokens=sums["in_tok"],
                output_tokens=sums["out_tok"],
                cost_nusd=sums["cost_n"],
                baseline_nusd=sums["base_n"],
            )
        )
    return cells


def health_reports(raw_items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The model health items among the cells' partition items (plain), by model name."""
    return {
        str(item["sk"])[len(HEALTH_SK_PREFIX) :]: {k: v for k, v in item.items() if k not in {"pk", "sk"}}
        for item in raw_items
        if str(item["sk"]).startswith(HEALTH_SK_PREFIX)
    }


def _activity_time(now: float) -> str:
    """An activity event's time as its sort key starts: ISO 8601 UTC, milliseconds, `Z`."""
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_from_row(at: str, row: Sequence[Any]) -> ActivityEvent:
    """The implicit event of one row of a batch's activity item: `[turn id, router, type, model,
    reward, kind]` (compact: the item is billed by size)."""
    turn_id, router, request_type, model, reward, kind = row
    return ActivityEvent(
        at=at,
        router=str(router),
        request_type=str(request_type),
        model=str(model),
        reward=float(reward),
        kind=str(kind),
        source="implicit",
        turn_id=str(turn_id),
        delta_alpha=float(reward),
        delta_beta=1.0 - float(reward),
    )


def _turn_from_item(plain: Mapping[str, Any], key: TurnKey) -> Turn | None:
    if str(plain.get("nonce", "")) != key.nonce and key.nonce != "*":
        return None
    return Turn(
        key=TurnKey(key.key_hash, key.session_id, key.index, str(plain.get("nonce", ""))),
        router=str(plain.get("router", "")),
        request_type=str(plain.get("request_type", "general")),
        model=str(plain.get("model", "")),
        routed=bool(plain.get("routed", False)),
        gate_passed=bool(plain.get("gate_passed", False)),
        conversation_messages=int(plain.get("messages", 0)),
        created_at=float(plain.get("created_at", 0.0)),
        scored_source=(str(plain["scored_source"]) if "scored_source" in plain else None),
        reward=(float(plain["reward"]) if "reward" in plain else None),
        scored_at=(float(plain["scored_at"]) if "scored_at" in plain else None),
        scored_shard=(int(plain["scored_shard"]) if "scored_shard" in plain else None),
        outcome=str(plain.get("outcome", "completed")),
    )


def _reasons_from_message(message: str) -> list[str]:
    # "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]"
    if "[" not in message:
        return []
    inside = message[message.index("[") + 1 : message.rindex("]")]
    return [part.strip() for part in inside.split(",")]


def _snake(op: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")
