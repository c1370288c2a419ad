"""Linear-time item construction for moto's DynamoDB (the local stack and the tests).

moto checks DynamoDB's 400 KB item limit in `LimitedSizeDict.__setitem__` by summing the size
of every attribute already in the item, and builds each item one attribute at a time: building
an item of n attributes costs O(n²) size computations (about 1.5 ms for a 16-attribute turn,
150 s to restore 100,000 of them). The patched constructor builds the attribute dict in one
step and checks the same limit once, on the same sizes; later single-attribute sets (SET in an
UpdateItem) keep moto's own check. `restore_item` puts an item that was already validated when
it was first written straight into a table (restart and compaction).
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize

ITEM_SIZE_LIMIT = 405_000
"""moto's limit (DynamoDB's 400 KB, measured between 409 and 410 KB)."""
_patched = False


def _size(key: str, value: Any) -> int:
    return bytesize(key) + (value.size() if type(value) is DynamoType else bytesize(str(value)))


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    self.hash_key = hash_key
    self.range_key = range_key
    built = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(_size(key, value) for key, value in built.items()) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict(built)  # dict.update: no per-attribute re-summing


def patch_item_construction() -> None:
    """Install the linear constructor (idempotent)."""
    global _patched
    if not _patched:
        Item.__init__ = _item_init  # type: ignore[method-assign]
        _patched = True


_SCALARS = frozenset({"S", "N", "BOOL", "NULL", "B"})


def _typed(value: dict[str, Any]) -> DynamoType:
    """DynamoType(value), without the constructor's generic work for scalar types."""
    ((kind, inner),) = value.items()
    if kind not in _SCALARS:
        return DynamoType(value)  # maps and lists: moto builds the nested types
    typed = DynamoType.__new__(DynamoType)
    typed.type = kind
    typed.value = inner
    return typed


def restore_item(table: Any, attrs: dict[str, Any]) -> None:
    """Put a previously stored item (typed attributes, binary as bytes) into a moto table."""
    item: Any = Item.__new__(Item)
    built = {key: _typed(value) for key, value in attrs.items()}
    item.hash_key = built[table.hash_key_attr]
    item.range_key = built[table.range_key_attr] if table.range_key_attr else None
    item.attrs = LimitedSizeDict(built)
    if item.range_key is not None:
        table.items[item.hash_key][item.range_key] = item
    else:
        table.items[item.hash_key] = item
