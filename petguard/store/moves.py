"""The evacuation journal: plans, moves and skips under an incident (storage edge; used by ``SqlStore``).

A plan is recorded once per server across re-plans (``plan_order`` keeps the order servers were
planned in). A move's status changes only by compare-and-set along an edge of
``petguard.evacuate.transitions``: the UPDATE matches only a row whose status is one of the allowed
sources, and a row it did not change is explained (``NotFound``, ``StaleWrite`` or
``InvalidTransition``). ``SqlStore.update_move`` checks the edge itself before any transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

from sqlalchemy import Connection, func, insert, select, update

from petguard.cloud import Plan
from petguard.errors import InvalidTransition, NotFound, StaleWrite
from petguard.evacuate.transitions import check_move
from petguard.journal import STUCK, MoveRecord, MoveStatus, SkipRecord
from petguard.store import models as m
from petguard.store import rows
from petguard.store.incidents import incident


def moves(conn: Connection, incident_id: int) -> list[MoveRecord]:
    c = m.moves.c
    query = (
        select(m.moves)
        .where(c.incident_id == incident_id)
        .order_by(c.wave, c.priority.desc(), c.server_name, c.server_id, c.plan_order)
    )
    return [rows.move_from_row(r) for r in conn.execute(query).mappings()]


def skips(conn: Connection, incident_id: int) -> list[SkipRecord]:
    c = m.skips.c
    query = select(m.skips).where(c.incident_id == incident_id).order_by(c.server_name, c.server_id)
    return [rows.skip_from_row(r) for r in conn.execute(query).mappings()]


def record_plan(conn: Connection, incident_id: int, plan: Plan, at: float) -> None:
    incident(conn, incident_id)
    planned = set(conn.scalars(select(m.moves.c.server_id).where(m.moves.c.incident_id == incident_id)))
    skipped = set(conn.scalars(select(m.skips.c.server_id).where(m.skips.c.incident_id == incident_id)))
    # plan_order records the order servers were planned in, across re-plans of the incident
    first_move, first_skip = len(planned), len(skipped)
    new_moves = [
        rows.move_to_row(incident_id, plan.host, move, first_move + order, at)
        for order, move in enumerate(mv for mv in plan.moves if mv.server_id not in planned)
    ]
    new_skips = [
        rows.skip_to_row(incident_id, skip, first_skip + order)
        for order, skip in enumerate(s for s in plan.skipped if s.server_id not in skipped)
    ]
    if new_moves:
        conn.execute(insert(m.moves), _unique(new_moves))
    if new_skips:
        conn.execute(insert(m.skips), _unique(new_skips))


def _unique(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each server (a plan lists a server once; this keeps a bad one from failing)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in values:
        seen.setdefault(row["server_id"], row)
    return list(seen.values())


def move_values(
    status: MoveStatus,
    at: float,
    *,
    reason: str | None,
    dest_host: str | None,
    request_id: str | None,
    count_attempt: bool,
    target_host: str | None,
    fall_back: bool,
    waiting: str | None,
    end_vouch: bool = False,
) -> dict[str, Any]:
    """The SET values of one ``update_move`` (see ``petguard.journal.Store.update_move``)."""
    values: dict[str, Any] = {"status": status.value, "updated_at": at}
    if waiting is not None:
        # a wait keeps the moment it began across its retries; "" ends it
        values["waiting"] = waiting
        values["waiting_since"] = func.coalesce(m.moves.c.waiting_since, at) if waiting else None
    if request_id is not None or end_vouch:
        values["resend_vouched_at"] = None  # a new request: an operator's word was for the one before
    given = (("reason", reason), ("dest_host", dest_host), ("request_id", request_id), ("target_host", target_host))
    for column, value in given:
        if value is not None:
            values[column] = value
    if count_attempt:
        values["attempts"] = m.moves.c.attempts + 1
    if fall_back:
        values["fell_back"] = True
        values["target_host"] = None
    return values


def update_move(
    conn: Connection,
    incident_id: int,
    server_id: str,
    values: dict[str, Any],
    sources: Collection[MoveStatus],
    expected: MoveStatus | None,
) -> MoveRecord:
    """Compare-and-set: the UPDATE changes the row only if its status is one of ``sources``."""
    key = (m.moves.c.incident_id == incident_id, m.moves.c.server_id == server_id)
    allowed = m.moves.c.status.in_(sorted(s.value for s in sources))
    if conn.execute(update(m.moves).where(*key, allowed).values(**values)).rowcount != 1:
        _refuse_move(conn, incident_id, server_id, MoveStatus(values["status"]), expected)
    return rows.move_from_row(conn.execute(select(m.moves).where(*key)).mappings().one())


def _refuse_move(
    conn: Connection, incident_id: int, server_id: str, new: MoveStatus, expected: MoveStatus | None
) -> NoReturn:
    """Why a move's compare-and-set changed no row: no such move, a stale writer, or no such edge."""
    key = (m.moves.c.incident_id == incident_id, m.moves.c.server_id == server_id)
    actual = conn.scalar(select(m.moves.c.status).where(*key))
    what = f"move of server {server_id} (incident {incident_id})"
    if actual is None:
        raise NotFound(f"incident {incident_id} has no {what}", incident=incident_id, server=server_id)
    context = {"incident": incident_id, "server": server_id, "actual": actual, "new": new.value}
    if expected is not None:
        raise StaleWrite(
            f"{what}: expected status {expected.value} but it is {actual}: another writer moved it on; "
            f"refused {expected.value} -> {new.value}, nothing written",
            expected=expected.value,
            **context,
        )
    raise InvalidTransition(
        f"{what}: the move table has no edge {actual} -> {new.value}; nothing written", **context
    )


def retry_failed_moves(conn: Connection, incident_id: int, at: float) -> None:
    """An operator re-runs an evacuation: FAILED moves go back to PLANNED with a fresh attempt count
    (compare-and-set: only the rows that are FAILED in this statement)."""
    check_move(MoveStatus.FAILED, MoveStatus.PLANNED, f"incident {incident_id}'s failed moves")
    failed = (m.moves.c.incident_id == incident_id, m.moves.c.status == MoveStatus.FAILED.value)
    values = {"status": MoveStatus.PLANNED.value, "attempts": 0, "reason": "retried by an operator", "updated_at": at}
    conn.execute(update(m.moves).where(*failed).values(**values))


def vouch_resends(conn: Connection, incident_id: int, at: float) -> int:
    """An operator vouches that nothing in Nova still holds the incident's stuck requests (``petguard
    resend``): mark every unfinished move flagged stuck at this moment; the number marked."""
    c = m.moves.c
    final = sorted(s.value for s in MoveStatus if s.final)
    stuck = (c.incident_id == incident_id, c.status.not_in(final), c.waiting.startswith(STUCK))
    return int(conn.execute(update(m.moves).where(*stuck).values(resend_vouched_at=at)).rowcount)
