"""The table's items saved to `<state dir>/state.json`, so learning survives a restart.

Items are stored in DynamoDB's typed JSON (binary values base64-encoded, as the wire format
does), per table logical id. Saves are atomic (temp file, fsync, rename): a crash mid-save
leaves the previous file intact. A periodic saver skips writing when nothing changed.
In-flight SQS messages are not saved (a restart drops signals not yet applied).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.local_stack.aws import TableInfo
from tools.local_stack.periodic import Periodic

STATE_FILE = "state.json"
FORMAT_VERSION = 1
SCAN_PAGE_ITEMS = 100
"""Items per Scan page: each page is one moto call, so requests interleave with a long save
instead of waiting behind the global moto lock for the whole table."""


def _encode(value: Any) -> Any:
    """A DynamoDB typed value made JSON-safe (bytes → base64 text)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    """The inverse of `_encode` for typed values: B and BS come back as bytes."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "B" and isinstance(inner, str):
                out[key] = base64.b64decode(inner)
            elif key == "BS" and isinstance(inner, list):
                out[key] = [base64.b64decode(x) for x in inner]
            else:
                out[key] = _decode(inner)
        return out
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def dump_tables(dynamodb: Any, tables: list[TableInfo]) -> dict[str, Any]:
    """Every item of every table, as a JSON-safe document."""
    out: dict[str, list[Any]] = {}
    for table in tables:
        items: list[Any] = []
        kwargs: dict[str, Any] = {"TableName": table.name, "Limit": SCAN_PAGE_ITEMS}
        while True:
            page = dynamodb.scan(**kwargs)
            items.extend(_encode(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        items.sort(key=lambda item: json.dumps([item.get(k) for k in table.key_attributes], sort_keys=True))
        out[table.logical_id] = items
    return {"version": FORMAT_VERSION, "tables": out}


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON to `path` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def restore_tables(dynamodb: Any, tables: list[TableInfo], path: Path) -> int:
    """Put the items saved in `path` back into the (empty) tables; returns how many items.

    Tables in the file that the template no longer has are ignored.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path}: unreadable saved state ({exc}); move it away to start afresh") from exc
    if document.get("version") != FORMAT_VERSION:
        raise RuntimeError(f"{path}: saved state format {document.get('version')!r} is not {FORMAT_VERSION}")
    restored = 0
    by_id = {t.logical_id: t for t in tables}
    for logical_id, items in (document.get("tables") or {}).items():
        table = by_id.get(logical_id)
        if table is None:
            continue
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": _decode(item)}} for item in items[start : start + 25]]
            pending: dict[str, Any] = {table.name: requests}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            restored += len(requests)
    return restored


_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class StateSaver:
    """Saves the tables every `interval_s` seconds (when they changed) and once more on stop.

    Register `on_aws_call` as a moto listener: the tables are only scanned after a write, so an
    idle stack never holds the moto lock for a scan.
    """

    def __init__(
        self,
        dynamodb: Any,
        tables: list[TableInfo],
        path: Path,
        *,
        interval_s: float = 10.0,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self._dynamodb = dynamodb
        self._tables = tables
        self.path = path
        self._digest: str | None = None
        self._dirty = True
        self._save_lock = threading.Lock()
        self._periodic = Periodic("state save", interval_s, self.save, on_error)
        self.saves = 0

    def on_aws_call(self, event_name: str) -> None:
        """moto listener: note that a table may have changed."""
        if event_name.startswith("before-send.dynamodb.") and event_name.rsplit(".", 1)[-1] in _WRITES:
            self._dirty = True

    def save(self, *, force: bool = False) -> bool:
        """Save now if anything changed since the last save (`force`: scan regardless); True when written."""
        with self._save_lock:
            if not (force or self._dirty) and self.path.exists():
                return False
            self._dirty = False  # before the scan: a write during it marks the next save dirty
            document = dump_tables(self._dynamodb, self._tables)
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()
            if digest == self._digest and self.path.exists():
                return False
            document["saved_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            document["saved_at_epoch"] = time.time()
            write_atomic(self.path, document)
            self._digest = digest
            self.saves += 1
            return True

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        """Stop the periodic saves and write the final state."""
        self._periodic.stop()
        self.save(force=True)
