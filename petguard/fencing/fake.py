"""FakeDriver: an in-memory fence device with scripted behaviours (entry point ``fake``).

For unit and functional tests, devstack and dry runs. Power states live in a process-wide
``REGISTRY`` keyed by (address, port), so two FenceDevice records naming the same address share one
fake BMC, as they would share a real one. ``isolate`` is False: the runner calls it in-process,
because a child process would not share the registry.

A behaviour comes from ``REGISTRY.script(...)`` (tests) or from the device's options
(``fake_behaviour``, ``fake_n``, ``fake_power``; inventories for dry runs) the first time an address
is seen:

==========================  ==================================================================
normal                      power_off turns the host OFF; readings tell the truth
stuck_on                    power_off is accepted but the host keeps reporting ON
unreachable                 every call raises BmcUnreachable
auth_fails                  every call raises BmcAuthError
powering_off_for_n_reads    after power_off, the next n readings say POWERING_OFF, then OFF
unreachable_for_n_calls     the first n calls raise BmcUnreachable, then behaves normally
refuses_off                 power_off raises FencingError (the device refused the command)
==========================  ==================================================================

``REGISTRY.queue_readings(...)`` forces the next readings regardless of the behaviour (flapping).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import threading
from collections.abc import Iterable
from typing import ClassVar

from petguard import errors
from petguard.fencing import base


class Behaviour(enum.StrEnum):
    """Scripted behaviours of a fake BMC (see the module docstring)."""

    NORMAL = "normal"
    STUCK_ON = "stuck_on"
    UNREACHABLE = "unreachable"
    AUTH_FAILS = "auth_fails"
    POWERING_OFF_FOR_N_READS = "powering_off_for_n_reads"
    UNREACHABLE_FOR_N_CALLS = "unreachable_for_n_calls"
    REFUSES_OFF = "refuses_off"


@dataclasses.dataclass
class FakeBmc:
    """The mutable state of one fake BMC. Tests may inspect ``calls``."""

    power: base.PowerState = base.PowerState.ON
    behaviour: Behaviour = Behaviour.NORMAL
    n: int = 0
    readings: collections.deque[base.PowerState] = dataclasses.field(
        default_factory=collections.deque
    )
    calls: list[str] = dataclasses.field(default_factory=list)
    pending_off_reads: int = 0


class FakeRegistry:
    """Process-wide fake BMCs keyed by (address, port); thread-safe."""

    def __init__(self) -> None:
        self._bmcs: dict[tuple[str, int], FakeBmc] = {}
        self._lock = threading.RLock()

    def script(
        self,
        address: str,
        port: int,
        behaviour: Behaviour | str = Behaviour.NORMAL,
        *,
        power: base.PowerState = base.PowerState.ON,
        n: int = 0,
    ) -> FakeBmc:
        """Create (or replace) the fake BMC at (address, port) with a behaviour."""
        with self._lock:
            bmc = FakeBmc(power=power, behaviour=Behaviour(behaviour), n=n)
            self._bmcs[(address, port)] = bmc
            return bmc

    def queue_readings(self, address: str, port: int, readings: Iterable[base.PowerState]) -> None:
        """Force the next power_state answers, in order, before the behaviour applies again."""
        with self._lock:
            self._bmcs.setdefault((address, port), FakeBmc()).readings.extend(readings)

    def get(self, device: base.FenceDevice) -> FakeBmc:
        """The fake BMC of ``device``, created from its ``fake_*`` options on first use."""
        with self._lock:
            key = (device.address, device.port)
            if key not in self._bmcs:
                self._bmcs[key] = _from_options(device)
            return self._bmcs[key]

    def reset(self) -> None:
        """Forget every fake BMC (tests call this between cases)."""
        with self._lock:
            self._bmcs.clear()

    @property
    def lock(self) -> threading.RLock:
        return self._lock


REGISTRY = FakeRegistry()


def _from_options(device: base.FenceDevice) -> FakeBmc:
    options = device.options
    return FakeBmc(
        power=base.PowerState(options.get("fake_power", base.PowerState.ON)),
        behaviour=Behaviour(options.get("fake_behaviour", Behaviour.NORMAL)),
        n=int(options.get("fake_n", "0")),
    )


class FakeDriver(base.FenceDriver):
    """In-memory fence driver; see the module docstring for its behaviours."""

    isolate: ClassVar[bool] = False

    def __init__(self, registry: FakeRegistry | None = None) -> None:
        self._registry = registry or REGISTRY

    def validate(self, device: base.FenceDevice) -> None:
        """Only the fake's own options are checked; addresses are free-form here."""
        try:
            _from_options(device)
        except ValueError as exc:
            raise errors.ConfigError(
                f"fake fence device of host {device.host} has a bad fake_* option: {exc}",
                host=device.host,
                driver=device.driver,
            ) from exc

    def power_state(self, device: base.FenceDevice, timeout: float) -> base.PowerState:
        with self._registry.lock:
            bmc = self._registry.get(device)
            bmc.calls.append("power_state")
            _raise_scripted_failure(bmc, device)
            if bmc.readings:
                return bmc.readings.popleft()
            if bmc.pending_off_reads > 0:
                bmc.pending_off_reads -= 1
                return base.PowerState.POWERING_OFF
            return bmc.power

    def power_off(self, device: base.FenceDevice, timeout: float) -> None:
        with self._registry.lock:
            bmc = self._registry.get(device)
            bmc.calls.append("power_off")
            _raise_scripted_failure(bmc, device)
            if bmc.behaviour is Behaviour.REFUSES_OFF:
                raise errors.FencingError(
                    f"fake BMC {device.describe()} refused power-off",
                    host=device.host,
                    driver=device.driver,
                )
            if bmc.behaviour is Behaviour.STUCK_ON:
                return  # accepted, never carried out
            if bmc.behaviour is Behaviour.POWERING_OFF_FOR_N_READS and bmc.power is not (
                base.PowerState.OFF
            ):
                bmc.pending_off_reads = bmc.n
            bmc.power = base.PowerState.OFF


def _raise_scripted_failure(bmc: FakeBmc, device: base.FenceDevice) -> None:
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    if bmc.behaviour is Behaviour.AUTH_FAILS:
        raise errors.BmcAuthError(
            f"fake BMC {device.describe()} refused the credentials", **context
        )
    if bmc.behaviour is Behaviour.UNREACHABLE:
        raise errors.BmcUnreachable(
            f"fake BMC {device.describe()} did not answer", delay=1.0, **context
        )
    if bmc.behaviour is Behaviour.UNREACHABLE_FOR_N_CALLS and bmc.n > 0:
        bmc.n -= 1
        raise errors.BmcUnreachable(
            f"fake BMC {device.describe()} did not answer", delay=1.0, **context
        )
