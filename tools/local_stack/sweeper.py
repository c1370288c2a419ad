"""DynamoDB Time to Live for moto, which stores the TTL setting but never deletes anything.

Deletes items whose TTL attribute (a number, epoch seconds) is in the past, like DynamoDB's
background process, except sooner (DynamoDB takes up to a few days) and with DynamoDB's rule
that values more than five years in the past are ignored. Keeping the table small also keeps
moto fast: TransactWriteItems deep-copies every table it touches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tools.local_stack.aws import TableInfo
from tools.local_stack.periodic import Periodic
from tools.local_stack.persistence import SCAN_PAGE_ITEMS

FIVE_YEARS_S = 5 * 365 * 24 * 3600


def sweep_expired(dynamodb: Any, table: TableInfo, now: float) -> int:
    """Delete `table`'s items whose TTL lies in (now − 5 years, now]; returns how many."""
    if table.ttl_attribute is None:
        return 0
    names = {"#ttl": table.ttl_attribute, **{f"#k{i}": k for i, k in enumerate(table.key_attributes)}}
    projection = ",".join(f"#k{i}" for i in range(len(table.key_attributes)))
    expired: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table.name,
        "Limit": SCAN_PAGE_ITEMS,
        "FilterExpression": "#ttl <= :now AND #ttl > :oldest",
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":now": {"N": str(int(now))}, ":oldest": {"N": str(int(now) - FIVE_YEARS_S)}},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        expired.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for start in range(0, len(expired), 25):
        requests = [{"DeleteRequest": {"Key": key}} for key in expired[start : start + 25]]
        pending: dict[str, Any] = {table.name: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return len(expired)


class TtlSweeper:
    """Runs `sweep_expired` over every table with TTL, every `interval_s` seconds, on a daemon thread."""

    def __init__(
        self,
        dynamodb: Any,
        tables: list[TableInfo],
        *,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self._dynamodb = dynamodb
        self._tables = [t for t in tables if t.ttl_attribute]
        self._clock = clock
        self._periodic = Periodic("ttl-sweeper", interval_s, self.sweep_once, on_error)
        self.deleted = 0

    def sweep_once(self) -> int:
        """One pass over every table; returns the number of items deleted."""
        count = sum(sweep_expired(self._dynamodb, t, self._clock()) for t in self._tables)
        self.deleted += count
        return count

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
