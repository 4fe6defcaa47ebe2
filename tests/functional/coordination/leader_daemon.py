"""A petguard daemon process for the leader election tests, wired as the daemon wires leadership: the
real loop, an acting journal opened with ``NO_EPOCH``, real IPMI fencing, Nova served by the test
process, and a ``Leadership`` on a real etcd or Redis. Nova's changes are noted per member in the
test process's ledger, so the test sees which controller acted.

Run as ``python -m tests.functional.coordination.leader_daemon CONFIG.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import sys
import threading
from multiprocessing.managers import BaseManager
from typing import Any

from petguard.clock import SystemClock
from petguard.daemon import service
from petguard.decide import LoopPolicy
from petguard.evacuate.run import RunPolicy
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice
from petguard.fencing.child import FenceRunner
from petguard.ha.election import NO_EPOCH, Leadership, Settings
from petguard.ha.guards import guard_compute, guard_fence
from petguard.store.sql import SqlStore
from tests.functional.crash_daemon import COMPUTE_METHODS
from tests.functional.harness import FAST_DETECTION, FAST_FENCE, FAST_RECOVERY

CHANGES = {
    "force_down",
    "disable",
    "unforce_down",
    "enable",
    "evacuate",
    "start_server",
    "stop_server",
    "reboot_server",
}


class LabManager(BaseManager):
    """Serves the test process's in-memory Nova and its ledger of who changed what."""


LabManager.register("nova", exposed=COMPUTE_METHODS)
LabManager.register("ledger", exposed=["note", "notes"])


class NotedCompute:
    """Nova through the manager; each change is noted with this member's name first."""

    def __init__(self, proxy: Any, ledger: Any, member: str) -> None:
        self._proxy, self._ledger, self._member = proxy, ledger, member

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._proxy, name)
        if name not in CHANGES:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self._ledger.note(self._member, name)
            return method(*args, **kwargs)

        return call


def main(config_path: str) -> int:
    config = json.loads(open(config_path).read())
    member = config["member"]
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {member} %(threadName)s %(name)s %(message)s")
    manager = LabManager(address=(config["host"], config["port"]), authkey=bytes.fromhex(config["authkey"]))
    manager.connect()
    nova = NotedCompute(manager.nova(), manager.ledger(), member)  # type: ignore[attr-defined]
    acting, journal = SqlStore(config["url"], epoch=NO_EPOCH), SqlStore(config["url"])
    settings = Settings(config["backend_url"], member, config["group"], 0.2, config["leader_timeout"])
    leadership = Leadership(settings, acting, journal)
    clock = SystemClock(leadership.halt)
    lookup = functools.partial(loader.load_driver, enabled=["ipmi"])
    devices = {h: FenceDevice(**d) for h, d in config["devices"].items()}
    fence = guard_fence(procedure.make_fence(devices, FenceRunner(lookup), lookup, FAST_FENCE, clock), leadership)
    recovery = dataclasses.replace(FAST_RECOVERY, run=RunPolicy(max_parallel=2, move_timeout=60, poll_interval=0.2))
    policy = LoopPolicy(detection=FAST_DETECTION, startup_blackout=0.0)
    compute = guard_compute(nova, leadership)
    loop = service.assemble(compute, acting, fence, clock, policy, recovery, leadership.halt)  # type: ignore[arg-type]
    leadership.attach(loop)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    leadership.start()
    while not stop.is_set():
        loop.tick()
        stop.wait(0.05)
    leadership.stop(timeout=10)
    loop.shutdown(wait=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
