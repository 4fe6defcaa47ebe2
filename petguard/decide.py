"""One tick's decisions for every host, as a pure function (domain).

``decide(inputs, policy)`` takes what the loop observed (Nova's service records, outcomes that
action lanes reported since the last tick, operator requests, the stored hosts and brake) and
returns a ``TickDecision``: the ``TickRecord`` to save (write-ahead, one transaction), the actions to
start afterwards, and one log line per decision, each with its reason and the next step.

Rules kept here, where they can be read in one place:

* Only hosts that are UP or SUSPECT are watched; petguard's own actions drive the other states.
* SUSPECT -> FENCING needs: verdict FAILED, no startup blackout, the brake open (or an operator
  override), not dry-run, and no action already running for that host.
* A FENCED host starts evacuating in the same tick; an EVACUATING or FENCING host whose action is not
  running (e.g. after a restart) gets its action again: actions resume from the journal. The brake
  holds a resumed fence, unless it holds only for the fence rate limit (which stops new fences).
* The brake engages when ``detect.brake`` says so (many hosts down at once), or when
  ``detect.fence_rate_brake`` does (hosts that would be fenced this tick, on top of the fences that
  started within ``fence_rate_window``, exceed ``fence_rate_max``: a rolling failure). Either way it
  stays engaged until every watched host is UP again, or an operator overrides it for a while: the
  window sliding on alone fences nobody.
* ``power_reads`` lists the watched hosts that some source (not an alert, not a power reading) calls
  DOWN this tick: the loop reads their power through their fence devices, read-only. A reading taken
  during a host's down episode joins the next ticks as a ``bmc`` signal: it never votes, and only an
  OFF on a DOWN tick lets ``detect.assess`` fail the host after ``bmc_settle`` (docs/detection.md).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence

from petguard import detect
from petguard.cloud import ServiceRecord
from petguard.detect import DetectionPolicy, FenceStart, Health, HeartbeatSeen, HostHealth, Signal, Verdict
from petguard.errors import InvalidTransition
from petguard.hosts import Host, HostEvent, HostState
from petguard.journal import (
    BrakeState,
    HostRecord,
    OperatorRequest,
    RequestKind,
    TickRecord,
    Transition,
)

WATCHED = frozenset({HostState.UP, HostState.SUSPECT})


class Action(enum.StrEnum):
    """Work a host's lane does outside the tick."""

    FENCE = "fence"
    EVACUATE = "evacuate"
    RESTORE = "restore"


#: The action a host in this state needs, run on its own serial lane.
ACTION_FOR_STATE: dict[HostState, Action] = {
    HostState.FENCING: Action.FENCE,
    HostState.EVACUATING: Action.EVACUATE,
    HostState.RESTORING: Action.RESTORE,
}


#: The events an action lane may report. Every other edge is the tick's own decision (fencing needs the
#: brake open, FENCED needs a fence or an operator): an outcome carrying one of them is refused.
OUTCOME_EVENTS: frozenset[HostEvent] = frozenset(
    {
        HostEvent.FENCE_CONFIRMED,
        HostEvent.FENCE_FAILED,
        HostEvent.EVACUATION_FINISHED,
        HostEvent.SERVICE_RESTORED,
        HostEvent.RESTORE_FAILED,
    }
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an action lane reports back: a lifecycle event for its host."""

    host: str
    event: HostEvent
    reason: str
    alert: str | None = None  # event kind to record (e.g. "fence_failed"), if operators must know


@dataclasses.dataclass(frozen=True)
class LoopPolicy:
    """The loop's knobs, built from config."""

    detection: DetectionPolicy = DetectionPolicy()
    startup_blackout: float = 120.0
    brake_override_s: float = 900.0
    dry_run: bool = False


@dataclasses.dataclass(frozen=True)
class TickInputs:
    """Everything one tick observed."""

    now: float
    started_at: float
    hosts: Mapping[str, HostRecord]
    services: Sequence[ServiceRecord]
    brake: BrakeState
    outcomes: Sequence[Outcome] = ()
    requests: Sequence[OperatorRequest] = ()
    busy: frozenset[str] = frozenset()
    extra_signals: Sequence[Signal] = ()
    #: fences the journal holds from the last ``fence_rate_window`` seconds (one read per tick)
    recent_fences: Sequence[FenceStart] = ()
    #: petguard's memory of each service's ``updated_at``, this tick's reading included (the loop's)
    heartbeats: Mapping[str, HeartbeatSeen] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TickDecision:
    """What the tick decided: save ``record``, then start ``actions``; log ``log`` at INFO."""

    record: TickRecord
    actions: tuple[tuple[str, Action], ...]
    log: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    #: watched hosts some source (not an alert) calls DOWN: the loop reads their power, read-only
    power_reads: tuple[str, ...] = ()


class _Tick:
    """Mutable scratch space for one call of ``decide``; never escapes it."""

    def __init__(self, inputs: TickInputs) -> None:
        self.inputs = inputs
        self.now = inputs.now
        self.hosts: dict[str, HostRecord] = dict(inputs.hosts)
        self.changed: set[str] = set()
        self.transitions: list[Transition] = []
        self.opened: list[tuple[str, str]] = []
        self.closed: list[tuple[int, str]] = []
        self.events: list[tuple[str | None, str, str]] = []
        self.finished: list[tuple[int, str, str]] = []
        self.retry_moves: list[int] = []
        self.vouched: list[int] = []  # incidents whose stuck moves an operator vouched for (resend)
        self.log: list[str] = []
        self.warnings: list[str] = []
        self.brake = inputs.brake
        self.brake_changed = False
        self.mass_failure = False  # detect.brake says so this tick (whatever engaged the stored brake)
        self.bad: set[str] = set()  # hosts some source (not an alert) calls DOWN this tick

    def host(self, name: str) -> Host:
        return self.hosts[name].host

    def set_health(self, name: str, health: HostHealth) -> None:
        record = self.hosts[name]
        if record.health != health:
            self.hosts[name] = dataclasses.replace(record, health=health)
            self.changed.add(name)

    def move(self, name: str, event: HostEvent, reason: str) -> None:
        record = self.hosts[name]
        new_host = record.host.apply(event, self.now, reason)
        self.transitions.append(Transition(name, record.host.state, new_host.state, event, reason, self.now))
        self.hosts[name] = dataclasses.replace(record, host=new_host)
        self.changed.add(name)

    def note_reason(self, name: str, reason: str) -> bool:
        """Remember why a host is held; True when the reason is new (so it is logged once)."""
        record = self.hosts[name]
        if record.host.reason == reason:
            return False
        self.hosts[name] = dataclasses.replace(record, host=dataclasses.replace(record.host, reason=reason))
        self.changed.add(name)
        return True


def decide(inputs: TickInputs, policy: LoopPolicy) -> TickDecision:
    """Decide one tick. Pure: the same inputs always give the same decision."""
    tick = _Tick(inputs)
    _add_new_hosts(tick, inputs.services)
    _apply_outcomes(tick, inputs.outcomes)
    _apply_requests(tick, inputs.requests, policy)
    health_now = _update_health(tick, inputs.services, inputs.extra_signals, policy.detection)
    _update_brake(tick, health_now, policy)
    _follow_verdicts(tick, policy)
    actions = _schedule_actions(tick, policy)
    record = TickRecord(
        hosts=[tick.hosts[name] for name in sorted(tick.changed)],
        transitions=tick.transitions,
        open_incidents=tick.opened,
        close_incidents=tick.closed,
        events=tick.events,
        finished_requests=tick.finished,
        brake=tick.brake if tick.brake_changed else None,
        at=tick.now,
        retry_failed_moves=tick.retry_moves,
        vouch_resends=tuple(tick.vouched),
    )
    return TickDecision(record, tuple(actions), tuple(tick.log), tuple(tick.warnings), _power_reads(tick))


def _add_new_hosts(tick: _Tick, services: Iterable[ServiceRecord]) -> None:
    for service in services:
        if service.host not in tick.hosts:
            tick.hosts[service.host] = HostRecord(Host(service.host, HostState.UP, since=tick.now), HostHealth())
            tick.changed.add(service.host)
            tick.log.append(f"{service.host}: new compute host, watching it (state up)")


def _apply_outcomes(tick: _Tick, outcomes: Iterable[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.host not in tick.hosts:
            continue
        if outcome.event not in OUTCOME_EVENTS:
            tick.warnings.append(f"{outcome.host}: ignored outcome {outcome.event.value}: not an action's outcome")
            continue
        try:
            tick.move(outcome.host, outcome.event, outcome.reason)
        except InvalidTransition as exc:
            tick.warnings.append(f"{outcome.host}: ignored outcome {outcome.event.value}: {exc}")
            continue
        tick.log.append(f"{outcome.host}: {outcome.reason}")
        if outcome.alert:
            tick.events.append((outcome.host, outcome.alert, outcome.reason))
        if outcome.event is HostEvent.SERVICE_RESTORED:
            _close_incident(tick, outcome.host, "recovered")
            # Back in service: debounce from scratch, not from the verdict that got it fenced.
            tick.set_health(outcome.host, HostHealth())


def _close_incident(tick: _Tick, name: str, outcome: str) -> None:
    incident_id = tick.host(name).incident_id
    if incident_id is not None:
        tick.closed.append((incident_id, outcome))
        record = tick.hosts[name]
        tick.hosts[name] = dataclasses.replace(record, host=record.host.with_incident(None))


_REQUEST_EVENTS: dict[RequestKind, HostEvent] = {
    RequestKind.MAINTENANCE_ON: HostEvent.MAINTENANCE_ON,
    RequestKind.MAINTENANCE_OFF: HostEvent.MAINTENANCE_OFF,
    RequestKind.CONFIRM_FENCED: HostEvent.OPERATOR_CONFIRMED_FENCED,
    RequestKind.RESTORE: HostEvent.OPERATOR_RESTORE,
    RequestKind.FENCE: HostEvent.OPERATOR_FENCE,
    RequestKind.EVACUATE: HostEvent.OPERATOR_EVACUATE,
}


def _apply_requests(tick: _Tick, requests: Iterable[OperatorRequest], policy: LoopPolicy) -> None:
    for request in requests:
        refusal = _request_refused(tick, request, policy)
        if refusal is not None:
            tick.finished.append((request.id, "refused", refusal))
            tick.log.append(f"{request.host}: {refusal}")
            continue
        if request.kind is RequestKind.BRAKE_OVERRIDE:
            until = tick.now + policy.brake_override_s
            tick.brake = dataclasses.replace(tick.brake, override_until=until)
            tick.brake_changed = True
            message = (
                f"brake overridden by {request.requested_by} for {policy.brake_override_s:.0f} s: {request.reason}"
            )
            tick.finished.append((request.id, "done", message))
            tick.events.append((None, "brake_override", message))
            tick.log.append(message)
            continue
        if request.host not in tick.hosts:
            message = f"unknown host {request.host!r}: not a nova-compute host"
            tick.finished.append((request.id, "refused", message))
            continue
        if request.kind is RequestKind.RESEND:
            _apply_resend(tick, request)
            continue
        _apply_host_request(tick, request)


def _apply_resend(tick: _Tick, request: OperatorRequest) -> None:
    """An operator vouches that nothing in Nova still holds the host's stuck evacuation requests: the
    journal marks the incident's stuck moves, and the runner sends each again once Nova's records allow
    it (evacuate.outage.resend_on_the_operators_word). Not a lifecycle transition: the host stays
    EVACUATING."""
    name = request.host
    record = tick.hosts[name]
    incident_id = record.host.incident_id
    if record.host.state is not HostState.EVACUATING or incident_id is None:
        message = (
            f"resend refused: host {name} is {record.host.state.value}; only a host whose evacuation is running "
            "has stuck requests (`petguard incident show` names them)"
        )
        tick.finished.append((request.id, "refused", message))
        tick.log.append(f"{name}: {message}")
        return
    message = (
        f"resend by {request.requested_by} accepted: the stuck evacuation requests of incident {incident_id} are "
        "sent again once Nova's records show no compute took them"
    )
    tick.vouched.append(incident_id)
    tick.finished.append((request.id, "done", message))
    tick.events.append((name, "operator_resend", f"{message}: {request.reason}"))
    tick.log.append(f"{name}: {message}")


def _request_refused(tick: _Tick, request: OperatorRequest, policy: LoopPolicy) -> str | None:
    """Why an operator's fence or evacuate request cannot be taken now, and what to do, or None."""
    if policy.dry_run and request.kind in (RequestKind.FENCE, RequestKind.EVACUATE, RequestKind.RESEND):
        return f"{request.kind.value} refused: [DEFAULT] dry_run = true (nothing is fenced or evacuated)"
    if request.kind is RequestKind.FENCE:
        blocked = _fencing_blocked(tick, policy)
        if blocked is not None:
            return f"fence refused: {blocked}; override the brake or wait, then ask again"
    return None


def _apply_host_request(tick: _Tick, request: OperatorRequest) -> None:
    name = request.host
    if name in tick.inputs.busy:
        return  # an action is running on this host: the request waits for the next tick
    event = _REQUEST_EVENTS[request.kind]
    state = tick.host(name).state
    try:
        tick.move(name, event, f"{request.kind.value} by {request.requested_by}: {request.reason}")
    except InvalidTransition:
        message = f"{request.kind.value} refused: host {name} is {state.value}"
        tick.finished.append((request.id, "refused", message))
        tick.log.append(f"{name}: {message}")
        return
    new_state = tick.host(name).state
    message = f"{request.kind.value} by {request.requested_by} accepted ({state.value} -> {new_state.value})"
    tick.finished.append((request.id, "done", message))
    tick.events.append((name, f"operator_{request.kind.value}", f"{message}: {request.reason}"))
    tick.log.append(f"{name}: {message}")
    if event is HostEvent.MAINTENANCE_ON:
        _close_incident(tick, name, "maintenance")
    if event in (HostEvent.MAINTENANCE_ON, HostEvent.MAINTENANCE_OFF):
        tick.set_health(name, HostHealth())
    if event is HostEvent.OPERATOR_FENCE and tick.host(name).incident_id is None:
        tick.opened.append((name, f"fence requested by {request.requested_by}: {request.reason}"))
    incident_id = tick.host(name).incident_id
    if event is HostEvent.OPERATOR_EVACUATE and incident_id is not None:
        tick.retry_moves.append(incident_id)


def _update_health(
    tick: _Tick,
    services: Iterable[ServiceRecord],
    extra: Iterable[Signal],
    policy: DetectionPolicy,
) -> dict[str, Health]:
    """Assess every watched host; return this tick's combined health of the watched hosts."""
    signals: dict[str, list[Signal]] = {}
    for service in services:
        seen = tick.inputs.heartbeats.get(service.host)
        signals.setdefault(service.host, []).extend(detect.service_signals(service, seen, tick.now, policy))
    for signal in extra:
        signals.setdefault(signal.host, []).append(signal)
    health_now: dict[str, Health] = {}
    for name, record in tick.hosts.items():
        if record.host.state not in WATCHED:
            continue
        found = signals.get(name, ())
        health, detail = detect.combine(found)
        health_now[name] = health
        off_at = None
        if health is Health.DOWN:
            # The BMC's word only on a DOWN tick, and only a reading taken during this down episode.
            readings = detect.power_readings_now(found, record.health, tick.now)
            if readings:
                latest = max(readings, key=lambda s: s.at)
                detail = f"{detail}; {latest.source}: {latest.detail}"
                off_at = latest.at if latest.health is Health.DOWN else None
        tick.set_health(name, detect.assess(record.health, health, detail, policy, tick.now, off_at))
    tick.bad = {name for name, found in signals.items() if any(_says_down(s) for s in found)}
    _note_nova_compute_down(tick, signals, policy)
    return health_now


def _says_down(signal: Signal) -> bool:
    """A source whose DOWN makes the loop read the host's power: not an alert, not a power reading."""
    return signal.health is Health.DOWN and not detect.is_alert(signal) and not detect.is_power_reading(signal)


def _power_reads(tick: _Tick) -> tuple[str, ...]:
    """The hosts whose power the loop reads after this tick: still watched (a host being fenced is
    read by its fence) and called DOWN by some source this tick."""
    return tuple(sorted(n for n in tick.bad if n in tick.hosts and tick.host(n).state in WATCHED))


#: Why an UP host whose nova-compute is down is not fenced, and what to do (the host's reason while it lasts).
NOVA_DOWN_HOST_ALIVE = (
    "nova-compute is down but the host is alive (its petguard agent heartbeats): not fencing; "
    "restart nova-compute on the host and read its log"
)


def _note_nova_compute_down(tick: _Tick, signals: Mapping[str, Sequence[Signal]], policy: DetectionPolicy) -> None:
    """Say once per episode that Nova's service is down while the host's agent heartbeats.

    When Nova reports most hosts down at once (``stale_fraction``), their nova-computes did not all
    die: one cloud-wide event names the control plane instead of one "restart nova-compute" per host.
    """
    alive = {name for name, found in signals.items() if name in tick.hosts and _nova_down_agent_up(found)}
    watched = [name for name, record in tick.hosts.items() if record.host.state in WATCHED]
    nova_down = sum(1 for name in watched if any(_is_nova_down(s) for s in signals.get(name, ())))
    total = len(watched)
    mass = total >= policy.stale_min_hosts and nova_down >= policy.stale_fraction * total
    new = []
    for name in sorted(tick.hosts):
        if tick.host(name).state is not HostState.UP:
            continue
        if name in alive:
            if tick.note_reason(name, NOVA_DOWN_HOST_ALIVE):
                new.append(name)
        elif tick.host(name).reason == NOVA_DOWN_HOST_ALIVE:
            tick.note_reason(name, "")
            tick.log.append(f"{name}: nova-compute is up again, or the host's agent stopped heartbeating")
    if not new:
        return
    if mass:
        message = (
            f"Nova reports nova-compute down on {nova_down} of {total} hosts while their petguard agents "
            "heartbeat: a control-plane problem (RabbitMQ, database, nova-conductor), not host failures; "
            "not fencing: check the control plane"
        )
        tick.events.append((None, "nova_compute_down", message))
        tick.warnings.append(message)
        return
    for name in new:
        tick.events.append((name, "nova_compute_down", NOVA_DOWN_HOST_ALIVE))
        tick.warnings.append(f"{name}: {NOVA_DOWN_HOST_ALIVE}")


def _is_nova_down(signal: Signal) -> bool:
    """Nova's record says the service is down: Nova's own state, or its heartbeat as petguard reads it."""
    return signal.source in (detect.NOVA_SOURCE, detect.HEARTBEAT_SOURCE) and signal.health is Health.DOWN


def _nova_down_agent_up(signals: Sequence[Signal]) -> bool:
    agent_up = any(s.source == detect.AGENT_SOURCE and s.health is Health.UP for s in signals)
    return agent_up and any(_is_nova_down(s) for s in signals)


def _update_brake(tick: _Tick, health_now: Mapping[str, Health], policy: LoopPolicy) -> None:
    verdicts = {name: tick.hosts[name].health.verdict for name in health_now}
    computed = detect.brake(health_now, verdicts, policy.detection)
    tick.mass_failure = computed.engaged
    if not computed.engaged:
        computed = _rate_brake(tick, policy.detection)
    stored = tick.brake
    if computed.engaged and not stored.engaged:
        tick.brake = BrakeState(True, computed.reason, tick.now, stored.override_until)
        tick.brake_changed = True
        message = (
            f"mass-failure brake engaged, nobody will be fenced: {computed.reason}; "
            "next: wait for hosts to recover, or an operator override"
        )
        tick.events.append((None, "brake_engaged", message))
        tick.warnings.append(message)
    elif stored.engaged and not computed.engaged and all(v is Verdict.UP for v in verdicts.values()):
        tick.brake = BrakeState(False, "", None, stored.override_until)
        tick.brake_changed = True
        message = "mass-failure brake released: every watched host is up again"
        tick.events.append((None, "brake_released", message))
        tick.log.append(message)


def _rate_brake(tick: _Tick, policy: DetectionPolicy) -> detect.Brake:
    """The fence rate limit for the hosts this tick would start fencing (``_follow_verdicts``' rule).

    Fences started earlier in this tick (an operator's accepted fence request) count with the journal's.
    """
    to_fence = [name for name in tick.hosts if _due_for_fence(tick, name)]
    started_now = [FenceStart(t.host, t.at) for t in tick.transitions if t.to_state is HostState.FENCING]
    started = [*tick.inputs.recent_fences, *started_now]
    return detect.fence_rate_brake(started, to_fence, len(tick.hosts), policy, tick.now)


def _fencing_blocked(tick: _Tick, policy: LoopPolicy) -> str | None:
    """Why no host may be fenced this tick, or None.

    The text stays the same from tick to tick while the cause lasts (no countdowns in it), so that
    a held host is reported once, not on every tick.
    """
    if tick.now < tick.inputs.started_at + policy.startup_blackout:
        return f"startup blackout ([DEFAULT] startup_blackout = {policy.startup_blackout:.0f} s after petguard started)"
    braked = _brake_holds(tick)
    if braked is not None:
        return braked
    if policy.dry_run:
        return "dry run: would fence now, but [DEFAULT] dry_run = true"
    return None


def _brake_holds(tick: _Tick) -> str | None:
    """Why the mass-failure brake forbids fencing this tick, or None (released or overridden)."""
    overridden = tick.brake.override_until is not None and tick.now < tick.brake.override_until
    if tick.brake.engaged and not overridden:
        return f"mass-failure brake engaged: {tick.brake.reason}"
    return None


def _action_held(tick: _Tick, action: Action, policy: LoopPolicy) -> str | None:
    """Why an action that a stored state asks for (e.g. resumed after a restart) must wait, or None.

    Dry run never fences nor evacuates. The mass-failure brake (guarantee 3) holds every fence, also
    one that a restart or a crashed lane would repeat: in a control-plane outage that host may be
    fine. The fence rate limit alone does not: it stops new fences, and a fence that started within
    the limit is finished (guarantee 4: never abandon a started fence).
    """
    if policy.dry_run and action in (Action.FENCE, Action.EVACUATE):
        return f"dry run: would {action.value} now, but [DEFAULT] dry_run = true"
    if action is Action.FENCE and not _only_rate_limited(tick):
        return _brake_holds(tick)
    return None


def _only_rate_limited(tick: _Tick) -> bool:
    """True when the brake holds for the fence rate limit and no mass failure is seen this tick."""
    return tick.brake.reason.startswith(detect.RATE_LIMIT) and not tick.mass_failure


def _follow_verdicts(tick: _Tick, policy: LoopPolicy) -> None:
    blocked = _fencing_blocked(tick, policy)
    for name in sorted(tick.hosts):
        record = tick.hosts[name]
        state, health = record.host.state, record.health
        if state is HostState.UP and health.verdict is not Verdict.UP:
            reason = f"looks down: {health.describe(tick.now)}"
            tick.move(name, HostEvent.SIGNALS_DOWN, reason)
            tick.opened.append((name, reason))
            if not _brake_speaks(tick):
                tick.events.append((name, "host_suspect", reason))
            grace = policy.detection.grace_period
            tick.log.append(
                f"{name}: suspect, {reason}; next: fence it if still down after the {grace:.0f} s grace period"
            )
        elif state is HostState.SUSPECT and health.verdict is Verdict.UP:
            tick.move(name, HostEvent.SIGNALS_UP, f"recovered: {health.detail}")
            _close_incident(tick, name, "false_alarm")
            if not _brake_speaks(tick):
                tick.events.append((name, "suspect_cleared", f"up again ({health.detail}): a false alarm"))
            tick.log.append(f"{name}: up again ({health.detail}); incident closed as a false alarm")
        elif _due_for_fence(tick, name):
            _start_fence(tick, name, blocked)


def _due_for_fence(tick: _Tick, name: str) -> bool:
    """True for a host this tick fences unless something holds it: SUSPECT, FAILED, no lane running."""
    record = tick.hosts[name]
    state, verdict = record.host.state, record.health.verdict
    return state is HostState.SUSPECT and verdict is Verdict.FAILED and name not in tick.inputs.busy


def _brake_speaks(tick: _Tick) -> bool:
    """True while the brake is (or was, this tick) engaged: its own alert speaks for every host, so
    hosts going suspect or clearing in a mass failure are not one alert each."""
    return tick.brake.engaged or tick.inputs.brake.engaged


def _start_fence(tick: _Tick, name: str, blocked: str | None) -> None:
    health = tick.hosts[name].health
    if blocked is not None:
        reason = f"failed but not fenced: {blocked}"
        if tick.note_reason(name, reason):
            tick.events.append((name, "fence_held", f"{health.describe(tick.now)}: {reason}"))
            tick.log.append(f"{name}: failed ({health.describe(tick.now)}) but not fenced: {blocked}; next: wait")
        return
    tick.move(name, HostEvent.FENCE_STARTED, f"failed: {health.describe(tick.now)}")
    tick.events.append((name, "fence_started", f"failed ({health.describe(tick.now)}): powering it off"))
    tick.log.append(f"{name}: failed ({health.describe(tick.now)}); fencing it now; next: power off and read back OFF")


def _schedule_actions(tick: _Tick, policy: LoopPolicy) -> list[tuple[str, Action]]:
    actions: list[tuple[str, Action]] = []
    for name in sorted(tick.hosts):
        if name in tick.inputs.busy:
            continue
        state = tick.host(name).state
        if state is HostState.FENCED and not policy.dry_run:
            reason = "fence confirmed: forcing the service down, then evacuating its pets"
            tick.move(name, HostEvent.EVACUATION_STARTED, reason)
            tick.events.append((name, "evacuation_started", reason))
            tick.log.append(f"{name}: fenced; next: force the compute service down, disable it, evacuate its pets")
            state = HostState.EVACUATING
        action = ACTION_FOR_STATE.get(state)
        if action is None:
            continue
        held = _action_held(tick, action, policy)
        if held is not None:
            reason = f"{state.value}, but not acting: {held}"
            if tick.note_reason(name, reason):
                tick.events.append((name, f"{action.value}_held", reason))
                tick.log.append(f"{name}: {reason}; next: wait")
            continue
        actions.append((name, action))
    return actions
