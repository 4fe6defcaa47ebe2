"""The thread of a leader duty (fence readiness, instance health, capacity check, reserved hosts).

Each duty runs its loop in one daemon thread with a stop event of its own: ``LeaderDuties`` in
``petguard.daemon.service`` starts a fresh one on every gain of leadership and stops it on loss, and
stopping a duty must never stop the daemon. Subclasses write ``_run`` and leave it when the event
is set.
"""

from __future__ import annotations

import threading
from typing import Self


class DutyThread:
    """Start, stop and the stop event of a duty's own thread."""

    #: the thread's name, as logs and ``threading.enumerate()`` show it
    thread_name = "duty"

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Run ``_run`` in a daemon thread until ``stop()``; returns self."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Set the stop event and wait up to ``timeout`` seconds for the work in hand to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
