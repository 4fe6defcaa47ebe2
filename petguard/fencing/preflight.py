"""Fence readiness: read every fence device's power state, read-only, before a host needs fencing.

Operators should learn that fencing is broken (a changed BMC password, a dead PDU, a Redfish
system path that moved) while the host is still healthy, not during an incident. ``Readiness``
walks every device of every level of every host, one at a time, spread evenly over
``interval`` seconds (one device every interval/N seconds, so a cloud of 500 BMCs is never polled
in a burst), through the same runner as fencing (child processes with a hard deadline for IPMI and
Redfish). It never powers anything off: only ``power_state`` is called.

It keeps the last result per (host, level, device): ready with the power state read, or not ready
with the error text (error messages never contain a secret; the password is masked again here as
defence in depth). It records an event only when a device's readiness *changes*, so alerts flow
through the webhook outbox without repeating every cycle:

* ``fence_device_unreachable`` when a device becomes not ready (also on its first check);
* ``fence_device_ok`` when a device that was not ready is readable again.

``snapshot()`` is ``status``'s ``fence_readiness`` (host → ``ok``, ``unknown`` or why not);
``gauge_rows()`` feeds ``petguard_fence_device_ready{host,level,device}`` (1 ready, 0 not).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping

from petguard import errors, secrets
from petguard.clock import Clock
from petguard.duty import DutyThread
from petguard.fencing import base
from petguard.fencing.procedure import PowerRunner, read_power

LOG = logging.getLogger(__name__)

UNREACHABLE_EVENT = "fence_device_unreachable"
OK_EVENT = "fence_device_ok"

#: record_event(host, incident_id, kind, message, at): ``Store.record_event``.
RecordEvent = Callable[[str | None, int | None, str, str, float], None]
#: (host, level, device number): one device of one level of one host, numbers counted from 1.
Key = tuple[str, int, int]


@dataclasses.dataclass(frozen=True)
class DeviceReadiness:
    """The last check of one fence device."""

    host: str
    level: int
    device: int
    describe: str
    ready: bool
    power: base.PowerState | None
    error: str | None
    checked_at: float

    @property
    def key(self) -> Key:
        return (self.host, self.level, self.device)

    def summary(self) -> str:
        """One line for an operator (no secret)."""
        where = f"level {self.level} device {self.device} ({self.describe})"
        if self.ready:
            return f"{where}: ok, power {self.power}"
        return f"{where}: {self.error}"


@dataclasses.dataclass(frozen=True)
class _Target:
    host: str
    level: int
    device_no: int
    device: base.FenceDevice

    @property
    def key(self) -> Key:
        return (self.host, self.level, self.device_no)


def targets_of(topologies: Mapping[str, base.FenceTopology]) -> list[_Target]:
    """Every device of every level of every host, in a stable order (host, level, device)."""
    return [
        _Target(host, level, number, device)
        for host, topology in sorted(topologies.items())
        for level, number, device in topology.devices()
    ]


class Readiness(DutyThread):
    """Reads every fence device in turn, remembers the results, reports changes as events.

    :param topologies: the inventory (host → fence levels).
    :param lookup: driver name → driver (as for fencing).
    :param runner: carries out ``power_state`` (``petguard.fencing.child.FenceRunner``).
    :param clock: time and the sleeps between devices.
    :param record_event: where changes go (``Store.record_event``: events feed the webhooks).
    :param interval: seconds in which every device is read once.
    :param timeout: seconds for one reading (``[fencing] attempt_timeout``).
    :param stop: ends the thread; pass the daemon's stop event, the one its ``SystemClock`` wakes
        from sleeps on, so SIGTERM is not delayed by a wait between two devices.
    """

    thread_name = "fence-readiness"

    def __init__(
        self,
        topologies: Mapping[str, base.FenceTopology],
        lookup: Callable[[str], base.FenceDriver],
        runner: PowerRunner,
        clock: Clock,
        record_event: RecordEvent,
        *,
        interval: float = 300.0,
        timeout: float = 5.0,
        stop: threading.Event | None = None,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise errors.ConfigError("readiness interval and timeout must be positive")
        self._targets = targets_of(topologies)
        self._hosts = sorted(topologies)
        self._lookup = lookup
        self._runner = runner
        self._clock = clock
        self._record_event = record_event
        self._interval = interval
        self._timeout = timeout
        self._results: dict[Key, DeviceReadiness] = {}
        self._lock = threading.Lock()
        super().__init__(stop)

    def set_topologies(self, topologies: Mapping[str, base.FenceTopology]) -> None:
        """Check a new inventory from the next device on (a reload); results of devices gone are dropped."""
        targets = targets_of(topologies)
        keys = {target.key for target in targets}
        with self._lock:
            self._targets, self._hosts = targets, sorted(topologies)
            self._results = {k: v for k, v in self._results.items() if k in keys}

    # -- the thread (DutyThread runs _run) -------------------------------------------------------
    def _run(self) -> None:
        self.run()

    def run(self) -> None:
        """Cycle until stopped; a failure of one cycle is logged, never the end of the thread."""
        LOG.info(
            "fence readiness: %d device(s) of %d host(s), each read every %.0f s",
            len(self._targets),
            len(self._hosts),
            self._interval,
        )
        while not self._stop.is_set():
            try:
                self.run_cycle()
            except Exception:
                LOG.exception("fence readiness: a cycle failed; next: start the next one")
                self._sleep(self._interval)
            if not self._targets:
                self._sleep(self._interval)

    def run_cycle(self) -> list[DeviceReadiness]:
        """Read every device once, one every interval/N seconds (the first at once)."""
        targets, step = self._targets, self.step
        start = self._clock.monotonic()
        done: list[DeviceReadiness] = []
        for index, target in enumerate(targets):
            if self._stop.is_set():
                break
            self._sleep(start + index * step - self._clock.monotonic())
            done.append(self.check(target))
        self._sleep(start + len(targets) * step - self._clock.monotonic())
        return done

    @property
    def step(self) -> float:
        """Seconds between two readings."""
        return self._interval / max(1, len(self._targets))

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stop.is_set():
            self._clock.sleep(seconds)

    # -- one device ------------------------------------------------------------------------------
    def check(self, target: _Target) -> DeviceReadiness:
        """Read one device's power state once, remember it, record an event if its readiness changed."""
        device = target.device
        power: base.PowerState | None = None
        error: str | None = None
        try:
            driver = self._lookup(device.driver)
            power = read_power(device, driver, self._runner, self._timeout)
        except errors.PetguardError as exc:
            error = secrets.text(f"{type(exc).__name__}: {exc.message}", *device.secrets())
        except Exception as exc:  # noqa: BLE001 - a driver bug must not stop readiness of the others
            error = f"unexpected {type(exc).__name__} while reading the power state"
        now = self._clock.now()
        result = DeviceReadiness(
            target.host, target.level, target.device_no, device.describe(), error is None, power, error, now
        )
        with self._lock:
            before = self._results.get(target.key)
            self._results[target.key] = result
        self._report_change(before, result)
        return result

    def _report_change(self, before: DeviceReadiness | None, after: DeviceReadiness) -> None:
        if after.ready and before is not None and not before.ready:
            message = f"{after.summary()}; fencing through this device works again"
            self._record(after, OK_EVENT, message)
            LOG.info("fence readiness: %s: %s", after.host, message)
        elif not after.ready and (before is None or before.ready):
            message = (
                f"{after.summary()}; next: fix it before {after.host} needs fencing, "
                "then `petguard-manage config check` reads it again"
            )
            self._record(after, UNREACHABLE_EVENT, message)
            LOG.warning("fence readiness: %s: %s", after.host, message)
        else:
            LOG.debug("fence readiness: %s: %s", after.host, after.summary())

    def _record(self, result: DeviceReadiness, kind: str, message: str) -> None:
        try:
            self._record_event(result.host, None, kind, message, result.checked_at)
        except errors.PetguardError as exc:
            LOG.warning("fence readiness: cannot record %s for %s: %s", kind, result.host, exc)

    # -- what others read ------------------------------------------------------------------------
    def results(self) -> list[DeviceReadiness]:
        """The last result of every device checked so far, in (host, level, device) order."""
        with self._lock:
            return [self._results[k] for k in sorted(self._results)]

    def snapshot(self) -> dict[str, str]:
        """host → ``ok`` (every device ready), ``unknown`` (not all read yet) or what is wrong."""
        by_host: dict[str, list[DeviceReadiness]] = {host: [] for host in self._hosts}
        for result in self.results():
            by_host.setdefault(result.host, []).append(result)
        expected = {host: 0 for host in self._hosts}
        for target in self._targets:
            expected[target.host] += 1
        return {host: _host_summary(found, expected.get(host, 0)) for host, found in by_host.items()}

    def gauge_rows(self) -> Iterator[tuple[str, str, str, bool]]:
        """(host, level, device, ready) for ``petguard_fence_device_ready``; devices never read are left out."""
        for result in self.results():
            yield result.host, str(result.level), str(result.device), result.ready


def _host_summary(found: list[DeviceReadiness], expected: int) -> str:
    broken = [r for r in found if not r.ready]
    if broken:
        return "; ".join(r.summary() for r in broken)
    if not found or len(found) < expected:
        return "unknown"
    return "ok"
