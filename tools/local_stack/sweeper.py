"""DynamoDB Time to Live for moto, which stores the TTL setting but never deletes anything.

Deletes items whose TTL attribute (a number, epoch seconds) is in the past, like DynamoDB's
background process, except sooner (DynamoDB takes up to a few days) and with DynamoDB's rule
that values more than five years in the past are ignored.

Finding expired items reads moto's table directly, a few hundred partitions per hold of the
moto lock (linear in the table, never a long stall); each delete is an ordinary DeleteItem,
conditional on the item still being expired, through the journaled path like any other write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tools.local_stack import aws
from tools.local_stack.aws import TableInfo
from tools.local_stack.periodic import Periodic

FIVE_YEARS_S = 5 * 365 * 24 * 3600
PARTITIONS_PER_LOCK = 256


def _expired_keys(table: TableInfo, region: str, now: float) -> list[dict[str, Any]]:
    from moto.dynamodb.models import dynamodb_backends

    from tools.local_stack.persistence import ACCOUNT_ID

    assert table.ttl_attribute is not None
    moto_table = dynamodb_backends[ACCOUNT_ID][region].get_table(table.name)
    oldest = now - FIVE_YEARS_S
    with aws.MOTO_LOCK:
        partitions = list(moto_table.items.keys())
    found: list[dict[str, Any]] = []
    for start in range(0, len(partitions), PARTITIONS_PER_LOCK):
        with aws.MOTO_LOCK:
            for hash_value in partitions[start : start + PARTITIONS_PER_LOCK]:
                partition = moto_table.items.get(hash_value)
                if partition is None:
                    continue
                items: list[Any] = list(partition.values()) if moto_table.range_key_attr else [partition]
                for item in items:
                    ttl = item.attrs.get(table.ttl_attribute)
                    if ttl is None or ttl.type != "N":
                        continue
                    try:
                        expires = float(ttl.value)
                    except ValueError:
                        continue
                    if oldest < expires <= now:
                        key = {moto_table.hash_key_attr: item.hash_key.to_json()}
                        if moto_table.range_key_attr:
                            key[moto_table.range_key_attr] = item.range_key.to_json()
                        found.append(key)
    return found


def sweep_expired(dynamodb: Any, table: TableInfo, now: float, region: str) -> int:
    """Delete `table`'s items whose TTL lies in (now − 5 years, now]; returns how many."""
    if table.ttl_attribute is None:
        return 0
    deleted = 0
    for key in _expired_keys(table, region, now):
        try:
            dynamodb.delete_item(
                TableName=table.name,
                Key=key,
                ConditionExpression="#ttl <= :now",
                ExpressionAttributeNames={"#ttl": table.ttl_attribute},
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
            deleted += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue  # refreshed or deleted since it was found
    return deleted


class TtlSweeper:
    """Runs `sweep_expired` over every table with TTL, every `interval_s` seconds, on a daemon thread."""

    def __init__(
        self,
        dynamodb: Any,
        tables: list[TableInfo],
        *,
        region: str,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self._dynamodb = dynamodb
        self._tables = [t for t in tables if t.ttl_attribute]
        self._region = region
        self._clock = clock
        self._periodic = Periodic("ttl-sweeper", interval_s, self.sweep_once, on_error)
        self.deleted = 0

    def sweep_once(self) -> int:
        """One pass over every table; returns the number of items deleted."""
        count = sum(sweep_expired(self._dynamodb, t, self._clock(), self._region) for t in self._tables)
        self.deleted += count
        return count

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
