"""Host-level actions run on a host's own lane: fence it, evacuate it, return it to service.

Each action is a procedure over petguard's seams (a fencing callable ``fencing.base.FenceFn``,
``Compute``, ``Store``, ``Clock``) and ends in an ``Outcome``: the lifecycle event the loop records
on its next tick. Actions are re-entrant: after a crash the loop starts the action that the host's
state calls for again, and the action finds its progress in the journal and in Nova's records.

* fence: power off through the host's fence device and read it back OFF (``fencing.procedure``);
  any failure ends in AWAITING_CONFIRM with an alert, never in an evacuation. The fence's
  ``FenceResult`` becomes an ``Outcome`` here and nowhere else.
* evacuate: force the compute service down (first: a disable of a service Nova still thinks is up
  blocks for 60 s), disable it with a reason naming petguard and the incident, plan once (journal),
  then carry out the plan (``evacuate.run``).
* restore: wait until every evacuation from the host is final, unforce the service, wait for its
  heartbeat, enable it. If the host does not heartbeat, force it down again and say why.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Callable

import tenacity

from petguard.clock import Clock
from petguard.cloud import Migration, ServiceRecord
from petguard.compute import Compute
from petguard.decide import Outcome
from petguard.errors import NotFound, NovaError, PetguardError, StaleEpoch, Temporary
from petguard.evacuate import plan as planning
from petguard.evacuate.ready import Prober
from petguard.evacuate.reserved import ReservedPool
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.fencing.base import FenceFn
from petguard.hosts import HostEvent
from petguard.journal import Store, incident_tag

LOG = logging.getLogger(__name__)


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Every disabled reason petguard writes starts with this (detect.DetectionPolicy.reason_marker).
PETGUARD_MARKER = "petguard"
#: The journal event that keeps an operator's own disable across an incident.
OPERATOR_DISABLE_EVENT = "service_disabled_before"
#: The journal event (and alert) of a fenced host whose nova-compute heartbeats again mid-incident.
HOST_RETURNED_EVENT = "fenced_host_returned"


@dataclasses.dataclass(frozen=True)
class RecoveryPolicy:
    """Knobs of the host-level actions."""

    evacuation: planning.EvacuationPolicy = planning.EvacuationPolicy()
    run: RunPolicy = RunPolicy()
    nova_retries: int = 5
    restore_timeout: float = 120.0
    poll_interval: float = 1.0
    reserved_hosts: tuple[str, ...] = ()  # [evacuation] reserved_hosts (evacuate.reserved)


#: Nova keeps a service's disabled reason in a 255-character column.
NOVA_REASON_MAX = 255


def disabled_reason(host: str, incident_id: int) -> str:
    """The reason petguard disables a fenced host's compute service with, as operators read it in
    Nova's service list: it starts with petguard's marker (detection knows the host is held by
    petguard), names the commands that return the host (the CLI needs petguard's HTTP API;
    petguard-manage works on the controller without it), and fits Nova's column."""
    reason = (
        f"petguard: incident {incident_id}: host fenced, pets evacuated; return it with "
        f"`petguard host restore {host}` (or `petguard-manage request {host} restore --reason ...`)"
    )
    if len(reason) > NOVA_REASON_MAX:
        reason = f"petguard: incident {incident_id}: host fenced, pets evacuated; see `petguard-manage request --help`"
    return reason


class Recovery:
    """The three host-level actions, bound to their seams."""

    def __init__(
        self,
        fence: FenceFn,
        compute: Compute,
        store: Store,
        clock: Clock,
        policy: RecoveryPolicy,
        stop: threading.Event | None = None,
        prober: Prober | None = None,
        reserved: ReservedPool | None = None,
    ) -> None:
        self._fence = fence
        self._compute = compute
        self._store = store
        self._clock = clock
        self._policy = policy
        self._reserved = reserved
        self._evacuator = Evacuator(compute, store, clock, policy.run, stop, prober=prober, reserved=reserved)
        self._lock = threading.Lock()
        # incident -> since when (monotonic) its evacuation could not be prepared: announced once per wait
        self._delayed: dict[int, float] = {}
        # incident -> the fenced host's service updated_at last seen (None: never reported)
        self._last_update: dict[int, float | None] = {}

    def _nova(self, call: Callable[[], str]) -> str:
        """A Nova call retried on temporary errors, with a policy built at call time."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Temporary),
            stop=tenacity.stop_after_attempt(self._policy.nova_retries),
            wait=tenacity.wait_exponential(multiplier=0.5, max=5),
            sleep=self._clock.sleep,
            reraise=True,
        )
        return retrying(call)

    def _service(self, host: str) -> ServiceRecord:
        for service in self._compute.list_services():
            if service.host == host:
                return service
        raise NotFound(f"Nova has no nova-compute service on host {host}", host=host)

    # -- fence -----------------------------------------------------------------------------------
    def fence(self, host: str, incident_id: int | None) -> Outcome:
        """Fence ``host`` and say what its lane ends in: the one place a ``FenceResult`` becomes an
        ``Outcome`` (one ``fence_level_failed`` event per failed level first)."""
        result = self._fence(host)
        for failure in result.failed_levels:
            self._store.record_event(host, incident_id, "fence_level_failed", failure, self._clock.now())
        if result.confirmed:
            return Outcome(host, HostEvent.FENCE_CONFIRMED, f"fenced: {result.reason}", alert="fence_confirmed")
        text = f"fence not confirmed: {result.reason}; next: power the host off by hand, then `confirm-fenced`"
        return Outcome(host, HostEvent.FENCE_FAILED, text, alert="awaiting_confirm")

    # -- evacuate --------------------------------------------------------------------------------
    def evacuate(self, host: str, incident_id: int | None) -> Outcome | None:
        if incident_id is None:
            return Outcome(
                host,
                HostEvent.EVACUATION_FINISHED,
                "no incident recorded: nothing to evacuate",
                alert="evacuation_failed",
            )
        incident = self._store.incident(incident_id)
        try:
            self._take_out_of_service(host, incident_id)
            self._notice_return(self._service(host), incident_id)
            if not self._store.moves(incident_id) and not self._store.skips(incident_id):
                self._plan(host, incident_id)
        except PetguardError as exc:
            self._delay(host, incident_id, exc)
            return None
        self._delay_over(host, incident_id)
        outcome = self._evacuator.run(incident_id, since=incident.opened_at)
        self._notice_return_after_run(host, incident_id)
        if outcome.unfinished:
            return None  # stopping: the moves resume from the journal after the restart
        self._give_back_reserved(host, incident_id)
        alert = "evacuation_failed" if outcome.failed else "evacuation_finished"
        return Outcome(host, HostEvent.EVACUATION_FINISHED, f"evacuation finished: {outcome.summary()}", alert=alert)

    def _give_back_reserved(self, host: str, incident_id: int) -> None:
        """Every move is final: a reserved host lent to the incident goes back (disabled again)."""
        if self._reserved is None:
            return
        try:
            self._reserved.give_back(incident_id)
        except StaleEpoch:
            raise
        except PetguardError as exc:
            # The journal says where the loan stopped; the leader's reserved-host keeper finishes it.
            LOG.warning(
                "%s: could not give back the reserved host yet: %s; next: retried every tick",
                incident_tag(host, incident_id),
                exc,
            )

    def _take_out_of_service(self, host: str, incident_id: int) -> None:
        service = self._service(host)
        if not service.forced_down:
            request_id = self._nova(lambda: self._compute.force_down(service))
            LOG.info(
                "%s: compute service forced down [%s]; next: disable it", incident_tag(host, incident_id), request_id
            )
        reason = disabled_reason(host, incident_id)
        self._remember_operator_disable(service, incident_id)
        if service.status != "disabled" or service.disabled_reason != reason:
            request_id = self._nova(lambda: self._compute.disable(service, reason))
            LOG.info(
                "%s: compute service disabled [%s]; next: plan the evacuation",
                incident_tag(host, incident_id),
                request_id,
            )

    def _notice_return(self, service: ServiceRecord, incident_id: int) -> None:
        """Tell the operator, once, that the fenced host's nova-compute heartbeats again mid-evacuation.

        Nova's ``updated_at`` moves with every heartbeat but also with petguard's own force-down and
        disable (found in the lab): the first reading after those writes is the baseline, and a later
        one that is newer means the host's nova-compute reports again. It stays forced down and disabled
        (nothing is scheduled to it, restore waits); but its nova-compute cleaned up only the guests
        Nova had evacuated before it started, and with ``resume_guests_state_on_host_boot`` it may
        even have started some: the later ones need a restart of nova-compute once every evacuation
        is final (docs/operations.md, "A fenced host that comes back").
        """
        with self._lock:
            baseline = self._last_update.setdefault(incident_id, service.updated_at)
            if service.updated_at is None or (baseline is not None and service.updated_at <= baseline):
                return
            self._last_update[incident_id] = service.updated_at
        if any(e.kind == HOST_RETURNED_EVENT for e in self._store.events(incident_id=incident_id)):
            return
        host = service.host
        text = (
            f"nova-compute on {host} heartbeats again (at {_iso(service.updated_at)}, after petguard took it out "
            f"of service): the fenced host was powered on during its evacuation; it stays forced down "
            f"and disabled; next: keep it powered off until every evacuation is final, or check that no "
            f"evacuated guest runs on it, then restart nova-compute on {host} so that Nova deletes the guests "
            f"evacuated from it, then `petguard host restore {host}`"
        )
        LOG.warning("%s: %s", incident_tag(host, incident_id), text)
        self._store.record_event(host, incident_id, HOST_RETURNED_EVENT, text, self._clock.now())

    def _delay(self, host: str, incident_id: int, exc: PetguardError) -> None:
        """The evacuation cannot be prepared now: said once per wait (event and WARNING), then quietly
        retried on every tick until it can."""
        with self._lock:
            first = incident_id not in self._delayed
            self._delayed.setdefault(incident_id, self._clock.monotonic())
        if first:
            LOG.warning(
                "%s: could not prepare the evacuation: %s; next: retry on every tick (said once until it works)",
                incident_tag(host, incident_id),
                exc,
            )
            self._store.record_event(host, incident_id, "evacuation_delayed", str(exc), self._clock.now())
        else:
            LOG.debug("%s: still cannot prepare the evacuation: %s", incident_tag(host, incident_id), exc)
        self._clock.sleep(self._policy.poll_interval)

    def _delay_over(self, host: str, incident_id: int) -> None:
        with self._lock:
            since = self._delayed.pop(incident_id, None)
        if since is not None:
            LOG.info(
                "%s: evacuation prepared after %.0f s of waiting for the cloud; next: evacuate the pets",
                incident_tag(host, incident_id),
                self._clock.monotonic() - since,
            )

    def _notice_return_after_run(self, host: str, incident_id: int) -> None:
        """The host may have come back while the moves ran (one run can last minutes)."""
        try:
            self._notice_return(self._service(host), incident_id)
        except StaleEpoch:
            raise
        except PetguardError as exc:  # Nova unreadable now: the next run looks again
            LOG.debug("%s: could not read the service after the run: %s", incident_tag(host, incident_id), exc)

    def _plan(self, host: str, incident_id: int) -> None:
        servers = self._compute.servers_on(host)
        # The host's aggregates matter only to [evacuation] host_targets by aggregate: ask only then.
        aggregates = self._compute.aggregates_of(host) if self._policy.evacuation.hints.by_aggregate else frozenset()
        the_plan = planning.plan(host, servers, self._policy.evacuation, aggregates)
        # Alerts first: after a crash in between, a pet left behind is reported twice, never not at all.
        for skip in the_plan.skipped:
            if skip.alert:
                tag = incident_tag(host, incident_id)
                LOG.warning("%s: %s (%s) %s", tag, skip.server_name, skip.server_id, skip.reason)
                self._store.record_event(
                    host,
                    incident_id,
                    "pet_left_behind",
                    f"{skip.server_name} ({skip.server_id}): {skip.reason}",
                    self._clock.now(),
                )
        self._store.record_plan(incident_id, the_plan, self._clock.now())
        for move in the_plan.moves:
            if move.hint_note:
                tag = incident_tag(host, incident_id)
                LOG.info("%s: %s (%s): %s", tag, move.server_name, move.server_id, move.hint_note)
        LOG.info(
            "%s: plan: %d pet(s) to evacuate (%s), %d server(s) left: %s",
            host,
            len(the_plan.moves),
            ", ".join(m.server_name + (f" [hint {m.hint}]" if m.hint else "") for m in the_plan.moves) or "none",
            len(the_plan.skipped),
            "; ".join(f"{s.server_name}: {s.reason}" for s in the_plan.skipped) or "none",
        )

    # -- restore ---------------------------------------------------------------------------------
    def restore(self, host: str, incident_id: int | None) -> Outcome:
        pending = self._unfinished_evacuations(host, incident_id)
        if pending:
            return Outcome(
                host,
                HostEvent.RESTORE_FAILED,
                f"restore refused: evacuations still running ({pending}); the host stays forced down; retry later",
                alert="restore_failed",
            )
        if not self._wait_cleaned_up(host, incident_id):
            heartbeating = any(e.kind == HOST_RETURNED_EVENT for e in self._store.events(incident_id=incident_id))
            next_step = (
                f"its nova-compute started before these evacuations were final and cleans up only at start, "
                f"one evacuation of each server per start (a server asked for again after a request died "
                f"inside Nova needs one start per request): restart nova-compute on {host}, then restore again"
                if heartbeating
                else "power the host on, start nova-compute, then restore again"
            )
            return Outcome(
                host,
                HostEvent.RESTORE_FAILED,
                f"restore refused: nova-compute on {host} has not cleaned up the guests evacuated from it "
                f"within {self._policy.restore_timeout:.0f} s (Nova keeps their migrations 'done' until it "
                f"does, and refuses to un-force the host meanwhile); {next_step}",
                alert="restore_failed",
            )
        service = self._service(host)
        if service.forced_down:
            try:
                request_id = self._nova(lambda: self._compute.unforce_down(service))
            except NovaError as exc:
                return Outcome(
                    host,
                    HostEvent.RESTORE_FAILED,
                    f"restore failed: Nova refused to clear forced_down: {exc}; the host stays out of service",
                    alert="restore_failed",
                )
            LOG.info(
                "%s: forced_down cleared [%s]; next: wait for its heartbeat",
                incident_tag(host, incident_id),
                request_id,
            )
        if not self._wait_heartbeat(host):
            service = self._service(host)
            self._nova(lambda: self._compute.force_down(service))
            return Outcome(
                host,
                HostEvent.RESTORE_FAILED,
                f"restore failed: nova-compute on {host} sent no heartbeat within "
                f"{self._policy.restore_timeout:.0f} s; forced down again; "
                "power the host on and start nova-compute, then restore again",
                alert="restore_failed",
            )
        service = self._service(host)
        before = self._operator_disable(incident_id)
        if before is not None:
            # The operator had disabled this host before it failed: give their state back, not ours.
            request_id = self._nova(lambda: self._compute.disable(service, before))
            return Outcome(
                host,
                HostEvent.SERVICE_RESTORED,
                f"returned to the state the operator left it in: heartbeating, disabled ({before}) [{request_id}]",
                alert="host_restored",
            )
        request_id = self._nova(lambda: self._compute.enable(service))
        return Outcome(
            host,
            HostEvent.SERVICE_RESTORED,
            f"returned to service: heartbeating and enabled [{request_id}]",
            alert="host_restored",
        )

    def _remember_operator_disable(self, service: ServiceRecord, incident_id: int) -> None:
        """Keep an operator's own disable (status and reason) in the journal, once per incident, so that
        restore gives it back instead of enabling a host the operator had taken out on purpose."""
        if service.status != "disabled" or (service.disabled_reason or "").startswith(PETGUARD_MARKER):
            return
        if self._operator_disable(incident_id) is not None:
            return
        text = service.disabled_reason or "disabled by an operator (no reason given)"
        self._store.record_event(service.host, incident_id, OPERATOR_DISABLE_EVENT, text, self._clock.now())

    def _operator_disable(self, incident_id: int | None) -> str | None:
        if incident_id is None:
            return None
        for event in self._store.events(incident_id=incident_id):
            if event.kind == OPERATOR_DISABLE_EVENT:
                return event.message
        return None

    def _unfinished_evacuations(self, host: str, incident_id: int | None) -> str:
        names = []
        if incident_id is not None:
            names = [m.server_name for m in self._store.moves(incident_id) if not m.status.final]
        since = self._store.incident(incident_id).opened_at if incident_id is not None else None
        in_flight = [m for m in self._compute.evacuations_from(host, since) if m.in_flight]
        names += [m.server_id for m in in_flight if not self._left_by_a_dead_request(m, host, incident_id)]
        return ", ".join(names)

    def _left_by_a_dead_request(self, migration: Migration, host: str, incident_id: int | None) -> bool:
        """An 'accepted' migration whose server has since settled on another host with no task: a request
        that died inside Nova and was asked again (evacuate.run, CP-12/CP-15) left it, and Nova keeps it
        'accepted' for ever; nothing is moving that server any more (a late copy of the request would
        find no task to take over and end in an error on the compute, moving nothing)."""
        try:
            server = self._compute.get_server(migration.server_id)
        except NotFound:
            return True  # deleted: nothing to wait for
        settled = server.host not in (None, host) and server.task_state is None
        if settled:
            LOG.info(
                "%s: migration %s of %s is still '%s' but the server is on %s with no task: left by a request "
                "that died inside Nova; not waited for",
                incident_tag(host, incident_id),
                migration.id,
                migration.server_id,
                migration.status,
                server.host,
            )
        return settled

    def _wait_cleaned_up(self, host: str, incident_id: int | None) -> bool:
        """Wait until the returning host's nova-compute has destroyed the guests evacuated from it:
        Nova marks their migrations 'completed' then, and only then lets the host be un-forced."""
        since = self._store.incident(incident_id).opened_at if incident_id is not None else None
        deadline = self._clock.monotonic() + self._policy.restore_timeout
        while True:
            waiting = [m for m in self._compute.evacuations_from(host, since) if m.status == "done"]
            if not waiting:
                return True
            if self._clock.monotonic() >= deadline:
                return False
            LOG.info(
                "%s: waiting for nova-compute to clean up %d evacuated guest(s) before un-forcing it",
                incident_tag(host, incident_id),
                len(waiting),
            )
            self._clock.sleep(max(self._policy.poll_interval, 1.0))

    def _wait_heartbeat(self, host: str) -> bool:
        deadline = self._clock.monotonic() + self._policy.restore_timeout
        while self._clock.monotonic() < deadline:
            if self._service(host).state == "up":
                return True
            self._clock.sleep(self._policy.poll_interval)
        return False
