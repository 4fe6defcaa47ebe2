"""Fence one host through one device: power off, then prove it by reading the power back.

The procedure between the control loop (which decides *that* a host is fenced) and a driver (which
only talks to its device). Guarantee 1 lives here: a fence is confirmed only by
``policy.off_readings_required`` consecutive OFF readings before the deadline; "the device accepted
power-off" never is. The outcome is a frozen ``FenceOutcome`` whose ``reason`` is written for the
operator; the caller turns an unconfirmed outcome into the next fence level or AWAITING_CONFIRM.

Written against interfaces only: the driver contract (``petguard.fencing.base``), a ``PowerRunner``
(``petguard.fencing.child.FenceRunner`` in production), and ``petguard.clock.Clock`` for every wait
and deadline, so tests drive it with the fake driver and a fake clock. Temporary errors of the
power-off command are retried with tenacity, built per call from the FencePolicy.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

import tenacity

from petguard import errors
from petguard.clock import Clock
from petguard.fencing import base
from petguard.fencing.child import Op

LOG = logging.getLogger(__name__)


class PowerRunner(Protocol):
    """Carries out one driver operation (``petguard.fencing.child.FenceRunner``)."""

    def run(
        self, driver_name: str, device: base.FenceDevice, op: Op, timeout: float
    ) -> base.PowerState | None: ...


@dataclasses.dataclass(frozen=True)
class FencePolicy:
    """How hard to try. Built from ``[fencing]`` options by ``conf.policies``.

    :param attempt_timeout: seconds for one driver call (one power-off or one reading).
    :param deadline: seconds from the start within which the fence must be confirmed.
    :param poll_interval: seconds between power readings.
    :param off_readings_required: consecutive OFF readings that confirm the fence (N).
    :param retries: extra tries of the power-off command after a Temporary error.
    :param resend_after: seconds of ON readings after which power-off is sent again (idempotent).
    """

    attempt_timeout: float = 5.0
    deadline: float = 30.0
    poll_interval: float = 1.0
    off_readings_required: int = 3
    retries: int = 3
    resend_after: float = 5.0

    def __post_init__(self) -> None:
        if self.off_readings_required < 1:
            raise errors.ConfigError("off_readings_required must be at least 1")
        if min(self.attempt_timeout, self.deadline, self.poll_interval) <= 0:
            raise errors.ConfigError("fence timeouts and intervals must be positive")
        if self.retries < 0 or self.resend_after < 0:
            raise errors.ConfigError("fence retries and resend_after must not be negative")


@dataclasses.dataclass(frozen=True)
class FenceOutcome:
    """The result of one fence: only ``confirmed`` lets evacuation start."""

    confirmed: bool
    readings: tuple[base.PowerState, ...]
    attempts: int
    duration_s: float
    reason: str


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


def fence(
    device: base.FenceDevice,
    driver: base.FenceDriver,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
) -> FenceOutcome:
    """Power ``device``'s host off and confirm it with N consecutive OFF readings.

    Never raises for fence failures: every way of not confirming is an outcome with a reason.
    """
    start = clock.monotonic()
    progress = _Progress(started=start, deadline=start + policy.deadline)
    try:
        driver.validate(device)
        _send_power_off(device, runner, policy, clock, progress)
        return _await_off(device, runner, policy, clock, progress)
    except errors.ConfigError as exc:
        return _give_up(
            device, clock, progress, f"the fence device record is invalid: {exc}; fix the inventory"
        )
    except _Stop as stop:
        return _give_up(device, clock, progress, stop.reason)


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


def _await_off(
    device: base.FenceDevice,
    runner: PowerRunner,
    policy: FencePolicy,
    clock: Clock,
    progress: _Progress,
) -> FenceOutcome:
    """Poll until N consecutive OFF readings, or the deadline."""
    while clock.monotonic() < progress.deadline:
        state = _reading(device, runner, policy, clock, progress)
        if progress.consecutive_off >= policy.off_readings_required:
            return _confirmed(device, clock, progress)
        if state is base.PowerState.ON and _resend_due(policy, clock, progress):
            _send_power_off(device, runner, policy, clock, progress)
        clock.sleep(max(0.0, min(policy.poll_interval, progress.deadline - clock.monotonic())))
    return _give_up(device, clock, progress, _deadline_reason(device, policy, progress))


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
