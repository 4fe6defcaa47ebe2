"""The journal seam: the records petguard keeps, and the Store protocol that keeps them.

These are domain values (frozen dataclasses) plus one Protocol. ``petguard.store.sql.SqlStore``
implements it on SQLAlchemy; unit tests may use an in-memory fake. The loop (``reconcile``) and the
evacuation runner (``evacuate.run``) only see this module, never SQLAlchemy.

Write-ahead rule: every action is recorded before it is taken (a host enters FENCING before the BMC
is called; a move is REQUESTING before Nova is asked to evacuate), so after a crash the journal says
what was being attempted, and Nova's own records say how far it got.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Protocol

from petguard.cloud import Plan, PowerGoal
from petguard.detect import FenceStart, HostHealth, Signal
from petguard.hosts import Host, HostEvent, HostState


class MoveStatus(enum.StrEnum):
    """Where one planned evacuation is."""

    PLANNED = "planned"  # written with the plan, Nova not asked yet
    REQUESTING = "requesting"  # about to call Nova's evacuate (write-ahead)
    ACCEPTED = "accepted"  # Nova accepted the evacuation; following it
    ARRIVED = "arrived"  # on another host; power state being restored
    DONE = "done"  # on another host, in its original power state
    FAILED = "failed"  # final failure, reason recorded and alerted

    @property
    def final(self) -> bool:
        return self in (MoveStatus.DONE, MoveStatus.FAILED)


#: How a stuck move's ``waiting`` begins: Nova took its request and never started it (evacuate.run);
#: a wait for the cloud (evacuate.outage) never does.
STUCK = "stuck: "


@dataclasses.dataclass(frozen=True)
class MoveRecord:
    """The journal row of one move of one incident."""

    incident_id: int
    server_id: str
    server_name: str
    priority: int
    power_goal: PowerGoal
    status: MoveStatus
    source_host: str
    dest_host: str | None = None
    attempts: int = 0
    reason: str = ""
    request_id: str | None = None
    updated_at: float = 0.0
    wave: int = 0  # the runner finishes every move of a lower wave first (evacuate.plan)
    hint: str = ""  # the operator's target hint from the plan ("": the scheduler's choice; evacuate.hints)
    hint_source: str = ""  # which rule gave the hint
    hint_note: str = ""  # why a hint that was asked for is not followed
    target_host: str | None = None  # the host asked for, written before Nova is asked (write-ahead)
    fell_back: bool = False  # the hint could not be met: the scheduler chooses (never falls back twice)
    waiting: str = ""  # why the move waits for the cloud ("": it does not; evacuate.outage)
    waiting_since: float | None = None  # when the current wait began (its deadline survives a restart)
    #: when an operator vouched that nothing in Nova still holds the move's stuck request
    #: (``petguard host resend``); a new request ends it
    resend_vouched_at: float | None = None

    @property
    def stuck(self) -> bool:
        """Nova took the request and never started it: an operator must act (``evacuation_stuck``)."""
        return self.waiting.startswith(STUCK)

    def gives_up_at(self, cloud_wait_timeout: float) -> float | None:
        """When the current wait for the cloud fails the move; None when it does not wait for the cloud
        (a stuck move waits for an operator, with no deadline)."""
        if not self.waiting or self.stuck or self.waiting_since is None or self.status.final:
            return None
        return self.waiting_since + cloud_wait_timeout


def incident_tag(host: str, incident_id: int | None) -> str:
    """How every log line names a host during an incident: ``host [incident N]`` (``host`` when it has
    none), so that one incident's lines, the loop's, the lanes' and the runner's, read as one story."""
    return host if incident_id is None else f"{host} [incident {incident_id}]"


class ReservedState(enum.StrEnum):
    """Where a reserved failover host is in its loan to an incident (evacuate.reserved)."""

    IDLE = "idle"  # disabled in Nova, free to borrow
    BORROWING = "borrowing"  # taken by an incident (compare-and-set), its service being enabled
    BORROWED = "borrowed"  # enabled, taking the incident's pets
    RETURNING = "returning"  # the incident is over: its service being disabled again


@dataclasses.dataclass(frozen=True)
class ReservedHost:
    """The journal row of one reserved failover host."""

    host: str
    state: ReservedState
    incident_id: int | None = None  # the incident that holds it (None when idle)
    updated_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class SkipRecord:
    """A server of a failed host that petguard left where it was, and why."""

    incident_id: int
    server_id: str
    server_name: str
    reason: str


class RequestKind(enum.StrEnum):
    """What an operator can ask the loop to do (the loop decides and acts)."""

    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    CONFIRM_FENCED = "confirm_fenced"
    RESTORE = "restore"
    FENCE = "fence"  # fence this host now (still confirmed by reading power back OFF)
    EVACUATE = "evacuate"  # evacuate a fenced host now, or retry its failed moves
    # the host's stuck evacuation requests may be sent again: the operator vouches that nothing in Nova
    # still holds them (nova-api and nova-conductor restarted); Nova's records are still checked
    RESEND = "resend"
    BRAKE_OVERRIDE = "brake_override"  # host "*": allow fencing despite the brake for a while


@dataclasses.dataclass(frozen=True)
class OperatorRequest:
    """An operator's request waiting for the loop."""

    id: int
    host: str
    kind: RequestKind
    reason: str
    requested_by: str
    requested_at: float


@dataclasses.dataclass(frozen=True)
class RequestStatus:
    """An operator request and how the loop answered it (``status`` "pending", "done" or "refused")."""

    request: OperatorRequest
    status: str
    message: str = ""
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True)
class AlertRecord:
    """One alert about one host from an alert sender (Alertmanager or the plain JSON form).

    A firing alert is evidence for detection (``detect.combine``), never by itself a reason to fence.
    ``fingerprint`` identifies the alert across re-sends; a resolved one clears it.
    """

    fingerprint: str
    host: str
    kind: str
    firing: bool
    summary: str
    starts_at: float
    #: when a firing alert stops counting unless it is sent again
    expires_at: float
    sender: str = ""


@dataclasses.dataclass(frozen=True)
class Incident:
    """One failure of one host, from the first suspicion to its return to service."""

    id: int
    host: str
    opened_at: float
    closed_at: float | None
    reason: str
    outcome: str = ""  # "", "false_alarm", "recovered", ...


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """Something an operator should know about (the audit trail and the source of alerts)."""

    id: int
    at: float
    host: str | None
    incident_id: int | None
    kind: str  # e.g. "brake_engaged", "fence_failed", "awaiting_confirm", "evacuation_failed"
    message: str


@dataclasses.dataclass(frozen=True)
class HostRecord:
    """Everything the loop carries for one host between ticks."""

    host: Host
    health: HostHealth


@dataclasses.dataclass(frozen=True)
class Transition:
    """One lifecycle edge taken, as the loop decided it; saved before it is acted on."""

    host: str
    from_state: HostState
    to_state: HostState
    event: HostEvent
    reason: str
    at: float


@dataclasses.dataclass(frozen=True)
class BrakeState:
    """The mass-failure brake as stored (latched until released)."""

    engaged: bool = False
    reason: str = ""
    since: float | None = None
    override_until: float | None = None


@dataclasses.dataclass(frozen=True)
class TickRecord:
    """Everything one tick decided, saved in ONE transaction before anything is acted on."""

    hosts: Sequence[HostRecord]  # new values of every host that changed (state or health)
    transitions: Sequence[Transition]
    open_incidents: Sequence[tuple[str, str]]  # (host, reason): hosts that became SUSPECT
    close_incidents: Sequence[tuple[int, str]]  # (incident id, outcome)
    events: Sequence[tuple[str | None, str, str]]  # (host, kind, message); incident taken from host
    finished_requests: Sequence[tuple[int, str, str]]  # (request id, result "done"|"refused", message)
    brake: BrakeState | None = None  # new brake state, if it changed
    at: float = 0.0
    #: incidents whose FAILED moves go back to PLANNED (an operator re-runs the evacuation; the
    #: runner checks Nova's records before sending anything again)
    retry_failed_moves: Sequence[int] = ()
    #: incidents whose stuck moves an operator vouched for (``RequestKind.RESEND``): each stuck move
    #: is marked, and the runner sends it again once Nova's records allow it
    vouch_resends: Sequence[int] = ()


class Store(Protocol):
    """The persistent journal. Every method is one transaction.

    :raises petguard.errors.StaleEpoch: (several controllers) the write carries an older epoch.
    """

    # -- hosts and ticks ----------------------------------------------------------------------
    def load_hosts(self) -> dict[str, HostRecord]:
        """Every known host with its lifecycle state and debouncing state."""
        ...

    def save_tick(self, tick: TickRecord) -> None:
        """Save one tick's decisions atomically. Incidents opened here are attached to their host
        (``Host.incident_id``) in the same transaction; closing one detaches it."""
        ...

    def load_brake(self) -> BrakeState:
        ...

    # -- operator requests ----------------------------------------------------------------------
    def submit_request(self, host: str, kind: RequestKind, reason: str, requested_by: str, at: float) -> int:
        """Queue an operator request; returns its id."""
        ...

    def pending_requests(self) -> list[OperatorRequest]:
        """Requests not yet finished, oldest first."""
        ...

    # -- alerts (evidence for detection) ----------------------------------------------------------
    def record_alerts(self, alerts: Sequence[AlertRecord], at: float) -> None:
        """Store firing alerts (a re-sent fingerprint refreshes its row) and clear resolved ones."""
        ...

    def active_alerts(self, now: float) -> list[Signal]:
        """One DOWN signal per alert firing at ``now`` (source ``alert:<kind>``)."""
        ...

    def agent_heartbeats(self) -> dict[str, float]:
        """host -> when its petguard-agent last reported (hosts without an agent are absent)."""
        ...

    # -- incidents and events -------------------------------------------------------------------
    def incident(self, incident_id: int) -> Incident:
        """:raises petguard.errors.NotFound:"""
        ...

    def incidents(self, host: str | None = None, limit: int = 50) -> list[Incident]:
        """Newest first."""
        ...

    def events(self, incident_id: int | None = None, host: str | None = None, limit: int = 200) -> list[EventRecord]:
        """Oldest first within the newest ``limit``."""
        ...

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        """Record an event outside a tick (from an action lane)."""
        ...

    def transitions(self, host: str | None = None, limit: int = 200) -> list[Transition]:
        """The audit trail, oldest first within the newest ``limit``."""
        ...

    def fences_started(self, since: float) -> list[FenceStart]:
        """Every transition into FENCING after ``since`` (automatic or an operator's), oldest first:
        the fence rate limit counts them."""
        ...

    # -- the evacuation journal -----------------------------------------------------------------
    def record_plan(self, incident_id: int, plan: Plan, at: float) -> None:
        """Write one PLANNED row per move and one row per skip. Idempotent: rows that exist for
        this incident are left exactly as they are (a resumed incident keeps its progress)."""
        ...

    def moves(self, incident_id: int) -> list[MoveRecord]:
        """The incident's moves, in plan order (wave, then priority desc, then name)."""
        ...

    def skips(self, incident_id: int) -> list[SkipRecord]:
        ...

    def update_move(
        self,
        incident_id: int,
        server_id: str,
        status: MoveStatus,
        at: float,
        *,
        expected: MoveStatus | None = None,
        reason: str | None = None,
        dest_host: str | None = None,
        request_id: str | None = None,
        count_attempt: bool = False,
        target_host: str | None = None,
        fall_back: bool = False,
        waiting: str | None = None,
        end_vouch: bool = False,
    ) -> MoveRecord:
        """Set a move's status (and the given fields); returns the new row. ``fall_back`` clears the
        target host and marks the move as fallen back to the scheduler's choice. ``waiting``: why the
        move waits for the cloud (``waiting_since`` keeps the moment the wait began), "" ends the wait.
        ``end_vouch`` forgets an operator's vouch for the move's stuck request (a new ``request_id``
        always does).

        Compare-and-set along ``evacuate.transitions.MOVE_TRANSITIONS``: the row changes only if its
        status is ``expected`` (the status the writer read; None: any status the table lets lead to
        ``status``), in the same statement.

        :raises petguard.errors.NotFound: no such move.
        :raises petguard.errors.InvalidTransition: the table has no edge to ``status`` from ``expected``
            (or, without ``expected``, from the move's status); nothing is written.
        :raises petguard.errors.StaleWrite: the move's status is not ``expected`` (another writer moved
            it on); nothing is written.
        """
        ...

    # -- reserved failover hosts ----------------------------------------------------------------
    def reserved_hosts(self) -> list[ReservedHost]:
        """Every reserved host the journal knows, by name."""
        ...

    def add_reserved_hosts(self, hosts: Sequence[str], at: float) -> None:
        """Know these hosts (idle) if the journal does not yet; rows that exist are left as they are."""
        ...

    def borrow_reserved_host(self, host: str, incident_id: int, at: float) -> bool:
        """Compare-and-set idle -> borrowing for ``incident_id``; True if this call took it."""
        ...

    def set_reserved_state(
        self, host: str, incident_id: int, expected: ReservedState, new: ReservedState, at: float
    ) -> bool:
        """Compare-and-set the host's state from ``expected`` (held by ``incident_id``) to ``new``
        (idle clears the incident); True if this call changed it.

        :raises petguard.errors.InvalidTransition: ``expected -> new`` is not an edge of
            ``evacuate.transitions.LOAN_TRANSITIONS``; nothing is written.
        """
        ...


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One request that changed something, through the API or the CLI: who, what, when, result."""

    id: int
    at: float
    actor: str
    action: str
    target: str | None
    result: str  # "accepted" | "refused" | "error"
    detail: str


@dataclasses.dataclass(frozen=True)
class WebhookCursor:
    """Delivery progress of one webhook receiver over the events table (the durable outbox)."""

    receiver: str
    last_event_id: int
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
