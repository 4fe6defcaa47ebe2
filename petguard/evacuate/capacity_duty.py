"""The capacity duty: run the capacity check every ``[capacity] interval`` seconds on the leader (procedure).

Each run reads the facts through ``read`` (``petguard.nova.placement.read_capacity_inputs``,
wired by the composition root), decides with the pure ``petguard.evacuate.capacity.check`` and keeps the
report in memory for ``status`` and the metrics. Nova or placement that cannot be read makes the
report ``unknown`` (with the error, which names the request id), never an exception out of the thread.

Alerts go through the journal's events, which feed the outgoing webhooks (docs/alerts.md):

* ``capacity_short`` when the verdict turns short (also on the first check of a leadership term);
* ``capacity_ok`` when a short cloud can take the pets of any one host again.

An unknown result raises no alert and does not reset that memory: short, unknown, short alerts once.
One INFO (WARNING when short or unknown) line each time the result's summary changes; DEBUG otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from petguard.clock import Clock
from petguard.duty import DutyThread
from petguard.errors import PetguardError
from petguard.evacuate import capacity
from petguard.evacuate.capacity import CapacityReport, HostCapacity, Verdict
from petguard.evacuate.plan import EvacuationPolicy

LOG = logging.getLogger(__name__)

#: record_event(host, incident_id, kind, message, at): ``Store.record_event``.
RecordEvent = Callable[[str | None, int | None, str, str, float], None]
NOT_CHECKED = "not checked yet"


class CapacityWatch(DutyThread):
    """Checks capacity in its own thread and remembers the last report.

    :param read: returns every host's facts; raises ``PetguardError`` when Nova or placement cannot be read.
    :param policy: which servers are pets (the evacuation policy, so the check counts what would move).
    :param record_event: where alerts go (``Store.record_event``).
    :param interval: seconds between two checks (> 0; the composition root does not build a watch for 0).
    """

    thread_name = "capacity-check"

    def __init__(
        self,
        read: Callable[[], Iterable[HostCapacity]],
        policy: EvacuationPolicy,
        clock: Clock,
        record_event: RecordEvent,
        *,
        interval: float = 300.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._read = read
        self._policy = policy
        self._clock = clock
        self._record_event = record_event
        self._interval = interval
        super().__init__(stop)
        self._lock = threading.Lock()
        self._report = CapacityReport.unknown(NOT_CHECKED)
        self._alerted: Verdict | None = None  # the verdict of the last alert sent (ok or short)

    # -- the thread (DutyThread runs _run) -------------------------------------------------------
    def _run(self) -> None:
        LOG.info("capacity check: every %.0f s, first one now", self._interval)
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:
                LOG.exception("capacity check: unexpected error; next: the next check in %.0f s", self._interval)
            self._stop.wait(self._interval)

    # -- one check -------------------------------------------------------------------------------
    def check_once(self) -> CapacityReport:
        """Read, decide, remember, and record an alert if the verdict changed."""
        try:
            hosts = list(self._read())
        except PetguardError as exc:
            report = CapacityReport.unknown(f"Nova or placement could not be read: {exc}", self._clock.now())
        else:
            report = capacity.check(hosts, self._policy, self._clock.now())
        with self._lock:
            before, self._report = self._report, report
        self._log(before, report)
        self._alert(report)
        return report

    def _log(self, before: CapacityReport, after: CapacityReport) -> None:
        if after.details() == before.details():
            LOG.debug("capacity check: unchanged: %s", after.details())
            return
        log = LOG.info if after.verdict is Verdict.OK else LOG.warning
        what_next = {
            Verdict.OK: "next check in %.0f s",
            Verdict.SHORT: "next: add room (a host, [evacuation] reserved_hosts) or fewer pets; next check in %.0f s",
            Verdict.UNKNOWN: "next: the next check in %.0f s",
        }[after.verdict]
        log("capacity check: %s; " + what_next, after.details(), self._interval)

    def _alert(self, report: CapacityReport) -> None:
        kind = capacity.alert_for(self._alerted, report)
        if kind is not None and not self._record(kind, report):
            return  # not remembered as sent: the next check tries again
        if report.verdict is not Verdict.UNKNOWN:
            self._alerted = report.verdict

    def _record(self, kind: str, report: CapacityReport) -> bool:
        if kind == "capacity_short":
            message = (
                f"if a host failed now, its pets would not all find room: {report.details()}; next: add "
                "capacity (enable or add a host, name reserved failover hosts in [evacuation] reserved_hosts) "
                "or move pets, before a host fails"
            )
        else:
            message = f"the pets of any one host would find room again: {report.summary()}"
        try:
            self._record_event(None, None, kind, message, report.checked_at or self._clock.now())
        except PetguardError as exc:
            LOG.warning("capacity check: cannot record %s (%s); next: try again after the next check", kind, exc)
            return False
        return True

    # -- what others read ------------------------------------------------------------------------
    def report(self) -> CapacityReport:
        """The last report (``unknown``, "not checked yet", before the first check)."""
        with self._lock:
            return self._report
