"""Item-level rollback for moto's TransactWriteItems (tests and the local stack).

moto backs up every table a transaction touches with `copy.deepcopy`, once per transaction
item: with four items and a 1,600-item table that is ~0.5 s per transaction, so the feedback
path slows down as a demo or a test accumulates turns. DynamoDB's all-or-nothing semantics only
need the touched items: this patch snapshots those items, lets moto apply the transaction
without copying tables, and on any failure puts the snapshots back before re-raising. moto's
own checks, condition evaluation and cancellation reasons are unchanged.
"""

from __future__ import annotations

import copy
import types
from typing import Any

import moto.dynamodb.models as ddb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

_original = DynamoDBBackend.transact_write_items
_patched = False


def _deepcopy_except_tables(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    # The table backup moto takes is replaced by the item-level snapshot below.
    return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)


_copy_without_tables = types.SimpleNamespace(deepcopy=_deepcopy_except_tables)


def _item_key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _transact_with_item_rollback(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    snapshots: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        if op.get("TableName") not in self.tables or op_type not in {"Put", "Update", "Delete", "ConditionCheck"}:
            continue
        key = _item_key(self, op_type, op)
        current = self.get_item(op["TableName"], key)
        snapshots.append((op["TableName"], key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    setattr(ddb_models, "copy", _copy_without_tables)  # noqa: B010 (swap the module moto's code reads)
    try:
        _original(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(snapshots):
            if attrs is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        setattr(ddb_models, "copy", copy)  # noqa: B010


def patch_transactions() -> None:
    """Install the item-level rollback (idempotent). Callers must already serialise moto calls."""
    global _patched
    if not _patched:
        DynamoDBBackend.transact_write_items = _transact_with_item_rollback  # type: ignore[method-assign]
        _patched = True
