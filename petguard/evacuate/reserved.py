"""Reserved failover hosts: lend one to an incident, and give it back when the incident is over
(procedure over the ``Compute`` and ``Store`` seams).

A reserved host is a compute host the operator keeps **disabled** in Nova (``[evacuation]
reserved_hosts``), so that nothing lands on it in normal times. A pet whose hint is ``reserved``
borrows one for its incident. Each loan is a chain of journal writes around Nova calls, each write a
compare-and-set on the host's row, through the acting store (a deposed leader's write raises
StaleEpoch; every edge is one of ``evacuate.transitions.LOAN_TRANSITIONS``, and a compare-and-set that
loses is logged and leaves the row as the journal says):

* borrow: ``idle -> borrowing`` (held by the incident; only one caller can win it), enable the compute
  service (ComputeFilter rejects a disabled one), ``borrowing -> borrowed``;
* give back, when every move of the incident is final: ``borrowed -> returning``, disable the service
  again with a reason naming petguard and the incident, ``returning -> idle``. The pets it took stay
  on it: "returned" means that nothing new is scheduled there.

A crash can stop a loan between any two steps. ``tidy`` (run by the leader when it starts leading and
then every tick interval, and by each evacuation lane) finishes every half step from the journal:
``borrowing`` is enabled and becomes ``borrowed`` (or is given back if its incident is already over),
``returning`` is disabled and becomes ``idle``, and a ``borrowed`` host whose incident has no
unfinished move is given back. Nova's enable and disable are idempotent, so a step done twice is harmless.

One host per incident (the first idle one in config order whose service is up and not forced down);
when it has no room left the scheduler refuses it and the pets fall back to the scheduler's choice (a
second reserved host for the same incident is not borrowed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from petguard.clock import Clock
from petguard.cloud import ServiceRecord
from petguard.compute import Compute
from petguard.duty import DutyThread
from petguard.errors import NotFound, PetguardError, StaleEpoch, Temporary
from petguard.journal import ReservedHost, ReservedState, Store, incident_tag

LOG = logging.getLogger(__name__)

#: The loans that hold a host for an incident.
HELD = (ReservedState.BORROWING, ReservedState.BORROWED)


def returned_reason(incident_id: int) -> str:
    """The disabled reason of a reserved host given back (starts with petguard's marker)."""
    return f"petguard: reserved failover host, returned after incident {incident_id} (holds its pets)"


class ReservedPool:
    """Lends the configured reserved hosts to incidents. Thread-safe: one lock per pool serialises
    the loans of this controller (several lanes of one incident borrow one host, not one each)."""

    def __init__(self, compute: Compute, store: Store, clock: Clock, hosts: Sequence[str]) -> None:
        self._compute = compute
        self._store = store
        self._clock = clock
        self._hosts = tuple(dict.fromkeys(hosts))  # config order, each once
        self._lock = threading.RLock()

    @property
    def hosts(self) -> tuple[str, ...]:
        return self._hosts

    # -- borrow ------------------------------------------------------------------------------------
    def borrow(self, incident_id: int, source_host: str) -> tuple[str | None, str]:
        """The reserved host lent to ``incident_id`` (borrowing one if it has none), or None and why.

        :raises Temporary: Nova or the journal could not be reached; the loan stays where the journal
            says and is finished on the next call (or by ``tidy``).
        """
        with self._lock:
            rows = self._rows()
            for row in rows.values():
                if row.incident_id == incident_id and row.state in HELD:
                    if row.state is ReservedState.BORROWING:
                        self._finish_borrowing(row, self._service(row.host))
                    return row.host, ""
            services = {s.host: s for s in self._compute.list_services()}
            why_not: list[str] = []
            for host in self._hosts:
                problem = self._unfit(rows.get(host), services.get(host), source_host)
                if problem:
                    why_not.append(f"{host} {problem}")
                    continue
                if not self._store.borrow_reserved_host(host, incident_id, self._clock.now()):
                    why_not.append(f"{host} was taken by another incident meanwhile")
                    continue
                LOG.info(
                    "%s: reserved host %s borrowed in the journal; next: enable its compute service",
                    incident_tag(source_host, incident_id),
                    host,
                )
                row = ReservedHost(host, ReservedState.BORROWING, incident_id)
                try:
                    self._finish_borrowing(row, services[host])
                except Temporary:
                    raise
                except PetguardError as exc:
                    self._give_back(row)
                    why_not.append(f"{host} could not be enabled ({exc})")
                    continue
                return host, ""
            return None, "no reserved host free (" + ("; ".join(why_not) or "none configured") + ")"

    def _rows(self) -> dict[str, ReservedHost]:
        rows = {r.host: r for r in self._store.reserved_hosts()}
        missing = [h for h in self._hosts if h not in rows]
        if missing:
            self._store.add_reserved_hosts(missing, self._clock.now())
            rows = {r.host: r for r in self._store.reserved_hosts()}
        return rows

    @staticmethod
    def _unfit(row: ReservedHost | None, service: ServiceRecord | None, source_host: str) -> str:
        """Why a reserved host cannot be lent now ("" when it can)."""
        if row is None or row.state is not ReservedState.IDLE:
            held = f" by incident {row.incident_id}" if row is not None and row.incident_id is not None else ""
            return f"is {row.state.value if row else 'unknown'}{held}"
        if service is None:
            return "has no nova-compute service"
        if service.host == source_host:
            return "is the failed host"
        if service.state != "up" or service.forced_down:
            return f"is {'forced down' if service.forced_down else service.state or 'not up'}"
        return ""

    def _service(self, host: str) -> ServiceRecord:
        for service in self._compute.list_services():
            if service.host == host:
                return service
        raise NotFound(f"reserved host {host} has no nova-compute service in Nova", host=host)

    def _finish_borrowing(self, row: ReservedHost, service: ServiceRecord) -> None:
        """borrowing -> (enable) -> borrowed."""
        assert row.incident_id is not None
        if service.status != "enabled":
            request_id = self._compute.enable(service)
            LOG.info(
                "reserved host %s: compute service enabled for incident %d [%s]; next: send pets to it",
                row.host,
                row.incident_id,
                request_id,
            )
        # The event before the state: after a crash in between it is said twice, never not at all.
        now = self._clock.now()
        self._store.record_event(
            row.host,
            row.incident_id,
            "reserved_host_borrowed",
            f"reserved failover host {row.host} enabled for incident {row.incident_id}",
            now,
        )
        borrowed = ReservedState.BORROWING, ReservedState.BORROWED
        if not self._store.set_reserved_state(row.host, row.incident_id, *borrowed, now):
            # compare-and-set (evacuate.transitions): another path moved the loan on; nothing overwritten
            LOG.warning("reserved host %s: loan to incident %d no longer borrowing; left as the journal says",
                        row.host, row.incident_id)  # fmt: skip

    # -- give back ---------------------------------------------------------------------------------
    def give_back(self, incident_id: int) -> None:
        """Give back every reserved host lent to ``incident_id`` (call when all its moves are final)."""
        with self._lock:
            for row in self._store.reserved_hosts():
                if row.incident_id == incident_id and row.state is not ReservedState.IDLE:
                    self._give_back(row)

    def _give_back(self, row: ReservedHost) -> None:
        """(borrowing | borrowed) -> returning -> (disable) -> idle."""
        assert row.incident_id is not None
        if row.state in HELD:
            now = self._clock.now()
            if not self._store.set_reserved_state(row.host, row.incident_id, row.state, ReservedState.RETURNING, now):
                return  # someone else (the other path of this controller) moved it on
            LOG.info(
                "reserved host %s: incident %d is over, giving it back; next: disable its compute service",
                row.host,
                row.incident_id,
            )
        reason = returned_reason(row.incident_id)
        service = self._service(row.host)
        if service.status != "disabled" or service.disabled_reason != reason:
            request_id = self._compute.disable(service, reason)
            LOG.info(
                "reserved host %s: compute service disabled again (%s) [%s]; the pets it took stay on it",
                row.host,
                reason,
                request_id,
            )
        now = self._clock.now()
        self._store.record_event(
            row.host,
            row.incident_id,
            "reserved_host_returned",
            f"reserved failover host {row.host} disabled again after incident {row.incident_id}; "
            "the pets it took stay on it until an operator moves them",
            now,
        )
        returned = ReservedState.RETURNING, ReservedState.IDLE
        if not self._store.set_reserved_state(row.host, row.incident_id, *returned, now):
            LOG.warning("reserved host %s: loan to incident %d no longer returning; left as the journal says",
                        row.host, row.incident_id)  # fmt: skip

    # -- resume --------------------------------------------------------------------------------------
    def tidy(self) -> None:
        """Finish every loan a crash left half done, and give back the hosts of finished incidents."""
        with self._lock:
            rows = self._rows()
            for row in rows.values():
                if row.state is ReservedState.IDLE or row.incident_id is None:
                    continue
                if row.state is ReservedState.RETURNING or self._incident_over(row.incident_id):
                    self._give_back(row)
                elif row.state is ReservedState.BORROWING:
                    self._finish_borrowing(row, self._service(row.host))

    def _incident_over(self, incident_id: int) -> bool:
        return all(m.status.final for m in self._store.moves(incident_id))


class ReservedKeeper(DutyThread):
    """Runs ``ReservedPool.tidy`` on the leader: once when it starts leading, then every ``interval``."""

    thread_name = "reserved-hosts"

    def __init__(self, pool: ReservedPool, interval: float) -> None:
        self._pool = pool
        self._interval = interval
        super().__init__()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._pool.tidy()
            except StaleEpoch:
                LOG.info("reserved hosts: another controller leads; this one leaves the loans to it")
                return
            except PetguardError as exc:
                LOG.warning("reserved hosts: %s; trying again in %.0f s", exc, self._interval)
            except Exception:
                LOG.exception("reserved hosts: unexpected error; trying again in %.0f s", self._interval)
            self._stop.wait(self._interval)
