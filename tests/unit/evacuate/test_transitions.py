"""The move and loan tables (evacuate.transitions): their rules as data, the generated diagrams, and
the runner against a journal stub that enforces them (compare-and-set from the status it read)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import pathlib

import pytest

from petguard.cloud import PowerGoal, Server
from petguard.errors import InvalidTransition, NovaError, Permanent, StaleWrite
from petguard.evacuate import transitions
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.evacuate.transitions import LOAN_TRANSITIONS, MOVE_TRANSITIONS, check_loan, check_move, move_sources
from petguard.journal import MoveRecord, MoveStatus, ReservedState
from tests.fakes import FakeClock, FakeCompute
from tests.unit.evacuate.stubs import MovesStore, apply_update

M, R = MoveStatus, ReservedState
REPO = pathlib.Path(__file__).resolve().parents[3]
POLICY = RunPolicy(poll_interval=0.01, move_timeout=60)
ILLEGAL_MOVES = sorted(pair for pair in itertools.product(M, M) if pair not in MOVE_TRANSITIONS)
ILLEGAL_LOANS = sorted(pair for pair in itertools.product(R, R) if pair not in LOAN_TRANSITIONS)


# -- the tables' rules ---------------------------------------------------------------------------------
def test_done_is_reached_only_from_arrived_and_nothing_leaves_it() -> None:
    assert move_sources(M.DONE) == {M.ARRIVED, M.DONE}  # done -> done: a wait a crash left ends
    assert {t for (s, t) in MOVE_TRANSITIONS if s is M.DONE} == {M.DONE}


def test_failed_is_left_only_by_an_operator_retry() -> None:
    assert {t for (s, t) in MOVE_TRANSITIONS if s is M.FAILED} == {M.PLANNED}
    assert move_sources(M.PLANNED) == {M.PLANNED, M.FAILED}
    assert move_sources(M.FAILED) == {s for s in M if not s.final}  # any unfinished move can fail


def test_a_loan_is_taken_only_from_idle_and_ends_only_through_returning() -> None:
    assert {s for (s, t) in LOAN_TRANSITIONS if t is R.BORROWING} == {R.IDLE}
    assert {s for (s, t) in LOAN_TRANSITIONS if t is R.IDLE} == {R.RETURNING}
    assert {t for (s, t) in LOAN_TRANSITIONS if s is R.IDLE} == {R.BORROWING}


def test_every_status_is_in_the_tables() -> None:
    assert {s for pair in MOVE_TRANSITIONS for s in pair} == set(M)
    assert {s for pair in LOAN_TRANSITIONS for s in pair} == set(R)


@pytest.mark.parametrize(("current", "new"), ILLEGAL_MOVES)
def test_an_edge_the_move_table_lacks_is_refused(current: MoveStatus, new: MoveStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"no edge {current.value} -> {new.value}"):
        check_move(current, new)


@pytest.mark.parametrize(("current", "new"), ILLEGAL_LOANS)
def test_an_edge_the_loan_table_lacks_is_refused(current: ReservedState, new: ReservedState) -> None:
    with pytest.raises(InvalidTransition, match=f"no edge {current.value} -> {new.value}"):
        check_loan(current, new, "spare1")


# -- the generated diagrams ---------------------------------------------------------------------------
def test_diagrams_contain_every_edge_and_nothing_else() -> None:
    for diagram, table, start in (
        (transitions.move_diagram(), MOVE_TRANSITIONS, "planned"),
        (transitions.loan_diagram(), LOAN_TRANSITIONS, "idle"),
    ):
        lines = diagram.splitlines()
        assert lines[:2] == ["stateDiagram-v2", f"    [*] --> {start}"]
        edges = {line.strip() for line in lines[2:]}
        assert edges == {f"{s.value} --> {t.value}: {why}" for (s, t), why in table.items()}


def test_committed_evacuation_states_doc_is_generated() -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        transitions.main()
    stale = "docs/evacuation-states.md is stale: python -m petguard.evacuate.transitions > docs/evacuation-states.md"
    assert (REPO / "docs" / "evacuation-states.md").read_text() == buffer.getvalue(), stale


# -- the journal stub enforces the same table ---------------------------------------------------------
def _move(status: MoveStatus = M.PLANNED, name: str = "pet") -> MoveRecord:
    return MoveRecord(1, f"{name}-id", name, 0, PowerGoal.RUNNING, status, "cmp1")


def test_the_stub_refuses_what_the_store_refuses() -> None:
    with pytest.raises(InvalidTransition, match="no edge planned -> done"):
        apply_update(_move(), M.DONE, 1.0, {})
    with pytest.raises(StaleWrite, match="expected status requesting but it is planned"):
        apply_update(_move(), M.ACCEPTED, 1.0, {"expected": M.REQUESTING})
    assert apply_update(_move(), M.REQUESTING, 1.0, {"expected": M.PLANNED}).status is M.REQUESTING


# -- the runner ----------------------------------------------------------------------------------------
def _world(*names: str) -> tuple[FakeCompute, MovesStore]:
    compute = FakeCompute(["cmp1", "cmp2", "cmp3"], evacuation_steps=2)
    for name in names:
        compute.add_server(name, "cmp1")
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    return compute, MovesStore([_move(name=n) for n in names])


class _Overtaken(MovesStore):
    """Another writer moves the row on just before the runner's first write of it."""

    def update_move(
        self, incident_id: int, server_id: str, status: MoveStatus, at: float, **fields: object
    ) -> MoveRecord:
        if self.rows[server_id].status is M.PLANNED:
            self.rows[server_id] = dataclasses.replace(self.rows[server_id], status=M.ACCEPTED, request_id="theirs")
        return super().update_move(incident_id, server_id, status, at, **fields)


@pytest.mark.fault(
    "TABLE-01",
    guarantee="2",
    injected="another writer moves a planned move to accepted under the runner, between its read of the "
    "journal and its write-ahead of requesting",
    expected="the runner's write is refused (StaleWrite, logged as an error); no evacuate is sent and the "
    "other writer's row is not overwritten",
)
def test_the_runner_never_overwrites_a_move_another_writer_moved_on(caplog: pytest.LogCaptureFixture) -> None:
    compute, _ = _world("pet")
    store = _Overtaken([_move()])
    with caplog.at_level(logging.ERROR, logger="petguard.evacuate.run"):
        outcome = Evacuator(compute, store, FakeClock(), POLICY).run(1, since=0.0)  # type: ignore[arg-type]
    assert compute.evacuate_calls.get("pet-id", 0) == 0
    assert (store.rows["pet-id"].status, store.rows["pet-id"].request_id) == (M.ACCEPTED, "theirs")
    assert [m.server_id for m in outcome.unfinished] == ["pet-id"]
    assert "expected status planned but it is accepted" in caplog.text


def test_every_write_of_a_full_evacuation_is_an_edge_of_the_table() -> None:
    compute, store = _world("a", "b", "c")
    written: list[tuple[MoveStatus, MoveStatus]] = []
    update = store.update_move

    def recording(incident_id: int, server_id: str, status: MoveStatus, at: float, **fields: object) -> MoveRecord:
        before = store.rows[server_id].status
        assert fields.get("expected") is before  # the runner always says what it read
        written.append((before, status))
        return update(incident_id, server_id, status, at, **fields)

    store.update_move = recording  # type: ignore[method-assign]
    Evacuator(compute, store, FakeClock(), POLICY).run(1, since=0.0)  # type: ignore[arg-type]
    assert all(m.status is M.DONE for m in store.rows.values())
    assert set(written) <= set(MOVE_TRANSITIONS)
    assert {(M.PLANNED, M.REQUESTING), (M.REQUESTING, M.ACCEPTED), (M.ACCEPTED, M.ARRIVED), (M.ARRIVED, M.DONE)} <= set(
        written
    )


class _RefusesAfterAccepted(FakeCompute):
    """Nova refuses to show the server once it accepted its evacuation (a permanent error)."""

    def get_server(self, server_id: str) -> Server:
        if self.evacuate_calls.get(server_id):
            raise NovaError("policy does not allow this (fake)")
        return super().get_server(server_id)


@pytest.mark.fault(
    "TABLE-05",
    guarantee="2",
    injected="a permanent error after the move was accepted (the runner still holds the planned row it started "
    "from), and a permanent error recording the event of a move already done",
    expected="the accepted move is failed from the status the journal has now; the done move stays done, "
    "never overwritten as failed",
)
def test_a_permanent_error_fails_the_move_as_journaled_and_never_a_done_one() -> None:
    compute = _RefusesAfterAccepted(["cmp1", "cmp2"], evacuation_steps=2)
    compute.add_server("pet", "cmp1")
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    store = MovesStore([_move()])
    Evacuator(compute, store, FakeClock(), POLICY).run(1, since=0.0)  # type: ignore[arg-type]
    assert store.rows["pet-id"].status is M.FAILED and "policy does not allow" in store.rows["pet-id"].reason

    compute, store = _world("pet")

    def refuse_done_event(host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        if kind == "server_evacuated":
            raise Permanent("the event could not be written (fake)")

    store.record_event = refuse_done_event  # type: ignore[method-assign]
    Evacuator(compute, store, FakeClock(), POLICY).run(1, since=0.0)  # type: ignore[arg-type]
    assert store.rows["pet-id"].status is M.DONE
