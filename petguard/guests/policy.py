"""Instance-health policy for pets: what to do when a guest hangs, crashes or resets (pure domain).

The agent on each compute node reports libvirt's domain events (``petguard.agent.events``); this
module reads them, one server at a time, and decides:

* **hung** (the watchdog fired with action ``none`` or ``pause``; libvirt reports ``dump`` as
  pause) or **crashed** (guest panic, QEMU died: ``kill -9``, an abort) -> restart the server through
  Nova (hard reboot, or start if Nova has it stopped);
* a poweroff or shutdown the guest asked for, a stop or delete through Nova, and the watchdog actions
  ``poweroff``/``shutdown`` (the action its owner chose in ``hw:watchdog_action``) -> leave it alone;
* watchdog ``reset`` -> QEMU already reset it: count it and report it at most once per
  ``reset_report_interval`` (a resetting guest produces a storm: one watchdog and 2-3 reboot events
  every few seconds);
* limits in the style of vSphere VM monitoring: at most ``max_restarts`` restarts within ``window``
  seconds; a restart after which the server ran for ``min_uptime`` seconds counts as a success and
  starts the count again. Past the limit petguard gives up on that server for ``window`` seconds,
  leaves it as it is, and raises a critical event.

Events of one failure are one failure: a panic is followed by "stopped (crashed)", a watchdog
poweroff by "stopped (failed)", and the agent re-reports every domain's state after reconnecting to
libvirtd. A hang or crash counts again only once the domain was seen running after the last one.

Whether a restart may happen at all (``gate``) depends on Nova's view of the server and on petguard's
view of its host: only pets, never a server that opted out (metadata ``petguard:restart=false``),
never on a host in maintenance or one petguard is fencing or evacuating, never while Nova is busy
with the server (task_state set).

Times: event times are the agent's clock; restart times the controller's (NTP keeps them close).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from petguard.agent.events import DomainEvent, DomainState, DomainSummary, EventKind, Lifecycle, WatchdogAction
from petguard.cloud import Server
from petguard.evacuate.plan import SELECTORS, opt_out_reason, pet_reason
from petguard.hosts import HostState

#: Server metadata that turns automatic restarts off for one server ("false", "no", "0", "off").
OPT_OUT_KEY = "petguard:restart"
_FALSY = {"false", "f", "no", "n", "0", "off"}

#: Nova vm_states petguard may restart from (anything else is left to Nova and the owner).
RESTARTABLE_VM_STATES = frozenset({"active", "paused", "error", "stopped", "suspended"})


class Happening(enum.StrEnum):
    """What an event means for the policy."""

    HUNG = "hung"
    CRASHED = "crashed"
    RESET = "reset"
    OWNER_ACTION = "owner_action"  # what the owner configured, or asked for: leave it alone
    STOPPED = "stopped"  # an orderly stop, or a destroy through the API (Nova stop/delete)
    IO_ERROR = "io_error"
    RUNNING = "running"
    NOTHING = "nothing"


class Phase(enum.StrEnum):
    """Where petguard is with one server."""

    WATCHING = "watching"
    RESTARTING = "restarting"  # a restart was decided (and journaled) and not yet seen running
    LEFT = "left"  # a failure petguard leaves alone (owner's choice, opted out, maintenance ...)
    GAVE_UP = "gave_up"  # too many restarts: held for ``window`` seconds


class Intent(enum.StrEnum):
    NONE = "none"  # nothing to do or record
    NOTE = "note"  # record an event
    RESTART = "restart"  # restart the server (after ``gate``), then record it


class RestartHow(enum.StrEnum):
    HARD_REBOOT = "hard_reboot"
    START = "start"


@dataclasses.dataclass(frozen=True)
class HealthPolicy:
    """The instance-health limits, from ``[instance_health]``."""

    enabled: bool = True
    min_uptime: float = 120.0
    max_restarts: int = 3
    window: float = 3600.0
    restart_timeout: float = 300.0
    reset_report_interval: float = 300.0
    max_event_age: float = 600.0
    selectors: tuple[str, ...] = ("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image")

    def __post_init__(self) -> None:
        unknown = set(self.selectors) - set(SELECTORS)
        if unknown:
            raise ValueError(f"unknown pet selector(s): {', '.join(sorted(unknown))}")


@dataclasses.dataclass(frozen=True)
class ServerHealth:
    """What petguard remembers about one server between events (journaled, survives a restart)."""

    server_id: str
    host: str = ""
    name: str = ""
    phase: Phase = Phase.WATCHING
    failure_at: float | None = None  # agent time of the last failure handled (restarted, left, gave up)
    failure: str = ""
    restarts: tuple[float, ...] = ()  # controller times of restarts since the last successful one
    running_since: float | None = None  # agent time the domain was last seen starting or running
    gave_up_at: float | None = None
    pending: RestartHow | None = None  # a restart decided and not yet acknowledged by Nova
    resets: int = 0  # watchdog resets not yet reported
    resets_total: int = 0
    reset_reported_at: float | None = None

    def ran_since_failure(self) -> bool:
        return self.running_since is not None and (self.failure_at is None or self.running_since > self.failure_at)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["restarts"] = list(self.restarts)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ServerHealth:
        values = dict(raw)
        values["phase"] = Phase(values.get("phase", Phase.WATCHING))
        values["restarts"] = tuple(float(r) for r in values.get("restarts", ()))
        pending = values.get("pending")
        values["pending"] = RestartHow(pending) if pending else None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class AgentHeartbeat:
    """One host's agent as its last heartbeat described it (``at``: when the controller received it)."""

    host: str
    sender: str
    at: float
    sent_at: float
    interval: float
    libvirt_connected: bool
    domains: tuple[DomainSummary, ...] = ()
    buffered: int = 0
    dropped: int = 0
    version: str = ""


@dataclasses.dataclass(frozen=True)
class AgentEventRecord:
    """An agent's event as the controller stored it."""

    id: int
    host: str
    event: DomainEvent
    received_at: float


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The policy's answer to one event: the new state, what to do, and what to record."""

    state: ServerHealth
    intent: Intent
    kind: str = ""  # event kind to record (with NOTE and RESTART)
    message: str = ""


# -- what an event means --------------------------------------------------------------------------------
_WATCHDOG: dict[WatchdogAction, tuple[Happening, str]] = {
    WatchdogAction.NONE: (Happening.HUNG, "its watchdog fired (action none): the guest is hung"),
    WatchdogAction.PAUSE: (Happening.HUNG, "its watchdog fired and QEMU paused it (action pause or dump)"),
    WatchdogAction.RESET: (Happening.RESET, "its watchdog fired and QEMU reset it"),
    WatchdogAction.POWEROFF: (
        Happening.OWNER_ACTION,
        "its watchdog fired and QEMU powered it off, as its flavor asks (hw:watchdog_action=poweroff)",
    ),
    WatchdogAction.SHUTDOWN: (
        Happening.OWNER_ACTION,
        "its watchdog fired and QEMU asked the guest to shut down (hw:watchdog_action=shutdown)",
    ),
}

_LIFECYCLE: dict[Lifecycle, tuple[Happening, str]] = {
    Lifecycle.STARTED: (Happening.RUNNING, "started"),
    Lifecycle.RESUMED: (Happening.RUNNING, "resumed"),
    Lifecycle.PAUSED_WATCHDOG: (Happening.HUNG, "paused by its watchdog"),
    Lifecycle.PAUSED_IOERROR: (Happening.IO_ERROR, "paused after an I/O error"),
    Lifecycle.CRASHED_PANICKED: (Happening.CRASHED, "the guest panicked"),
    Lifecycle.CRASHED_OTHER: (Happening.CRASHED, "the guest crashed"),
    Lifecycle.STOPPED_CRASHED: (Happening.CRASHED, "stopped after the guest crashed"),
    Lifecycle.STOPPED_FAILED: (Happening.CRASHED, "its QEMU process died"),
    Lifecycle.STOPPED_SHUTDOWN: (Happening.STOPPED, "shut down"),
    Lifecycle.STOPPED_DESTROYED: (Happening.STOPPED, "destroyed through libvirt (a Nova stop, reboot or delete)"),
    Lifecycle.SHUTDOWN_GUEST: (Happening.OWNER_ACTION, "the guest shut itself down"),
    Lifecycle.SHUTDOWN_HOST: (Happening.STOPPED, "shut down by the host (a Nova stop)"),
    Lifecycle.SHUTDOWN_FINISHED: (Happening.STOPPED, "shut down"),
}

_STATE: dict[DomainState, tuple[Happening, str]] = {
    DomainState.RUNNING: (Happening.RUNNING, "running"),
    DomainState.PAUSED_WATCHDOG: (Happening.HUNG, "found paused by its watchdog"),
    DomainState.PAUSED_IOERROR: (Happening.IO_ERROR, "found paused after an I/O error"),
    DomainState.SHUTOFF_CRASHED: (Happening.CRASHED, "found shut off after a crash"),
    DomainState.SHUTOFF_FAILED: (Happening.CRASHED, "found shut off: its QEMU process died"),
    DomainState.CRASHED_PANICKED: (Happening.CRASHED, "found crashed (guest panic)"),
}


def classify(event: DomainEvent) -> tuple[Happening, str]:
    """What ``event`` means, with a short description for operators."""
    nothing = (Happening.NOTHING, f"{event.kind.value} {event.detail}".strip())
    if event.kind is EventKind.WATCHDOG:
        return _WATCHDOG.get(WatchdogAction(event.detail), nothing)
    if event.kind is EventKind.LIFECYCLE:
        return _LIFECYCLE.get(Lifecycle(event.detail), nothing)
    if event.kind is EventKind.STATE:
        return _STATE.get(DomainState(event.detail), nothing)
    return nothing


# -- the policy --------------------------------------------------------------------------------------------
def assess(state: ServerHealth, event: DomainEvent, policy: HealthPolicy, now: float) -> Assessment:
    """Decide what one event of one server means and what to do about it."""
    happening, what = classify(event)
    label = event.domain_name or state.name or event.domain_uuid
    state = dataclasses.replace(state, name=event.domain_name or state.name)
    if happening is Happening.RUNNING:
        return Assessment(_seen_running(state, event.at), Intent.NONE)
    if happening is Happening.RESET:
        return _reset(state, event, policy, label)
    if happening is Happening.IO_ERROR:
        return _leave(state, event, "instance_io_error", f"{label}: {what}: a restart does not fix storage; "
                      "petguard leaves it alone: check the host's storage and the guest's disks")
    if happening is Happening.OWNER_ACTION:
        return _leave(state, event, "instance_left_alone", f"{label}: {what}; left as it is")
    if happening in (Happening.HUNG, Happening.CRASHED):
        return _failure(state, event, policy, now, label, what)
    return Assessment(state, Intent.NONE, message=f"{label}: {what}")


def _seen_running(state: ServerHealth, at: float) -> ServerHealth:
    if state.running_since is not None and state.ran_since_failure() and state.phase is not Phase.RESTARTING:
        return state  # still the same run
    phase = Phase.WATCHING if state.phase in (Phase.RESTARTING, Phase.LEFT) else state.phase
    return dataclasses.replace(state, running_since=at, phase=phase)


def _reset(state: ServerHealth, event: DomainEvent, policy: HealthPolicy, label: str) -> Assessment:
    resets = state.resets + 1
    state = dataclasses.replace(state, resets=resets, resets_total=state.resets_total + 1)
    last = state.reset_reported_at
    if last is not None and event.at - last < policy.reset_report_interval:
        return Assessment(state, Intent.NONE)  # deduped: the storm is reported once per interval
    message = (
        f"{label}: its watchdog fired and QEMU reset it ({resets} reset(s) since the last report, "
        f"{state.resets_total} in all); petguard does not restart it again: check why the guest hangs"
    )
    reported = dataclasses.replace(state, resets=0, reset_reported_at=event.at)
    return Assessment(reported, Intent.NOTE, "instance_watchdog_reset", message)


def _leave(state: ServerHealth, event: DomainEvent, kind: str, message: str) -> Assessment:
    if state.phase is Phase.LEFT and not state.ran_since_failure():
        return Assessment(state, Intent.NONE)  # the same failure, reported again
    left = dataclasses.replace(state, phase=Phase.LEFT, failure_at=event.at, failure=message, pending=None)
    return Assessment(left, Intent.NOTE, kind, message)


def _same_failure(state: ServerHealth, event: DomainEvent, policy: HealthPolicy, now: float) -> bool:
    """True when ``event`` is another report of the failure petguard already handled."""
    if state.failure_at is None or state.ran_since_failure():
        return False
    if state.phase is Phase.RESTARTING and state.restarts and now - state.restarts[-1] > policy.restart_timeout:
        return False  # the restart never took: this is a new failure
    return state.phase is not Phase.WATCHING


def _failure(
    state: ServerHealth, event: DomainEvent, policy: HealthPolicy, now: float, label: str, what: str
) -> Assessment:
    if _same_failure(state, event, policy, now):
        return Assessment(state, Intent.NONE, message=f"{label}: {what} (the failure already handled)")
    if now - event.at > policy.max_event_age:
        message = (
            f"{label}: {what}, {now - event.at:.0f} s ago (reported late, [instance_health] max_event_age = "
            f"{policy.max_event_age:.0f} s): not restarted; check the server"
        )
        return _leave(state, event, "instance_event_too_old", message)
    restarts = state.restarts
    succeeded = restarts and state.running_since is not None and event.at - state.running_since >= policy.min_uptime
    if succeeded:
        restarts = ()  # the last restart worked: it ran for min_uptime
    restarts = tuple(r for r in restarts if now - r <= policy.window)
    if state.phase is Phase.GAVE_UP and state.gave_up_at is not None and now - state.gave_up_at < policy.window:
        return Assessment(
            dataclasses.replace(state, failure_at=event.at, failure=what), Intent.NONE,
            message=f"{label}: {what}; petguard gave up on it and leaves it as it is",
        )
    if len(restarts) >= policy.max_restarts:
        message = (
            f"{label}: {what}, after {len(restarts)} restart(s) within {policy.window:.0f} s that did not keep it up "
            f"for {policy.min_uptime:.0f} s; petguard gives up on it for {policy.window:.0f} s and leaves it as it "
            "is: read its console log, fix the guest, then start it yourself"
        )
        gave_up = dataclasses.replace(
            state, phase=Phase.GAVE_UP, gave_up_at=now, failure_at=event.at, failure=what, restarts=restarts
        )
        return Assessment(gave_up, Intent.NOTE, "instance_restart_gave_up", message)
    restarting = dataclasses.replace(
        state, phase=Phase.RESTARTING, failure_at=event.at, failure=what, restarts=restarts, gave_up_at=None
    )
    message = f"{label}: {what}; restarting it through Nova (restart {len(restarts) + 1} of {policy.max_restarts})"
    return Assessment(restarting, Intent.RESTART, "instance_restart", message)


# -- may the restart happen, and how ------------------------------------------------------------------------
def opted_out(server: Server) -> str | None:
    """The server's own opt-out of automatic restarts, or None."""
    value = server.metadata.get(OPT_OUT_KEY)
    if value is not None and value.strip().lower() in _FALSY:
        return f"opted out with metadata {OPT_OUT_KEY}={value}"
    return None


def gate(
    server: Server | None, agent_host: str, host_state: HostState | None, policy: HealthPolicy
) -> tuple[RestartHow | None, str]:
    """How to restart ``server`` (None: not at all) and why."""
    if not policy.enabled:
        return None, "automatic restarts are off ([instance_health] enabled = false)"
    if server is None:
        return None, "Nova has no server with this domain's UUID (not a Nova instance, or deleted)"
    if server.host is not None and server.host != agent_host:
        return None, f"Nova places it on {server.host}, not on {agent_host} (moved meanwhile)"
    if host_state is None:
        return None, f"{agent_host} is not a compute host petguard watches"
    if host_state is HostState.MAINTENANCE:
        return None, f"{agent_host} is in maintenance"
    if host_state is not HostState.UP:
        return None, f"{agent_host} is {host_state.value}: petguard is handling the host itself"
    reason = opted_out(server) or opt_out_reason(server)
    if reason is not None:
        return None, reason
    if pet_reason(server, policy.selectors) is None:
        return None, f"not a pet (no selector matched: {', '.join(policy.selectors)})"
    if server.task_state:
        return None, f"Nova is busy with it (task_state {server.task_state}): left to Nova"
    if server.vm_state not in RESTARTABLE_VM_STATES:
        return None, f"vm_state {server.vm_state}: not restarted"
    if server.vm_state == "stopped":
        return RestartHow.START, "Nova has it stopped: starting it"
    return RestartHow.HARD_REBOOT, f"vm_state {server.vm_state}: hard reboot"


def skipped(state: ServerHealth, why: str) -> Assessment:
    """The restart ``gate`` refused: leave the server alone (the failure is not counted)."""
    left = dataclasses.replace(state, phase=Phase.LEFT, pending=None, restarts=state.restarts)
    label = state.name or state.server_id
    return Assessment(left, Intent.NOTE, "instance_restart_skipped", f"{label}: {state.failure}; not restarted: {why}")


def restart_requested(state: ServerHealth, how: RestartHow, now: float) -> ServerHealth:
    """Write-ahead: the restart is counted before Nova is asked."""
    return dataclasses.replace(state, pending=how, restarts=(*state.restarts, now))


def restart_sent(state: ServerHealth) -> ServerHealth:
    """Nova accepted the restart."""
    return dataclasses.replace(state, pending=None)
