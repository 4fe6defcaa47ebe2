"""Fence one host through its fence levels: power off, then prove it by reading the power back.

The procedure between the control loop (which decides *that* a host is fenced) and a driver (which
only talks to its device). Guarantee 1 lives here: a device is confirmed only by
``policy.off_readings_required`` consecutive OFF readings before the deadline; "the device accepted
power-off" never is.

* ``fence_topology``: the host's levels in order (``FenceTopology``), after the host's ``delay``
  plus a random delay of up to ``policy.random_delay_max`` (against two controllers fencing at
  once). The first confirmed level ends fencing; every failed level is in the outcome with its
  reason; all failing means not confirmed (the caller moves the host to AWAITING_CONFIRM).
* ``fence_level``: one level. Power-off goes to *every* device first, then all are read back until
  each has N consecutive OFF readings (dual power supplies: both outlets must be off), each level
  within its own ``policy.deadline``.
* ``fence``: one device (a level of one).
* ``make_fence``: the ``FenceFn`` the host lanes are given: fence(host) over the inventory's
  topologies (the composition root only wires it).

Outcomes are the contract's frozen values (``base.FenceResult``, ``LevelOutcome``,
``FenceOutcome``) whose ``reason`` is written for the operator.

Written against interfaces only: the driver contract (``petguard.fencing.base``), a ``PowerRunner``
(``petguard.fencing.child.FenceRunner`` in production), and ``petguard.clock.Clock`` for every wait
and deadline, so tests drive it with the fake driver and a fake clock. Temporary errors of the
power-off command are retried with tenacity, built per call from the FencePolicy.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import tenacity

from petguard import errors
from petguard.clock import Clock
from petguard.fencing import base
from petguard.fencing.base import FenceFn, FenceOutcome, FenceResult, LevelOutcome, Op

LOG = logging.getLogger(__name__)


class PowerRunner(Protocol):
    """Carries out one driver operation (``petguard.fencing.child.FenceRunner``)."""

    def run(
        self, driver_name: str, device: base.FenceDevice, op: Op, timeout: float
    ) -> base.PowerState | None: ...


#: The fewest consecutive OFF readings that may confirm a device (guarantee 1): never one.
MIN_OFF_READINGS = 2


@dataclasses.dataclass(frozen=True)
class FencePolicy:
    """How hard to try. Built from ``[fencing]`` options by ``conf.policies``.

    :param attempt_timeout: seconds for one driver call (one power-off or one reading).
    :param deadline: seconds from the start within which the fence must be confirmed.
    :param poll_interval: seconds between power readings (after one ends, before the next starts):
        with N, what spans the time a BMC must keep saying OFF (docs/fencing.md, "How fast, and
        why it is safe").
    :param off_readings_required: consecutive OFF readings that confirm the fence (N, at least
        ``MIN_OFF_READINGS``).
    :param retries: extra tries of the power-off command after a Temporary error.
    :param resend_after: seconds of ON readings after which power-off is sent again (idempotent).
    :param random_delay_max: up to this many seconds (uniformly random) are waited before the first
        level, on top of the host's own delay, so that two controllers do not fence at once.
    """

    attempt_timeout: float = 5.0
    deadline: float = 30.0
    poll_interval: float = 0.5
    off_readings_required: int = 2
    retries: int = 3
    resend_after: float = 5.0
    random_delay_max: float = 0.0

    def __post_init__(self) -> None:
        if self.off_readings_required < MIN_OFF_READINGS:
            raise errors.ConfigError(
                f"off_readings_required must be at least {MIN_OFF_READINGS}: one OFF reading can be a "
                "single glitch (a flapping or mislabelled reply); only consecutive ones confirm"
            )
        if min(self.attempt_timeout, self.deadline, self.poll_interval) <= 0:
            raise errors.ConfigError("fence timeouts and intervals must be positive")
        if self.retries < 0 or self.resend_after < 0 or self.random_delay_max < 0:
            raise errors.ConfigError("fence retries, resend_after and random_delay_max must not be negative")


#: Draws the random part of the pre-fence delay: maximum → seconds (a seam for tests).
DelayDraw = Callable[[float], float]


def random_delay(maximum: float) -> float:
    """Uniform in [0, maximum]: spreads out controllers, not a secret (no CSPRNG needed)."""
    return random.uniform(0.0, maximum) if maximum > 0 else 0.0


@dataclasses.dataclass
class _Progress:
    """Mutable bookkeeping of one fence call (private; the outcome is the frozen value)."""

    started: float
    deadline: float
    readings: list[base.PowerState] = dataclasses.field(default_factory=list)
    attempts: int = 0
    consecutive_off: int = 0
    off_accepted: bool = False
    last_off_sent: float | None = None
    last_error: errors.PetguardError | None = None


class _Stop(Exception):
    """Ends the fence early with a final reason (auth or permanent device error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fence_topology(
    topology: base.FenceTopology,
    lookup: Callable[[str], base.FenceDriver],
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
    draw: DelayDraw = random_delay,
) -> FenceResult:
    """Fence ``topology.host`` level by level until one level is confirmed.

    Never raises for fence failures: every way of not confirming is an outcome with a reason.
    """
    start = clock.monotonic()
    delay = topology.delay + draw(policy.random_delay_max)
    if delay > 0:
        LOG.info("fence %s: waiting %.1f s before the first fence level (fence-race delay)", topology.host, delay)
        clock.sleep(delay)
    done: list[LevelOutcome] = []
    for number, devices in enumerate(topology.levels, start=1):
        level = fence_level(number, devices, lookup, runner, policy, clock)
        done.append(level)
        if level.confirmed:
            break
        LOG.warning(
            "fence %s: level %d of %d failed: %s; next: %s",
            topology.host,
            number,
            len(topology.levels),
            level.reason,
            f"level {number + 1}" if number < len(topology.levels) else "wait for an operator's confirm-fenced",
        )
    return _topology_outcome(topology, tuple(done), delay, clock.monotonic() - start)


def _topology_outcome(
    topology: base.FenceTopology, levels: tuple[LevelOutcome, ...], delay: float, duration: float
) -> FenceResult:
    last = levels[-1] if levels else None
    if last is not None and last.confirmed:
        failed = len(levels) - 1
        after = f" (after {failed} failed level(s))" if failed else ""
        reason = f"fence level {last.level} of {len(topology.levels)}{after}: {last.reason}"
        return FenceResult(topology.host, True, reason, levels, delay, duration)
    if not levels:
        reason = f"host {topology.host} has no fence level in the inventory; add bmc: or levels:"
    else:
        reason = f"every fence level failed ({len(levels)}): " + "; ".join(
            f"level {lv.level}: {lv.reason}" for lv in levels
        )
    return FenceResult(topology.host, False, reason, levels, delay, duration)


def make_fence(
    topologies: Mapping[str, base.FenceTopology | base.FenceDevice],
    runner: PowerRunner,
    lookup: Callable[[str], base.FenceDriver],
    policy: FencePolicy,
    clock: Clock,
    where: str = "the inventory",
) -> FenceFn:
    """fence(host) -> FenceResult over the inventory's fence levels, the drivers and the procedure
    (a bare FenceDevice is a host with one level of one device; ``where`` names the inventory in
    the reason of a host that has none)."""

    def fence(host: str) -> FenceResult:
        entry = topologies.get(host)
        if entry is None:
            return FenceResult(host, False, f"no fence device for {host} in {where}")
        topology = entry if isinstance(entry, base.FenceTopology) else base.FenceTopology.single(entry)
        return fence_topology(topology, lookup, runner, policy, clock)

    return fence


def fence_level(
    number: int,
    devices: Sequence[base.FenceDevice],
    lookup: Callable[[str], base.FenceDriver],
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
) -> LevelOutcome:
    """Power every device of one level off, then read them all back until each is confirmed."""
    start = clock.monotonic()
    members = [_Member(device, _Progress(started=start, deadline=start + policy.deadline)) for device in devices]
    try:
        for member in members:
            _on(member, functools.partial(_prepare, member, lookup))
        for member in members:
            _on(member, functools.partial(_send_power_off, member.device, runner, policy, clock, member.progress))
        _await_all_off(members, runner, policy, clock)
    except _LevelFailed:
        for member in members:
            if member.reason is None:
                member.reason = "not confirmed: another device of this level failed, so this level cannot"
    return _level_outcome(number, members, clock, start)


class _LevelFailed(Exception):
    """One device of the level failed for good (its reason is set): the level cannot confirm."""


@dataclasses.dataclass
class _Member:
    """One device of a level being fenced (private bookkeeping)."""

    device: base.FenceDevice
    progress: _Progress
    reason: str | None = None


def _on(member: _Member, action: Callable[[], object]) -> None:
    """Run one step for ``member``; a final failure becomes its reason and ends the level."""
    try:
        action()
    except errors.ConfigError as exc:
        member.reason = f"the fence device record is invalid: {exc}; fix the inventory"
        raise _LevelFailed from exc
    except errors.DriverLoadError as exc:
        member.reason = f"{exc}; fix [fencing] enabled_drivers or the inventory"
        raise _LevelFailed from exc
    except _Stop as stop:
        member.reason = stop.reason
        raise _LevelFailed from stop


def _prepare(member: _Member, lookup: Callable[[str], base.FenceDriver]) -> None:
    """Load and validate the member's driver offline, before any device is powered off."""
    _driver(member.device, lookup).validate(member.device)


def _driver(device: base.FenceDevice, lookup: Callable[[str], base.FenceDriver]) -> base.FenceDriver:
    try:
        return lookup(device.driver)
    except errors.PetguardError as exc:
        raise errors.DriverLoadError(
            f"fence driver of {device.describe()} cannot be loaded: {exc}", host=device.host, driver=device.driver
        ) from exc


def _await_all_off(members: list[_Member], runner: PowerRunner, policy: FencePolicy, clock: Clock) -> None:
    """Poll every unconfirmed device until each has N consecutive OFF readings, or the deadline."""
    deadline = members[0].progress.deadline
    needed = policy.off_readings_required
    while clock.monotonic() < deadline:
        for member in members:
            if member.progress.consecutive_off >= needed:
                continue
            _on(member, functools.partial(_poll_once, member, runner, policy, clock))
        if all(m.progress.consecutive_off >= needed for m in members):
            return
        clock.sleep(max(0.0, min(policy.poll_interval, deadline - clock.monotonic())))
    for member in members:
        if member.progress.consecutive_off < needed:
            member.reason = _deadline_reason(member.device, policy, member.progress)


def _poll_once(member: _Member, runner: PowerRunner, policy: FencePolicy, clock: Clock) -> None:
    """One reading of one device; power-off again if it still reads ON after ``resend_after``."""
    progress = member.progress
    state = _reading(member.device, runner, policy, clock, progress)
    needed = policy.off_readings_required
    if state is base.PowerState.ON and progress.consecutive_off < needed and _resend_due(policy, clock, progress):
        _send_power_off(member.device, runner, policy, clock, progress)


def _level_outcome(number: int, members: list[_Member], clock: Clock, start: float) -> LevelOutcome:
    outcomes = tuple(
        _confirmed(m.device, clock, m.progress) if m.reason is None else _give_up(m.device, clock, m.progress, m.reason)
        for m in members
    )
    duration = clock.monotonic() - start
    if all(o.confirmed for o in outcomes):
        reason = outcomes[0].reason if len(outcomes) == 1 else (
            f"all {len(outcomes)} devices read back OFF: "
            + "; ".join(f"{m.device.describe()}: {o.reason}" for m, o in zip(members, outcomes, strict=True))
        )
        return LevelOutcome(number, True, outcomes, duration, reason)
    failed = [(m, o) for m, o in zip(members, outcomes, strict=True) if not o.confirmed]
    if len(outcomes) == 1:
        reason = f"{members[0].device.describe()}: {outcomes[0].reason}"
    else:
        reason = f"{len(failed)} of {len(outcomes)} devices not confirmed: " + "; ".join(
            f"{m.device.describe()}: {o.reason}" for m, o in failed
        )
    return LevelOutcome(number, False, outcomes, duration, reason)


def fence(
    device: base.FenceDevice,
    driver: base.FenceDriver,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
) -> FenceOutcome:
    """Power ``device``'s host off and confirm it with N consecutive OFF readings (a level of one).

    Never raises for fence failures: every way of not confirming is an outcome with a reason.
    """
    level = fence_level(1, [device], lambda name: driver, runner, policy, clock)
    return level.devices[0]


def read_power(
    device: base.FenceDevice, driver: base.FenceDriver, runner: PowerRunner, timeout: float
) -> base.PowerState:
    """Read the power state once, read-only (``petguard-manage config check``).

    :raises petguard.errors.ConfigError: the record fails the driver's offline validation.
    :raises petguard.errors.BmcUnreachable, BmcAuthError, FencingError: as the driver.
    """
    driver.validate(device)
    return _read(device, runner, timeout)


def _read(device: base.FenceDevice, runner: PowerRunner, timeout: float) -> base.PowerState:
    state = runner.run(device.driver, device, Op.POWER_STATE, timeout)
    return state if state is not None else base.PowerState.UNKNOWN


def _send_power_off(
    device: base.FenceDevice,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
    progress: _Progress,
) -> None:
    """Send power-off, retrying Temporary errors; a final Temporary error is noted, not fatal:
    the readings that follow may still show the host off (the command may have landed)."""
    try:
        for attempt in _retrying(policy, clock, progress):
            with attempt:
                _power_off_once(device, runner, policy, clock, progress)
    except errors.Temporary as exc:
        progress.last_error = exc
        LOG.info(
            "fence %s: power-off not accepted after %d attempt(s) (%s); reading the power "
            "state anyway until the deadline",
            device.describe(),
            progress.attempts,
            exc,
        )
    except errors.PetguardError as exc:
        raise _Stop(_refusal_reason(device, "power-off", exc)) from exc


def _power_off_once(
    device: base.FenceDevice,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
    progress: _Progress,
) -> None:
    progress.attempts += 1
    progress.last_off_sent = clock.monotonic()
    runner.run(device.driver, device, Op.POWER_OFF, _budget(policy, clock, progress))
    progress.off_accepted = True
    LOG.info(
        "fence %s: power-off sent and accepted (attempt %d); not yet confirmation, reading "
        "the power state back",
        device.describe(),
        progress.attempts,
    )


class _StopAtDeadline(tenacity.stop.stop_base):
    """tenacity stop condition on the injected clock (tenacity's own uses the real clock)."""

    def __init__(self, clock: Clock, deadline: float) -> None:
        self._clock = clock
        self._deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._clock.monotonic() >= self._deadline


def _retrying(policy: FencePolicy, clock: Clock, progress: _Progress) -> tenacity.Retrying:
    """Retry policy for power-off, built per call from the FencePolicy (never at import)."""

    def suggested_delay(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = exc.delay if isinstance(exc, errors.Temporary) else policy.poll_interval
        return max(0.0, min(delay, progress.deadline - clock.monotonic()))

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(errors.Temporary),
        stop=tenacity.stop_any(
            tenacity.stop_after_attempt(policy.retries + 1),
            _StopAtDeadline(clock, progress.deadline),
        ),
        wait=suggested_delay,
        sleep=clock.sleep,
        reraise=True,
    )


def _reading(
    device: base.FenceDevice,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
    progress: _Progress,
) -> base.PowerState:
    """One reading; a Temporary error counts as UNKNOWN (and breaks the OFF streak)."""
    try:
        state = _read(device, runner, _budget(policy, clock, progress))
        progress.last_error = None
    except errors.Temporary as exc:
        progress.last_error = exc
        state = base.PowerState.UNKNOWN
    except errors.PetguardError as exc:
        raise _Stop(_refusal_reason(device, "power-state reading", exc)) from exc
    progress.readings.append(state)
    # Only an unbroken run of OFF counts: POWERING_OFF, UNKNOWN and ON all reset it.
    progress.consecutive_off = progress.consecutive_off + 1 if state is base.PowerState.OFF else 0
    LOG.info(
        "fence %s: power reads %s (%d of %d consecutive OFF needed)",
        device.describe(),
        state,
        progress.consecutive_off,
        policy.off_readings_required,
    )
    return state


def _resend_due(policy: FencePolicy, clock: Clock, progress: _Progress) -> bool:
    last = progress.last_off_sent
    return last is None or clock.monotonic() - last >= policy.resend_after


def _budget(policy: FencePolicy, clock: Clock, progress: _Progress) -> float:
    """Time for one driver call: the attempt timeout, but never past the deadline."""
    remaining = progress.deadline - clock.monotonic()
    return max(0.1, min(policy.attempt_timeout, remaining))


def _refusal_reason(device: base.FenceDevice, action: str, exc: errors.PetguardError) -> str:
    if isinstance(exc, errors.BmcAuthError):
        return (
            f"{action} failed: the BMC of {device.host} refused the credentials ({exc}); "
            "not fenced: fix username/password in the inventory, then fence again or "
            "confirm-fenced by hand"
        )
    return (
        f"{action} failed: {type(exc).__name__}: {exc}; not fenced: escalating to the next "
        "fence level or to an operator"
    )


def _deadline_reason(device: base.FenceDevice, policy: FencePolicy, progress: _Progress) -> str:
    last = progress.readings[-1] if progress.readings else None
    waited = f"{policy.deadline:g} s"
    if not progress.off_accepted and progress.last_error is not None:
        return (
            f"the BMC of {device.host} never accepted power-off within {waited} "
            f"({progress.last_error}); not fenced: check that the BMC is reachable"
        )
    if last is base.PowerState.ON:
        return (
            f"BMC accepted power-off but still reports ON after {waited}; not fenced: the "
            "host may still be running, do not evacuate before it is confirmed off"
        )
    if last is base.PowerState.POWERING_OFF:
        return f"BMC still reports POWERING_OFF after {waited}; not fenced"
    if last is base.PowerState.OFF:
        return (
            f"only {progress.consecutive_off} of {policy.off_readings_required} consecutive "
            f"OFF readings before the {waited} deadline; not fenced"
        )
    detail = f" ({progress.last_error})" if progress.last_error is not None else ""
    return (
        f"the power state of {device.host} could not be read after power-off within "
        f"{waited}{detail}; not fenced"
    )


def _confirmed(device: base.FenceDevice, clock: Clock, progress: _Progress) -> FenceOutcome:
    duration = clock.monotonic() - progress.started
    reason = (
        f"power read back OFF {progress.consecutive_off} times in a row, {duration:.1f} s "
        "after power-off was sent; host is fenced, evacuation may start"
    )
    LOG.info("fence %s: confirmed: %s", device.describe(), reason)
    return _outcome(True, progress, duration, reason)


def _give_up(
    device: base.FenceDevice, clock: Clock, progress: _Progress, reason: str
) -> FenceOutcome:
    duration = clock.monotonic() - progress.started
    LOG.info("fence %s: gave up after %.1f s: %s", device.describe(), duration, reason)
    return _outcome(False, progress, duration, reason)


def _outcome(confirmed: bool, progress: _Progress, duration: float, reason: str) -> FenceOutcome:
    return FenceOutcome(
        confirmed=confirmed,
        readings=tuple(progress.readings),
        attempts=progress.attempts,
        duration_s=duration,
        reason=reason,
    )
