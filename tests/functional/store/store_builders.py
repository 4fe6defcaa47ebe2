"""Builders of journal values for the store tests (plain domain values, no database)."""

from __future__ import annotations

from collections.abc import Sequence

from petguard.cloud import Move, Plan, PowerGoal, Skip
from petguard.detect import HostHealth, Verdict
from petguard.hosts import Host, HostEvent, HostState
from petguard.journal import BrakeState, HostRecord, TickRecord, Transition

#: A realistic timestamp with a fraction that a single-precision column would mangle.
T0 = 1_712_345_678.123456


def record(
    name: str,
    state: HostState = HostState.UP,
    *,
    since: float = T0,
    incident_id: int | None = None,
    reason: str = "",
    health: HostHealth | None = None,
) -> HostRecord:
    return HostRecord(
        host=Host(name=name, state=state, since=since, incident_id=incident_id, reason=reason),
        health=health or HostHealth(verdict=Verdict.UP, up_streak=3, detail="nova-compute heartbeating"),
    )


def down_health(since: float = T0) -> HostHealth:
    return HostHealth(verdict=Verdict.SUSPECT, down_streak=2, up_streak=0, down_since=since, detail="heartbeat missing")


def tick(
    hosts: Sequence[HostRecord] = (),
    *,
    transitions: Sequence[Transition] = (),
    open_incidents: Sequence[tuple[str, str]] = (),
    close_incidents: Sequence[tuple[int, str]] = (),
    events: Sequence[tuple[str | None, str, str]] = (),
    finished_requests: Sequence[tuple[int, str, str]] = (),
    brake: BrakeState | None = None,
    at: float = T0,
) -> TickRecord:
    return TickRecord(
        hosts=list(hosts),
        transitions=list(transitions),
        open_incidents=list(open_incidents),
        close_incidents=list(close_incidents),
        events=list(events),
        finished_requests=list(finished_requests),
        brake=brake,
        at=at,
    )


def suspect_tick(name: str, at: float = T0) -> TickRecord:
    """The tick in which ``name`` goes UP -> SUSPECT and its incident opens."""
    return tick(
        [record(name, HostState.SUSPECT, since=at, reason="heartbeat missing", health=down_health(at))],
        transitions=[
            Transition(name, HostState.UP, HostState.SUSPECT, HostEvent.SIGNALS_DOWN, "heartbeat missing", at)
        ],
        open_incidents=[(name, "heartbeat missing")],
        events=[(name, "suspect", f"{name} looks down")],
        at=at,
    )


def plan(host: str = "cmp1", moves: int = 3, skips: int = 2) -> Plan:
    return Plan(
        host=host,
        moves=tuple(
            Move(f"srv-{i:04d}", f"pet-{i:04d}", 10 - i, "ACTIVE", PowerGoal.RUNNING if i % 2 else PowerGoal.STOPPED)
            for i in range(moves)
        ),
        skipped=tuple(Skip(f"cattle-{i}", f"cattle-{i}", "not a pet") for i in range(skips)),
    )
