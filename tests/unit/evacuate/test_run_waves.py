"""The runner carries out a plan wave by wave: every move of a wave is final before the next starts."""

from __future__ import annotations

from petguard.cloud import PowerGoal, Server
from petguard.errors import NovaConflict, NovaUnavailable
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.journal import MoveRecord, MoveStatus
from tests.fakes import FakeClock, FakeCompute
from tests.unit.evacuate.stubs import MovesStore

POLICY = RunPolicy(max_parallel=4, poll_interval=0.01, move_timeout=60, stuck_after=30)


class _Compute(FakeCompute):
    """FakeCompute where chosen servers cannot be read (Nova flaps) or are refused by evacuate."""

    unreadable: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()

    def get_server(self, server_id: str) -> Server:
        if server_id in self.unreadable:
            raise NovaUnavailable("nova flaps (fake)")
        return super().get_server(server_id)

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        if server_id in self.refused:
            raise NovaConflict("refused (fake)")
        return super().evacuate(server_id, host)


def setup(waves: dict[str, int]) -> tuple[_Compute, MovesStore]:
    compute = _Compute(["cmp1", "cmp2", "cmp3", "cmp4"], evacuation_steps=4)
    for name in waves:
        compute.add_server(name, "cmp1")
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    moves = [
        MoveRecord(1, f"{n}-id", n, 0, PowerGoal.RUNNING, MoveStatus.PLANNED, "cmp1", wave=w) for n, w in waves.items()
    ]
    return compute, MovesStore(moves)


def run(compute: FakeCompute, store: MovesStore) -> None:
    Evacuator(compute, store, FakeClock(), POLICY).run(1, since=0.0)  # type: ignore[arg-type]


def position(compute: FakeCompute, what: str, server_id: str) -> int:
    return compute.timeline.index((what, server_id))


def test_every_move_of_a_wave_arrives_before_the_next_wave_is_asked_for() -> None:
    compute, store = setup({"a": 0, "b": 0, "c": 1, "d": 2, "e": 2})
    run(compute, store)
    assert all(m.status is MoveStatus.DONE for m in store.rows.values())
    assert max(position(compute, "arrived", s) for s in ("a-id", "b-id")) < position(compute, "evacuate", "c-id")
    assert position(compute, "arrived", "c-id") < min(position(compute, "evacuate", s) for s in ("d-id", "e-id"))


def test_members_of_one_group_in_separate_waves_are_never_in_flight_together() -> None:
    compute, store = setup({"anti-1": 0, "anti-2": 1, "anti-3": 2, "plain": 0})
    compute.add_group("anti", "anti-affinity", [compute.servers[f"anti-{i}-id"] for i in (1, 2, 3)])
    run(compute, store)
    assert compute.group_overlaps == []
    assert all(m.status is MoveStatus.DONE for m in store.rows.values())


def test_the_fake_sees_members_in_flight_together() -> None:
    """Control for the test above: two members evacuated at once are caught."""
    compute, _ = setup({"anti-1": 0, "anti-2": 0})
    compute.add_group("anti", "anti-affinity", [compute.servers["anti-1-id"], compute.servers["anti-2-id"]])
    compute.evacuate("anti-1-id")
    compute.evacuate("anti-2-id")
    assert compute.group_overlaps == [("anti-gid", "anti-2-id", "anti-1-id")]


def test_an_unfinished_wave_holds_the_next_waves_until_the_next_run() -> None:
    compute, store = setup({"flaky": 0, "ok": 0, "later": 1})
    compute.lose_requests = {"flaky-id"}  # Nova took it and never started it: stuck, parked
    run(compute, store)
    assert store.rows["ok-id"].status is MoveStatus.DONE
    assert not store.rows["flaky-id"].status.final
    assert "later-id" not in compute.evacuate_calls  # the order is kept: tier 1 waits
    compute.evacuations["flaky-id"].lost = False  # Nova moves it on after all
    for _ in range(4):  # a parked move gets one look per run: the fake Nova moves on with each look
        run(compute, store)  # the next runs resume the wave, then go on
    assert all(m.status is MoveStatus.DONE for m in store.rows.values())
    assert compute.evacuate_calls == {"flaky-id": 1, "ok-id": 1, "later-id": 1}


def test_a_failed_move_is_final_and_does_not_hold_the_next_wave() -> None:
    compute, store = setup({"refused": 0, "later": 1})
    compute.refused = frozenset({"refused-id"})
    run(compute, store)
    assert store.rows["refused-id"].status is MoveStatus.FAILED
    assert store.rows["later-id"].status is MoveStatus.DONE
