"""The two evacuation state machines as tables: a move's status and a reserved host's loan (pure domain).

Like ``petguard.hosts`` for the host lifecycle, every edge a journal row may take lives here, with
why it is taken; the store (``store.sql``) refuses any write that is not an edge (compare-and-set:
the UPDATE's WHERE names the status the writer expects, or every status the table lets lead to the
new one), and docs/evacuation-states.md is generated from the tables
(``python -m petguard.evacuate.transitions``).

A move edge that keeps its status (e.g. ``accepted -> accepted``) is a write of the move's other
fields: a wait for the cloud begins or ends, a stuck request is flagged. Rules a reviewer can see:

* ``requesting`` is the only way to Nova: ``accepted`` is reached from ``planned`` only when Nova's
  records say it already has the evacuation (the runner never sends one from ``planned``).
* ``done`` is reached only from ``arrived`` (on another host, power state restored), and nothing
  leaves it; ``failed`` leaves only by an operator's retry, back to ``planned``.
* A loan is taken only from ``idle`` and ends only through ``returning`` (its service disabled again).

This module does no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from petguard.errors import InvalidTransition
from petguard.journal import MoveStatus, ReservedState

M = MoveStatus

#: (from, to) -> why the runner (or an operator) writes this edge. Anything else is refused.
MOVE_TRANSITIONS: dict[tuple[MoveStatus, MoveStatus], str] = {
    (M.PLANNED, M.REQUESTING): "request (write-ahead) or hint unmet",
    (M.PLANNED, M.ACCEPTED): "Nova already has it",
    (M.PLANNED, M.ARRIVED): "already on another host",
    (M.PLANNED, M.FAILED): "fail",
    (M.PLANNED, M.PLANNED): "a wait for the cloud begins or ends",
    (M.REQUESTING, M.REQUESTING): "request again, hint unmet, wait",
    (M.REQUESTING, M.ACCEPTED): "Nova took it, or already has it",
    (M.REQUESTING, M.ARRIVED): "already on another host",
    (M.REQUESTING, M.FAILED): "fail",
    # Nova moved nothing (the server is ERROR on the source): ask again, fall back, or wait.
    (M.ACCEPTED, M.REQUESTING): "nothing moved",
    (M.ACCEPTED, M.ACCEPTED): "stuck, moving again, wait",
    (M.ACCEPTED, M.ARRIVED): "arrived",
    (M.ACCEPTED, M.FAILED): "fail",
    (M.ARRIVED, M.ARRIVED): "a wait for the cloud begins or ends",
    (M.ARRIVED, M.DONE): "power state restored",
    (M.ARRIVED, M.FAILED): "fail",
    # A wait that a crash left on a move that then finished ends on the done row.
    (M.DONE, M.DONE): "wait over",
    (M.FAILED, M.PLANNED): "operator retry",
}

R = ReservedState

#: (from, to) -> why a reserved host's loan takes this edge (evacuate.reserved). Anything else is refused.
LOAN_TRANSITIONS: dict[tuple[ReservedState, ReservedState], str] = {
    (R.IDLE, R.BORROWING): "borrowed by an incident",
    (R.BORROWING, R.BORROWED): "service enabled",
    (R.BORROWING, R.RETURNING): "could not be enabled, or incident over",
    (R.BORROWED, R.RETURNING): "incident over",
    (R.RETURNING, R.IDLE): "service disabled again",
}


def move_sources(new: MoveStatus) -> frozenset[MoveStatus]:
    """Every status from which a move may be written with status ``new``."""
    return frozenset(source for source, target in MOVE_TRANSITIONS if target is new)


def check_move(current: MoveStatus, new: MoveStatus, what: str = "a move") -> None:
    """:raises InvalidTransition: the move table has no edge ``current -> new``."""
    if (current, new) not in MOVE_TRANSITIONS:
        raise InvalidTransition(
            f"{what}: the move table has no edge {current.value} -> {new.value}",
            state=current.value,
            event=new.value,
        )


def check_loan(current: ReservedState, new: ReservedState, host: str = "a reserved host") -> None:
    """:raises InvalidTransition: the loan table has no edge ``current -> new``."""
    if (current, new) not in LOAN_TRANSITIONS:
        raise InvalidTransition(
            f"{host}: the loan table has no edge {current.value} -> {new.value}",
            state=current.value,
            event=new.value,
            host=host,
        )


def _diagram(start: str, edges: Iterable[tuple[tuple[enum.StrEnum, enum.StrEnum], str]]) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {start}"]
    for (source, target), why in edges:
        lines.append(f"    {source.value} --> {target.value}: {why}")
    return "\n".join(lines) + "\n"


def move_diagram() -> str:
    """The move table as a Mermaid state diagram."""
    return _diagram(MoveStatus.PLANNED.value, MOVE_TRANSITIONS.items())


def loan_diagram() -> str:
    """The loan table as a Mermaid state diagram."""
    return _diagram(ReservedState.IDLE.value, LOAN_TRANSITIONS.items())


def document() -> str:
    """docs/evacuation-states.md, generated from the two tables."""
    out = [
        "# Evacuation states: moves and reserved-host loans\n",
        "Generated from `petguard.evacuate.transitions` by `python -m petguard.evacuate.transitions`; "
        "do not edit.\n",
        "The journal refuses any other write (compare-and-set in the store: a stale writer gets "
        "`StaleWrite`, an edge not drawn `InvalidTransition`).\n",
        "## A move (one server of one incident)\n",
        "An edge that keeps its status writes the move's other fields (a wait for the cloud, a stuck "
        "request). `done` is reached only from `arrived`; `failed` is left only by an operator's retry.\n",
        "```mermaid",
        move_diagram() + "```\n",
        "| from | to | why |\n|---|---|---|",
        *(f"| {s.value} | {t.value} | {why} |" for (s, t), why in MOVE_TRANSITIONS.items()),
        "\n## A reserved host's loan\n",
        "```mermaid",
        loan_diagram() + "```\n",
        "| from | to | why |\n|---|---|---|",
        *(f"| {s.value} | {t.value} | {why} |" for (s, t), why in LOAN_TRANSITIONS.items()),
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    """Print docs/evacuation-states.md (``python -m petguard.evacuate.transitions > docs/evacuation-states.md``)."""
    print(document(), end="")


if __name__ == "__main__":
    main()
