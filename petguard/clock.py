"""Time as a seam: the Clock protocol and the real SystemClock.

Pure domain code takes ``now`` as an argument; procedures that wait (fencing read-back, following an
evacuation) take a Clock so tests can drive time. The fake clock lives in tests/.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock seconds and an interruptible sleep."""

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards (deadlines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; may return early when the daemon is stopping."""
        ...


class SystemClock:
    """The real clock; ``sleep`` wakes early when ``stop`` is set, so SIGTERM is not delayed."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)
