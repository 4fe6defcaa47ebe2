"""Reserved failover hosts and their loans to incidents (storage edge; used by ``SqlStore``).

A reserved host is lent by compare-and-set along an edge of ``petguard.evacuate.transitions``:
``borrow`` matches only an IDLE row, ``set_state`` only the row in the expected state held by the
given incident; each returns whether it changed the row. ``SqlStore`` checks the edge itself
(``check_loan``) before any transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from petguard.journal import ReservedHost, ReservedState
from petguard.store import models as m
from petguard.store import rows


def reserved_hosts(conn: Connection) -> list[ReservedHost]:
    query = select(m.reserved_hosts).order_by(m.reserved_hosts.c.host)
    return [rows.reserved_from_row(r) for r in conn.execute(query).mappings()]


def add(conn: Connection, hosts: Sequence[str], at: float) -> None:
    table = m.reserved_hosts
    known = set(conn.scalars(select(table.c.host).where(table.c.host.in_(list(hosts)))))
    new = [{"host": h, "state": ReservedState.IDLE.value, "incident_id": None, "updated_at": at} for h in hosts]
    new = [row for row in _unique_hosts(new) if row["host"] not in known]
    if new:
        conn.execute(insert(table), new)


def _unique_hosts(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in values:
        seen.setdefault(row["host"], row)
    return list(seen.values())


def borrow(conn: Connection, host: str, incident_id: int, at: float) -> bool:
    """Compare-and-set IDLE -> BORROWING for ``incident_id``; False if the host was not IDLE."""
    table = m.reserved_hosts
    query = (
        update(table)
        .where(table.c.host == host, table.c.state == ReservedState.IDLE.value)
        .values(state=ReservedState.BORROWING.value, incident_id=incident_id, updated_at=at)
    )
    return conn.execute(query).rowcount == 1


def set_state(
    conn: Connection, host: str, incident_id: int, expected: ReservedState, new: ReservedState, at: float
) -> bool:
    """Compare-and-set ``expected`` -> ``new`` on the row ``incident_id`` holds (IDLE releases it)."""
    table = m.reserved_hosts
    holder = None if new is ReservedState.IDLE else incident_id
    query = (
        update(table)
        .where(table.c.host == host, table.c.state == expected.value, table.c.incident_id == incident_id)
        .values(state=new.value, incident_id=holder, updated_at=at)
    )
    return conn.execute(query).rowcount == 1
