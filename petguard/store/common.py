"""Statement helpers the store's concern modules share (storage edge; used by ``store.*``, not callers).

Chunked ``IN (...)`` lists, the id of an inserted row, and reads that fetch the newest rows and
return them oldest first. Each takes the caller's ``Connection``: the transaction is ``SqlStore``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, insert

from petguard.store import rows

T = TypeVar("T")

#: Host names per ``IN (...)`` list (well under every backend's bound-parameter limit).
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_id(conn: Connection, table: Any, row: dict[str, Any]) -> int:
    key = conn.execute(insert(table).values(**row)).inserted_primary_key
    if key is None:  # pragma: no cover - every dialect petguard supports reports it
        raise AssertionError(f"no primary key for the new {table.name} row")
    return int(key[0])


def oldest_first(conn: Connection, newest_first: Any, convert: Callable[[rows.Row], T]) -> list[T]:
    found = [convert(r) for r in conn.execute(newest_first).mappings()]
    found.reverse()
    return found
