"""The runner finds its own evacuation even when the controller's clock runs ahead of Nova's."""

from __future__ import annotations

import dataclasses

import pytest

from petguard.cloud import PowerGoal
from petguard.evacuate.run import CLOCK_SKEW_ALLOWANCE, Evacuator, RunPolicy
from petguard.journal import MoveRecord, MoveStatus
from tests.fakes import FakeClock, FakeCompute
from tests.unit.evacuate.stubs import apply_update


class _Store:
    """Just enough of the journal for one move."""

    def __init__(self, move: MoveRecord) -> None:
        self.move = move
        self.events: list[str] = []

    def moves(self, incident_id: int) -> list[MoveRecord]:
        return [self.move]

    def update_move(
        self, incident_id: int, server_id: str, status: MoveStatus, at: float, **fields: object
    ) -> MoveRecord:
        self.move = apply_update(self.move, status, at, fields)
        return self.move

    def record_event(self, *args: object) -> None:
        self.events.append(str(args))


@pytest.mark.fault(
    "PG-11",
    guarantee="2",
    injected="Nova's clock 60 s behind petguard's, petguard crashed after Nova accepted an evacuation",
    expected="the restarted runner still finds its migration: no second evacuate, the move DONE",
)
def test_a_migration_stamped_before_the_incident_by_a_lagging_nova_is_still_ours() -> None:
    compute = FakeCompute(["cmp1", "cmp2"], evacuation_steps=3)
    compute.add_server("pet", "cmp1", metadata={"petguard:pet": "true"})
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    clock = FakeClock(start=10_000.0)
    # A crash after Nova accepted: the journal says REQUESTING; Nova's clock is 60 s behind ours.
    compute.evacuate("pet-id")
    lagging = dataclasses.replace(compute.migrations[0], created_at=clock.now() - 60)
    compute.migrations[0] = compute.evacuations["pet-id"].migration = lagging
    # The restarted runner looks in the short window where Nova shows the server with no task on
    # the old host, before it moves: only the migration says Nova has it.
    compute.get_server("pet-id")
    move = MoveRecord(1, "pet-id", "pet", 0, PowerGoal.RUNNING, MoveStatus.REQUESTING, "cmp1", attempts=1)
    store = _Store(move)
    Evacuator(compute, store, clock, RunPolicy(poll_interval=0.01)).run(1, since=clock.now() - 30)  # type: ignore[arg-type]
    assert compute.evacuate_calls["pet-id"] == 1
    assert store.move.status is MoveStatus.DONE
    assert CLOCK_SKEW_ALLOWANCE >= 60
