"""A journal stub for the runner's unit tests: just enough of ``Store`` for a few moves, with the
events it was given (the functional tests use the real journal)."""

from __future__ import annotations

import dataclasses

from petguard.errors import StaleWrite
from petguard.evacuate.transitions import check_move
from petguard.journal import MoveRecord, MoveStatus


def apply_update(move: MoveRecord, status: MoveStatus, at: float, fields: dict[str, object]) -> MoveRecord:
    """What the journal's ``update_move`` does to a row (store/sql.py), for the stubs: the same
    compare-and-set along the move table, so a unit test catches a wrong or stale transition.

    :raises StaleWrite: ``expected`` is given and is not the row's status.
    :raises InvalidTransition: the move table has no edge from the row's status to ``status``.
    """
    expected = fields.get("expected")
    what = f"move of server {move.server_id} (incident {move.incident_id})"
    if isinstance(expected, MoveStatus):
        check_move(expected, status, what)
        if move.status is not expected:
            raise StaleWrite(
                f"{what}: expected status {expected.value} but it is {move.status.value}",
                expected=expected.value,
                actual=move.status.value,
            )
    check_move(move.status, status, what)
    changes: dict[str, object] = {
        k: v for k, v in fields.items() if k in ("dest_host", "reason", "request_id", "target_host") and v is not None
    }
    if fields.get("request_id") is not None or fields.get("end_vouch"):
        changes["resend_vouched_at"] = None  # a new request: the operator's word was for the one before
    if fields.get("count_attempt"):
        changes["attempts"] = move.attempts + 1
    if fields.get("fall_back"):
        changes.update(fell_back=True, target_host=None)
    waiting = fields.get("waiting")
    if isinstance(waiting, str):
        changes["waiting"] = waiting
        changes["waiting_since"] = (move.waiting_since if move.waiting_since is not None else at) if waiting else None
    return dataclasses.replace(move, status=status, updated_at=at, **changes)  # type: ignore[arg-type]


class MovesStore:
    """Just enough of the journal for a few moves, with the events recorded."""

    def __init__(self, moves: list[MoveRecord]) -> None:
        self.rows = {m.server_id: m for m in moves}
        self.events: list[tuple[str, str]] = []

    def moves(self, incident_id: int) -> list[MoveRecord]:
        return sorted(self.rows.values(), key=lambda m: (m.wave, -m.priority, m.server_name))

    def update_move(
        self, incident_id: int, server_id: str, status: MoveStatus, at: float, **fields: object
    ) -> MoveRecord:
        move = apply_update(self.rows[server_id], status, at, fields)
        self.rows[server_id] = move
        return move

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        self.events.append((kind, message))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]
