"""A whole petguard loop for functional tests: real sqlite journal, real fencing procedure and drivers
(IPMI against ipmi_sim, or the fake driver), and the in-memory Nova of tests/fakes.py.

The in-memory Nova's hosts are alive while their BMC reports power on (and nova-compute was not
killed), so fencing has a real consequence: power off through IPMI makes the host dead for Nova.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from petguard.clock import SystemClock
from petguard.daemon import service
from petguard.decide import LoopPolicy
from petguard.detect import DetectionPolicy
from petguard.evacuate.plan import EvacuationPolicy
from petguard.evacuate.run import RunPolicy
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice
from petguard.fencing.child import FenceRunner
from petguard.fencing.powerwatch import PowerWatch, WatchPolicy
from petguard.fencing.procedure import FencePolicy
from petguard.hosts import HostState
from petguard.lanes import RecoveryPolicy
from petguard.store import migrate
from petguard.store.sql import SqlStore
from tests.fakes import FakeCompute
from tests.functional.bmc import IpmiSim

FAST_DETECTION = DetectionPolicy(grace_period=0.3, down_samples=2, up_samples=2)
FAST_FENCE = FencePolicy(attempt_timeout=2.0, deadline=6.0, poll_interval=0.1, off_readings_required=3, retries=2)
FAST_RECOVERY = RecoveryPolicy(
    evacuation=EvacuationPolicy(
        selectors=("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image")
    ),
    run=RunPolicy(max_parallel=4, move_timeout=30, poll_interval=0.02),
    restore_timeout=5.0,
    poll_interval=0.05,
)


def journal_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/petguard.sqlite"
    migrate.upgrade(url)
    return url


class Bmcs:
    """One ipmi_sim per host, with random passwords; ``devices`` is the matching inventory."""

    def __init__(self, root: Path, hosts: list[str]) -> None:
        self.sims = {h: IpmiSim(root / f"bmc-{h}", "admin", secrets.token_hex(8)).start() for h in hosts}
        self.devices = {
            h: FenceDevice(h, "ipmi", "127.0.0.1", sim.port, "admin", sim.password) for h, sim in self.sims.items()
        }

    def stop(self) -> None:
        for sim in self.sims.values():
            sim.stop()


def powered_nova(bmcs: Bmcs, **kwargs: Any) -> FakeCompute:
    """The in-memory Nova over the hosts of ``bmcs``: a compute lives while it is not ``dead`` and
    its BMC keeps it powered (a fence that powers it off kills it, as in the lab)."""
    nova = FakeCompute(list(bmcs.sims), **kwargs)
    nova.is_alive = lambda host: host not in nova.dead and bmcs.sims[host].powered_on  # type: ignore[method-assign]
    return nova


class Harness:
    """A loop wired as the daemon wires it, over test seams."""

    def __init__(
        self,
        tmp_path: Path,
        compute: FakeCompute,
        devices: dict[str, FenceDevice],
        *,
        detection: DetectionPolicy = FAST_DETECTION,
        fence_policy: FencePolicy = FAST_FENCE,
        recovery: RecoveryPolicy = FAST_RECOVERY,
        startup_blackout: float = 0.0,
        dry_run: bool = False,
        url: str | None = None,
        enabled_drivers: tuple[str, ...] = ("ipmi", "fake"),
        child_python: str | None = None,
        power: WatchPolicy | None = None,
    ) -> None:
        self.url = url or journal_url(tmp_path)
        self.store = SqlStore(self.url)
        self.compute = compute
        self.stop_event = threading.Event()
        self.clock = SystemClock(self.stop_event)
        lookup = functools.partial(loader.load_driver, enabled=list(enabled_drivers))
        runner = FenceRunner(lookup) if child_python is None else FenceRunner(lookup, python=child_python)
        fence = procedure.make_fence(devices, runner, lookup, fence_policy, self.clock)
        policy = LoopPolicy(detection=detection, startup_blackout=startup_blackout, dry_run=dry_run)
        # The BMC signal's readings, as the daemon wires them (none unless asked for: a policy given).
        watch = None if power is None else PowerWatch(devices, lookup, runner, self.clock, power)
        self.loop = service.assemble(
            compute, self.store, fence, self.clock, policy, recovery, self.stop_event, power=watch
        )

    def state(self, host: str) -> HostState:
        return self.store.load_hosts()[host].host.state

    def run_until(self, done: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.loop.tick()
            if done():
                return
            time.sleep(interval)
        raise AssertionError(
            f"condition not reached within {timeout} s; hosts: "
            f"{ {h: r.host.state.value for h, r in self.store.load_hosts().items()} }"
        )

    def settle(self, hosts: Collection[str], heartbeats: bool = False) -> None:
        """Tick until the journal knows every one of ``hosts``; with ``heartbeats``, also until petguard
        has seen each host's Nova heartbeat move at least once (its staleness clock runs)."""
        self.run_until(lambda: set(self.store.load_hosts()) == set(hosts), timeout=5)
        if heartbeats:
            self.run_for(0.3)
            assert all("last seen to change" in self.loop.heartbeat(h) for h in hosts)

    def run_for(self, seconds: float, interval: float = 0.05) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.loop.tick()
            time.sleep(interval)

    def close(self) -> None:
        self.stop_event.set()
        self.loop.shutdown(wait=True)
