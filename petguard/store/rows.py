"""Conversions between journal domain values and table rows: the only place they meet (storage edge).

``*_to_row`` functions return plain dicts keyed by column name; ``*_from_row`` functions take a
SQLAlchemy ``RowMapping`` and return the frozen values of ``petguard.journal``. Enums are stored as
their string values and read back through their constructor, so an unknown value in the database
fails loudly here instead of leaking a bare string into the domain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping

from petguard.cloud import Move, PowerGoal, Skip
from petguard.detect import HostHealth, Verdict
from petguard.hosts import Host, HostEvent, HostState
from petguard.journal import (
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    MoveStatus,
    OperatorRequest,
    RequestKind,
    ReservedHost,
    ReservedState,
    SkipRecord,
    Transition,
)

Row = RowMapping


def host_to_row(record: HostRecord) -> dict[str, Any]:
    host, health = record.host, record.health
    return {
        "name": host.name,
        "state": host.state.value,
        "since": host.since,
        "incident_id": host.incident_id,
        "reason": host.reason,
        "verdict": health.verdict.value,
        "down_streak": health.down_streak,
        "up_streak": health.up_streak,
        "down_since": health.down_since,
        "detail": health.detail,
    }


def host_from_row(row: Row) -> HostRecord:
    host = Host(
        name=row["name"],
        state=HostState(row["state"]),
        since=row["since"],
        incident_id=row["incident_id"],
        reason=row["reason"],
    )
    health = HostHealth(
        verdict=Verdict(row["verdict"]),
        down_streak=row["down_streak"],
        up_streak=row["up_streak"],
        down_since=row["down_since"],
        detail=row["detail"],
    )
    return HostRecord(host=host, health=health)


def transition_to_row(transition: Transition) -> dict[str, Any]:
    return {
        "host": transition.host,
        "from_state": transition.from_state.value,
        "to_state": transition.to_state.value,
        "event": transition.event.value,
        "reason": transition.reason,
        "at": transition.at,
    }


def transition_from_row(row: Row) -> Transition:
    return Transition(
        host=row["host"],
        from_state=HostState(row["from_state"]),
        to_state=HostState(row["to_state"]),
        event=HostEvent(row["event"]),
        reason=row["reason"],
        at=row["at"],
    )


def incident_from_row(row: Row) -> Incident:
    return Incident(
        id=row["id"],
        host=row["host"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        reason=row["reason"],
        outcome=row["outcome"],
    )


def event_from_row(row: Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        at=row["at"],
        host=row["host"],
        incident_id=row["incident_id"],
        kind=row["kind"],
        message=row["message"],
    )


def request_from_row(row: Row) -> OperatorRequest:
    return OperatorRequest(
        id=row["id"],
        host=row["host"],
        kind=RequestKind(row["kind"]),
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
    )


def brake_to_row(state: BrakeState) -> dict[str, Any]:
    return {
        "engaged": state.engaged,
        "reason": state.reason,
        "since": state.since,
        "override_until": state.override_until,
    }


def brake_from_row(row: Row) -> BrakeState:
    return BrakeState(
        engaged=bool(row["engaged"]),
        reason=row["reason"],
        since=row["since"],
        override_until=row["override_until"],
    )


def move_to_row(incident_id: int, source_host: str, move: Move, order: int, at: float) -> dict[str, Any]:
    """A freshly planned move: PLANNED, no attempt yet."""
    return {
        "incident_id": incident_id,
        "server_id": move.server_id,
        "source_host": source_host,
        "server_name": move.server_name,
        "priority": move.priority,
        "power_goal": move.power_goal.value,
        "status": MoveStatus.PLANNED.value,
        "dest_host": None,
        "attempts": 0,
        "reason": "",
        "request_id": None,
        "updated_at": at,
        "plan_order": order,
        "wave": move.wave,
        "hint": move.hint,
        "hint_source": move.hint_source,
        "hint_note": move.hint_note,
        "target_host": None,
        "fell_back": False,
        "waiting": "",
        "waiting_since": None,
        "resend_vouched_at": None,
    }


def move_from_row(row: Row) -> MoveRecord:
    return MoveRecord(
        incident_id=row["incident_id"],
        server_id=row["server_id"],
        server_name=row["server_name"],
        priority=row["priority"],
        power_goal=PowerGoal(row["power_goal"]),
        status=MoveStatus(row["status"]),
        source_host=row["source_host"],
        dest_host=row["dest_host"],
        attempts=row["attempts"],
        reason=row["reason"],
        request_id=row["request_id"],
        updated_at=row["updated_at"],
        wave=row["wave"],
        hint=row["hint"],
        hint_source=row["hint_source"],
        hint_note=row["hint_note"],
        target_host=row["target_host"],
        fell_back=bool(row["fell_back"]),
        waiting=row["waiting"],
        waiting_since=row["waiting_since"],
        resend_vouched_at=row["resend_vouched_at"],
    )


def skip_to_row(incident_id: int, skip: Skip, order: int) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "server_id": skip.server_id,
        "server_name": skip.server_name,
        "reason": skip.reason,
        "plan_order": order,
    }


def skip_from_row(row: Row) -> SkipRecord:
    return SkipRecord(
        incident_id=row["incident_id"],
        server_id=row["server_id"],
        server_name=row["server_name"],
        reason=row["reason"],
    )


def reserved_from_row(row: Row) -> ReservedHost:
    return ReservedHost(
        host=row["host"],
        state=ReservedState(row["state"]),
        incident_id=row["incident_id"],
        updated_at=row["updated_at"],
    )
