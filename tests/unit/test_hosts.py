"""The host lifecycle table: every (state, event) pair, the safety rules as data, and the diagram."""

from __future__ import annotations

import contextlib
import io
import itertools
import pathlib

import pytest

from petguard import hosts
from petguard.errors import InvalidTransition
from petguard.hosts import HELD_DOWN, IN_INCIDENT, TRANSITIONS, Host, HostEvent, HostState

S, E = HostState, HostEvent
ALL_PAIRS = list(itertools.product(HostState, HostEvent))
LEGAL = sorted(TRANSITIONS.items())
ILLEGAL = sorted(pair for pair in ALL_PAIRS if pair not in TRANSITIONS)
REPO = pathlib.Path(__file__).resolve().parents[2]

#: The table as the design draws it, written out independently of the module, so that a change to
#: the table is a deliberate change to this test too.
EXPECTED: dict[tuple[HostState, HostEvent], HostState] = {
    (S.UP, E.SIGNALS_DOWN): S.SUSPECT,
    (S.SUSPECT, E.SIGNALS_UP): S.UP,
    (S.SUSPECT, E.FENCE_STARTED): S.FENCING,
    (S.FENCING, E.FENCE_CONFIRMED): S.FENCED,
    (S.FENCING, E.FENCE_FAILED): S.AWAITING_CONFIRM,
    (S.AWAITING_CONFIRM, E.OPERATOR_CONFIRMED_FENCED): S.FENCED,
    (S.FENCED, E.EVACUATION_STARTED): S.EVACUATING,
    (S.EVACUATING, E.EVACUATION_FINISHED): S.EVACUATED,
    (S.EVACUATED, E.OPERATOR_RESTORE): S.RESTORING,
    (S.RESTORING, E.SERVICE_RESTORED): S.UP,
    (S.RESTORING, E.RESTORE_FAILED): S.EVACUATED,
    (S.UP, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.SUSPECT, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.AWAITING_CONFIRM, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.MAINTENANCE, E.MAINTENANCE_OFF): S.UP,
    (S.UP, E.OPERATOR_FENCE): S.FENCING,
    (S.SUSPECT, E.OPERATOR_FENCE): S.FENCING,
    (S.AWAITING_CONFIRM, E.OPERATOR_FENCE): S.FENCING,
    (S.MAINTENANCE, E.OPERATOR_FENCE): S.FENCING,
    (S.EVACUATED, E.OPERATOR_EVACUATE): S.FENCED,
}

OPERATOR_EVENTS = frozenset(
    {
        E.OPERATOR_CONFIRMED_FENCED,
        E.OPERATOR_RESTORE,
        E.MAINTENANCE_ON,
        E.MAINTENANCE_OFF,
        E.OPERATOR_FENCE,
        E.OPERATOR_EVACUATE,
    }
)


def test_cross_product_is_complete() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(HostState) * len(HostEvent)


def test_table_is_the_designed_one() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("edge", "target"), LEGAL, ids=[f"{s.value}-{e.value}" for (s, e), _ in LEGAL])
def test_legal_edge(edge: tuple[HostState, HostEvent], target: HostState) -> None:
    state, event = edge
    assert hosts.next_state(state, event) is target
    before = Host("cmp1", state, since=1.0, incident_id=7, reason="old")
    after = before.apply(event, at=5.0, reason="why")
    assert (after.state, after.since, after.reason) == (target, 5.0, "why")
    assert (after.name, after.incident_id) == ("cmp1", 7)
    assert before.state is state  # frozen: apply returns a new value


@pytest.mark.parametrize("edge", ILLEGAL, ids=[f"{s.value}-{e.value}" for s, e in ILLEGAL])
def test_illegal_edge(edge: tuple[HostState, HostEvent]) -> None:
    state, event = edge
    with pytest.raises(InvalidTransition) as info:
        hosts.next_state(state, event)
    assert state.value in str(info.value) and event.value in str(info.value)
    host = Host("cmp1", state, since=1.0)
    with pytest.raises(InvalidTransition):
        host.apply(event, at=2.0)


def sources_of(target: HostState) -> set[HostState]:
    return {s for (s, _), t in TRANSITIONS.items() if t is target}


def test_evacuating_only_from_fenced() -> None:
    assert sources_of(S.EVACUATING) == {S.FENCED}
    assert [e for (s, e), t in TRANSITIONS.items() if t is S.EVACUATING] == [E.EVACUATION_STARTED]


def test_fenced_only_after_a_confirmed_fence() -> None:
    """FENCED comes from a fence read back OFF, an operator's confirmation, or an evacuated host
    (which was fenced in this incident and still is) whose evacuation the operator re-runs."""
    assert sources_of(S.FENCED) == {S.FENCING, S.AWAITING_CONFIRM, S.EVACUATED}
    assert {e for (s, e), t in TRANSITIONS.items() if t is S.FENCED} == {
        E.FENCE_CONFIRMED,
        E.OPERATOR_CONFIRMED_FENCED,
        E.OPERATOR_EVACUATE,
    }


def test_fencing_starts_from_detection_or_an_operator() -> None:
    assert {s for (s, e), t in TRANSITIONS.items() if t is S.FENCING and e is E.FENCE_STARTED} == {S.SUSPECT}
    assert {e for (s, e), t in TRANSITIONS.items() if t is S.FENCING} == {E.FENCE_STARTED, E.OPERATOR_FENCE}


def test_awaiting_confirm_only_left_by_operator_events() -> None:
    leaving = {e for (s, e) in TRANSITIONS if s is S.AWAITING_CONFIRM}
    assert leaving and leaving <= OPERATOR_EVENTS


@pytest.mark.parametrize("event", [e for e in HostEvent if e not in OPERATOR_EVENTS])
@pytest.mark.fault(
    "DET-14",
    guarantee="4",
    injected="any automatic event (heartbeats back, a lane outcome) on a host in AWAITING_CONFIRM",
    expected="refused by the lifecycle table: only an operator's event moves it",
)
def test_awaiting_confirm_ignores_every_automatic_event(event: HostEvent) -> None:
    with pytest.raises(InvalidTransition):
        Host("cmp1", S.AWAITING_CONFIRM).apply(event, at=0.0)


def reachable_without(start: HostState, forbidden: HostState) -> set[HostState]:
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target is not forbidden and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_up_never_reachable_from_evacuated_except_via_restoring() -> None:
    assert S.UP not in reachable_without(S.EVACUATED, S.RESTORING)
    assert S.UP in reachable_without(S.EVACUATED, S.MAINTENANCE)  # and through RESTORING it is


@pytest.mark.parametrize("state", [S.FENCED, S.EVACUATING, S.EVACUATED])
@pytest.mark.fault(
    "DET-13",
    guarantee="6",
    injected="any event (heartbeats back, a lane outcome) on a host petguard holds down (FENCED, EVACUATING, "
    "EVACUATED)",
    expected="the lifecycle table has no way to UP or MAINTENANCE but through RESTORING",
)
def test_held_down_states_never_reach_up_without_restoring(state: HostState) -> None:
    """Guarantee 6: once petguard holds a host down, only a restore returns it to service."""
    assert S.UP not in reachable_without(state, S.RESTORING)
    assert S.MAINTENANCE not in reachable_without(state, S.RESTORING)


@pytest.mark.parametrize("state", [S.FENCING, S.FENCED, S.EVACUATING, S.EVACUATED, S.RESTORING])
def test_no_maintenance_while_petguard_acts_or_holds_the_host(state: HostState) -> None:
    with pytest.raises(InvalidTransition):
        Host("cmp1", state).apply(E.MAINTENANCE_ON, at=0.0)


def test_every_state_is_reachable_from_up_and_can_return() -> None:
    assert reachable_without(S.UP, forbidden=S.UP) | {S.UP} == set(HostState)
    for state in HostState:
        assert S.UP in reachable_without(state, forbidden=S.SUSPECT) | ({S.UP} if state is S.UP else set()), state


def test_state_sets() -> None:
    assert HELD_DOWN == {S.FENCED, S.EVACUATING, S.EVACUATED, S.RESTORING}
    assert S.UP not in IN_INCIDENT and S.MAINTENANCE not in IN_INCIDENT
    assert HELD_DOWN <= IN_INCIDENT


def test_with_incident_keeps_everything_else() -> None:
    host = Host("cmp1", S.SUSPECT, since=3.0, reason="r")
    attached = host.with_incident(4)
    assert attached == Host("cmp1", S.SUSPECT, since=3.0, incident_id=4, reason="r")
    assert attached.with_incident(None) == host


def test_diagram_contains_every_edge_and_nothing_else() -> None:
    lines = hosts.mermaid_diagram().splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> up" in lines
    edges = {line.strip() for line in lines[1:] if ": " in line}
    assert edges == {f"{s.value} --> {t.value}: {e.value}" for (s, e), t in TRANSITIONS.items()}


def main_output() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        hosts.main()
    return buffer.getvalue()


def test_main_prints_the_diagram_and_a_row_per_edge() -> None:
    out = main_output()
    assert hosts.mermaid_diagram() in out
    for (source, event), target in TRANSITIONS.items():
        assert f"| {source.value} | {event.value} | {target.value} |" in out


def test_committed_lifecycle_doc_is_generated() -> None:
    doc = REPO / "docs" / "lifecycle.md"
    if not doc.exists():
        pytest.skip("docs/lifecycle.md is not committed yet (python -m petguard.hosts > docs/lifecycle.md)")
    stale = "docs/lifecycle.md is stale: run python -m petguard.hosts > docs/lifecycle.md"
    assert doc.read_text() == main_output(), stale
