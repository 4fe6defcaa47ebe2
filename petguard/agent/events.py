"""libvirt's domain-event vocabulary as petguard's own enums, in ONE table (pure; no libvirt import).

libvirt numbers its events, details, states and reasons; petguard names them. ``LIBVIRT`` lists every
libvirt constant petguard relies on with its value (the agent's tests check each against the
installed libvirt-python), and the tables below map those constants to petguard's enums:

* ``WatchdogAction`` — what QEMU did when the emulated watchdog fired (``VIR_DOMAIN_EVENT_ID_WATCHDOG``);
* ``Lifecycle`` — one (event, detail) pair of ``VIR_DOMAIN_EVENT_ID_LIFECYCLE`` (e.g. stopped/failed);
* ``DomainState`` — one (state, reason) pair read with ``virDomainGetState`` after a (re)connect,
  because events that happen while libvirtd is down are lost.

``DomainEvent`` is what the agent reports and the controller's instance-health policy reads. The
domain's UUID is the Nova instance UUID.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

#: Every libvirt constant used here, with its value in libvirt's public ABI (stable across versions).
LIBVIRT: dict[str, int] = {
    "VIR_DOMAIN_EVENT_ID_LIFECYCLE": 0,
    "VIR_DOMAIN_EVENT_ID_REBOOT": 1,
    "VIR_DOMAIN_EVENT_ID_WATCHDOG": 3,
    # watchdog actions
    "VIR_DOMAIN_EVENT_WATCHDOG_NONE": 0,
    "VIR_DOMAIN_EVENT_WATCHDOG_PAUSE": 1,
    "VIR_DOMAIN_EVENT_WATCHDOG_RESET": 2,
    "VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF": 3,
    "VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN": 4,
    "VIR_DOMAIN_EVENT_WATCHDOG_DEBUG": 5,
    "VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI": 6,
    # lifecycle events
    "VIR_DOMAIN_EVENT_DEFINED": 0,
    "VIR_DOMAIN_EVENT_UNDEFINED": 1,
    "VIR_DOMAIN_EVENT_STARTED": 2,
    "VIR_DOMAIN_EVENT_SUSPENDED": 3,
    "VIR_DOMAIN_EVENT_RESUMED": 4,
    "VIR_DOMAIN_EVENT_STOPPED": 5,
    "VIR_DOMAIN_EVENT_SHUTDOWN": 6,
    "VIR_DOMAIN_EVENT_PMSUSPENDED": 7,
    "VIR_DOMAIN_EVENT_CRASHED": 8,
    # lifecycle details
    "VIR_DOMAIN_EVENT_SUSPENDED_PAUSED": 0,
    "VIR_DOMAIN_EVENT_SUSPENDED_IOERROR": 2,
    "VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG": 3,
    "VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN": 0,
    "VIR_DOMAIN_EVENT_STOPPED_DESTROYED": 1,
    "VIR_DOMAIN_EVENT_STOPPED_CRASHED": 2,
    "VIR_DOMAIN_EVENT_STOPPED_FAILED": 5,
    "VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED": 0,
    "VIR_DOMAIN_EVENT_SHUTDOWN_GUEST": 1,
    "VIR_DOMAIN_EVENT_SHUTDOWN_HOST": 2,
    "VIR_DOMAIN_EVENT_CRASHED_PANICKED": 0,
    # domain states and reasons
    "VIR_DOMAIN_RUNNING": 1,
    "VIR_DOMAIN_BLOCKED": 2,
    "VIR_DOMAIN_PAUSED": 3,
    "VIR_DOMAIN_SHUTDOWN": 4,
    "VIR_DOMAIN_SHUTOFF": 5,
    "VIR_DOMAIN_CRASHED": 6,
    "VIR_DOMAIN_PAUSED_IOERROR": 5,
    "VIR_DOMAIN_PAUSED_WATCHDOG": 6,
    "VIR_DOMAIN_SHUTOFF_SHUTDOWN": 1,
    "VIR_DOMAIN_SHUTOFF_DESTROYED": 2,
    "VIR_DOMAIN_SHUTOFF_CRASHED": 3,
    "VIR_DOMAIN_SHUTOFF_FAILED": 6,
    "VIR_DOMAIN_CRASHED_PANICKED": 1,
}


class EventKind(enum.StrEnum):
    """Which libvirt callback (or the re-sync after a connect) produced an event."""

    WATCHDOG = "watchdog"
    LIFECYCLE = "lifecycle"
    REBOOT = "reboot"
    STATE = "state"  # a domain's state and reason, read after (re)connecting to libvirtd


class WatchdogAction(enum.StrEnum):
    """What QEMU did when the guest's watchdog expired (Nova: flavor extra spec ``hw:watchdog_action``)."""

    NONE = "none"
    PAUSE = "pause"  # libvirt's "dump" action is reported as pause too
    RESET = "reset"
    POWEROFF = "poweroff"
    SHUTDOWN = "shutdown"
    DEBUG = "debug"
    INJECT_NMI = "inject-nmi"
    UNKNOWN = "unknown"


class Lifecycle(enum.StrEnum):
    """One lifecycle (event, detail) pair, as petguard reads it."""

    DEFINED = "defined"
    UNDEFINED = "undefined"
    STARTED = "started"
    RESUMED = "resumed"
    PAUSED = "paused"  # by a user or the API
    PAUSED_WATCHDOG = "paused_watchdog"
    PAUSED_IOERROR = "paused_ioerror"
    PAUSED_OTHER = "paused_other"  # migration, snapshot, ...
    STOPPED_SHUTDOWN = "stopped_shutdown"  # an orderly shutdown (the guest's or Nova's)
    STOPPED_DESTROYED = "stopped_destroyed"  # destroyed through the API (Nova stop, delete)
    STOPPED_CRASHED = "stopped_crashed"  # the guest crashed (panic with on_crash=destroy)
    STOPPED_FAILED = "stopped_failed"  # QEMU died (kill -9, abort) or a watchdog poweroff
    STOPPED_OTHER = "stopped_other"  # saved, migrated, from snapshot
    SHUTDOWN_GUEST = "shutdown_guest"  # the guest asked for it
    SHUTDOWN_HOST = "shutdown_host"  # the host asked (virsh shutdown / destroy, Nova stop)
    SHUTDOWN_FINISHED = "shutdown_finished"
    CRASHED_PANICKED = "crashed_panicked"  # pvpanic
    CRASHED_OTHER = "crashed_other"
    PMSUSPENDED = "pmsuspended"
    OTHER = "other"


class DomainState(enum.StrEnum):
    """A domain's (state, reason), as read after a (re)connect."""

    RUNNING = "running"
    PAUSED = "paused"
    PAUSED_WATCHDOG = "paused_watchdog"
    PAUSED_IOERROR = "paused_ioerror"
    SHUTOFF = "shutoff"  # shut down or destroyed on purpose
    SHUTOFF_CRASHED = "shutoff_crashed"
    SHUTOFF_FAILED = "shutoff_failed"
    CRASHED_PANICKED = "crashed_panicked"
    SHUTDOWN = "shutdown"  # being shut down
    OTHER = "other"


def _c(name: str) -> int:
    return LIBVIRT[name]


WATCHDOG_TABLE: tuple[tuple[str, WatchdogAction], ...] = (
    ("VIR_DOMAIN_EVENT_WATCHDOG_NONE", WatchdogAction.NONE),
    ("VIR_DOMAIN_EVENT_WATCHDOG_PAUSE", WatchdogAction.PAUSE),
    ("VIR_DOMAIN_EVENT_WATCHDOG_RESET", WatchdogAction.RESET),
    ("VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF", WatchdogAction.POWEROFF),
    ("VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN", WatchdogAction.SHUTDOWN),
    ("VIR_DOMAIN_EVENT_WATCHDOG_DEBUG", WatchdogAction.DEBUG),
    ("VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI", WatchdogAction.INJECT_NMI),
)

#: (event, detail or None for "any other detail of this event") -> Lifecycle.
LIFECYCLE_TABLE: tuple[tuple[str, str | None, Lifecycle], ...] = (
    ("VIR_DOMAIN_EVENT_DEFINED", None, Lifecycle.DEFINED),
    ("VIR_DOMAIN_EVENT_UNDEFINED", None, Lifecycle.UNDEFINED),
    ("VIR_DOMAIN_EVENT_STARTED", None, Lifecycle.STARTED),
    ("VIR_DOMAIN_EVENT_RESUMED", None, Lifecycle.RESUMED),
    ("VIR_DOMAIN_EVENT_SUSPENDED", "VIR_DOMAIN_EVENT_SUSPENDED_PAUSED", Lifecycle.PAUSED),
    ("VIR_DOMAIN_EVENT_SUSPENDED", "VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG", Lifecycle.PAUSED_WATCHDOG),
    ("VIR_DOMAIN_EVENT_SUSPENDED", "VIR_DOMAIN_EVENT_SUSPENDED_IOERROR", Lifecycle.PAUSED_IOERROR),
    ("VIR_DOMAIN_EVENT_SUSPENDED", None, Lifecycle.PAUSED_OTHER),
    ("VIR_DOMAIN_EVENT_STOPPED", "VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN", Lifecycle.STOPPED_SHUTDOWN),
    ("VIR_DOMAIN_EVENT_STOPPED", "VIR_DOMAIN_EVENT_STOPPED_DESTROYED", Lifecycle.STOPPED_DESTROYED),
    ("VIR_DOMAIN_EVENT_STOPPED", "VIR_DOMAIN_EVENT_STOPPED_CRASHED", Lifecycle.STOPPED_CRASHED),
    ("VIR_DOMAIN_EVENT_STOPPED", "VIR_DOMAIN_EVENT_STOPPED_FAILED", Lifecycle.STOPPED_FAILED),
    ("VIR_DOMAIN_EVENT_STOPPED", None, Lifecycle.STOPPED_OTHER),
    ("VIR_DOMAIN_EVENT_SHUTDOWN", "VIR_DOMAIN_EVENT_SHUTDOWN_GUEST", Lifecycle.SHUTDOWN_GUEST),
    ("VIR_DOMAIN_EVENT_SHUTDOWN", "VIR_DOMAIN_EVENT_SHUTDOWN_HOST", Lifecycle.SHUTDOWN_HOST),
    ("VIR_DOMAIN_EVENT_SHUTDOWN", None, Lifecycle.SHUTDOWN_FINISHED),
    ("VIR_DOMAIN_EVENT_CRASHED", "VIR_DOMAIN_EVENT_CRASHED_PANICKED", Lifecycle.CRASHED_PANICKED),
    ("VIR_DOMAIN_EVENT_CRASHED", None, Lifecycle.CRASHED_OTHER),
    ("VIR_DOMAIN_EVENT_PMSUSPENDED", None, Lifecycle.PMSUSPENDED),
)

#: (state, reason or None for "any other reason") -> DomainState.
STATE_TABLE: tuple[tuple[str, str | None, DomainState], ...] = (
    ("VIR_DOMAIN_RUNNING", None, DomainState.RUNNING),
    ("VIR_DOMAIN_BLOCKED", None, DomainState.RUNNING),
    ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_WATCHDOG", DomainState.PAUSED_WATCHDOG),
    ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_IOERROR", DomainState.PAUSED_IOERROR),
    ("VIR_DOMAIN_PAUSED", None, DomainState.PAUSED),
    ("VIR_DOMAIN_SHUTOFF", "VIR_DOMAIN_SHUTOFF_CRASHED", DomainState.SHUTOFF_CRASHED),
    ("VIR_DOMAIN_SHUTOFF", "VIR_DOMAIN_SHUTOFF_FAILED", DomainState.SHUTOFF_FAILED),
    ("VIR_DOMAIN_SHUTOFF", None, DomainState.SHUTOFF),
    ("VIR_DOMAIN_CRASHED", None, DomainState.CRASHED_PANICKED),
    ("VIR_DOMAIN_SHUTDOWN", None, DomainState.SHUTDOWN),
)

_WATCHDOG = {_c(name): action for name, action in WATCHDOG_TABLE}


def _pairs(table: tuple[tuple[str, str | None, Any], ...]) -> tuple[dict[tuple[int, int], Any], dict[int, Any]]:
    exact = {(_c(a), _c(b)): value for a, b, value in table if b is not None}
    fallback = {_c(a): value for a, b, value in table if b is None}
    return exact, fallback


_LIFECYCLE_EXACT, _LIFECYCLE_ANY = _pairs(LIFECYCLE_TABLE)
_STATE_EXACT, _STATE_ANY = _pairs(STATE_TABLE)


def watchdog_action(action: int) -> WatchdogAction:
    """petguard's name for a ``VIR_DOMAIN_EVENT_WATCHDOG_*`` action."""
    return _WATCHDOG.get(action, WatchdogAction.UNKNOWN)


def lifecycle(event: int, detail: int) -> Lifecycle:
    """petguard's name for a ``VIR_DOMAIN_EVENT_*`` lifecycle event and its detail."""
    found: Lifecycle | None = _LIFECYCLE_EXACT.get((event, detail)) or _LIFECYCLE_ANY.get(event)
    return found if found is not None else Lifecycle.OTHER


def domain_state(state: int, reason: int) -> DomainState:
    """petguard's name for a ``VIR_DOMAIN_*`` state and its reason."""
    found: DomainState | None = _STATE_EXACT.get((state, reason)) or _STATE_ANY.get(state)
    return found if found is not None else DomainState.OTHER


@dataclasses.dataclass(frozen=True)
class DomainEvent:
    """One thing that happened to one domain, as the agent reports it.

    ``id`` is unique per agent (a boot id and a sequence number), so a batch sent twice (a reply lost
    on the way back) is stored once. ``at`` is the agent's clock (unix seconds).
    """

    id: str
    at: float
    domain_uuid: str
    domain_name: str
    kind: EventKind
    detail: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The event as ``POST /v1/agent/events`` carries it."""
        return {
            "id": self.id,
            "at": self.at,
            "domain_uuid": self.domain_uuid,
            "domain_name": self.domain_name,
            "kind": self.kind.value,
            "detail": self.detail,
        }

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> DomainEvent:
        """The inverse of ``to_wire`` (the agent's buffer reads its own records with it)."""
        return cls(
            id=str(raw["id"]),
            at=float(raw["at"]),
            domain_uuid=str(raw["domain_uuid"]),
            domain_name=str(raw["domain_name"]),
            kind=EventKind(raw["kind"]),
            detail=str(raw.get("detail", "")),
        )


#: The detail values each kind may carry (the controller validates incoming events with it).
DETAILS: dict[EventKind, frozenset[str]] = {
    EventKind.WATCHDOG: frozenset(a.value for a in WatchdogAction),
    EventKind.LIFECYCLE: frozenset(v.value for v in Lifecycle),
    EventKind.REBOOT: frozenset({""}),
    EventKind.STATE: frozenset(s.value for s in DomainState),
}


@dataclasses.dataclass(frozen=True)
class DomainSummary:
    """One domain in a heartbeat."""

    uuid: str
    name: str
    state: DomainState

    def to_wire(self) -> dict[str, str]:
        return {"uuid": self.uuid, "name": self.name, "state": self.state.value}
