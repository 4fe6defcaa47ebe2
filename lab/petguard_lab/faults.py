"""Failure injection on the lab's computes: fail a host (power, process, hang), heal it, set its
BMC's fault mode.
"""

from __future__ import annotations

import signal
import time

from petguard_lab import chassis, procs
from petguard_lab.bmcs import LabBmcs
from petguard_lab.settings import LabError

FAIL_MODES = ("power", "process", "hang")


class LabFaults(LabBmcs):
    """Host failures, injected through the BMC simulator's files and signals to nova-compute."""

    def fail(self, host: str, mode: str = "power") -> None:
        """Make ``host`` fail.

        power: nova-compute SIGKILLed and the BMC reports power off (total power
        loss, BMC still answers); process: only nova-compute SIGKILLed, BMC says
        on; hang: nova-compute SIGSTOPped.
        """
        bdir = self._bmc_dir(host)
        name = f"nova-compute-{host}"
        if mode == "power":
            chassis.power_off(bdir)
        elif mode == "process":
            chassis.kill_host(bdir)
        elif mode == "hang":
            if procs.kill_now(self.pidfile(name), signal.SIGSTOP) is None:
                raise LabError(f"{name} is not running, cannot hang it; `petguard-lab heal {host}`")
        else:
            raise LabError(f"unknown failure mode {mode!r}; use one of {', '.join(FAIL_MODES)}")
        self._say(f"{host}: failed ({mode})")

    def heal(self, host: str, wait: bool = False, timeout: float = 120) -> None:
        """Resume or restart ``host``'s nova-compute and set its power on.

        With ``wait``: until Nova saw a heartbeat from it after this call.
        """
        started = time.time()
        chassis.power_on(self._bmc_dir(host))
        pid = self.pid(f"nova-compute-{host}")
        self._say(f"{host}: power on, nova-compute running (pid {pid})")
        if wait:
            self.wait_computes_up([host], timeout=timeout, since=started)

    def bmc_mode(self, host: str, mode: str) -> None:
        """Set the fault mode of ``host``'s BMC: normal | stuck_on | fail_set | fail_get."""
        try:
            chassis.set_mode(self._bmc_dir(host), mode)
        except ValueError as exc:
            raise LabError(str(exc)) from exc
