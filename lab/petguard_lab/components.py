"""The lab's control plane as components: ``petguard-lab control-plane stop|start NAME``.

A component (`COMPONENTS`) is one lab process (services.py); stopping it leaves a mark in
``$LAB/run/<process>.stopped`` (shown by ``status``) until something starts it again.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from petguard_lab import procs
from petguard_lab.services import LabServices
from petguard_lab.settings import HOST_IP, LabError

#: control-plane components (``petguard-lab control-plane stop|start NAME``) -> their lab process,
#: in start order (a restart of several starts the database first, Nova's services last)
COMPONENTS: dict[str, str] = {
    "database": "mariadb",
    "rabbitmq": "rabbitmq",
    "keystone": "keystone",
    "placement": "placement",
    "glance": "glance",
    "neutron": "neutron-stub",
    "nova-api": "nova-api",
    "nova-conductor": "nova-conductor",
    "nova-scheduler": "nova-scheduler",
}
#: the log line a Nova service writes once it starts serving (it consumes its queue right after)
_STARTED_LINE = {"nova-conductor": "Starting conductor node",
                 "nova-scheduler": "Starting scheduler node"}



class LabComponents(LabServices):
    """Stopping and starting control-plane components (RabbitMQ among them)."""

    def rabbit_stop(self) -> None:
        """Stop the lab's RabbitMQ (every compute then looks down to Nova)."""
        self.stop_component("rabbitmq")

    def rabbit_start(self, wait: bool = True) -> None:
        """Start the lab's RabbitMQ again (epmd must still run: it does unless `down`)."""
        self.start_component("rabbitmq", wait=wait)

    # ------------------------------------------------------- control plane
    @staticmethod
    def _component(name: str) -> str:
        try:
            return COMPONENTS[name]
        except KeyError:
            raise LabError(f"unknown control-plane component {name!r}; use one of "
                           f"{', '.join(COMPONENTS)}") from None

    def stop_component(self, name: str, kill: bool = False) -> None:
        """Stop a control-plane component (``COMPONENTS``) by the PID the lab recorded: SIGTERM to
        its process group (SIGKILL after 30 s), or SIGKILL at once with ``kill`` (a crash).  Nothing
        restarts it until ``start_component`` (or ``up``); ``status`` shows it stopped."""
        process = self._component(name)
        pid = self.pid(process)
        if pid is None:
            self._say(f"{name}: not running, nothing to stop")
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        started = time.monotonic()
        procs.stop([self.pidfile(process)], timeout=30, sig=sig)
        self._stop_mark(process).write_text(json.dumps(
            {"at": time.time(), "signal": sig.name, "pid": pid}) + "\n")
        self._say(f"{name}: stopped ({sig.name} to pid {pid}, gone after "
                  f"{time.monotonic() - started:.1f} s); `petguard-lab control-plane start {name}` "
                  "starts it again")

    def start_component(self, name: str, wait: bool = True, timeout: float = 120) -> None:
        """Start a control-plane component again and (with ``wait``) wait until it answers: its
        port (database, RabbitMQ), an HTTP answer below 500 (the APIs), or the log line with which
        a Nova service starts serving (conductor, scheduler)."""
        process = self._component(name)
        svcs = self.services()
        started = time.monotonic()
        log = self.cfg.log / f"{process}.log"
        mark = log.stat().st_size if log.exists() else 0
        if process == "rabbitmq":
            self._start(svcs["epmd"])  # RabbitMQ needs it; it stays up unless `down`
        self._start(svcs[process])
        if not wait:
            return
        port = svcs[process].port

        def answers() -> bool:
            if process in _STARTED_LINE:
                return self._log_has(log, mark, _STARTED_LINE[process])
            if port is None:
                return True
            if process in ("mariadb", "rabbitmq"):
                return procs.port_open(port)
            return self._http_ok(f"http://{HOST_IP}:{port}/")

        self._wait(f"{name} to answer", answers, timeout, (process,))
        self._say(f"{name}: started and answering after {time.monotonic() - started:.1f} s")

    def stopped_components(self) -> list[str]:
        """The control-plane components that are not running (in start order)."""
        return [name for name, process in COMPONENTS.items() if self.pid(process) is None]

    def _stop_record(self, process: str) -> dict[str, Any] | None:
        """How `control-plane stop` stopped ``process`` ({"at", "signal", "pid"}), else None."""
        try:
            return dict(json.loads(self._stop_mark(process).read_text()))
        except (OSError, ValueError):
            return None
