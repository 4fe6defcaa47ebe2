"""The move and loan tables in the journal, on every backend: each write is a compare-and-set along
``petguard.evacuate.transitions``, so a stale writer or an edge the table lacks is refused loudly and
nothing is overwritten."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from petguard.errors import InvalidTransition, StaleWrite
from petguard.evacuate.transitions import MOVE_TRANSITIONS
from petguard.journal import MoveStatus, ReservedState
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import T0, plan, suspect_tick, tick

M = MoveStatus


def _planned(store: SqlStore) -> int:
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    store.record_plan(incident_id, plan(moves=1, skips=0), T0)
    return incident_id


@pytest.mark.fault(
    "TABLE-02",
    guarantee="2",
    injected="two writers of one move (two store connections): the second still holds the planned row "
    "when the first has moved it to accepted (sqlite, MariaDB, PostgreSQL)",
    expected="the stale write is refused with StaleWrite naming the move, the expected and the actual status; "
    "the first writer's row is unchanged",
)
def test_a_stale_writer_is_refused_and_overwrites_nothing(open_store: Callable[[], SqlStore]) -> None:
    first, second = open_store(), open_store()
    incident_id = _planned(first)
    seen = second.moves(incident_id)[0]  # the second writer reads: planned
    first.update_move(incident_id, seen.server_id, M.REQUESTING, T0 + 1, expected=M.PLANNED, count_attempt=True)
    moved = first.update_move(incident_id, seen.server_id, M.ACCEPTED, T0 + 2, expected=M.REQUESTING, request_id="r1")

    with pytest.raises(StaleWrite) as refused:
        second.update_move(incident_id, seen.server_id, M.REQUESTING, T0 + 3, expected=seen.status, target_host="x")
    assert f"move of server {seen.server_id} (incident {incident_id})" in str(refused.value)
    assert "expected status planned but it is accepted" in str(refused.value)
    assert refused.value.context["expected"] == "planned" and refused.value.context["actual"] == "accepted"
    assert second.moves(incident_id) == [moved]


@pytest.mark.fault(
    "TABLE-03",
    guarantee="2",
    injected="a move written along an edge the move table lacks (planned -> done, done -> failed), "
    "with and without the status the writer expects (sqlite, MariaDB, PostgreSQL)",
    expected="InvalidTransition naming the edge; the row is unchanged",
)
def test_an_edge_the_move_table_lacks_is_refused(store: SqlStore) -> None:
    incident_id = _planned(store)
    server_id = store.moves(incident_id)[0].server_id
    before = store.moves(incident_id)
    with pytest.raises(InvalidTransition, match="no edge planned -> done"):
        store.update_move(incident_id, server_id, M.DONE, T0 + 1)
    with pytest.raises(InvalidTransition, match="no edge planned -> done"):
        store.update_move(incident_id, server_id, M.DONE, T0 + 1, expected=M.PLANNED)
    assert store.moves(incident_id) == before

    store.update_move(incident_id, server_id, M.ARRIVED, T0 + 2, expected=M.PLANNED, dest_host="cmp2")
    done = store.update_move(incident_id, server_id, M.DONE, T0 + 3, expected=M.ARRIVED)
    with pytest.raises(InvalidTransition, match="no edge done -> failed"):
        store.update_move(incident_id, server_id, M.FAILED, T0 + 4, reason="late")
    assert store.moves(incident_id) == [done]


def test_every_edge_of_the_move_table_is_written(store: SqlStore) -> None:
    """Each edge, from a row really in its source status, is accepted by the compare-and-set."""
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    store.record_plan(incident_id, plan(moves=len(MOVE_TRANSITIONS), skips=0), T0)
    reach = {  # a legal way from planned to each status
        M.PLANNED: [],
        M.REQUESTING: [M.REQUESTING],
        M.ACCEPTED: [M.ACCEPTED],
        M.ARRIVED: [M.ARRIVED],
        M.DONE: [M.ARRIVED, M.DONE],
        M.FAILED: [M.FAILED],
    }
    for move, (source, target) in zip(store.moves(incident_id), MOVE_TRANSITIONS, strict=True):
        status = M.PLANNED
        for step in reach[source]:
            status = store.update_move(incident_id, move.server_id, step, T0, expected=status).status
        assert store.update_move(incident_id, move.server_id, target, T0 + 1, expected=source).status is target


def test_an_operator_retry_goes_back_to_planned_only_from_failed(store: SqlStore) -> None:
    incident_id = _planned(store)
    server_id = store.moves(incident_id)[0].server_id
    store.update_move(incident_id, server_id, M.ACCEPTED, T0)
    with pytest.raises(InvalidTransition, match="no edge accepted -> planned"):
        store.update_move(incident_id, server_id, M.PLANNED, T0 + 1)
    assert store.moves(incident_id)[0].status is M.ACCEPTED


@pytest.mark.fault(
    "TABLE-04",
    guarantee="-",
    injected="a reserved host's loan written along an edge the loan table lacks (idle -> borrowed, "
    "borrowed -> idle, returning -> borrowed) (sqlite, MariaDB, PostgreSQL)",
    expected="InvalidTransition naming the edge before anything is written; the loan is unchanged",
)
def test_an_edge_the_loan_table_lacks_is_refused(store: SqlStore) -> None:
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    store.add_reserved_hosts(["spare1"], 1.0)
    before = store.reserved_hosts()
    with pytest.raises(InvalidTransition, match="spare1: the loan table has no edge idle -> borrowed"):
        store.set_reserved_state("spare1", incident_id, ReservedState.IDLE, ReservedState.BORROWED, 2.0)
    assert store.reserved_hosts() == before

    assert store.borrow_reserved_host("spare1", incident_id, 2.0)
    assert store.set_reserved_state("spare1", incident_id, ReservedState.BORROWING, ReservedState.BORROWED, 3.0)
    borrowed = store.reserved_hosts()
    with pytest.raises(InvalidTransition, match="no edge borrowed -> idle"):  # never idle without disabling it
        store.set_reserved_state("spare1", incident_id, ReservedState.BORROWED, ReservedState.IDLE, 4.0)
    with pytest.raises(InvalidTransition, match="no edge returning -> borrowed"):
        store.set_reserved_state("spare1", incident_id, ReservedState.RETURNING, ReservedState.BORROWED, 4.0)
    assert store.reserved_hosts() == borrowed


def test_an_operators_vouch_marks_only_stuck_moves_and_a_new_request_ends_it(store: SqlStore) -> None:
    """``petguard host resend`` (store.moves.vouch_resends, in the tick's transaction): only moves stuck at that
    moment are vouched for; the next request of a move, or an explicit end, forgets the vouch."""
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    store.record_plan(incident_id, plan(moves=3, skips=0), T0)
    stuck, waiting, done = (m.server_id for m in store.moves(incident_id))
    store.update_move(incident_id, stuck, M.ACCEPTED, T0, request_id="r1", waiting="stuck: never started")
    store.update_move(incident_id, waiting, M.REQUESTING, T0, waiting="waiting for the cloud: Keystone")
    store.update_move(incident_id, done, M.FAILED, T0, reason="x", waiting="stuck: was stuck, then failed")
    store.save_tick(dataclasses.replace(tick([], at=T0 + 5), vouch_resends=[incident_id]))
    vouched = {m.server_id: m.resend_vouched_at for m in store.moves(incident_id)}
    assert vouched == {stuck: T0 + 5, waiting: None, done: None}
    store.update_move(incident_id, stuck, M.ACCEPTED, T0 + 6, waiting="")  # un-stuck: the vouch stays ...
    assert store.moves(incident_id)[0].resend_vouched_at == T0 + 5
    store.update_move(incident_id, stuck, M.REQUESTING, T0 + 7)
    store.update_move(incident_id, stuck, M.ACCEPTED, T0 + 8, request_id="r2")  # ... until a new request
    assert all(m.resend_vouched_at is None for m in store.moves(incident_id))
    store.update_move(incident_id, stuck, M.ACCEPTED, T0 + 9, waiting="stuck: again")
    store.save_tick(dataclasses.replace(tick([], at=T0 + 10), vouch_resends=[incident_id]))
    assert store.moves(incident_id)[0].resend_vouched_at == T0 + 10
    store.update_move(incident_id, stuck, M.ACCEPTED, T0 + 11, end_vouch=True)  # refused by Nova's record
    assert store.moves(incident_id)[0].resend_vouched_at is None
