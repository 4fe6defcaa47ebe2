"""The store's queries for petguard agents and instance health (storage edge; used by ``SqlStore``).

Heartbeats: one row per host, overwritten. Events: one row per (host, agent event id), so a batch
the agent sends twice (its reply was lost) is stored once; the instance-health executor marks them
processed. Instance health: one row per server, the policy's state as JSON plus the columns queried
(phase, pending restart).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import Connection, insert, select, update

from petguard.agent.events import DomainEvent, DomainState, DomainSummary, EventKind
from petguard.guests.policy import AgentEventRecord, AgentHeartbeat, ServerHealth
from petguard.store import models as m

T = TypeVar("T")

#: Keys per ``IN (...)`` list.
CHUNK = 500


def _chunks(values: Sequence[T]) -> list[list[T]]:
    return [list(values[i : i + CHUNK]) for i in range(0, len(values), CHUNK)]


def record_heartbeat(conn: Connection, beat: AgentHeartbeat) -> None:
    table = m.agent_hosts
    values = {
        "sender": beat.sender,
        "last_heartbeat": beat.at,
        "sent_at": beat.sent_at,
        "interval": beat.interval,
        "libvirt_connected": beat.libvirt_connected,
        "domains": json.dumps([d.to_wire() for d in beat.domains]),
        "buffered": beat.buffered,
        "dropped": beat.dropped,
        "version": beat.version[:64],
    }
    if conn.execute(update(table).where(table.c.host == beat.host).values(**values)).rowcount == 0:
        conn.execute(insert(table).values(host=beat.host, **values))


def heartbeat_times(conn: Connection) -> dict[str, float]:
    """When each host's agent was last heard (controller time), by host name."""
    table = m.agent_hosts
    query = select(table.c.host, table.c.last_heartbeat)
    return {h: float(at) for h, at in conn.execute(query)}


def load_heartbeats(conn: Connection) -> list[AgentHeartbeat]:
    rows = conn.execute(select(m.agent_hosts).order_by(m.agent_hosts.c.host)).mappings()
    return [
        AgentHeartbeat(
            host=r["host"],
            sender=r["sender"],
            at=float(r["last_heartbeat"]),
            sent_at=float(r["sent_at"]),
            interval=float(r["interval"]),
            libvirt_connected=bool(r["libvirt_connected"]),
            domains=tuple(
                DomainSummary(d["uuid"], d["name"], DomainState(d["state"])) for d in json.loads(r["domains"])
            ),
            buffered=int(r["buffered"]),
            dropped=int(r["dropped"]),
            version=r["version"],
        )
        for r in rows
    ]


def record_events(conn: Connection, host: str, events: Sequence[DomainEvent], at: float) -> int:
    table = m.agent_events
    by_id = {e.id: e for e in events}
    ids = list(by_id)
    known: set[str] = set()
    for chunk in _chunks(ids):
        query = select(table.c.event_id).where(table.c.host == host, table.c.event_id.in_(chunk))
        known.update(conn.scalars(query))
    new = [
        {
            "host": host,
            "event_id": e.id,
            "received_at": at,
            "at": e.at,
            "domain_uuid": e.domain_uuid,
            "domain_name": e.domain_name,
            "kind": e.kind.value,
            "detail": e.detail,
        }
        for e in by_id.values()
        if e.id not in known
    ]
    if new:
        conn.execute(insert(table), new)
    return len(new)


def pending_events(conn: Connection, limit: int) -> list[AgentEventRecord]:
    table = m.agent_events
    query = select(table).where(table.c.processed_at.is_(None)).order_by(table.c.id).limit(limit)
    return [
        AgentEventRecord(
            id=int(r["id"]),
            host=r["host"],
            event=DomainEvent(
                r["event_id"], float(r["at"]), r["domain_uuid"], r["domain_name"], EventKind(r["kind"]), r["detail"]
            ),
            received_at=float(r["received_at"]),
        )
        for r in conn.execute(query).mappings()
    ]


def finish_events(conn: Connection, ids: Sequence[int], at: float) -> None:
    table = m.agent_events
    for chunk in _chunks(list(ids)):
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(processed_at=at))


def load_health(conn: Connection, server_ids: Sequence[str]) -> dict[str, ServerHealth]:
    table = m.instance_health
    found: dict[str, ServerHealth] = {}
    for chunk in _chunks(list(server_ids)):
        for state in conn.scalars(select(table.c.state).where(table.c.server_id.in_(chunk))):
            health = ServerHealth.from_dict(json.loads(state))
            found[health.server_id] = health
    return found


def pending_restarts(conn: Connection) -> list[ServerHealth]:
    table = m.instance_health
    query = select(table.c.state).where(table.c.pending.is_(True)).order_by(table.c.server_id)
    return [ServerHealth.from_dict(json.loads(state)) for state in conn.scalars(query)]


def save_health(conn: Connection, states: Sequence[ServerHealth], at: float) -> None:
    table = m.instance_health
    for state in states:
        values = {
            "host": state.host,
            "phase": state.phase.value,
            "pending": state.pending is not None,
            "state": json.dumps(state.to_dict()),
            "updated_at": at,
        }
        if conn.execute(update(table).where(table.c.server_id == state.server_id).values(**values)).rowcount == 0:
            conn.execute(insert(table).values(server_id=state.server_id, **values))
