"""Hosts, ticks, transitions and the brake (storage edge; used by ``SqlStore``).

``save_tick`` writes everything one tick of the loop decided in one transaction, in the order that
keeps references valid: hosts, their transitions, opened incidents, events, closed incidents,
finished operator requests, the brake, and moves an operator asked to retry. It calls the other
concern modules (``incidents``, ``requests``, ``moves``) for their parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from petguard.detect import FenceStart
from petguard.hosts import HostState
from petguard.journal import BrakeState, HostRecord, TickRecord, Transition
from petguard.store import incidents, moves, requests, rows
from petguard.store import models as m
from petguard.store.common import chunks, oldest_first


def load_hosts(conn: Connection) -> dict[str, HostRecord]:
    records = (rows.host_from_row(r) for r in conn.execute(select(m.hosts)).mappings())
    return {record.host.name: record for record in records}


def load_brake(conn: Connection) -> BrakeState:
    row = conn.execute(select(m.brake).where(m.brake.c.id == m.SINGLE_ROW_ID)).mappings().one_or_none()
    return BrakeState() if row is None else rows.brake_from_row(row)


def transitions(conn: Connection, host: str | None, limit: int) -> list[Transition]:
    """The newest ``limit`` transitions (of ``host`` when given), oldest first."""
    table = m.transitions
    query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
    if host is not None:
        query = query.where(table.c.host == host)
    return oldest_first(conn, query, rows.transition_from_row)


def fences_started(conn: Connection, since: float) -> list[FenceStart]:
    table = m.transitions
    query = (
        select(table.c.host, table.c.at)
        .where(table.c.at > since, table.c.to_state == HostState.FENCING.value)
        .order_by(table.c.at, table.c.id)
    )
    return [FenceStart(r.host, r.at) for r in conn.execute(query)]


def save_tick(conn: Connection, tick: TickRecord) -> None:
    """Everything one tick decided, in the order that keeps references valid."""
    _upsert_hosts(conn, tick.hosts)
    if tick.transitions:
        conn.execute(insert(m.transitions), [rows.transition_to_row(t) for t in tick.transitions])
    incidents.open_incidents(conn, tick.open_incidents, tick.at)
    # Events are attributed before closes: the event of a tick that closes an incident is about it.
    incidents.insert_events(conn, tick.events, tick.at)
    incidents.close_incidents(conn, tick.close_incidents, tick.at)
    requests.finish(conn, tick.finished_requests, tick.at)
    if tick.brake is not None:
        conn.execute(update(m.brake).where(m.brake.c.id == m.SINGLE_ROW_ID).values(**rows.brake_to_row(tick.brake)))
    for incident_id in tick.retry_failed_moves:
        moves.retry_failed_moves(conn, incident_id, tick.at)
    for incident_id in tick.vouch_resends:
        moves.vouch_resends(conn, incident_id, tick.at)


def _existing_names(conn: Connection, names: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(names):
        found.update(conn.scalars(select(m.hosts.c.name).where(m.hosts.c.name.in_(chunk))))
    return found


def _upsert_hosts(conn: Connection, records: Iterable[HostRecord]) -> None:
    """Insert new hosts, update known ones (portable: no dialect-specific upsert)."""
    by_name = {r.host.name: rows.host_to_row(r) for r in records}  # the last value of a host wins
    if not by_name:
        return
    existing = _existing_names(conn, list(by_name))
    new = [row for name, row in by_name.items() if name not in existing]
    known = [_keyed(row) for name, row in by_name.items() if name in existing]
    if new:
        conn.execute(insert(m.hosts), new)
    if known:
        conn.execute(update(m.hosts).where(m.hosts.c.name == bindparam("key_name")), known)


def _keyed(row: dict[str, Any]) -> dict[str, Any]:
    """An executemany UPDATE row: the key under its own parameter name, the rest as SET values."""
    values = {k: v for k, v in row.items() if k != "name"}
    values["key_name"] = row["name"]
    return values
