"""The tier gate: before a wave of a higher tier starts, wait until the pets of the lower tiers are ready
(procedure over interfaces).

The runner (``evacuate.run``) asks ``TierGate.before_wave`` before it starts each wave. The gate waits
only where a new tier begins (the waves of one tier that only serialise an anti-affinity group are not
held), and only before the wave's first request: a wave that started in an earlier run passed its gate
then. It needs no journal state of its own, so after a crash or restart the next run simply checks
again, which is cheap when the pets are ready.

Ready means (docs/evacuation.md, "Readiness between tiers"): ACTIVE in Nova, its delay passed since
its move was DONE (``petguard:ready_delay``, default ``[evacuation] tier_delay``), and it answers its
``petguard:ready_check`` if it has one (``evacuate.ready``; the probe is an injected ``Prober``).
Pets that were stopped before the failure (power goal STOPPED) and FAILED moves are not waited for.
The tier, the check and the addresses are read fresh from Nova when the gate opens, so the journal
keeps no readiness state. A delay is waited in full; ``timeout`` seconds after the delays the next
tier starts anyway, ready or not, with a
``tier_not_ready`` event: one pet that never answers must not hold the others forever. The stop event
(SIGTERM) ends the wait; the next run waits again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading

from petguard.clock import Clock
from petguard.cloud import PowerGoal, Server
from petguard.compute import Compute
from petguard.errors import NotFound, PetguardError, StaleEpoch, Temporary
from petguard.evacuate.plan import tier_of
from petguard.evacuate.ready import Prober, ProbeResult, ReadyCheck, ReadyPolicy, ReadySpec, ready_spec
from petguard.journal import MoveRecord, MoveStatus, Store, incident_tag

LOG = logging.getLogger(__name__)


class UnwiredProber:
    """The prober of a runner built without one: every check fails, loudly, so that a missing wire is
    seen in the first incident's log instead of silently skipping checks."""

    def probe(self, check: ReadyCheck, address: str, timeout: float) -> ProbeResult:
        return ProbeResult(False, "no readiness prober wired into the evacuation runner (a petguard bug)")


@dataclasses.dataclass
class _Pet:
    """One pet of a lower tier that the gate waits for, with what it last saw."""

    move: MoveRecord
    server: Server
    spec: ReadySpec
    seen: str = ""  # why it is not ready yet, or how it answered

    @property
    def address(self) -> str | None:
        return self.spec.check.address(self.server.addresses) if self.spec.check else None

    def describe(self) -> str:
        """``db (tcp 10.0.0.5:5432, delay 30 s)``: the name and what it waits for."""
        parts = [self.spec.check.describe(self.address)] if self.spec.check else []
        if self.spec.delay > 0:
            parts.append(f"delay {self.spec.delay:g} s")
        return f"{self.move.server_name} ({', '.join(parts) or 'ACTIVE'})"


def _who(move: MoveRecord) -> str:
    return incident_tag(move.source_host, move.incident_id)


def _tiers(tiers: set[int]) -> str:
    return ("tier " if len(tiers) == 1 else "tiers ") + ", ".join(str(t) for t in sorted(tiers))


class TierGate:
    """Holds a wave of a higher tier until the lower tiers' pets are ready, or ``policy.timeout`` passed."""

    def __init__(
        self,
        compute: Compute,
        store: Store,
        clock: Clock,
        policy: ReadyPolicy,
        prober: Prober,
        stop: threading.Event,
        max_parallel: int = 4,
    ) -> None:
        self._compute = compute
        self._store = store
        self._clock = clock
        self._policy = policy
        self._prober = prober
        self._stop = stop
        self._max_parallel = max(1, max_parallel)

    def before_wave(self, incident_id: int, wave: int) -> bool:
        """Wait, if ``wave`` starts a higher tier, until the lower tiers are ready or the timeout passed.

        :returns: True when the wave may start; False when this run must end first (stopping, or
            Nova could not be read): the next run calls the gate again.
        """
        moves = self._store.moves(incident_id)
        this = [m for m in moves if m.wave == wave]
        earlier = [m for m in moves if m.wave < wave]
        if not this or not earlier or any(m.status is not MoveStatus.PLANNED for m in this):
            return True  # the first wave, or a wave that began in an earlier run (its gate was passed)
        try:
            tier = self._tier_of(this)
            previous = self._tier_of([m for m in earlier if m.wave == max(e.wave for e in earlier)])
            if tier is not None and previous is not None and tier <= previous:
                return True  # the same tier: this wave only serialises an anti-affinity group
            pets = self._lower_tier_pets(earlier)
        except StaleEpoch:
            raise  # another controller leads now
        except Temporary as exc:
            LOG.warning(
                "%s: cannot read the pets of the lower tiers before wave %d: %s; next: the next run checks again",
                _who(this[0]),
                wave,
                exc,
            )
            return False
        except PetguardError as exc:
            # Nova refuses the read itself (it will not change by asking again): do not hold the recovery.
            LOG.warning(
                "%s: cannot check the readiness of the lower tiers before wave %d: %s; next: the wave starts now",
                _who(this[0]),
                wave,
                exc,
            )
            return True
        return self._wait(pets, this[0], wave, tier)

    def _tier_of(self, moves: list[MoveRecord]) -> int | None:
        """The tier of a wave's servers, fresh from Nova (the journal does not keep it); None if they are gone."""
        for move in moves:
            try:
                return tier_of(self._compute.get_server(move.server_id))
            except NotFound:
                continue
        return None

    def _lower_tier_pets(self, earlier: list[MoveRecord]) -> list[_Pet]:
        """The pets to wait for: DONE and running before the failure. The plan puts every wave of a
        lower tier before the first wave of a higher one, so the earlier waves hold the lower tiers."""
        pets = []
        for move in earlier:
            if move.status is not MoveStatus.DONE or move.power_goal is not PowerGoal.RUNNING:
                continue  # a FAILED move is reported already; a stopped pet answers nothing
            try:
                server = self._compute.get_server(move.server_id)
            except NotFound:
                LOG.info("%s: %s was deleted since its evacuation; not waited for", _who(move), move.server_name)
                continue
            spec = ready_spec(server.metadata, self._policy.default_delay)
            for problem in spec.problems:
                self._report_problem(move, problem)
            pets.append(_Pet(move, server, spec))
        return pets

    def _report_problem(self, move: MoveRecord, problem: str) -> None:
        text = f"{move.server_name} ({move.server_id}): {problem}"
        LOG.warning("%s: %s", _who(move), text)
        self._store.record_event(move.source_host, move.incident_id, "ready_check_invalid", text, self._clock.now())

    def _wait(self, pets: list[_Pet], first: MoveRecord, wave: int, tier: int | None) -> bool:
        who = _who(first)
        this_tier = "the next tier" if tier is None else f"tier {tier}"
        lower = _tiers({tier_of(p.server) for p in pets}) if pets else "the lower tiers"
        pending = self._not_ready(pets)
        if not pending:
            if any(p.spec.configured for p in pets):
                LOG.info(
                    "%s: %s is ready: %s; next: %s starts (wave %d)",
                    who,
                    lower,
                    ", ".join(f"{p.describe()}: {p.seen}" for p in pets if p.spec.configured),
                    this_tier,
                    wave,
                )
            return True
        # A delay is waited in full: the timeout is for the checks, and counts once every delay is over.
        delays_left = max(p.move.updated_at + p.spec.delay - self._clock.now() for p in pending)
        limit = round(max(0.0, delays_left) + self._policy.timeout, 1)
        deadline = self._clock.monotonic() + limit
        LOG.info(
            "%s: %s waits for %s to be ready: %s; next: wave %d starts when they are, or in %g s anyway",
            who,
            this_tier,
            lower,
            ", ".join(f"{p.describe()}: {p.seen}" for p in pending),
            wave,
            limit,
        )
        while pending:
            if self._stop.is_set():
                LOG.info("%s: stopping while %s waits for %s; next: the next run checks again", who, this_tier, lower)
                return False
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                self._give_up(pending, first, this_tier, lower, wave, limit)
                return True
            self._clock.sleep(min(self._policy.interval, remaining))
            pending = self._not_ready(pending)
        LOG.info("%s: %s is ready; next: %s starts (wave %d)", who, lower, this_tier, wave)
        return True

    def _give_up(
        self, pending: list[_Pet], first: MoveRecord, this_tier: str, lower: str, wave: int, waited: float
    ) -> None:
        text = (
            f"{lower} not ready after {waited:g} s: "
            + ", ".join(f"{p.describe()}: {p.seen}" for p in pending)
            + f"; {this_tier} starts anyway (wave {wave})"
        )
        LOG.warning("%s: %s; next: look at the pets named, they may not work", _who(first), text)
        self._store.record_event(first.source_host, first.incident_id, "tier_not_ready", text, self._clock.now())

    def _not_ready(self, pets: list[_Pet]) -> list[_Pet]:
        """One round of checks (in parallel, like moves): the pets that are not ready yet."""
        if len(pets) <= 1:
            ready = [self._ready(p) for p in pets]
        else:
            workers = min(self._max_parallel, len(pets))
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ready") as pool:
                ready = list(pool.map(self._ready, pets))
        for pet, ok in zip(pets, ready, strict=True):
            if ok and pet.spec.configured:
                LOG.info("%s: %s is ready: %s", _who(pet.move), pet.describe(), pet.seen)
        return [p for p, ok in zip(pets, ready, strict=True) if not ok]

    def _ready(self, pet: _Pet) -> bool:
        """ACTIVE, its delay passed since it was DONE, and it answers its check (if any)."""
        if pet.server.status != "ACTIVE":
            pet.server = self._fresh(pet)
            if pet.server.status != "ACTIVE":
                pet.seen = f"{pet.server.status or 'no status'} in Nova"
                return False
        left = pet.move.updated_at + pet.spec.delay - self._clock.now()
        if left > 0:
            pet.seen = f"delay: {left:.0f} s left"
            return False
        check = pet.spec.check
        if check is None:
            pet.seen = "ACTIVE"
            return True
        address = pet.address
        if address is None:
            pet.seen = "Nova shows no fixed IP address: give a HOST in petguard:ready_check"
            return False
        result = self._prober.probe(check, address, self._policy.probe_timeout)
        pet.seen = result.detail
        return result.answered

    def _fresh(self, pet: _Pet) -> Server:
        """The pet as Nova has it now (a pet that was not ACTIVE may become so); the last read on error."""
        try:
            return self._compute.get_server(pet.move.server_id)
        except PetguardError as exc:
            LOG.debug("%s: cannot read %s: %s", _who(pet.move), pet.move.server_name, exc)
            return pet.server
