"""The control loop: observe -> decide (pure) -> record (write-ahead) -> act, one tick at a time.

The loop is the only writer of host state. Each tick:

1. observe: Nova's compute services in ONE call, outcomes reported by action lanes since the last
   tick, pending operator requests, the stored hosts and brake, and the fences started within
   ``fence_rate_window`` (one journal read, for the fence rate limit). If Nova cannot be read, the
   tick decides nothing (a controller that is cut off acts on nothing); ``[detection] blind_after``
   such ticks in a row make petguard blind, which it records once as a ``nova_unreadable`` event
   (an alert) and ends with one ``nova_readable_again`` (``petguard.sight``; ``Loop.sight``). The
   loop remembers, in memory, when it last saw each service's ``updated_at`` change
   (``detect.observe_heartbeats``: petguard's own staleness reading of Nova's heartbeat); a new
   term (``reset``) or a restart starts that memory afresh.
2. decide: ``decide.decide`` — pure.
3. record: the whole decision in one store transaction, before anything is acted on.
4. act: start each host's action on that host's own serial lane (one thread per busy host, hosts in
   parallel); a lane reports its ``Outcome`` back through a queue for the next tick. The hosts that
   ``decide`` lists in ``power_reads`` (some source calls them DOWN) have their power read through
   their fence devices, read-only and off the tick's thread (``PowerReader``); the readings join the
   next ticks' signals as ``bmc`` signals (docs/detection.md).

A tick that cannot read or write the journal (a database outage) decides and acts on nothing and
reports the failure instead of raising (the daemon keeps ticking); lane outcomes it could not record
go back on the queue for the next tick.

``Loop.tick()`` is one tick, so tests and the benchmark can drive the real loop step by step.

On several controllers only the leader ticks: ``Loop.leading`` is consulted before each tick and
before starting actions (a follower decides and acts on nothing), ``Loop.reset()`` drops the hosts
cached in memory and the outcomes of an earlier term when this controller becomes leader, and a
``StaleEpoch`` from the store (a newer leader exists) during a tick or in a lane is reported to
``Loop.on_stale_epoch`` so that this controller steps down at once.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from petguard import detect, sight
from petguard.clock import Clock
from petguard.compute import Compute
from petguard.decide import Action, LoopPolicy, Outcome, TickDecision, TickInputs, decide
from petguard.errors import PetguardError, StaleEpoch, Temporary
from petguard.journal import HostRecord, Store, incident_tag

LOG = logging.getLogger(__name__)

#: What a follower's tick reports.
NOT_LEADING = "standing by: another controller leads"

#: An action lane body: (host, incident id) -> Outcome, or None to be scheduled again next tick.
ActionFn = Callable[[str, "int | None"], "Outcome | None"]


class Recorder(Protocol):
    """What the loop reports for metrics (``petguard.daemon.metrics.Metrics`` implements it)."""

    def tick_finished(self, seconds: float, ok: bool) -> None:
        """One tick ended (``ok``: it decided and recorded)."""

    def action_finished(self, host: str, action: str, outcome: str, seconds: float) -> None:
        """A lane ran ``action``; ``outcome`` is the reported event, "again" or "crashed"."""

    def move_finished(self, host: str, server_id: str, status: str, seconds: float) -> None:
        """A server's evacuation became final (done, failed) during a lane run of ``seconds``."""


class PowerReader(Protocol):
    """Reads hosts' power through their fence devices, read-only, off the tick's thread
    (``petguard.fencing.powerwatch.PowerWatch``): the BMC as a detection signal."""

    def request(self, hosts: Iterable[str]) -> object:
        """Start readings of ``hosts`` (rate-limited per host); never waits for one."""

    def readings(self) -> Mapping[str, detect.PowerReading]:
        """The latest reading of each host read so far."""

    def describe(self, host: str, now: float) -> str:
        """The host's BMC signal for operators (``petguard explain``)."""

    def clear(self) -> None:
        """Forget every reading (a new term)."""

    def shutdown(self) -> None:
        """Start no more readings."""


class NullRecorder:
    """Records nothing (the default)."""

    def tick_finished(self, seconds: float, ok: bool) -> None:
        pass

    def action_finished(self, host: str, action: str, outcome: str, seconds: float) -> None:
        pass

    def move_finished(self, host: str, server_id: str, status: str, seconds: float) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class TickReport:
    """What one tick did, for tests, metrics and the benchmark."""

    ok: bool
    decision: TickDecision | None
    error: str = ""


class Loop:
    """Runs ticks and owns the action lanes."""

    def __init__(
        self,
        compute: Compute,
        store: Store,
        clock: Clock,
        policy: LoopPolicy,
        actions: Mapping[Action, ActionFn],
        started_at: float | None = None,
        max_lanes: int = 16,
        power: PowerReader | None = None,
    ) -> None:
        self._compute = compute
        self._store = store
        self._clock = clock
        self._policy = policy
        self._actions = actions
        self._power = power
        self._started_at = clock.now() if started_at is None else started_at
        self._outcomes: queue.Queue[Outcome] = queue.Queue()
        self._lanes: dict[str, concurrent.futures.Future[None]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_lanes, thread_name_prefix="lane")
        self._lock = threading.Lock()
        # The loop is the only writer of host state, so it keeps the hosts in memory between ticks
        # and reloads them only when the store assigned something (incident ids) or after an error.
        self._hosts: dict[str, HostRecord] | None = None
        # When petguard last saw each service's updated_at change (its own clock); replaced whole each tick.
        self._heartbeats: dict[str, detect.HeartbeatSeen] = {}
        self.last_ok_tick: float | None = None
        #: This controller's view of Nova: failed readings in a row, blindness (read by the API and metrics).
        self.sight = sight.Sight()
        self.recorder: Recorder = NullRecorder()
        #: Consulted before each tick and before starting actions (leader election sets it).
        self.leading: Callable[[], bool] = lambda: True
        #: Called with the reason when the store refused a write from this controller's epoch.
        self.on_stale_epoch: Callable[[str], None] = lambda reason: None

    # -- one tick --------------------------------------------------------------------------------
    def tick(self) -> TickReport:
        """Observe, decide, record, act. Never raises for an expected failure; reports it.

        A controller that does not lead does nothing and reports ``NOT_LEADING``.
        """
        if not self.leading():
            if self.sight.readable is not None:
                # A follower reads no Nova: its metrics and status must not keep a leader's old view
                # (a new term counts afresh, and the new leader tells its own blindness).
                self.sight = sight.Sight()
            return TickReport(False, None, NOT_LEADING)
        started = self._clock.monotonic()
        report = TickReport(False, None, "the tick raised")
        try:
            report = self._tick()
        except StaleEpoch as exc:
            self._hosts = None
            LOG.error("tick refused by the journal: %s; next: this controller steps down", exc)
            self.on_stale_epoch(str(exc))
            report = TickReport(False, None, str(exc))
        except PetguardError as exc:
            # The journal (or another seam) failed mid-tick: nothing unrecorded was acted on; the next
            # tick starts again from the store. Raising would end the daemon's loop on a database blip.
            self._hosts = None
            LOG.warning("tick failed: %s; deciding nothing this tick; next: try again on the next tick", exc)
            report = TickReport(False, None, str(exc))
        finally:
            self.recorder.tick_finished(self._clock.monotonic() - started, report.ok)
        return report

    def _tick(self) -> TickReport:
        read_started = self._clock.now()
        try:
            services = self._compute.list_services()
        except PetguardError as exc:
            LOG.warning("cannot read Nova's compute services: %s; deciding nothing this tick", exc)
            self._nova_unreadable(exc)
            return TickReport(False, None, str(exc))
        now = self._clock.now()
        self._nova_read(now)
        # petguard's own staleness reading of each service's updated_at (memory only: after a restart
        # or a change of leader, each host's signal waits for its first change).
        self._heartbeats = detect.observe_heartbeats(self._heartbeats, services, read_started, now)
        # Alerts are evidence (detect.combine never calls a host DOWN on alerts alone).
        alerts = self._store.active_alerts(now)
        # Agent heartbeats are a second, independent signal; hosts without an agent give none.
        seen = self._store.agent_heartbeats()
        agents = [detect.agent_signal(host, at, now, self._policy.detection) for host, at in sorted(seen.items())]
        # The BMC's power readings, taken only while a host looked down: corroboration, never a vote.
        power = [detect.bmc_signal(r) for _, r in sorted(self._power.readings().items())] if self._power else []
        busy = self._busy_hosts()
        if self._hosts is None:
            self._hosts = self._store.load_hosts()
        brake, requests = self._store.load_brake(), self._store.pending_requests()
        recent_fences = self._recent_fences(now)
        # Drained last, and put back when the tick cannot record them: a lane's outcome (a fence that
        # failed, an evacuation that ended) is never dropped by a journal outage.
        outcomes = self._drain_outcomes()
        inputs = TickInputs(
            now=now,
            started_at=self._started_at,
            hosts=self._hosts,
            services=services,
            brake=brake,
            outcomes=outcomes,
            requests=requests,
            busy=busy,
            extra_signals=[*alerts, *agents, *power],
            recent_fences=recent_fences,
            heartbeats=self._heartbeats,
        )
        decision = decide(inputs, self._policy)
        self._hosts = None  # if saving fails, the next tick starts again from the store
        try:
            self._store.save_tick(decision.record)
        except PetguardError:
            for outcome in outcomes:
                self._outcomes.put(outcome)
            raise
        self._hosts = self._after_save(inputs.hosts, decision)
        for line in decision.log:
            LOG.info("%s", self._with_incident(line))
        for line in decision.warnings:
            LOG.warning("%s", self._with_incident(line))
        self._read_power(decision)
        self._start_actions(decision)
        self.last_ok_tick = inputs.now
        return TickReport(True, decision)

    # -- blindness -------------------------------------------------------------------------------
    def _nova_unreadable(self, exc: PetguardError) -> None:
        """Count one more failed reading; the ``blind_after``-th in a row is announced once."""
        now, blind_after = self._clock.now(), self._policy.detection.blind_after
        seen, change = self.sight.after_failure(str(exc), cause_of(exc), now, blind_after)
        if change is sight.Change.WENT_BLIND:
            seen = seen.with_unwatched(record.host for record in self._known_hosts().values())
            message = sight.blind_message(seen, blind_after)
            if self._announce(sight.UNREADABLE, message, now):
                LOG.warning("%s", message)
            else:
                seen = seen.unannounced()
        self.sight = seen

    def _nova_read(self, now: float) -> None:
        """A good reading: after blindness, announced once (retried on the next tick if it cannot be recorded)."""
        seen, change = self.sight.after_reading(now)
        if change is sight.Change.SEES_AGAIN:
            message = sight.sees_again_message(self.sight, now)
            if not self._announce(sight.READABLE_AGAIN, message, now):
                return
            LOG.warning("%s; next: nothing, petguard decides again from this tick on", message)
        self.sight = seen

    def _announce(self, kind: str, message: str, now: float) -> bool:
        """Record a cloud-wide event (the webhooks' outbox); False when the journal refused it.

        :raises StaleEpoch: a newer leader exists (the tick steps down, as for any write).
        """
        try:
            self._store.record_event(None, None, kind, message, now)
        except StaleEpoch:
            raise
        except PetguardError as exc:
            LOG.error("cannot record the %s event: %s; next: it is tried again on the next tick", kind, exc)
            return False
        return True

    def _known_hosts(self) -> Mapping[str, HostRecord]:
        """The hosts of the last good reading (the journal holds them; none when it cannot be read)."""
        if self._hosts is not None:
            return self._hosts
        try:
            return self._store.load_hosts()
        except PetguardError as exc:
            LOG.warning("cannot read the hosts from the journal to name them: %s", exc)
            return {}

    def _recent_fences(self, now: float) -> list[detect.FenceStart]:
        """The fences started within the rate-limit window, from the journal (so the count survives a
        restart and a change of leader); none read when the limit is off."""
        detection = self._policy.detection
        if detection.fence_rate_max == 0:
            return []
        return self._store.fences_started(since=now - detection.fence_rate_window)

    def _with_incident(self, line: str) -> str:
        """``host: text`` becomes ``host [incident N]: text`` when the host has an open incident, so
        that one incident's lines can be found together (with Nova's request ids on its Nova calls)."""
        name, sep, rest = line.partition(": ")
        record = self._hosts.get(name) if self._hosts is not None and sep else None
        if record is None or record.host.incident_id is None:
            return line
        return f"{incident_tag(name, record.host.incident_id)}: {rest}"

    def _after_save(self, before: Mapping[str, HostRecord], decision: TickDecision) -> dict[str, HostRecord]:
        record = decision.record
        if record.open_incidents or record.close_incidents:
            return self._store.load_hosts()  # incident ids are assigned by the store
        hosts = dict(before)
        hosts.update((r.host.name, r) for r in record.hosts)
        return hosts

    def _drain_outcomes(self) -> list[Outcome]:
        outcomes = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                return outcomes

    def _busy_hosts(self) -> frozenset[str]:
        with self._lock:
            for host in [h for h, f in self._lanes.items() if f.done()]:
                del self._lanes[host]
            return frozenset(self._lanes)

    # -- act -------------------------------------------------------------------------------------
    def _read_power(self, decision: TickDecision) -> None:
        """Start the BMC readings the tick asked for (read-only, rate-limited, never waited for)."""
        if self._power is None or not decision.power_reads or not self.leading():
            return
        try:
            self._power.request(decision.power_reads)
        except Exception:  # a reading that cannot start must not fail a tick that was recorded
            LOG.exception("cannot start the BMC power readings of %s", ", ".join(decision.power_reads))

    def _start_actions(self, decision: TickDecision) -> None:
        if not decision.actions:
            return
        if not self.leading():
            LOG.warning("leadership lost during the tick: starting none of its %d action(s)", len(decision.actions))
            return
        hosts = self._hosts if self._hosts is not None else self._store.load_hosts()
        for host, action in decision.actions:
            incident_id = hosts[host].host.incident_id
            with self._lock:
                if host in self._lanes:
                    continue
                self._lanes[host] = self._pool.submit(self._run_lane, host, action, incident_id)

    def _run_lane(self, host: str, action: Action, incident_id: int | None) -> None:
        started, started_at = self._clock.monotonic(), self._clock.now()
        try:
            outcome = self._actions[action](host, incident_id)
        except StaleEpoch as exc:
            LOG.error(
                "%s: %s action refused by the journal: %s; next: this controller steps down", host, action.value, exc
            )
            self._record_lane(host, action, "stale_epoch", started)
            self.on_stale_epoch(str(exc))
            return
        except Exception:
            LOG.exception("%s: %s action crashed; next: it is retried on the next tick", host, action.value)
            self._record_lane(host, action, "crashed", started)
            self._clock.sleep(1.0)
            return
        self._record_lane(host, action, outcome.event.value if outcome is not None else "again", started)
        if action is Action.EVACUATE and incident_id is not None and not isinstance(self.recorder, NullRecorder):
            self._record_moves(host, incident_id, started_at)
        if outcome is not None:
            self._outcomes.put(outcome)

    def _record_lane(self, host: str, action: Action, outcome: str, started: float) -> None:
        self.recorder.action_finished(host, action.value, outcome, self._clock.monotonic() - started)

    def _record_moves(self, host: str, incident_id: int, started_at: float) -> None:
        """Report the moves that became final during this lane run (each once: later runs start later)."""
        try:
            moves = self._store.moves(incident_id)
        except PetguardError as exc:
            LOG.warning("%s: metrics: cannot read the moves of incident %d: %s", host, incident_id, exc)
            return
        for move in moves:
            if move.status.final and move.updated_at >= started_at:
                self.recorder.move_finished(host, move.server_id, move.status.value, move.updated_at - started_at)

    # -- lifecycle -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget what this controller held in memory (the hosts, lane outcomes not yet recorded):
        called when it becomes leader, so that it starts again from the journal."""
        with self._lock:
            self._hosts = None
        self._heartbeats = {}  # an earlier term's readings: the signal waits for fresh changes
        if self._power is not None:
            self._power.clear()
        dropped = self._drain_outcomes()
        if dropped:
            LOG.info("dropped %d outcome(s) of an earlier term; the journal decides what is resumed", len(dropped))

    def heartbeat(self, host: str) -> str:
        """petguard's own reading of ``host``'s Nova heartbeat, for ``petguard explain`` (live numbers)."""
        return detect.describe_heartbeat(self._heartbeats.get(host), self._clock.now(), self._policy.detection)

    def power(self, host: str) -> str:
        """The host's BMC signal (its latest power reading), for ``petguard explain`` (live numbers)."""
        if self._power is None:
            return "off: no BMC reading in this loop"
        return self._power.describe(host, self._clock.now())

    def idle(self) -> bool:
        """True when no action lane is running."""
        return not self._busy_hosts()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for every running lane to finish (tests, shutdown)."""
        with self._lock:
            futures = list(self._lanes.values())
        concurrent.futures.wait(futures, timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, let the steps in hand finish."""
        if self._power is not None:
            self._power.shutdown()
        self._pool.shutdown(wait=wait, cancel_futures=True)


def cause_of(exc: PetguardError) -> sight.Cause:
    """Why a reading of Nova failed, as far as the operator's next step differs (the Nova adapter
    puts the HTTP status in the error's context)."""
    status = exc.context.get("status")
    if status == 401:
        return sight.Cause.AUTH
    if status == 403:
        return sight.Cause.FORBIDDEN
    if isinstance(exc, Temporary):  # NovaUnavailable: no answer, a timeout, 5xx
        return sight.Cause.UNAVAILABLE
    return sight.Cause.OTHER
