"""Reserved failover hosts through an evacuation lane (``Recovery.evacuate``), over the real journal
(sqlite) and the in-memory Nova: a ``reserved`` pet borrows one host for its incident (enabled, then
used, then disabled again when every move is final), never one host for two incidents, and a crash
between any journal write and Nova call is finished by ``tidy`` (the leader's resume path)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard.cloud import HintKind, TargetHint
from petguard.evacuate.hints import HintRules
from petguard.evacuate.plan import EvacuationPolicy, plan
from petguard.evacuate.reserved import ReservedPool, returned_reason
from petguard.evacuate.run import RunPolicy
from petguard.fencing.base import FenceResult
from petguard.journal import MoveStatus, ReservedState
from petguard.lanes import Recovery, RecoveryPolicy
from petguard.store.sql import SqlStore
from tests.fakes import FakeClock, FakeCompute
from tests.functional.harness import journal_url
from tests.functional.store.store_builders import suspect_tick

RESERVED = {"petguard:pet": "true", "petguard:target": "reserved"}
PET = {"petguard:pet": "true"}
SPARES = ("spare1", "spare2")
OPERATOR_REASON = "reserved for petguard"
POLICY = RecoveryPolicy(
    evacuation=EvacuationPolicy(),
    run=RunPolicy(max_parallel=4, poll_interval=0.01, move_timeout=60),
    reserved_hosts=SPARES,
)


class Crash(BaseException):
    """A SIGKILL stand-in: nothing in petguard catches it."""


@dataclasses.dataclass
class World:
    compute: FakeCompute
    store: SqlStore
    clock: FakeClock

    def pool(self, compute: Any = None, store: Any = None) -> ReservedPool:
        return ReservedPool(compute or self.compute, store or self.store, self.clock, SPARES)

    def incident(self, host: str) -> int:
        self.store.save_tick(suspect_tick(host, at=time.time() - 5))
        incident_id = self.store.load_hosts()[host].host.incident_id
        assert incident_id is not None
        return incident_id

    def fail(self, host: str) -> int:
        self.compute.dead.add(host)
        return self.incident(host)

    def evacuate(self, host: str, incident_id: int, pool: ReservedPool | None = None, **kw: Any) -> None:
        recovery = Recovery(
            lambda h: FenceResult(h, True, "fake"), self.compute, self.store, self.clock, kw.get("policy", POLICY),
            None, reserved=pool or self.pool(),
        )  # fmt: skip
        recovery.evacuate(host, incident_id)

    def loans(self) -> dict[str, tuple[ReservedState, int | None]]:
        return {r.host: (r.state, r.incident_id) for r in self.store.reserved_hosts()}

    def events(self, kind: str) -> list[str]:
        return [e.message for e in self.store.events(limit=1000) if e.kind == kind]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    compute = FakeCompute(["cmp1", "cmp2", "cmp3", *SPARES], evacuation_steps=3)
    for spare in SPARES:  # the operator keeps them disabled
        compute.services[spare].status = "disabled"
        compute.services[spare].disabled_reason = OPERATOR_REASON
    store = SqlStore(journal_url(tmp_path))
    yield World(compute, store, FakeClock())
    store.close()


@pytest.mark.fault(
    "GRP-12",
    guarantee="4",
    injected="a host fails with pets that ask for a reserved failover host (disabled in Nova by the operator)",
    expected="one reserved host enabled for the incident, the pets moved onto it once each, then disabled again with "
    "petguard's reason and idle",
)
def test_a_reserved_host_is_enabled_used_and_returned(world: World) -> None:
    nova = world.compute
    nova.add_server("pet", "cmp1", metadata=RESERVED)
    nova.add_server("other", "cmp1", metadata=PET)
    incident_id = world.fail("cmp1")
    world.evacuate("cmp1", incident_id)

    assert ("pet-id", "spare1") in nova.evacuate_hosts
    assert nova.servers["pet-id"].host == "spare1"  # the pets it took stay on it
    assert nova.services["spare1"].status == "disabled"  # returned: nothing new lands there
    assert nova.services["spare1"].disabled_reason == returned_reason(incident_id)
    assert nova.services["spare2"].disabled_reason == OPERATOR_REASON  # untouched
    assert world.loans() == {"spare1": (ReservedState.IDLE, None), "spare2": (ReservedState.IDLE, None)}
    assert all(m.status is MoveStatus.DONE for m in world.store.moves(incident_id))
    assert len(world.events("reserved_host_borrowed")) == 1 and len(world.events("reserved_host_returned")) == 1
    assert nova.calls["enable"] == 1 and nova.calls["disable"] == 2  # the failed host, then the spare


def test_one_reserved_host_per_incident_for_all_its_reserved_pets(world: World) -> None:
    for i in range(4):
        world.compute.add_server(f"pet-{i}", "cmp1", metadata=RESERVED)
    incident_id = world.fail("cmp1")
    world.evacuate("cmp1", incident_id)
    assert {world.compute.servers[f"pet-{i}-id"].host for i in range(4)} == {"spare1"}
    assert world.compute.calls["enable"] == 1
    assert world.loans()["spare2"] == (ReservedState.IDLE, None)


@pytest.mark.fault(
    "GRP-13",
    guarantee="4",
    injected="three hosts fail at once with two reserved hosts",
    expected="each of the first two incidents borrows its own; the third gets none, with a reason naming who holds "
    "each",
)
def test_a_host_is_never_lent_to_two_incidents_and_none_free_falls_back(world: World) -> None:
    pool = world.pool()
    first, second, third = world.incident("cmp1"), world.incident("cmp2"), world.incident("cmp3")
    assert pool.borrow(first, "cmp1") == ("spare1", "")
    assert pool.borrow(first, "cmp1") == ("spare1", "")  # the same incident keeps its host
    assert pool.borrow(second, "cmp2") == ("spare2", "")
    host, why = pool.borrow(third, "cmp3")
    assert host is None
    assert why == "no reserved host free (spare1 is borrowed by incident 1; spare2 is borrowed by incident 2)"


@pytest.mark.fault(
    "GRP-14",
    guarantee="4",
    injected="every reserved host is down when a reserved pet must move",
    expected="the scheduler's choice, a target_hint_unmet naming why, nothing enabled",
)
def test_a_reserved_pet_with_no_host_free_goes_to_the_scheduler_and_says_so(world: World) -> None:
    world.compute.dead.update(SPARES)  # both spares are down
    world.compute.add_server("pet", "cmp1", metadata=RESERVED)
    incident_id = world.fail("cmp1")
    world.evacuate("cmp1", incident_id)
    assert world.compute.evacuate_hosts == [("pet-id", None)]
    assert world.compute.servers["pet-id"].host in ("cmp2", "cmp3")
    [message] = world.events("target_hint_unmet")
    assert "no reserved host free (spare1 is down; spare2 is down)" in message
    assert world.compute.calls.get("enable", 0) == 0


def test_the_default_hint_borrows_and_a_full_reserved_host_falls_back(world: World) -> None:
    policy = dataclasses.replace(
        POLICY, evacuation=EvacuationPolicy(hints=HintRules(default=TargetHint(HintKind.RESERVED)))
    )
    world.compute.refuse_targets = {"spare1"}  # no room left on it: the scheduler says NoValidHost
    world.compute.add_server("pet", "cmp1", metadata=PET)
    incident_id = world.fail("cmp1")
    world.evacuate("cmp1", incident_id, policy=policy)
    assert world.compute.evacuate_hosts == [("pet-id", "spare1"), ("pet-id", None)]
    [move] = world.store.moves(incident_id)
    assert move.status is MoveStatus.DONE and move.fell_back and move.hint_source == "[evacuation] use_reserved_hosts"
    assert world.loans()["spare1"] == (ReservedState.IDLE, None)  # returned all the same
    assert world.compute.services["spare1"].status == "disabled"


# -- crashes and the resume path ------------------------------------------------------------------


class CrashingCompute:
    """The in-memory Nova; raises ``Crash`` right after the chosen call was answered (once)."""

    def __init__(self, compute: FakeCompute, after: str) -> None:
        self._compute = compute
        self._after = after

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._compute, name)
        if name != self._after:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if self._after:
                self._after = ""
                raise Crash(name)
            return result

        return call


class CrashingStore:
    """The real store; raises ``Crash`` right after the chosen reserved-host write (once)."""

    def __init__(self, store: SqlStore, after: str) -> None:
        self._store = store
        self._after = after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _crash(self, point: str) -> None:
        if point == self._after:
            self._after = ""
            raise Crash(point)

    def borrow_reserved_host(self, host: str, incident_id: int, at: float) -> bool:
        won = self._store.borrow_reserved_host(host, incident_id, at)
        self._crash("borrowing")
        return won

    def set_reserved_state(self, host: str, incident_id: int, expected: Any, new: ReservedState, at: float) -> bool:
        changed = self._store.set_reserved_state(host, incident_id, expected, new, at)
        self._crash(new.value)
        return changed


#: (where the crash comes, through the store or Nova)
CRASHES = [
    ("store", "borrowing"),  # taken in the journal, service not enabled
    ("nova", "enable"),  # enabled, the journal still says borrowing
    ("store", "borrowed"),
    ("store", "returning"),  # the incident is over: returning written, service still enabled
    ("nova", "disable"),  # disabled again, the journal still says returning
    ("store", "idle"),
]


@pytest.mark.parametrize(("where", "point"), CRASHES)
@pytest.mark.fault(
    "PG-04",
    guarantee="2",
    injected="a reserved host's loan or return left half done by a crash (after each journal write and Nova call)",
    expected="the resume path (tidy) finishes it: the pet on the spare at most once, the spare disabled again with "
    "petguard's reason and idle once the incident is over",
)
def test_a_crash_at_any_step_of_a_loan_is_finished_by_the_resume_path(world: World, where: str, point: str) -> None:
    world.compute.add_server("pet", "cmp1", metadata=RESERVED)
    incident_id = world.fail("cmp1")
    # the failed host's own disable comes before the loan: crash on the spare's disable only
    compute: Any = CrashingCompute(world.compute, point) if where == "nova" else world.compute
    if point == "disable":
        compute = _OnlyForSpares(world.compute, point)
    store: Any = CrashingStore(world.store, point) if where == "store" else world.store
    crashed = world.pool(compute, store)
    with pytest.raises(Crash):
        world.evacuate("cmp1", incident_id, pool=crashed)

    world.pool().tidy()  # the leader's resume path (at start and every tick)
    world.evacuate("cmp1", incident_id)  # the lane runs again after the restart (re-entrant)
    world.pool().tidy()

    assert world.loans() == {"spare1": (ReservedState.IDLE, None), "spare2": (ReservedState.IDLE, None)}
    assert world.compute.services["spare1"].status == "disabled"
    assert world.compute.services["spare1"].disabled_reason == returned_reason(incident_id)
    assert world.compute.servers["pet-id"].host == "spare1"
    assert world.compute.evacuate_hosts == [("pet-id", "spare1")]  # exactly once, to the spare
    assert all(m.status is MoveStatus.DONE for m in world.store.moves(incident_id))
    assert 1 <= len(world.events("reserved_host_returned")) <= 2  # said once, twice if the crash came between


class _OnlyForSpares(CrashingCompute):
    def __getattr__(self, name: str) -> Any:
        method = getattr(self._compute, name)
        if name != "disable":
            return method

        def call(service: Any, reason: str) -> Any:
            result = method(service, reason)
            if self._after and service.host in SPARES:
                self._after = ""
                raise Crash(name)
            return result

        return call


@pytest.mark.parametrize(
    ("state", "moves_final", "expected", "enabled"),
    [
        (ReservedState.BORROWING, False, ReservedState.BORROWED, True),  # finish the loan
        (ReservedState.BORROWING, True, ReservedState.IDLE, False),  # the incident is over: give it back
        (ReservedState.BORROWED, False, ReservedState.BORROWED, True),  # in use: left alone
        (ReservedState.BORROWED, True, ReservedState.IDLE, False),  # over: given back
        (ReservedState.RETURNING, False, ReservedState.IDLE, False),  # finish the return
    ],
)
@pytest.mark.fault(
    "PG-04",
    guarantee="2",
    injected="a reserved host's loan or return left half done by a crash (after each journal write and Nova call)",
    expected="the resume path (tidy) finishes it: the pet on the spare at most once, the spare disabled again with "
    "petguard's reason and idle once the incident is over",
)
def test_tidy_finishes_each_half_state(
    world: World, state: ReservedState, moves_final: bool, expected: ReservedState, enabled: bool
) -> None:
    world.compute.add_server("pet", "cmp1", metadata=RESERVED)
    incident_id = world.fail("cmp1")
    world.store.record_plan(incident_id, plan("cmp1", world.compute.servers_on("cmp1"), EvacuationPolicy()), 1.0)
    if moves_final:
        world.store.update_move(incident_id, "pet-id", MoveStatus.ARRIVED, 2.0)  # the move table's way to done
        world.store.update_move(incident_id, "pet-id", MoveStatus.DONE, 2.0)
    world.store.add_reserved_hosts(list(SPARES), 1.0)
    assert world.store.borrow_reserved_host("spare1", incident_id, 2.0)
    if state is not ReservedState.BORROWING:
        world.compute.services["spare1"].status = "enabled"  # the loan got that far in Nova
        world.store.set_reserved_state("spare1", incident_id, ReservedState.BORROWING, ReservedState.BORROWED, 3.0)
    if state is ReservedState.RETURNING:
        world.store.set_reserved_state("spare1", incident_id, ReservedState.BORROWED, ReservedState.RETURNING, 4.0)

    world.pool().tidy()

    holder = None if expected is ReservedState.IDLE else incident_id
    assert world.loans()["spare1"] == (expected, holder)
    assert (world.compute.services["spare1"].status == "enabled") is enabled
    assert world.loans()["spare2"] == (ReservedState.IDLE, None)
    assert world.compute.evacuate_calls == {}  # tidy never evacuates
