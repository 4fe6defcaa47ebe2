"""Time as a seam: the Clock protocol, the real SystemClock, and SteadyTime, its wall clock that never steps.

Pure domain code takes ``now`` as an argument; procedures that wait (fencing read-back, following an
evacuation) take a Clock so tests can drive time. The fake clock lives in tests/.

Why petguard's ``now`` is not ``time.time()``: the grace period (``now - down_since``) and the fence
rate window (fences started since ``now - window``) compare wall stamps kept in the journal. A system
clock stepped forward by NTP (or by hand) would make a host look down for longer than it has been,
and a fence look older than it is: fenced before its grace, the rate brake loosened (guarantees 1 and
3). SteadyTime follows the system clock the way NTP's slew does, never by a step: between two readings
it advances by what the monotonic clock measured, corrected toward the system clock by at most
``SLEW_RATE`` of that interval. A duration petguard measures is therefore never more than 1 % shorter
(or longer) than the real one, and petguard's ``now`` never goes backwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

LOG = logging.getLogger(__name__)

#: The largest correction toward the system clock, as a fraction of the time measured since the last
#: reading (1 %: a 60 s step is absorbed in 100 min; a measured 30 s grace is at least 29.7 s real).
SLEW_RATE = 0.01
#: A gap between the system clock and petguard's time larger than this is a step, told to operators.
STEP_NOTICE = 1.0


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


class SteadyTime:
    """Seconds since the epoch that follow the system clock without ever stepping (see the module).

    One instance serves a whole process (``PROCESS_TIME``), so that every stamp the daemon writes and
    every age it computes share one timeline. Thread-safe.
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        slew_rate: float = SLEW_RATE,
    ) -> None:
        self._wall, self._mono, self._rate = wall, mono, slew_rate
        self._lock = threading.Lock()
        self._last_mono = mono()
        self._last = wall()
        self._stepped = False

    def now(self) -> float:
        with self._lock:
            mono, wall = self._mono(), self._wall()
            elapsed = max(0.0, mono - self._last_mono)
            measured = self._last + elapsed
            gap = wall - measured
            allowed = self._rate * elapsed
            self._last = measured + max(-allowed, min(allowed, gap))
            self._last_mono = mono
            self._tell(gap)
            return self._last

    def monotonic(self) -> float:
        return self._mono()

    def _tell(self, gap: float) -> None:
        """One WARNING when a step is seen, one INFO when petguard's time has caught up with it."""
        if abs(gap) > STEP_NOTICE and not self._stepped:
            self._stepped = True
            LOG.warning(
                "the system clock stepped %+.1f s away from petguard's time (NTP, or set by hand); "
                "petguard keeps measuring durations on the monotonic clock (grace periods and the fence "
                "rate window are unchanged) and follows the system clock at %.0f %% of elapsed time "
                "(about %.0f min); next: nothing, unless the step was a mistake (check the time source)",
                gap,
                self._rate * 100,
                abs(gap) / self._rate / 60,
            )
        elif abs(gap) <= STEP_NOTICE and self._stepped:
            self._stepped = False
            LOG.info("petguard's time has caught up with the system clock (%+.1f s apart)", gap)


#: The process's one timeline (see SteadyTime).
PROCESS_TIME = SteadyTime()


class SystemClock:
    """The real clock; ``sleep`` wakes early when ``stop`` is set, so SIGTERM is not delayed.

    ``now`` is the process's SteadyTime, not ``time.time()``: it never steps (see the module).
    """

    def __init__(self, stop: threading.Event | None = None, time_source: SteadyTime | None = None) -> None:
        self._stop = stop or threading.Event()
        self._time = time_source or PROCESS_TIME

    def now(self) -> float:
        return self._time.now()

    def monotonic(self) -> float:
        return self._time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)
