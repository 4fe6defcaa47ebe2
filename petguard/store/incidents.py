"""Incidents and the event log (storage edge; used by ``SqlStore`` and ``store.hosts.save_tick``).

An incident is opened for a host (and attached to its row) and closed once, keeping the first
outcome; an event is attributed to the incident its host holds when the event is written. The
evacuation's moves and skips under an incident are in ``store.moves``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, insert, select, update

from petguard.errors import NotFound
from petguard.journal import EventRecord, Incident
from petguard.store import models as m
from petguard.store import rows
from petguard.store.common import chunks, insert_id, oldest_first


def incident(conn: Connection, incident_id: int) -> Incident:
    row = conn.execute(select(m.incidents).where(m.incidents.c.id == incident_id)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no incident {incident_id}", incident=incident_id)
    return rows.incident_from_row(row)


def recent(conn: Connection, host: str | None, limit: int) -> list[Incident]:
    """The newest ``limit`` incidents (of ``host`` when given), newest first."""
    query = select(m.incidents).order_by(m.incidents.c.opened_at.desc(), m.incidents.c.id.desc()).limit(limit)
    if host is not None:
        query = query.where(m.incidents.c.host == host)
    return [rows.incident_from_row(r) for r in conn.execute(query).mappings()]


def events(conn: Connection, incident_id: int | None, host: str | None, limit: int) -> list[EventRecord]:
    """The newest ``limit`` events (of an incident, of a host), oldest first."""
    table = m.events
    query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
    if incident_id is not None:
        query = query.where(table.c.incident_id == incident_id)
    if host is not None:
        query = query.where(table.c.host == host)
    return oldest_first(conn, query, rows.event_from_row)


def distinct_messages(conn: Connection, kind: str, limit: int) -> list[str]:
    """Up to ``limit`` different messages of the events of ``kind`` (in no particular order)."""
    query = select(m.events.c.message).where(m.events.c.kind == kind).distinct().limit(limit)
    return [str(message) for message in conn.execute(query).scalars()]


def record_event(
    conn: Connection, host: str | None, incident_id: int | None, kind: str, message: str, at: float
) -> None:
    row = {"at": at, "host": host, "incident_id": incident_id, "kind": kind, "message": message}
    conn.execute(insert(m.events), [row])


def open_incidents(conn: Connection, opened: Iterable[tuple[str, str]], at: float) -> None:
    for host, reason in opened:
        incident_id = insert_id(
            conn, m.incidents, {"host": host, "opened_at": at, "closed_at": None, "reason": reason, "outcome": ""}
        )
        attached = conn.execute(update(m.hosts).where(m.hosts.c.name == host).values(incident_id=incident_id))
        if attached.rowcount != 1:
            raise NotFound(f"cannot open an incident for unknown host {host!r}", host=host)


def insert_events(conn: Connection, events: Sequence[tuple[str | None, str, str]], at: float) -> None:
    if not events:
        return
    names = sorted({host for host, _, _ in events if host is not None})
    current: dict[str, int | None] = {}
    for chunk in chunks(names):
        query = select(m.hosts.c.name, m.hosts.c.incident_id).where(m.hosts.c.name.in_(chunk))
        current.update((name, incident_id) for name, incident_id in conn.execute(query))
    values = [
        {"at": at, "host": host, "incident_id": current.get(host) if host else None, "kind": kind, "message": message}
        for host, kind, message in events
    ]
    conn.execute(insert(m.events), values)


def close_incidents(conn: Connection, closed: Iterable[tuple[int, str]], at: float) -> None:
    for incident_id, outcome in closed:
        query = (
            update(m.incidents)
            .where(m.incidents.c.id == incident_id, m.incidents.c.closed_at.is_(None))
            .values(closed_at=at, outcome=outcome)
        )
        if conn.execute(query).rowcount != 1:
            incident(conn, incident_id)  # NotFound if it does not exist; closing twice keeps the first
        conn.execute(update(m.hosts).where(m.hosts.c.incident_id == incident_id).values(incident_id=None))
