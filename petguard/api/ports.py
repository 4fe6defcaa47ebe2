"""The API's seams: what the WSGI app reads (``View``) and what it hands to the loop (``Inbox``).

The app never touches the store, the loop or an adapter; ``petguard.daemon.api_backend`` implements these
Protocols over ``SqlStore`` and the ``Loop``, and tests may implement them with fakes. The control
loop stays the only writer of host state: ``Inbox`` only queues requests and records evidence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from petguard.agent.events import DomainEvent
from petguard.evacuate.capacity import CapacityReport
from petguard.evacuate.plan import ServerDecision
from petguard.guests.policy import AgentHeartbeat
from petguard.journal import (
    AlertRecord,
    AuditRecord,
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    RequestKind,
    RequestStatus,
    ReservedHost,
    SkipRecord,
)
from petguard.sight import Sight


@dataclasses.dataclass(frozen=True)
class Status:
    """The daemon at a glance (``GET /v1/status``)."""

    version: str
    leader: bool
    brake: BrakeState
    last_tick: float | None
    tick_ok: bool
    dry_run: bool
    log_level: str
    fence_readiness: Mapping[str, str] = dataclasses.field(default_factory=dict)
    capacity: CapacityReport = CapacityReport.unknown("not checked yet")
    #: the reserved failover hosts the journal knows: each one's loan (docs/evacuation.md)
    reserved_hosts: Sequence[ReservedHost] = ()
    #: this controller's view of Nova: failed readings in a row, blindness (petguard.sight)
    nova: Sight = Sight()


@dataclasses.dataclass(frozen=True)
class Liveness:
    """``/healthz``: ``ok`` when the last tick succeeded recently; ``reason`` says why not."""

    ok: bool
    reason: str
    last_tick: float | None


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why a host or a server is where it is, in plain lines (``GET /v1/explain/{name}``)."""

    subject: str  # "host" | "server"
    name: str
    state: str
    lines: Sequence[str]
    #: A host with no open incident: what would happen to each of its servers if it failed now.
    if_failed: Sequence[ServerDecision] = ()


class View(Protocol):
    """Read-only access to the journal and the loop's state.

    :raises petguard.errors.NotFound: (single-item reads) no such host, incident or request.
    """

    def now(self) -> float: ...

    def hosts(self) -> list[HostRecord]: ...

    def host(self, name: str) -> HostRecord: ...

    def incident(self, incident_id: int) -> Incident: ...

    def incidents(self, host: str | None, limit: int) -> list[Incident]: ...

    def events(self, incident_id: int | None, host: str | None, limit: int) -> list[EventRecord]: ...

    def moves(self, incident_id: int) -> list[MoveRecord]: ...

    def skips(self, incident_id: int) -> list[SkipRecord]: ...

    def request(self, request_id: int) -> RequestStatus: ...

    def audit(self, limit: int) -> list[AuditRecord]: ...

    def status(self) -> Status: ...

    def liveness(self) -> Liveness: ...

    def explain(self, name: str) -> Explanation: ...

    def agents(self) -> list[AgentHeartbeat]:
        """Every host's petguard agent as its last heartbeat described it."""
        ...


class Inbox(Protocol):
    """Everything the API may change: queue a request, record alerts and agents' reports, audit, set the log level."""

    def submit_request(self, host: str, kind: RequestKind, reason: str, actor: str) -> RequestStatus: ...

    def record_alerts(self, alerts: Sequence[AlertRecord]) -> None: ...

    def audit(self, actor: str, action: str, target: str | None, result: str, detail: str) -> None: ...

    def set_log_level(self, level: str) -> str:
        """Set the running daemon's log level; returns the level now in force."""
        ...

    def record_heartbeat(self, beat: AgentHeartbeat) -> None:
        """Keep a host agent's newest heartbeat (evidence for detection)."""
        ...

    def record_agent_events(self, host: str, events: Sequence[DomainEvent]) -> int:
        """Store an agent's domain events once each; returns how many were new."""
        ...


class Exposition(Protocol):
    """The metrics in Prometheus' text format (``GET /metrics``)."""

    def render(self) -> tuple[bytes, str]:
        """(body, content type)."""
        ...
