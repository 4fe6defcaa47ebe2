"""The BMC as a detection signal: read a host's power, read-only, as soon as its evidence turns bad.

The loop asks (``request``) after each tick for the hosts that ``decide`` lists in ``power_reads``
(watched hosts that some source calls DOWN). ``PowerWatch`` reads each one's power through its fence
devices, in a worker thread of its own so that no tick ever waits for a BMC, and keeps the latest
``detect.PowerReading`` per host for the next ticks (``readings``) and for ``petguard explain``
(``describe``). What a reading means for detection is ``petguard.detect``'s business (``bmc_signal``).

* **Read-only.** Only ``Op.POWER_STATE`` is ever run (``procedure.read_power``, the path of
  ``petguard-manage config check``), never a power command: detection does not fence.
* **Isolated and bounded.** Through the same ``PowerRunner`` as fencing (a child process with a hard
  deadline for IPMI and Redfish). A host's reading gets ``timeout`` seconds in all, over all its
  devices; each device call gets what is left of it (at least ``MIN_CALL``).
* **Rate-limited per host.** At most one reading of a host in flight (queued or running), and a new one
  starts no sooner than ``min_interval`` seconds after the previous one started; at most ``workers``
  hosts are read at once (a mass failure queues the rest; the brake decides on them anyway).
* **What counts as OFF.** Levels in order: a level whose every device reads OFF makes the host OFF (dual
  power supplies: both outlets); a device that reads ON or POWERING_OFF makes it ON; a level that cannot
  be read entirely (an error, a timeout, an UNKNOWN) gives way to the next level; when none answers, the
  host is UNREADABLE with every reason. Never OFF on a guess: an error is never a reading.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from petguard import errors, secrets
from petguard.clock import Clock
from petguard.detect import Power, PowerReading
from petguard.fencing import base
from petguard.fencing.procedure import PowerRunner, read_power

LOG = logging.getLogger(__name__)

#: The shortest time given to one device call (seconds), also when the host's budget is nearly spent.
MIN_CALL = 0.1

#: Submits work to run in a worker (``ThreadPoolExecutor.submit``; a seam for tests).
Submit = Callable[[Callable[[], None]], object]


@dataclasses.dataclass(frozen=True)
class WatchPolicy:
    """How the BMC signal reads: built from ``[detection] bmc_*`` by ``petguard.conf.policies``."""

    enabled: bool = True
    #: seconds for one host's reading, over all its devices
    timeout: float = 5.0
    #: seconds between the starts of two readings of the same host
    min_interval: float = 5.0
    #: hosts read at once
    workers: int = 4

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.min_interval < 0 or self.workers < 1:
            raise errors.ConfigError("bmc_read_timeout must be positive, bmc_read_min_interval not negative")


@dataclasses.dataclass
class _HostWatch:
    in_flight: bool = False
    last_started: float | None = None
    latest: PowerReading | None = None


class PowerWatch:
    """Reads hosts' power on request, at most one reading per host in flight, never blocking the caller."""

    def __init__(
        self,
        topologies: Mapping[str, base.FenceTopology | base.FenceDevice],
        lookup: Callable[[str], base.FenceDriver],
        runner: PowerRunner,
        clock: Clock,
        policy: WatchPolicy | None = None,
        submit: Submit | None = None,
    ) -> None:
        self._topologies = {
            host: entry if isinstance(entry, base.FenceTopology) else base.FenceTopology.single(entry)
            for host, entry in topologies.items()
        }
        self._lookup = lookup
        self._runner = runner
        self._clock = clock
        self._policy = policy = policy or WatchPolicy()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if submit is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(policy.workers, thread_name_prefix="bmc-read")
            pool = self._pool
            submit = pool.submit
        self._submit = submit
        self._hosts: dict[str, _HostWatch] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- the loop's side ---------------------------------------------------------------------------
    def request(self, hosts: Iterable[str]) -> list[str]:
        """Start a reading of each of ``hosts`` that has a fence device, none in flight and none started
        within ``min_interval``; returns the hosts whose reading started (never waits for one)."""
        if not self._policy.enabled:
            return []
        now = self._clock.now()
        started = []
        with self._lock:
            if self._closed:
                return []
            for host in hosts:
                if host not in self._topologies:
                    continue
                watch = self._hosts.setdefault(host, _HostWatch())
                if watch.in_flight:
                    continue
                if watch.last_started is not None and now - watch.last_started < self._policy.min_interval:
                    continue
                watch.in_flight, watch.last_started = True, now
                started.append(host)
        for host in started:
            try:
                self._submit(functools.partial(self._read_host, host))
            except RuntimeError:  # the pool is shutting down
                with self._lock:
                    self._hosts[host].in_flight = False
        return started

    def readings(self) -> dict[str, PowerReading]:
        """The latest reading of each host read so far."""
        with self._lock:
            return {host: w.latest for host, w in self._hosts.items() if w.latest is not None}

    def describe(self, host: str, now: float) -> str:
        """The host's BMC signal, for operators (``petguard explain HOST``; live numbers)."""
        if not self._policy.enabled:
            return "off ([detection] bmc_signal = false)"
        if host not in self._topologies:
            return "no fence device in the inventory: no reading"
        with self._lock:
            watch = self._hosts.get(host, _HostWatch())
            latest, in_flight = watch.latest, watch.in_flight
        pending = "; a reading is in flight" if in_flight else ""
        if latest is None:
            return (
                "not read by this controller (read only when the host looks down, and only by the leader)" + pending
            )
        age = max(0.0, now - latest.at)
        return f"{latest.power.value.upper()} ({latest.detail}), read {age:.0f} s ago{pending}"

    def clear(self) -> None:
        """Forget every reading (a new term: an earlier term's readings are not this one's evidence)."""
        with self._lock:
            for watch in self._hosts.values():
                watch.latest, watch.last_started = None, None

    def shutdown(self) -> None:
        """Start no more readings; those in flight end within their bound (their threads are daemons)."""
        with self._lock:
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- a worker's side ---------------------------------------------------------------------------
    def _read_host(self, host: str) -> None:
        started = self._clock.now()
        try:
            topology, timeout = self._topologies[host], self._policy.timeout
            reading = read_topology(topology, self._lookup, self._runner, self._clock, timeout)
        except Exception as exc:  # noqa: BLE001 - a reading that failed is UNREADABLE, never a crashed worker
            # The type only: an unexpected exception's text (or traceback) may carry a device's password.
            LOG.error("%s: BMC power reading failed: %s; taken as unreadable", host, type(exc).__name__)
            reading = (Power.UNREADABLE, f"the reading failed: {type(exc).__name__}")
        power, detail = reading
        result = PowerReading(host, power, started, detail)
        with self._lock:
            watch = self._hosts.setdefault(host, _HostWatch())
            watch.in_flight = False
            if watch.last_started is not None and watch.last_started <= started:
                watch.latest = result
        LOG.info("%s: BMC power reads %s (%s); read only because the host looks down", host, power.value, detail)


def read_topology(
    topology: base.FenceTopology,
    lookup: Callable[[str], base.FenceDriver],
    runner: PowerRunner,
    clock: Clock,
    timeout: float,
) -> tuple[Power, str]:
    """Read ``topology``'s power level by level within ``timeout`` seconds; (power, detail). Never powers off."""
    deadline = clock.monotonic() + timeout
    unread: list[str] = []
    for number, devices in enumerate(topology.levels, start=1):
        states: list[tuple[base.FenceDevice, base.PowerState]] = []
        for device in devices:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                unread.append(f"{device.describe()}: not read, the {timeout:g} s for this host were spent")
                break
            state, why = _read_device(device, lookup, runner, max(MIN_CALL, remaining))
            if state is None:
                unread.append(why)
                break
            states.append((device, state))
            if state in (base.PowerState.ON, base.PowerState.POWERING_OFF):
                return Power.ON, f"level {number}: {device.describe()} reads {state.value}"
        else:
            if states and all(s is base.PowerState.OFF for _, s in states):
                described = ", ".join(d.describe() for d, _ in states)
                return Power.OFF, f"level {number}: {described} read{'s' if len(states) == 1 else ''} off"
    return Power.UNREADABLE, "; ".join(unread) or "no fence level"


def _read_device(
    device: base.FenceDevice, lookup: Callable[[str], base.FenceDriver], runner: PowerRunner, timeout: float
) -> tuple[base.PowerState | None, str]:
    """One device's power (None when it could not be read, with why: never a secret)."""
    try:
        state = read_power(device, lookup(device.driver), runner, timeout)
    except errors.PetguardError as exc:
        text = secrets.text(str(exc), *device.secrets())
        return None, f"{device.describe()}: {type(exc).__name__}: {text}"
    if state is base.PowerState.UNKNOWN:
        return None, f"{device.describe()}: power state unknown"
    return state, ""
