"""The runner and Nova's late server-group check, over the real journal (sqlite) and the in-memory
Nova: a server bounced by that check (the scheduler chose from a stale view of where its group's
members are; Nova moved nothing) is asked for again, up to ``max_request_attempts`` in all, with an
``evacuation_retried`` event; any other failure is final at once; and a crash at any step of a retry
resumes with exactly one further evacuate, never two in flight."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard.evacuate.plan import EvacuationPolicy, plan
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.journal import MoveRecord, MoveStatus
from petguard.store.sql import SqlStore
from tests.fakes import FakeClock, FakeCompute
from tests.functional.crashing import Crash, CrashingStore
from tests.functional.harness import journal_url
from tests.functional.store.store_builders import suspect_tick

POLICY = RunPolicy(max_parallel=2, poll_interval=0.01, move_timeout=60, max_request_attempts=3)
PET = {"petguard:pet": "true"}
BOUNCE = "Anti-affinity instance group policy was violated."


@dataclasses.dataclass
class World:
    compute: FakeCompute
    store: SqlStore
    incident_id: int
    since: float
    clock: FakeClock = dataclasses.field(default_factory=FakeClock)

    def run(self, store: Any = None, compute: Any = None) -> None:
        evacuator = Evacuator(compute or self.compute, store or self.store, self.clock, POLICY)
        evacuator.run(self.incident_id, since=self.since)

    def move(self) -> MoveRecord:
        [move] = self.store.moves(self.incident_id)
        return move

    def retried(self) -> list[str]:
        return [e.message for e in self.store.events(self.incident_id) if e.kind == "evacuation_retried"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    compute = FakeCompute(["cmp1", "cmp2", "cmp3"], evacuation_steps=3)
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    compute.add_server("pet", "cmp1", metadata=PET)
    store = SqlStore(journal_url(tmp_path))
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    store.record_plan(incident_id, plan("cmp1", compute.servers_on("cmp1"), EvacuationPolicy()), 1.0)
    yield World(compute, store, incident_id, time.time() - 5)
    store.close()


@pytest.mark.fault(
    "GRP-01",
    guarantee="2",
    injected="Nova's late server-group check bounces an evacuation once (the scheduler chose from a stale view)",
    expected="asked again after race_retry_delay with evacuation_retried; it arrives, two evacuate calls in all",
)
def test_a_server_bounced_by_the_late_group_check_is_asked_for_again_and_arrives(world: World) -> None:
    world.compute.late_group_check_bounces["pet-id"] = 1
    started = world.clock.now()
    world.run()
    assert world.compute.evacuate_calls["pet-id"] == 2
    move = world.move()
    assert move.status is MoveStatus.DONE and move.attempts == 2 and move.dest_host != "cmp1"
    assert world.compute.servers["pet-id"].vm_state == "active"  # the ERROR in between kept the goal
    assert sorted(m.status for m in world.compute.migrations) == ["done", "failed"]
    [message] = world.retried()
    assert BOUNCE in message and "attempt 2 of 3" in message
    assert world.clock.now() - started >= POLICY.race_retry_delay  # the scheduler gets time to learn


@pytest.mark.fault(
    "GRP-02",
    guarantee="2",
    injected="Nova's late server-group check bounces every attempt",
    expected="FAILED after max_request_attempts, not asked again by a later run",
)
def test_bounced_every_time_it_fails_after_max_request_attempts(world: World) -> None:
    world.compute.late_group_check_bounces["pet-id"] = 99
    world.run()
    world.run()  # a later run does not ask again either
    assert world.compute.evacuate_calls["pet-id"] == POLICY.max_request_attempts
    move = world.move()
    assert move.status is MoveStatus.FAILED and BOUNCE in move.reason
    assert len(world.retried()) == POLICY.max_request_attempts - 1


@pytest.mark.fault(
    "GRP-03",
    guarantee="4",
    injected="no room anywhere: every other compute disabled (NoValidHost)",
    expected="the move FAILED at once, with the reason, no retry",
)
def test_no_valid_host_is_final_at_once(world: World) -> None:
    for host in ("cmp2", "cmp3"):
        world.compute.services[host].status = "disabled"  # no room anywhere stays no room
    world.run()
    assert world.compute.evacuate_calls["pet-id"] == 1
    assert world.move().status is MoveStatus.FAILED and "No valid host" in world.move().reason
    assert world.retried() == []


class RetryCrashingStore(CrashingStore):
    def point_of(self, status: MoveStatus, record: MoveRecord, changes: dict[str, Any]) -> str | None:
        if status is not MoveStatus.REQUESTING:
            return None
        # attempts count the requests Nova took (written with ACCEPTED)
        if "target_host" not in changes and "waiting" not in changes and record.attempts == 1:
            return "back_to_requesting"
        return "requesting_again" if "target_host" in changes and record.attempts == 1 else None


class CrashingCompute:
    """The in-memory Nova; raises ``Crash`` right after it took the second evacuate."""

    def __init__(self, compute: FakeCompute, at: str) -> None:
        self._compute = compute
        self._at = at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compute, name)

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        request_id = self._compute.evacuate(server_id, host)
        if self._at == "evacuate_again_sent" and self._compute.evacuate_calls[server_id] == 2:
            self._at = ""
            raise Crash("evacuate_again_sent")
        return request_id


@pytest.mark.parametrize(
    "point",
    [
        "evacuation_retried",  # the event is written, the move still ACCEPTED
        "back_to_requesting",  # the move is REQUESTING again, nothing re-sent
        "requesting_again",  # the attempt is counted, Nova not asked yet
        "evacuate_again_sent",  # Nova took the second request, the journal does not know
    ],
)
@pytest.mark.fault(
    "PG-02",
    guarantee="2",
    injected="petguard crashes at each of 4 steps of the retry of a bounced evacuation, then runs again on the same "
    "journal",
    expected="exactly one further evacuate, never two in flight; the move DONE",
)
def test_a_crash_at_any_step_of_a_retry_resumes_with_exactly_one_further_evacuate(world: World, point: str) -> None:
    world.compute.late_group_check_bounces["pet-id"] = 1
    store = RetryCrashingStore(world.store, point)
    with pytest.raises(Crash):
        world.run(store, CrashingCompute(world.compute, point))
    world.run()  # the restarted controller: same journal, same Nova

    assert world.compute.evacuate_calls["pet-id"] == 2
    assert world.move().status is MoveStatus.DONE
    assert "double" not in world.compute.servers["pet-id"].fault  # never two evacuations in flight
    assert sorted(m.status for m in world.compute.migrations) == ["done", "failed"]
    assert 1 <= len(world.retried()) <= 2  # said at least once; twice only if the crash came between
