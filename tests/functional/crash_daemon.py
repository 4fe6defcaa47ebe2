"""A petguard daemon process for the crash-resume tests: the real loop, journal and IPMI fencing, with
Nova served by the test process (the in-memory Nova behind a multiprocessing manager), and an
optional crash point where the process SIGKILLs itself.

Run as ``python -m tests.functional.crash_daemon CONFIG.json``; the JSON names the journal URL, the
manager's address and key, the fence devices and ``crash_at`` (or null).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
from multiprocessing.managers import BaseManager
from typing import Any

from petguard.clock import SystemClock
from petguard.daemon import service
from petguard.decide import LoopPolicy
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice, FenceResult
from petguard.fencing.child import FenceRunner
from petguard.journal import MoveStatus
from petguard.store.sql import SqlStore
from tests.functional.harness import FAST_DETECTION, FAST_FENCE, FAST_RECOVERY

COMPUTE_METHODS = [
    "list_services", "servers_on", "get_server", "evacuations_from", "force_down", "disable",
    "unforce_down", "enable", "evacuate", "start_server", "stop_server", "aggregates_of", "candidate_hosts",
    "check_placement",
]


class NovaManager(BaseManager):
    """Serves the test process's in-memory Nova to daemon processes."""


NovaManager.register("nova", exposed=COMPUTE_METHODS)


def crash() -> None:
    logging.getLogger("crash").warning("crash point reached: SIGKILL")
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingStore:
    """The real store; SIGKILLs the process right after the chosen journal write."""

    def __init__(self, store: SqlStore, crash_at: str | None) -> None:
        self._store = store
        self._crash_at = crash_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def record_plan(self, *args: Any, **kwargs: Any) -> None:
        self._store.record_plan(*args, **kwargs)
        if self._crash_at == "planned":
            crash()

    def update_move(self, incident_id: int, server_id: str, status: MoveStatus, at: float, **kw: Any) -> Any:
        record = self._store.update_move(incident_id, server_id, status, at, **kw)
        if self._crash_at == status.value:  # "requesting", "accepted", "arrived", "done"
            crash()
        return record


class CrashingCompute:
    """Nova through the manager proxy; SIGKILLs right after the chosen call was answered."""

    def __init__(self, proxy: Any, crash_at: str | None) -> None:
        self._proxy = proxy
        self._crash_at = crash_at

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._proxy, name)
        after = {"force_down": "forced_down", "evacuate": "evacuate_sent", "start_server": "power_restore_sent",
                 "stop_server": "power_restore_sent", "disable": "disabled"}.get(name)
        if after is None or after != self._crash_at:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            crash()
            return result

        return call


def main(config_path: str) -> int:
    config = json.loads(open(config_path).read())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(threadName)s %(name)s %(message)s")
    crash_at = config.get("crash_at")
    manager = NovaManager(address=(config["host"], config["port"]), authkey=bytes.fromhex(config["authkey"]))
    manager.connect()
    compute = CrashingCompute(manager.nova(), crash_at)  # type: ignore[attr-defined]
    store = CrashingStore(SqlStore(config["url"]), crash_at)
    devices = {h: FenceDevice(**d) for h, d in config["devices"].items()}
    stop = threading.Event()
    clock = SystemClock(stop)
    lookup = functools.partial(loader.load_driver, enabled=["ipmi"])
    real_fence = procedure.make_fence(devices, FenceRunner(lookup), lookup, FAST_FENCE, clock)

    def fence(host: str) -> FenceResult:
        if crash_at == "fence_started":
            crash()
        result = real_fence(host)
        if crash_at == "fence_confirmed" and result.confirmed:
            crash()
        return result

    policy = LoopPolicy(detection=FAST_DETECTION, startup_blackout=0.0)
    loop = service.assemble(compute, store, fence, clock, policy, FAST_RECOVERY, stop)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        loop.tick()
        stop.wait(0.05)
    loop.shutdown(wait=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
