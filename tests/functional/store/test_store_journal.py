"""Every Store method round-trips the journal's domain values exactly, on a real database."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from petguard.cloud import Move, Plan, PowerGoal
from petguard.detect import FenceStart, HostHealth, Verdict
from petguard.errors import NotFound
from petguard.hosts import HostEvent, HostState
from petguard.journal import BrakeState, MoveRecord, MoveStatus, RequestKind, SkipRecord, Transition
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import T0, down_health, plan, record, suspect_tick, tick

# -- hosts ------------------------------------------------------------------------------------------


def test_load_hosts_round_trips_every_field(store: SqlStore) -> None:
    records = [
        record("cmp1"),
        record("cmp2", HostState.SUSPECT, since=T0 + 0.5, reason="heartbeat missing", health=down_health(T0 - 1e-6)),
        record("cmp3", HostState.MAINTENANCE, since=T0, reason="operator: disk swap ünïcode", health=HostHealth()),
    ]
    store.save_tick(tick(records))
    assert store.load_hosts() == {r.host.name: r for r in records}


def test_save_tick_updates_only_the_hosts_it_carries(store: SqlStore) -> None:
    store.save_tick(tick([record(f"cmp{i}") for i in range(5)]))
    changed = record("cmp2", HostState.SUSPECT, since=T0 + 10, health=down_health(T0 + 10))
    store.save_tick(tick([changed], at=T0 + 10))
    hosts = store.load_hosts()
    assert hosts["cmp2"] == changed
    assert [hosts[f"cmp{i}"] for i in (0, 1, 3, 4)] == [record(f"cmp{i}") for i in (0, 1, 3, 4)]


def test_empty_database_has_no_hosts_and_an_open_brake(store: SqlStore) -> None:
    assert store.load_hosts() == {}
    assert store.load_brake() == BrakeState()
    assert store.pending_requests() == []
    assert store.incidents() == []


# -- incidents and events ---------------------------------------------------------------------------


def test_opening_an_incident_attaches_it_and_attributes_the_tick_events(store: SqlStore) -> None:
    store.save_tick(tick([record("cmp1"), record("cmp2")]))
    store.save_tick(suspect_tick("cmp1", at=T0 + 5))

    [incident] = store.incidents()
    assert (incident.host, incident.opened_at, incident.closed_at, incident.reason, incident.outcome) == (
        "cmp1",
        T0 + 5,
        None,
        "heartbeat missing",
        "",
    )
    assert store.incident(incident.id) == incident
    assert store.load_hosts()["cmp1"].host.incident_id == incident.id
    assert store.load_hosts()["cmp2"].host.incident_id is None
    [event] = store.events()
    assert (event.host, event.incident_id, event.kind, event.message, event.at) == (
        "cmp1",
        incident.id,
        "suspect",
        "cmp1 looks down",
        T0 + 5,
    )


def test_closing_an_incident_detaches_it_and_keeps_the_first_close(store: SqlStore) -> None:
    store.save_tick(tick([record("cmp1")]))
    store.save_tick(suspect_tick("cmp1"))
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    back_up = record("cmp1", since=T0 + 20, incident_id=incident_id)
    store.save_tick(
        tick(
            [back_up],
            close_incidents=[(incident_id, "false_alarm")],
            events=[("cmp1", "false_alarm", "cmp1 is back")],
            at=T0 + 20,
        )
    )
    assert store.incident(incident_id).closed_at == T0 + 20
    assert store.incident(incident_id).outcome == "false_alarm"
    assert store.load_hosts()["cmp1"].host.incident_id is None
    # the closing tick's event still belongs to the incident it closed
    assert [e.kind for e in store.events(incident_id=incident_id)] == ["suspect", "false_alarm"]

    store.save_tick(tick(close_incidents=[(incident_id, "recovered")], at=T0 + 30))
    assert store.incident(incident_id).outcome == "false_alarm"


def test_incident_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.incident(424242)


def test_incidents_newest_first_by_host_and_limited(store: SqlStore) -> None:
    store.save_tick(tick([record("cmp1"), record("cmp2")]))
    for i, host in enumerate(["cmp1", "cmp2", "cmp1", "cmp2", "cmp1"]):
        store.save_tick(suspect_tick(host, at=T0 + i))
    assert [i.opened_at for i in store.incidents()] == [T0 + 4, T0 + 3, T0 + 2, T0 + 1, T0]
    assert [i.opened_at for i in store.incidents(host="cmp1")] == [T0 + 4, T0 + 2, T0]
    assert [i.opened_at for i in store.incidents(limit=2)] == [T0 + 4, T0 + 3]
    assert store.incidents(host="nowhere") == []


def test_events_oldest_first_within_the_newest_limit(store: SqlStore) -> None:
    store.save_tick(tick([record("cmp1")]))
    store.save_tick(suspect_tick("cmp1", at=T0))
    incident_id = store.incidents()[0].id
    for i in range(1, 6):
        store.record_event("cmp1", incident_id, "fence_failed", f"attempt {i}", T0 + i)
    store.record_event(None, None, "brake_engaged", "3 hosts down", T0 + 10)

    everything = store.events()
    assert [e.at for e in everything] == [T0 + i for i in range(6)] + [T0 + 10]
    assert [e.message for e in store.events(limit=3)] == ["attempt 4", "attempt 5", "3 hosts down"]
    assert [e.message for e in store.events(incident_id=incident_id, limit=2)] == ["attempt 4", "attempt 5"]
    assert len(store.events(host="cmp1")) == 6
    cloud = store.events(host=None)[-1]
    assert (cloud.host, cloud.incident_id, cloud.kind) == (None, None, "brake_engaged")


def test_transitions_round_trip_oldest_first_within_limit(store: SqlStore) -> None:
    edges = [
        Transition("cmp1", HostState.UP, HostState.SUSPECT, HostEvent.SIGNALS_DOWN, "down", T0),
        Transition("cmp2", HostState.UP, HostState.MAINTENANCE, HostEvent.MAINTENANCE_ON, "op", T0 + 1),
        Transition("cmp1", HostState.SUSPECT, HostState.FENCING, HostEvent.FENCE_STARTED, "grace", T0 + 2),
    ]
    store.save_tick(tick([record("cmp1"), record("cmp2")], transitions=edges))
    assert store.transitions() == edges
    assert store.transitions(host="cmp1") == [edges[0], edges[2]]
    assert store.transitions(limit=2) == edges[1:]


def test_fences_started_are_every_transition_into_fencing_after_since(store: SqlStore) -> None:
    S, E = HostState, HostEvent
    edges = [
        Transition("cmp1", S.SUSPECT, S.FENCING, E.FENCE_STARTED, "grace", T0),
        Transition("cmp2", S.UP, S.SUSPECT, E.SIGNALS_DOWN, "down", T0 + 1),
        Transition("cmp1", S.FENCING, S.FENCED, E.FENCE_CONFIRMED, "off", T0 + 2),
        Transition("cmp3", S.UP, S.FENCING, E.OPERATOR_FENCE, "operator", T0 + 3),
        Transition("cmp2", S.SUSPECT, S.FENCING, E.FENCE_STARTED, "grace", T0 + 4),
    ]
    store.save_tick(tick([record("cmp1"), record("cmp2"), record("cmp3")], transitions=edges))
    assert store.fences_started(since=T0 - 1) == [
        FenceStart("cmp1", T0),
        FenceStart("cmp3", T0 + 3),
        FenceStart("cmp2", T0 + 4),
    ]
    assert store.fences_started(since=T0) == [FenceStart("cmp3", T0 + 3), FenceStart("cmp2", T0 + 4)]
    assert store.fences_started(since=T0 + 4) == []


# -- operator requests and the brake ----------------------------------------------------------------


def test_pending_requests_oldest_first_until_finished(store: SqlStore) -> None:
    late = store.submit_request("cmp2", RequestKind.RESTORE, "fixed PSU", "alice", T0 + 10)
    early = store.submit_request("cmp1", RequestKind.MAINTENANCE_ON, "disk swap", "bob", T0)
    same_time = store.submit_request("*", RequestKind.BRAKE_OVERRIDE, "rack lost", "carol", T0 + 10)
    pending = store.pending_requests()
    assert [r.id for r in pending] == [early, late, same_time]
    assert pending[0] == dataclasses.replace(
        pending[0], host="cmp1", kind=RequestKind.MAINTENANCE_ON, reason="disk swap", requested_by="bob"
    )
    assert pending[0].requested_at == T0

    store.save_tick(tick(finished_requests=[(early, "done", "maintenance on"), (late, "refused", "not evacuated")]))
    assert [r.id for r in store.pending_requests()] == [same_time]


def test_finishing_an_unknown_request_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.save_tick(tick(finished_requests=[(999, "done", "")]))


def test_brake_is_replaced_only_when_the_tick_carries_one(store: SqlStore) -> None:
    engaged = BrakeState(engaged=True, reason="3 hosts suspect at once", since=T0, override_until=T0 + 600.25)
    store.save_tick(tick(brake=engaged))
    assert store.load_brake() == engaged
    store.save_tick(tick([record("cmp1")]))
    assert store.load_brake() == engaged
    store.save_tick(tick(brake=BrakeState()))
    assert store.load_brake() == BrakeState()


# -- the evacuation journal -------------------------------------------------------------------------


def _incident(store: SqlStore, host: str = "cmp1") -> int:
    store.save_tick(tick([record(host)]))
    store.save_tick(suspect_tick(host))
    incident_id = store.load_hosts()[host].host.incident_id
    assert incident_id is not None
    return incident_id


def test_record_plan_round_trips_moves_and_skips_in_plan_order(store: SqlStore) -> None:
    incident_id = _incident(store)
    the_plan = plan(moves=4, skips=2)
    store.record_plan(incident_id, the_plan, T0 + 1)
    assert store.moves(incident_id) == [
        MoveRecord(
            incident_id=incident_id,
            server_id=move.server_id,
            server_name=move.server_name,
            priority=move.priority,
            power_goal=move.power_goal,
            status=MoveStatus.PLANNED,
            source_host="cmp1",
            updated_at=T0 + 1,
        )
        for move in the_plan.moves
    ]
    assert store.skips(incident_id) == [
        SkipRecord(incident_id, skip.server_id, skip.server_name, skip.reason) for skip in the_plan.skipped
    ]
    assert store.moves(incident_id + 1) == []


def test_record_plan_is_idempotent_across_restarts(open_store: Callable[[], SqlStore]) -> None:
    first = open_store()
    incident_id = _incident(first)
    first.record_plan(incident_id, plan(moves=3), T0)
    first.update_move(incident_id, "srv-0000", MoveStatus.ACCEPTED, T0 + 5, request_id="req-1", count_attempt=True)
    before = first.moves(incident_id)
    first.close()

    restarted = open_store()
    restarted.record_plan(incident_id, plan(moves=3), T0 + 100)
    assert restarted.moves(incident_id) == before
    assert len(restarted.skips(incident_id)) == 2

    # a re-planned incident gains only the servers it did not have
    extra = Move("srv-new", "a-new-pet", 99, "SHUTOFF", PowerGoal.STOPPED)
    bigger = Plan("cmp1", (extra, *plan(moves=3).moves), plan(moves=3).skipped)
    restarted.record_plan(incident_id, bigger, T0 + 200)
    after = restarted.moves(incident_id)
    assert after[1:] == before  # plan order: priority 99 first
    assert after[0].server_id == "srv-new" and after[0].status is MoveStatus.PLANNED


def test_record_plan_for_an_unknown_incident_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.record_plan(31337, plan(), T0)


def test_update_move_sets_given_fields_and_counts_attempts(store: SqlStore) -> None:
    incident_id = _incident(store)
    store.record_plan(incident_id, plan(moves=1, skips=0), T0)
    first = store.update_move(incident_id, "srv-0000", MoveStatus.REQUESTING, T0 + 1, count_attempt=True)
    assert (first.status, first.attempts, first.updated_at, first.dest_host) == (
        MoveStatus.REQUESTING,
        1,
        T0 + 1,
        None,
    )
    accepted = store.update_move(
        incident_id, "srv-0000", MoveStatus.ACCEPTED, T0 + 2, request_id="req-abc", reason="nova accepted"
    )
    assert (accepted.attempts, accepted.request_id, accepted.reason) == (1, "req-abc", "nova accepted")
    again = store.update_move(incident_id, "srv-0000", MoveStatus.REQUESTING, T0 + 3, count_attempt=True)
    assert again.attempts == 2 and again.request_id == "req-abc" and again.reason == "nova accepted"
    store.update_move(incident_id, "srv-0000", MoveStatus.ARRIVED, T0 + 4, dest_host="cmp7")
    done = store.update_move(incident_id, "srv-0000", MoveStatus.DONE, T0 + 5)  # done only from arrived
    assert done == dataclasses.replace(again, status=MoveStatus.DONE, dest_host="cmp7", updated_at=T0 + 5)
    assert store.moves(incident_id) == [done]


def test_update_move_not_found(store: SqlStore) -> None:
    incident_id = _incident(store)
    with pytest.raises(NotFound, match="no move"):
        store.update_move(incident_id, "ghost", MoveStatus.DONE, T0)


# -- beyond the Protocol ----------------------------------------------------------------------------


def test_ping(store: SqlStore) -> None:
    store.ping()


def test_health_verdict_values_round_trip(store: SqlStore) -> None:
    records = [
        record(f"cmp-{v.value}", health=HostHealth(verdict=v, down_streak=7, up_streak=1, down_since=None))
        for v in Verdict
    ]
    store.save_tick(tick(records))
    assert sorted(store.load_hosts().values(), key=lambda r: r.host.name) == sorted(records, key=lambda r: r.host.name)
