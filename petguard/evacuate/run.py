"""Carry out an incident's evacuation plan, move by move, exactly once (procedure over interfaces).

Each move walks PLANNED -> REQUESTING -> ACCEPTED -> ARRIVED -> DONE (or FAILED), and every step is
written to the journal before the next one starts, as a compare-and-set from the status the runner
read along the move table (``evacuate.transitions``): a move that another writer moved on is refused
(StaleWrite, logged), never overwritten, and left to the next run, which reads the journal again.
Before Nova is asked to evacuate a server — including after a crash or restart at any step — Nova's
own records are checked first:

* the server is no longer on the failed host: it has moved, go and restore its power state;
* an evacuation migration of this server from this host exists since the incident began, or its
  task_state is ``rebuilding``: Nova has the request, follow it, never send another (Nova accepts a
  second evacuate of a server being evacuated, and breaks it);
* otherwise nothing reached Nova: send the request.

Completion is "on another host with no task in progress", not just "ACTIVE" (Nova briefly shows the
server ACTIVE on the old host). Then the original power state is restored: Nova may leave the server
stopped, or bring an ERROR server back running.

Target hints (``MoveRecord.hint``, evacuate.hints): before the first request the runner resolves the
hint to one host from fresh Nova state (``reserved``: the incident's reserved host, borrowed from
``evacuate.reserved``) and writes it (``target_host``) with the REQUESTING step, before
Nova is asked; Nova's scheduler still validates that host. When the hint cannot be met — no candidate
host, a synchronous refusal of the host, or the scheduler ending the evacuation in ``error`` (the
server stays ERROR on the source, Nova moved nothing) — the move falls back once to the scheduler's
own choice: a ``target_hint_unmet`` event says why, the target is cleared, and the request is sent
again without a host, after the same checks of Nova's records.

A server that Nova's late server-group check on the destination bounced (fault "... group policy was
violated": the scheduler chose from a stale view of where the group's members are; Nova moved
nothing, the server is ERROR on the source) is asked for again after ``race_retry_delay``, up to
``max_request_attempts`` requests in all, through the same checks of Nova's records.

Waiting for the cloud (``evacuate.outage`` judges every setback in one place): when the cloud cannot
answer now (Nova or Keystone unreachable or 5xx, a refused token, no other compute up in Nova's
records, placement silent, a dependency failure inside Nova), the move is not failed and the wait is
not an attempt: it records why (``MoveRecord.waiting``, an event ``waiting_for_cloud`` once per
incident and wait), backs off (tenacity, up to ``wait_backoff_max``) and goes on when the cloud
answers, always through the same checks of Nova's records, until ``cloud_wait_timeout`` from the
start of the wait. No request is sent while the cloud cannot place a server. ``attempts`` counts the
requests Nova took.

Stuck requests: a move whose evacuation Nova took but never started (its migration still
``accepted`` with no destination, ``stuck_after`` seconds after it was taken: a request lost between
nova-api and nova-conductor) is flagged (``waiting`` "stuck: ...", an event ``evacuation_stuck``
with the commands an operator needs) and stops holding an evacuation slot: each later run looks at
it once and follows it again as soon as Nova moves it on.

Moves run wave by wave (``MoveRecord.wave``: tiers, and members of one anti-affinity group one after
another): every move of a wave is final before the next wave starts; a wave that cannot finish now
(stopping, or an error that leaves a move where it was) ends the run, and the next run resumes it.
Inside a wave, moves run with bounded parallelism. Time comes from the injected Clock. Before a wave
of a higher tier starts, the tier gate (``evacuate.gate``) waits until the lower tiers' pets are ready
(ACTIVE, and their ``petguard:ready_check``/delay if any), at most ``RunPolicy.ready.timeout``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from typing import TypedDict, Unpack

import tenacity

from petguard.clock import Clock
from petguard.cloud import HintKind, Migration, PowerGoal, Server
from petguard.compute import Compute
from petguard.errors import NotFound, PetguardError, StaleEpoch, StaleWrite, Temporary
from petguard.evacuate.gate import TierGate, UnwiredProber
from petguard.evacuate.hints import HintError, parse_hint
from petguard.evacuate.outage import (
    CloudHealth,
    Judgement,
    Verdict,
    died_in_conductor,
    judge_before_request,
    judge_nothing_moved,
    judge_request_error,
    resend_on_the_operators_word,
)
from petguard.evacuate.ready import Prober, ReadyPolicy
from petguard.evacuate.reserved import ReservedPool
from petguard.journal import STUCK, MoveRecord, MoveStatus, Store, incident_tag

LOG = logging.getLogger(__name__)

#: Seconds by which Nova's clock may lag the controller's before a migration is missed. An older
#: migration of the same server from the same host inside this window is so rare (it moved away and
#: came back) that mistaking it for ours only delays that one move until its timeout, with an alert.
CLOCK_SKEW_ALLOWANCE = 300.0
#: A request that makes no progress is looked up in Nova's records (did it die inside Nova?) from this
#: many seconds after Nova took it (a healthy conductor has cast it to a compute well before) ...
DEATH_CHECK_AFTER = 10.0
#: ... and again every this many seconds while it still makes none (two GETs each time).
DEATH_CHECK_EVERY = 10.0

#: The newest evacuation of a move's server from its host since the incident began, read from Nova
#: when first asked for (``Evacuator._latest_evacuation``): one look's checks share one listing.
LatestEvacuation = Callable[[], Migration | None]


@dataclasses.dataclass(frozen=True)
class RunPolicy:
    """How moves are carried out; built from config."""

    max_parallel: int = 4
    move_timeout: float = 600.0
    poll_interval: float = 1.0
    max_request_attempts: int = 3
    #: seconds before a server bounced by Nova's late server-group check is asked for again
    race_retry_delay: float = 5.0
    #: how long a move waits for the cloud to answer again before it is declared failed
    cloud_wait_timeout: float = 1800.0
    #: the longest back-off between two looks while waiting for the cloud
    wait_backoff_max: float = 30.0
    #: seconds after Nova took a request with its migration still ``accepted`` and no destination
    #: before the move is flagged stuck (Nova's RPC timeout, 60 s, ends a slow scheduling before)
    stuck_after: float = 90.0
    #: seconds a reading of the cloud's health is reused by the moves of a run
    health_ttl: float = 2.0
    #: evacuate requests in flight to nova-api at once: when RabbitMQ is down each one hangs in a
    #: nova-api worker until its RPC cast gives up (30 s in the lab), and the loop's one reading of
    #: the compute services queued behind them and timed out (the lab's nova-api has 4 workers)
    max_requests_in_flight: int = 2
    ready: ReadyPolicy = ReadyPolicy()  # how a higher tier waits for the lower tiers' readiness


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """The final state of every move of the incident."""

    done: tuple[MoveRecord, ...]
    failed: tuple[MoveRecord, ...]
    unfinished: tuple[MoveRecord, ...] = ()

    def summary(self) -> str:
        text = f"{len(self.done)} pet(s) recovered, {len(self.failed)} failed"
        if self.failed:
            text += ": " + "; ".join(f"{m.server_name} ({m.reason})" for m in self.failed)
        return text


def _who(move: MoveRecord) -> str:
    return incident_tag(move.source_host, move.incident_id)


class _CloudWait(Exception):
    """A step found that the cloud cannot answer now; ``move`` is the journal row to wait with."""

    def __init__(self, reason: str, move: MoveRecord) -> None:
        super().__init__(reason)
        self.reason = reason
        self.move = move


class _Parked(Exception):
    """A stuck move gives its evacuation slot back; the next run looks at it again."""


class _MoveFields(TypedDict, total=False):
    """The fields of a move a step writes with its status (``Store.update_move``)."""

    reason: str
    dest_host: str | None
    request_id: str | None
    count_attempt: bool
    target_host: str | None
    fall_back: bool
    waiting: str
    end_vouch: bool


class Evacuator:
    """Carries out one incident's moves. Safe to run again on the same incident at any time."""

    def __init__(
        self,
        compute: Compute,
        store: Store,
        clock: Clock,
        policy: RunPolicy,
        stop: threading.Event | None = None,
        prober: Prober | None = None,
        reserved: ReservedPool | None = None,
    ) -> None:
        self._compute = compute
        self._store = store
        self._clock = clock
        self._policy = policy
        self._reserved = reserved  # the reserved failover hosts that a ``reserved`` hint borrows from
        # Set on SIGTERM: moves stop at their current journal step and resume after the restart.
        self._stop = stop or threading.Event()
        self._gate = TierGate(
            compute, store, clock, policy.ready, prober or UnwiredProber(), self._stop, policy.max_parallel
        )
        self._lock = threading.Lock()
        self._requests = threading.BoundedSemaphore(policy.max_requests_in_flight)
        self._health_cache: dict[str, tuple[float, CloudHealth]] = {}  # source host -> (read at, health)
        # (incident, server) -> the first problem seen of the cloud while Nova held the move's request:
        # Nova's answer was made then, whatever the cloud looks like when the answer is read
        self._sick_in_flight: dict[tuple[int, str], str] = {}
        self._announced: dict[int, str] = {}  # incident -> the wait reason its event announced
        self._death_checked: dict[tuple[int, str], float] = {}  # move -> when Nova's record was last read
        self._setbacks: dict[tuple[int, str], int] = {}  # move -> accepted requests a dependency failed in a row

    def run(self, incident_id: int, since: float) -> RunOutcome:
        """Drive every unfinished move of the incident to a final state.

        ``since`` is when the incident opened: evacuation migrations older than that belong to an
        earlier failure of the host and are ignored.
        """
        for wave in sorted({m.wave for m in self._store.moves(incident_id) if not m.status.final}):
            if self._stop.is_set() or not self._gate.before_wave(incident_id, wave):
                break
            moves = [m for m in self._store.moves(incident_id) if m.wave == wave and not m.status.final]
            self._run_wave(moves, since)
            left = [m for m in self._store.moves(incident_id) if m.wave == wave and not m.status.final]
            if left:
                # The order is a promise (a tier is back before the next starts; an anti-affinity
                # group's members never in flight together): the next wave waits for the next run.
                LOG.info(
                    "%s: wave %d not finished (%s); the next waves wait",
                    _who(left[0]),
                    wave,
                    ", ".join(m.server_name for m in left),
                )
                break
        final = self._store.moves(incident_id)
        if not any(m.waiting for m in final if not m.status.final):
            with self._lock:
                # No move waits any more (each ended, possibly failed by the wait's deadline): a later
                # wait of this incident (an operator's rerun) is a new one, announced again.
                self._announced.pop(incident_id, None)
        with self._lock:
            for memory in (self._death_checked, self._setbacks):
                for key in [k for k in memory if k[0] == incident_id]:
                    if not any(m.server_id == key[1] and not m.status.final for m in final):
                        del memory[key]
        return RunOutcome(
            done=tuple(m for m in final if m.status is MoveStatus.DONE),
            failed=tuple(m for m in final if m.status is MoveStatus.FAILED),
            unfinished=tuple(m for m in final if not m.status.final),
        )

    def _run_wave(self, moves: list[MoveRecord], since: float) -> None:
        if not moves:
            return
        workers = max(1, min(self._policy.max_parallel, len(moves)))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="move") as pool:
            list(pool.map(lambda m: self._carry_out_safely(m, since), moves))

    def _carry_out_safely(self, move: MoveRecord, since: float) -> None:
        try:
            self._carry_out(move, since)
        except StaleEpoch:
            raise  # another controller leads now: this one steps down and touches nothing more
        except StaleWrite as exc:
            # Another writer moved this move on under this run: the journal refused the write and
            # nothing was overwritten. Touch it no more; the next run starts from what the journal says.
            LOG.error("%s: evacuation of %s left to the journal: %s", _who(move), move.server_name, exc)
        except PetguardError as exc:
            # An error we could not handle in place: the move stays where the journal says and is
            # picked up again on the next run (the runner is re-entrant), unless it is permanent.
            LOG.warning("%s: evacuation of %s interrupted: %s", _who(move), move.server_name, exc)
            if not isinstance(exc, Temporary):
                self._fail_as_journaled(move, f"{type(exc).__name__}: {exc}")

    def _fail_as_journaled(self, move: MoveRecord, reason: str) -> None:
        """Fail the move from the status the journal has now: ``move`` is the row this run started
        from, and its steps may have moved it on since (a final move stays as it is)."""
        current = next((m for m in self._store.moves(move.incident_id) if m.server_id == move.server_id), None)
        if current is None or current.status.final:
            LOG.error("%s: %s is already %s; not failed again (%s)", _who(move), move.server_name,
                      current.status.value if current else "gone", reason)  # fmt: skip
            return
        self._fail(current, reason)

    def _carry_out(self, move: MoveRecord, since: float) -> None:
        deadline = self._clock.monotonic() + self._policy.move_timeout
        while not move.status.final and not self._stop.is_set():
            if self._clock.monotonic() > deadline:
                self._fail(move, f"not finished after {self._policy.move_timeout:.0f} s ({move.status.value})")
                return
            started = self._clock.monotonic()
            try:
                move, waited = self._step_or_wait(move, since)
            except _Parked:
                return
            if waited:  # time spent waiting for the cloud is not the move's own time
                deadline += self._clock.monotonic() - started

    def _step_or_wait(self, move: MoveRecord, since: float) -> tuple[MoveRecord, bool]:
        """One step; while the cloud cannot answer, the same step again after a back-off (tenacity).
        Returns the move and whether it waited for the cloud."""
        current = [move]
        waited = [False]

        def step() -> MoveRecord:
            if current[0].status.final:  # the wait's deadline failed it
                return current[0]
            try:
                return self._step(current[0], since)
            except (StaleEpoch, StaleWrite):
                raise
            except PetguardError as exc:  # any read or write of Nova that found it unreachable or failing
                verdict = judge_request_error(exc, unanswered="Nova does not answer")
                if verdict.judgement is Judgement.WAIT and current[0].stuck:
                    # A stuck move waits for an operator, not for the cloud: it keeps its flag (an
                    # operator's `host resend` vouches only for moves flagged stuck) and its slot goes
                    # back; the next run looks again.
                    raise _Parked from exc
                if verdict.judgement is Judgement.WAIT:
                    self._note_sick_in_flight(current[0], verdict.reason)
                    raise _CloudWait(verdict.reason, current[0]) from exc
                raise

        def announce(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None
            wait = state.outcome.exception()
            assert isinstance(wait, _CloudWait)
            current[0] = self._waiting(wait.move, wait.reason)
            waited[0] = True

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_CloudWait),
            wait=tenacity.wait_exponential(multiplier=1, min=1, max=self._policy.wait_backoff_max),
            stop=lambda state: self._stop.is_set() or current[0].status.final,
            before_sleep=announce,
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            moved = retrying(step)
        except _CloudWait:
            return current[0], waited[0]  # stopping, or the wait failed the move: the journal says where
        if moved.waiting and not moved.stuck:
            moved = self._wait_over(moved)
        return moved, waited[0]

    def _write(self, move: MoveRecord, status: MoveStatus, at: float, **fields: Unpack[_MoveFields]) -> MoveRecord:
        """Write the move's next step, compare-and-set from the status this run read
        (``evacuate.transitions``): a move that another writer moved on is refused (StaleWrite)."""
        return self._store.update_move(move.incident_id, move.server_id, status, at, expected=move.status, **fields)

    # -- waiting for the cloud ---------------------------------------------------------------------
    def _waiting(self, move: MoveRecord, reason: str) -> MoveRecord:
        """Record that ``move`` waits for the cloud (why, since when); fail it past the wait's deadline."""
        now = self._clock.now()
        if move.waiting != reason or move.waiting_since is None:
            move = self._write(move, move.status, now, waiting=reason)
        waited = now - (move.waiting_since if move.waiting_since is not None else now)
        if waited > self._policy.cloud_wait_timeout:
            return self._fail(
                move,
                f"the cloud did not answer for {waited:.0f} s ([evacuation] cloud_wait_timeout): {reason}",
            )
        with self._lock:
            first = self._announced.get(move.incident_id) is None
            self._announced[move.incident_id] = reason
        if first:
            LOG.warning(
                "%s: evacuation of %s waits for the cloud: %s; next: ask again when it answers "
                "(nothing is failed before %.0f s of waiting)",
                _who(move),
                move.server_name,
                reason,
                self._policy.cloud_wait_timeout,
            )
            self._store.record_event(
                move.source_host,
                move.incident_id,
                "waiting_for_cloud",
                f"waiting for the cloud: {reason} (first: {move.server_name} {move.server_id})",
                now,
            )
        return move

    def _wait_over(self, move: MoveRecord) -> MoveRecord:
        """The cloud answered again: the move's wait ends (and the incident's, once)."""
        waited = self._clock.now() - (move.waiting_since or self._clock.now())
        move = self._write(move, move.status, self._clock.now(), waiting="")
        with self._lock:
            announced = self._announced.pop(move.incident_id, None)
        if announced is not None:
            LOG.info(
                "%s: the cloud answers again after %.0f s of waiting; next: the evacuation goes on",
                _who(move),
                waited,
            )
            self._store.record_event(
                move.source_host,
                move.incident_id,
                "cloud_answers",
                f"the cloud answers again after {waited:.0f} s: {announced}",
                self._clock.now(),
            )
        return move

    def _note_sick_in_flight(self, move: MoveRecord, problem: str) -> None:
        """Remember that the cloud could not place servers while Nova held (or may hold) ``move``'s
        request: ACCEPTED, or REQUESTING after a request whose answer never came."""
        if move.status in (MoveStatus.ACCEPTED, MoveStatus.REQUESTING):
            with self._lock:
                self._sick_in_flight.setdefault((move.incident_id, move.server_id), problem)

    def _take_sick_in_flight(self, move: MoveRecord) -> str:
        """The problem noted while Nova held ``move``'s request ("" if none), forgotten once taken."""
        with self._lock:
            return self._sick_in_flight.pop((move.incident_id, move.server_id), "")

    def _health(self, source_host: str, fresh: bool = False) -> CloudHealth:
        """Can the cloud place a server now? Nova's compute services and placement, read at most every
        ``health_ttl`` seconds for all the moves of a host; ``fresh`` to judge a failure Nova just
        reported (a reading from before it would say nothing of its cause)."""
        with self._lock:
            cached = self._health_cache.get(source_host)
        if not fresh and cached is not None and self._clock.monotonic() - cached[0] < self._policy.health_ttl:
            return cached[1]
        try:
            services = self._compute.list_services()
            up = sum(1 for s in services if s.host != source_host and s.state == "up" and not s.forced_down)
        except StaleEpoch:
            raise
        except PetguardError:  # unreachable, 5xx, a refused token: nothing says the cloud can place now
            return CloudHealth(computes_up=None)
        try:
            self._compute.check_placement()
            placement = ""
        except Temporary as exc:
            placement = str(exc)
        except PetguardError as exc:  # placement answered, but not to this question (policy, version)
            LOG.debug("placement answered %s; counted as answering", exc)
            placement = ""
        health = CloudHealth(computes_up=up, placement=placement)
        with self._lock:
            self._health_cache[source_host] = (self._clock.monotonic(), health)
        return health

    def _step(self, move: MoveRecord, since: float) -> MoveRecord:
        if move.status in (MoveStatus.PLANNED, MoveStatus.REQUESTING):
            return self._request(move, since)
        if move.status is MoveStatus.ACCEPTED:
            return self._follow(move, since)
        return self._restore_power(move)

    # -- PLANNED / REQUESTING: ask Nova, unless Nova already has it ---------------------------------
    def _request(self, move: MoveRecord, since: float) -> MoveRecord:
        server = self._compute.get_server(move.server_id)
        # Every check of this look reads the same listing of the host's evacuations (a list of the
        # whole host, read once when first needed): the checks are all made, from one read of Nova.
        # Resetting a dead request's task changes the server, not its migrations.
        latest = functools.cache(lambda: self._latest_evacuation(move, since))
        # Proved again here, from Nova's records, whatever the journal says: a crash anywhere between
        # the proof and the new request lands here and decides the same way.
        dead = self._dead_request(move, latest, since)
        if dead is not None and server.task_state is not None:
            self._reset_task(move, dead)
            server = self._compute.get_server(move.server_id)
        known = self._nova_already_has_it(move, server, latest, dead=dead is not None)
        if known is not None:
            return known
        if not move.waiting and self._target_refused(move, latest):
            # A crash after Nova took the targeted request, before the journal knew: the scheduler
            # has refused the host since. Nova moved nothing: fall back, do not ask for it again
            # (unless the cloud could not place anything then: evacuate.outage).
            why = f"Nova's scheduler refused {move.target_host}: {server.fault or 'no fault'}"
            self._hold_if_cloud_cannot_answer(move, server.fault)
            return self._fall_back(move, why)
        if move.attempts >= self._policy.max_request_attempts:
            return self._fail(move, f"Nova did not take the evacuation after {move.attempts} attempts")
        target = move.target_host
        if target is None and self._follows_hint(move):
            target, why_not = self._resolve(move)
            if target is None:
                move = self._fall_back(move, why_not)
        held = judge_before_request(self._health(move.source_host))
        if held is not None:
            raise _CloudWait(held.reason, move)
        now = self._clock.now()
        move = self._write(move, MoveStatus.REQUESTING, now, target_host=target)
        self._take_sick_in_flight(move)  # a new request: only what happens from now on counts
        try:
            with self._requests:  # never every nova-api worker: the loop's own reading must get through
                request_id = self._compute.evacuate(move.server_id, host=target)
        except PetguardError as exc:
            verdict = judge_request_error(exc)
            if verdict.judgement is Judgement.WAIT:
                # The request may or may not have reached Nova: stay REQUESTING; the next look checks
                # Nova's records before anything is sent again. If Nova has it, it took it while the
                # cloud was failing (nova-api's cast hung: RabbitMQ gone): remember it.
                self._note_sick_in_flight(move, verdict.reason)
                raise _CloudWait(verdict.reason, move) from exc
            if target is not None:
                return self._fall_back(move, f"Nova refused the target host {target}: {exc}")
            return self._fail(move, verdict.reason)
        LOG.info(
            "%s: evacuation of %s (%s) to %s accepted by Nova [%s]; next: follow it until it is on another host",
            _who(move),
            move.server_name,
            move.server_id,
            f"{target} (hint {move.hint}, validated by the scheduler)" if target else "the scheduler's choice",
            request_id,
        )
        # A request that died inside Nova, or that a dependency failed after Nova took it, was counted
        # when Nova took it: asking again is not another attempt.
        with self._lock:
            after_setback = (move.incident_id, move.server_id) in self._setbacks
        return self._write(
            move,
            MoveStatus.ACCEPTED,
            self._clock.now(),
            request_id=request_id,
            count_attempt=dead is None and not after_setback,
        )

    def _hold_if_cloud_cannot_answer(self, move: MoveRecord, fault: str) -> None:
        """Raise a wait when Nova's last failure of the move came from a cloud that could not answer."""
        verdict = judge_nothing_moved(fault, self._health(move.source_host, fresh=True), 0, 1)
        if verdict.judgement is Judgement.WAIT:
            raise _CloudWait(verdict.reason, move)

    # -- target hints --------------------------------------------------------------------------------
    @staticmethod
    def _follows_hint(move: MoveRecord) -> bool:
        """The move has a hint it has not given up on (a move falls back at most once)."""
        return bool(move.hint) and not move.fell_back

    def _resolve(self, move: MoveRecord) -> tuple[str | None, str]:
        """The host the move's hint proposes now (fresh Nova state), or None and why not."""
        try:
            hint = parse_hint(move.hint)
        except HintError as exc:  # the planner writes only valid hints; an edited journal may not
            return None, f"hint {exc}"
        if hint.kind is HintKind.RESERVED and (self._reserved is None or not self._reserved.hosts):
            return None, "no reserved host free: none configured ([evacuation] reserved_hosts)"
        try:
            if hint.kind is HintKind.RESERVED:
                assert self._reserved is not None
                return self._reserved.borrow(move.incident_id, move.source_host)
            candidates = self._compute.candidate_hosts(hint, move.source_host)
        except (Temporary, StaleEpoch):
            raise  # stay where the journal says; the next run resolves again (or another leader does)
        except PetguardError as exc:
            return None, f"cannot resolve hint {hint}: {exc}"
        if not candidates:
            return None, f"no host of {hint} is up, enabled and not forced down"
        return candidates[0], ""

    @staticmethod
    def _target_refused(move: MoveRecord, latest: LatestEvacuation) -> bool:
        """The latest evacuation asked for the move's target host and Nova ended it failed."""
        if move.target_host is None or move.fell_back:
            return False
        migration = latest()
        return migration is not None and migration.failed and migration.dest_host in (None, move.target_host)

    def _fall_back(self, move: MoveRecord, why: str) -> MoveRecord:
        """The hint cannot be met: say so, clear the target, and let the scheduler choose (once)."""
        LOG.info(
            "%s: target hint %s of %s cannot be met: %s; next: evacuate it to the scheduler's choice",
            _who(move),
            move.hint,
            move.server_name,
            why,
        )
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "target_hint_unmet",
            f"{move.server_name} ({move.server_id}): hint {move.hint} ({move.hint_source}) not met: {why}; "
            "using the scheduler's choice",
            self._clock.now(),
        )
        return self._write(move, MoveStatus.REQUESTING, self._clock.now(), fall_back=True)

    def _nova_already_has_it(
        self, move: MoveRecord, server: Server, latest: LatestEvacuation, dead: bool = False
    ) -> MoveRecord | None:
        """The move's next journal state if Nova already moved or is moving the server, else None.

        ``dead``: the move's request was proved dead (``_dead_request``): its 'accepted' migration is
        no evacuation in flight."""
        now = self._clock.now()
        if server.host and server.host != move.source_host and server.task_state is None:
            LOG.info(
                "%s: %s is already on %s; next: restore its power state",
                _who(move),
                move.server_name,
                server.host,
            )
            return self._write(move, MoveStatus.ARRIVED, now, dest_host=server.host)
        migration = None if dead else latest()
        if server.task_state == "rebuilding" or (migration is not None and not migration.failed):
            LOG.info(
                "%s: Nova already has the evacuation of %s (migration %s, task %s); following it, not re-sending",
                _who(move),
                move.server_name,
                migration.status if migration else "-",
                server.task_state,
            )
            return self._write(move, MoveStatus.ACCEPTED, now, count_attempt=True)
        return None

    def _latest_evacuation(self, move: MoveRecord, since: float) -> Migration | None:
        # Nova stamps migrations with its own clock: allow for some skew against ours, so that a
        # controller clock running ahead never hides the migration petguard itself asked for.
        floor = since - CLOCK_SKEW_ALLOWANCE
        mine = [m for m in self._compute.evacuations_from(move.source_host, floor) if m.server_id == move.server_id]
        # Nova stamps to the second: its growing integer id orders two migrations of the same second
        # (the one a fallback sent right after the scheduler refused the target).
        return max(mine, key=lambda m: (m.created_at, m.seq)) if mine else None

    # -- ACCEPTED: follow until it is on another host -----------------------------------------------
    def _follow(self, move: MoveRecord, since: float) -> MoveRecord:
        try:
            server = self._compute.get_server(move.server_id)
        except NotFound:
            self._take_sick_in_flight(move)
            return self._fail(move, "the server was deleted during its evacuation")
        health = self._health(move.source_host)  # shared by the host's moves for health_ttl: one read
        if not health.healthy:
            self._note_sick_in_flight(move, health.problem())
        if server.host and server.host != move.source_host and server.task_state is None:
            self._take_sick_in_flight(move)
            LOG.info("%s: %s arrived on %s; next: restore its power state", _who(move), move.server_name, server.host)
            return self._write(move, MoveStatus.ARRIVED, self._clock.now(), dest_host=server.host, waiting="")
        if server.task_state is not None or move.stuck:
            dead = None
            # an operator's vouch (petguard host resend) is looked at on the next look, not after the delay
            if move.resend_vouched_at is not None or self._death_check_due(move):
                dead = self._dead_request(move, lambda: self._latest_evacuation(move, since), since)
            if dead is not None:
                return self._ask_again_after_death(move, dead)
            move = self._park_if_stuck(move, since)
            self._clock.sleep(self._policy.poll_interval)  # Nova is still working on it
            return move
        migration = self._latest_evacuation(move, since)
        refused = (migration is not None and migration.failed) or (
            server.vm_state == "error" and (migration is None or not (migration.in_flight or migration.succeeded))
        )
        if not refused and server.vm_state == "error" and migration is not None and migration.status == "accepted":
            return self._ended_without_a_word(move, migration, since)
        if not refused:
            self._clock.sleep(self._policy.poll_interval)
            return move
        # Nova moved nothing: the server is still on the failed host and no evacuation is in flight.
        what = f"migration {migration.id} ended {migration.status}" if migration else "the server is ERROR"
        verdict = judge_nothing_moved(
            server.fault,
            self._health(move.source_host, fresh=True),
            move.attempts,
            self._policy.max_request_attempts,
            sick_in_flight=self._take_sick_in_flight(move),
        )
        if verdict.judgement is Judgement.WAIT:
            # Judged once, now: the next look asks again through the checks of Nova's records. Nova
            # took the request and a dependency failed it (Keystone gone, while the computes and
            # placement look fine): not an attempt, and asked again after a back-off that grows with
            # each such setback, so that an outage of minutes is neither a storm of requests nor
            # 'max_request_attempts' spent in seconds (CP-14).
            setbacks = self._setback(move)
            move = self._write(move, MoveStatus.REQUESTING, self._clock.now(), waiting=verdict.reason)
            self._clock.sleep(min(self._policy.wait_backoff_max, 2.0**setbacks))
            raise _CloudWait(f"{verdict.reason} ({what})", move)
        with self._lock:
            self._setbacks.pop((move.incident_id, move.server_id), None)  # Nova's own answer: attempts count again
        if move.target_host is not None and not move.fell_back:
            # the evacuation failed on the scheduler: the hint is what failed
            return self._fall_back(
                move, f"Nova's scheduler refused {move.target_host} ({what}): {server.fault or 'no fault recorded'}"
            )
        if verdict.judgement is Judgement.RETRY:
            return self._ask_again(move, what, verdict)
        return self._fail(move, f"evacuation {what}: {verdict.reason}")

    def _ended_without_a_word(self, move: MoveRecord, migration: Migration, since: float) -> MoveRecord:
        """Nova ended the request (the server is ERROR on the failed host, no task) and left its migration
        'accepted': nova-conductor failed it after the scheduler, and recorded the failure on another
        of the server's migrations (it takes the server's first 'accepted' one). Seen on the lab: a
        scheduler restarted after 3 min ran the stale calls of dead requests and their allocations
        collided ("another process changed the consumer"). Asked again when Nova's record proves the
        request dead (evacuate.outage.died_in_conductor), else flagged stuck after stuck_after."""
        if move.resend_vouched_at is not None or self._death_check_due(move):
            dead = self._dead_request(move, lambda: migration, since)
            if dead is not None:
                return self._ask_again_after_death(move, dead)
        move = self._park_if_stuck(move, since)
        self._clock.sleep(self._policy.poll_interval)
        return move

    def _setback(self, move: MoveRecord) -> int:
        """Count one more accepted request of ``move`` that a failing dependency ended; the count."""
        key = (move.incident_id, move.server_id)
        with self._lock:
            self._setbacks[key] = self._setbacks.get(key, 0) + 1
            return self._setbacks[key]

    # -- a request that died inside Nova (evacuate.outage.died_in_conductor) --------------------------
    def _death_check_due(self, move: MoveRecord) -> bool:
        """Look at Nova's record of a request that makes no progress: from DEATH_CHECK_AFTER s after
        Nova took it, every DEATH_CHECK_EVERY s (two GETs each), never on every poll."""
        if self._clock.now() - move.updated_at < DEATH_CHECK_AFTER:
            return False
        key, now = (move.incident_id, move.server_id), self._clock.monotonic()
        with self._lock:
            last = self._death_checked.get(key)
            if last is not None and now - last < DEATH_CHECK_EVERY:
                return False
            self._death_checked[key] = now
        return True

    def _dead_request(self, move: MoveRecord, latest: LatestEvacuation, since: float) -> str | None:
        """Why the move's request can no longer run, proved from Nova's records, or None.

        Only a request whose migration is still 'accepted' with no destination is looked at; the
        server's newest evacuate request must be the move's own (not an operator's later one). A move
        an operator vouched for (``petguard host resend``) needs no migration (nova-api may have died before
        it wrote one) and no proof that nothing holds the request: the operator's word is that."""
        vouched = move.resend_vouched_at is not None
        if move.request_id is None and not vouched:
            return None
        migration = latest()
        if migration is not None and (migration.status != "accepted" or migration.dest_host):
            if vouched:
                self._refuse_vouch(move, f"Nova moved it on (migration {migration.id} {migration.status})")
            return None
        if migration is None and not vouched:
            return None
        try:
            trace = self._compute.latest_request(move.server_id, "evacuate")
        except PetguardError as exc:
            LOG.info("%s: cannot read Nova's record of %s's request: %s; not proved dead", _who(move),
                     move.server_name, exc)  # fmt: skip
            return None
        if vouched:
            allowed, why = resend_on_the_operators_word(trace, move.request_id, since - CLOCK_SKEW_ALLOWANCE)
            if not allowed:
                self._refuse_vouch(move, why)
            return why if allowed else None
        return None if trace is None or move.request_id is None else died_in_conductor(trace, move.request_id)

    def _refuse_vouch(self, move: MoveRecord, why: str) -> None:
        """Nova's record forbids the resend an operator vouched for: say so once, and forget the vouch."""
        LOG.warning(
            "%s: resend of %s refused: %s; next: petguard follows what Nova has", _who(move), move.server_name, why
        )
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "resend_refused",
            f"{move.server_name} ({move.server_id}): not sent again: {why}",
            self._clock.now(),
        )
        self._write(move, move.status, self._clock.now(), end_vouch=True)

    def _ask_again_after_death(self, move: MoveRecord, why: str) -> MoveRecord:
        """Back to REQUESTING: the next step proves it again, resets the server's task and asks again."""
        LOG.warning(
            "%s: evacuation of %s: %s (migration still 'accepted'); next: reset its task in Nova and ask again",
            _who(move),
            move.server_name,
            why,
        )
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "evacuation_resent",
            f"{move.server_name} ({move.server_id}): {why}: its state is reset and the evacuation asked again",
            self._clock.now(),
        )
        return self._write(move, MoveStatus.REQUESTING, self._clock.now(), waiting="")

    def _reset_task(self, move: MoveRecord, why: str) -> None:
        """``os-resetState`` on a server whose evacuation died inside Nova (Nova refuses a new
        evacuate while the dead request's task is set)."""
        request_id = self._compute.reset_state(move.server_id)
        LOG.info("%s: %s reset to active with no task (%s) [%s]; next: ask Nova again", _who(move),
                 move.server_name, why, request_id)  # fmt: skip

    def _park_if_stuck(self, move: MoveRecord, since: float) -> MoveRecord:
        """Give the slot back when Nova took the request but never started it (see the module doc)."""
        if not move.stuck and self._clock.now() - move.updated_at < self._policy.stuck_after:
            return move
        migration = self._latest_evacuation(move, since)
        if migration is not None and (migration.dest_host or migration.status != "accepted"):
            if move.stuck:  # Nova moves it on after all
                LOG.info("%s: %s is no longer stuck (migration %s %s); following it", _who(move),
                         move.server_name, migration.id, migration.status)  # fmt: skip
                return self._write(move, move.status, self._clock.now(), waiting="")
            return move
        if move.stuck:
            raise _Parked
        taken = self._clock.now() - move.updated_at
        what = f"migration {migration.id} still 'accepted' with no destination" if migration else "no migration"
        reason = f"{STUCK}Nova took the request {taken:.0f} s ago and never started it ({what})"
        commands = (
            "check that nova-conductor and nova-scheduler run, restart nova-api and nova-conductor (a worker may "
            f"still hold the request), then `petguard host resend {move.source_host} --reason '...'`: petguard checks "
            "Nova's records, resets the server and asks again"
        )
        LOG.warning("%s: evacuation of %s %s; next: %s", _who(move), move.server_name, reason, commands)
        self._write(move, move.status, self._clock.now(), waiting=reason)
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "evacuation_stuck",
            f"{move.server_name} ({move.server_id}): {reason[len(STUCK):]}; the request was probably lost between "
            f"nova-api and nova-conductor; {commands}",
            self._clock.now(),
        )
        raise _Parked

    def _ask_again(self, move: MoveRecord, what: str, verdict: Verdict) -> MoveRecord:
        """Ask Nova again (Nova moved nothing), after the scheduler had time to learn where the group's
        members are now (the late server-group check) or whatever failed had time to pass."""
        LOG.info(
            "%s: %s (%s): nothing moved; next: ask again in %.0f s (attempt %d of %d)",
            _who(move),
            verdict.reason,
            what,
            self._policy.race_retry_delay,
            move.attempts + 1,
            self._policy.max_request_attempts,
        )
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "evacuation_retried",
            f"{move.server_name} ({move.server_id}): {what}: {verdict.reason}; asked again "
            f"(attempt {move.attempts + 1} of {self._policy.max_request_attempts})",
            self._clock.now(),
        )
        move = self._write(move, MoveStatus.REQUESTING, self._clock.now())
        self._clock.sleep(self._policy.race_retry_delay)
        return move

    # -- ARRIVED: the power state it had before ----------------------------------------------------
    def _restore_power(self, move: MoveRecord) -> MoveRecord:
        server = self._compute.get_server(move.server_id)
        if server.task_state is not None:
            self._clock.sleep(self._policy.poll_interval)
            return move
        running = server.vm_state == "active"
        stopped = server.vm_state == "stopped"
        if move.power_goal is PowerGoal.RUNNING and stopped:
            request_id = self._compute.start_server(move.server_id)
            LOG.info(
                "%s: starting %s on %s, it was running before [%s]",
                _who(move),
                move.server_name,
                server.host,
                request_id,
            )
        elif move.power_goal is PowerGoal.STOPPED and running:
            request_id = self._compute.stop_server(move.server_id)
            LOG.info(
                "%s: stopping %s on %s, it was stopped before [%s]",
                _who(move),
                move.server_name,
                server.host,
                request_id,
            )
        elif (move.power_goal is PowerGoal.RUNNING and running) or (move.power_goal is PowerGoal.STOPPED and stopped):
            LOG.info("%s: %s recovered: %s on %s", _who(move), move.server_name, server.status, server.host)
            done = self._write(move, MoveStatus.DONE, self._clock.now(), dest_host=server.host)
            self._store.record_event(
                move.source_host,
                move.incident_id,
                "server_evacuated",
                f"{move.server_name} ({move.server_id}): {server.status} on {server.host}",
                self._clock.now(),
            )
            return done
        else:
            return self._fail(
                move, f"arrived on {server.host} in vm_state {server.vm_state}, cannot restore {move.power_goal.value}"
            )
        self._clock.sleep(self._policy.poll_interval)
        return move

    def _fail(self, move: MoveRecord, reason: str) -> MoveRecord:
        LOG.error(
            "%s: evacuation of %s (%s) failed: %s; next: an operator must look at it",
            _who(move),
            move.server_name,
            move.server_id,
            reason,
        )
        # a failed move waits for nothing: not shown nor counted as waiting, and no "the cloud answers" follows
        failed = self._write(move, MoveStatus.FAILED, self._clock.now(), reason=reason, waiting="")
        self._store.record_event(
            move.source_host,
            move.incident_id,
            "evacuation_failed",
            f"{move.server_name} ({move.server_id}): {reason}",
            self._clock.now(),
        )
        return failed
