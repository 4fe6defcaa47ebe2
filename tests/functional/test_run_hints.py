"""The runner and target hints, over the real journal (sqlite) and the in-memory Nova: the hint is
resolved at request time and passed as ``host``; it falls back to the scheduler's choice once when it
cannot be met (no candidate, a synchronous refusal, NoValidHost from the scheduler), and a crash after
any journal write or Nova call resumes with exactly one further evacuate, never two in flight."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard.cloud import Migration, TargetHint
from petguard.evacuate.hints import HintRules, parse_hint
from petguard.evacuate.plan import EvacuationPolicy, plan
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.journal import MoveRecord, MoveStatus
from petguard.store.sql import SqlStore
from tests.fakes import FakeClock, FakeCompute, _Evacuation
from tests.functional.crashing import Crash, CrashingStore
from tests.functional.harness import journal_url
from tests.functional.store.store_builders import suspect_tick

POLICY = RunPolicy(max_parallel=2, poll_interval=0.01, move_timeout=60)
PET = {"petguard:pet": "true"}
FAST = {**PET, "petguard:target": "aggregate:fast"}


@dataclasses.dataclass
class World:
    compute: FakeCompute
    store: SqlStore
    incident_id: int
    since: float

    def run(self, store: Any = None, compute: Any = None) -> None:
        evacuator = Evacuator(compute or self.compute, store or self.store, FakeClock(), POLICY)
        evacuator.run(self.incident_id, since=self.since)

    def move(self, name: str = "pet") -> MoveRecord:
        return next(m for m in self.store.moves(self.incident_id) if m.server_name == name)

    def unmet(self) -> list[str]:
        return [e.message for e in self.store.events(self.incident_id) if e.kind == "target_hint_unmet"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    compute = FakeCompute(["cmp1", "cmp2", "cmp3", "cmp4"], evacuation_steps=3)
    compute.add_aggregate("fast", ["cmp1", "cmp3", "cmp4"])
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    store = SqlStore(journal_url(tmp_path))
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    yield World(compute, store, incident_id, time.time() - 5)
    store.close()


def planned(world: World, policy: EvacuationPolicy | None = None) -> None:
    the_plan = plan("cmp1", world.compute.servers_on("cmp1"), policy or EvacuationPolicy())
    world.store.record_plan(world.incident_id, the_plan, 1.0)


def test_the_hint_is_resolved_at_request_time_and_passed_as_host(world: World) -> None:
    world.compute.add_server("pet", "cmp1", metadata=FAST)
    planned(world)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", "cmp3")]  # usable members, name order, never the source
    move = world.move()
    assert move.status is MoveStatus.DONE and move.dest_host == "cmp3"
    assert (move.hint, move.target_host, move.fell_back) == ("aggregate:fast", "cmp3", False)
    assert world.unmet() == []


def test_no_hint_asks_the_scheduler_as_before(world: World) -> None:
    world.compute.add_server("pet", "cmp1", metadata=PET)
    planned(world)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", None)]
    assert world.compute.calls.get("candidate_hosts", 0) == 0
    assert world.move().status is MoveStatus.DONE


def test_a_config_hint_by_aggregate_of_the_failed_host(world: World) -> None:
    world.compute.add_aggregate("rack1", ["cmp1", "cmp2"])
    world.compute.add_server("pet", "cmp1", metadata=PET)
    rules = HintRules(by_aggregate={"rack1": parse_hint("az:zone2")})
    world.compute.add_aggregate("z2", ["cmp4"], zone="zone2")
    policy = EvacuationPolicy(hints=rules)
    the_plan = plan("cmp1", world.compute.servers_on("cmp1"), policy, world.compute.aggregates_of("cmp1"))
    world.store.record_plan(world.incident_id, the_plan, 1.0)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", "cmp4")]
    assert world.move().hint_source == "[evacuation] host_targets aggregate:rack1"


@pytest.mark.fault(
    "GRP-07",
    guarantee="4",
    injected="a pet's aggregate hint whose every host is disabled",
    expected="evacuated once by the scheduler's choice; one target_hint_unmet saying no host of the aggregate is up, "
    "enabled and not forced down",
)
def test_no_candidate_falls_back_at_once_and_says_why(world: World) -> None:
    for host in ("cmp3", "cmp4"):
        world.compute.services[host].status = "disabled"
    world.compute.add_server("pet", "cmp1", metadata=FAST)
    planned(world)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", None)]
    move = world.move()
    assert move.status is MoveStatus.DONE and move.dest_host == "cmp2" and move.fell_back
    [message] = world.unmet()
    assert "hint aggregate:fast (metadata petguard:target) not met" in message
    assert "no host of aggregate:fast is up, enabled and not forced down" in message


@pytest.mark.fault(
    "GRP-08",
    guarantee="4",
    injected="a pet's aggregate hint naming an aggregate Nova does not have",
    expected="evacuated once by the scheduler's choice; one target_hint_unmet saying Nova has no such aggregate",
)
def test_an_unknown_aggregate_falls_back_at_once_and_says_it_does_not_exist(world: World) -> None:
    world.compute.add_server("pet", "cmp1", metadata={**PET, "petguard:target": "aggregate:fats"})
    planned(world)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", None)]
    assert world.move().status is MoveStatus.DONE and world.move().fell_back
    [message] = world.unmet()
    assert "hint aggregate:fats (metadata petguard:target) not met" in message
    assert "Nova has no host aggregate named 'fats'" in message and "is up" not in message


@pytest.mark.parametrize("vm_state", ["active", "stopped"])
@pytest.mark.fault(
    "GRP-09",
    guarantee="4",
    injected="the scheduler refuses the hinted target host (NoValidHost there)",
    expected="falls back once to the scheduler's choice and succeeds, in the pet's power state; one target_hint_unmet",
)
def test_no_valid_host_on_the_target_falls_back_once_then_succeeds(world: World, vm_state: str) -> None:
    world.compute.refuse_targets = {"cmp3"}  # e.g. no room left: the scheduler refuses it, later
    world.compute.add_server("pet", "cmp1", metadata=FAST, vm_state=vm_state)
    planned(world)
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", "cmp3"), ("pet-id", None)]
    move = world.move()
    assert move.status is MoveStatus.DONE and move.fell_back and move.target_host is None
    server = world.compute.servers["pet-id"]
    assert server.host != "cmp1" and server.vm_state == vm_state  # the ERROR in between kept the plan's goal
    [message] = world.unmet()
    assert "Nova's scheduler refused cmp3" in message and "No valid host was found" in message
    assert sorted(m.status for m in world.compute.migrations) == ["done", "error"]


class _NoValidHostAnywhere(FakeCompute):
    def _pick_target(self, source: str) -> str | None:
        return None


@pytest.mark.fault(
    "GRP-10",
    guarantee="4",
    injected="NoValidHost on the hinted target and everywhere else",
    expected="one fallback only, then FAILED; a later run does not ask again",
)
def test_a_move_falls_back_only_once(tmp_path: Path, world: World) -> None:
    compute = _NoValidHostAnywhere(["cmp1", "cmp2", "cmp3"], evacuation_steps=3)
    compute.add_aggregate("fast", ["cmp3"])
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    compute.refuse_targets = {"cmp3"}
    compute.add_server("pet", "cmp1", metadata=FAST)
    world.compute = compute
    planned(world)
    world.run()
    world.run()  # and a later run does not try again either
    assert compute.evacuate_hosts == [("pet-id", "cmp3"), ("pet-id", None)]
    move = world.move()
    assert move.status is MoveStatus.FAILED and "No valid host" in move.reason
    assert len(world.unmet()) == 1


class _HostGoneSinceListing(FakeCompute):
    """The candidate listing names a host Nova no longer knows when the request arrives."""

    def candidate_hosts(self, hint: TargetHint, source: str) -> list[str]:
        return ["cmp-gone"]


@pytest.mark.fault(
    "GRP-11",
    guarantee="4",
    injected="Nova refuses the target host synchronously (it no longer knows it)",
    expected="falls back to the scheduler's choice, DONE; target_hint_unmet says Nova refused the host",
)
def test_a_synchronous_refusal_of_the_target_falls_back(world: World) -> None:
    compute = _HostGoneSinceListing(["cmp1", "cmp2"], evacuation_steps=3)
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    compute.add_server("pet", "cmp1", metadata=FAST)
    world.compute = compute
    planned(world)
    world.run()
    assert compute.evacuate_hosts == [("pet-id", None)]  # the refused request never reached the scheduler
    assert world.move().status is MoveStatus.DONE
    [message] = world.unmet()
    assert "Nova refused the target host cmp-gone" in message and "could not be found" in message


# -- crashes ---------------------------------------------------------------------------------------


class HintCrashingStore(CrashingStore):
    def point_of(self, status: MoveStatus, record: MoveRecord, changes: dict[str, Any]) -> str | None:
        if changes.get("fall_back"):
            return "fell_back"
        if status is MoveStatus.REQUESTING and "target_host" in changes:  # the write before Nova is asked
            return "requesting_again" if record.fell_back else "requesting"
        if status is MoveStatus.ACCEPTED:
            return "accepted_again" if record.fell_back else "accepted"
        return None


class CrashingCompute:
    """The in-memory Nova; raises ``Crash`` right after it took the chosen evacuate."""

    def __init__(self, compute: FakeCompute, at: str, journal: SqlStore, incident_id: int) -> None:
        self._compute = compute
        self._at = at
        self._journal = journal
        self._incident_id = incident_id
        self.armed = True
        self.journal_target_when_asked: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compute, name)

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        # write-ahead: the journal names the host asked for before Nova is asked
        [move] = [m for m in self._journal.moves(self._incident_id) if m.server_id == server_id]
        self.journal_target_when_asked.append(move.target_host)
        request_id = self._compute.evacuate(server_id, host)
        point = "evacuate_sent" if host is not None else "evacuate_again_sent"
        if self.armed and point == self._at:
            self.armed = False
            raise Crash(point)
        return request_id


CRASH_POINTS = [
    "requesting",  # REQUESTING with the target written, Nova not asked
    "evacuate_sent",  # Nova took the targeted request, the journal does not know
    "accepted",  # journal says ACCEPTED (targeted)
    "target_hint_unmet",  # the scheduler refused: event written, the move not yet fallen back
    "fell_back",  # the move fell back (REQUESTING, no target), nothing re-sent
    "requesting_again",  # the fallback request is about to be sent
    "evacuate_again_sent",  # Nova took the fallback request, the journal does not know
    "accepted_again",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.fault(
    "PG-03",
    guarantee="2",
    injected="petguard crashes after each of 8 steps of a targeted move and its fallback, then runs again on the same "
    "journal",
    expected="exactly one further evacuate, the journal naming the target before Nova is asked, never two in flight; "
    "the move DONE",
)
def test_a_crash_after_any_step_resumes_with_exactly_one_further_evacuate(world: World, point: str) -> None:
    world.compute.refuse_targets = {"cmp3"}
    world.compute.add_server("pet", "cmp1", metadata=FAST)
    planned(world)
    store = HintCrashingStore(world.store, point)
    compute = CrashingCompute(world.compute, point, world.store, world.incident_id)
    with pytest.raises(Crash):
        world.run(store, compute)
    world.run(store, compute)  # the restarted controller: same journal, same Nova

    assert world.compute.evacuate_hosts == [("pet-id", "cmp3"), ("pet-id", None)]
    assert compute.journal_target_when_asked == ["cmp3", None]
    assert world.move().status is MoveStatus.DONE
    assert "double" not in world.compute.servers["pet-id"].fault  # never two evacuations in flight
    assert sorted(m.status for m in world.compute.migrations) == ["done", "error"]
    assert 1 <= len(world.unmet()) <= 2  # said at least once; twice only if the crash came between


def test_a_crash_before_nova_was_asked_sends_the_journaled_target(world: World) -> None:
    world.compute.add_server("pet", "cmp1", metadata=FAST)
    planned(world)
    store = HintCrashingStore(world.store, "requesting")
    with pytest.raises(Crash):
        world.run(store)
    assert world.move().target_host == "cmp3" and world.compute.evacuate_hosts == []
    world.compute.add_aggregate("fast", ["cmp2", "cmp3"])  # the hint would resolve to cmp2 now...
    world.run()
    assert world.compute.evacuate_hosts == [("pet-id", "cmp3")]  # ...the journal's target is what is sent
    assert world.move().status is MoveStatus.DONE


def test_migrations_of_the_same_second_are_ordered_by_nova_id(world: World) -> None:
    """The scheduler refused the target, the fallback was sent in the same second, and the controller
    crashed before it wrote ACCEPTED: the newer migration (higher id) is in flight — follow it."""
    compute = world.compute
    pet = compute.add_server("pet", "cmp1", metadata=FAST)
    planned(world)
    world.store.update_move(world.incident_id, "pet-id", MoveStatus.REQUESTING, 2.0, count_attempt=True, fall_back=True)
    stamp = float(int(time.time()))
    compute.migrations.append(dataclasses.replace(_migration("mig-a", stamp, "error", None), seq=4))
    in_flight = dataclasses.replace(_migration("mig-b", stamp, "accepted", None), seq=5)
    compute.migrations.append(in_flight)
    compute.evacuations["pet-id"] = _Evacuation(in_flight, steps_left=2)
    # the moment Nova shows the server with no task on the old host, before it moves
    compute.servers["pet-id"] = dataclasses.replace(pet, fault="No valid host was found.")
    world.run()
    assert compute.evacuate_hosts == []  # followed, never re-sent
    assert world.move().status is MoveStatus.DONE and compute.servers["pet-id"].host != "cmp1"


def _migration(uid: str, created: float, status: str, dest: str | None) -> Migration:
    return Migration(uid, "pet-id", "cmp1", dest, status, created)
