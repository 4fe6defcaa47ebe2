"""Operator requests: queued by the API, answered by the loop (storage edge; used by ``SqlStore``).

A request is submitted once, read while pending, and finished by the tick that acted on it
(``store.hosts.save_tick``); finishing it twice keeps the first answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from petguard.errors import NotFound
from petguard.journal import OperatorRequest, RequestKind, RequestStatus
from petguard.store import models as m
from petguard.store import rows
from petguard.store.common import insert_id


def submit(conn: Connection, host: str, kind: RequestKind, reason: str, requested_by: str, at: float) -> int:
    row = {"host": host, "kind": kind.value, "reason": reason, "requested_by": requested_by, "requested_at": at}
    return insert_id(conn, m.operator_requests, row)


def pending(conn: Connection) -> list[OperatorRequest]:
    query = (
        select(m.operator_requests)
        .where(m.operator_requests.c.finished_at.is_(None))
        .order_by(m.operator_requests.c.requested_at, m.operator_requests.c.id)
    )
    return [rows.request_from_row(r) for r in conn.execute(query).mappings()]


def request_status(conn: Connection, request_id: int) -> RequestStatus:
    table = m.operator_requests
    row = conn.execute(select(table).where(table.c.id == request_id)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no operator request {request_id}", request=request_id)
    status = "pending" if row["finished_at"] is None else str(row["result"])
    return RequestStatus(rows.request_from_row(row), status, row["message"] or "", row["finished_at"])


def finish(conn: Connection, finished: Iterable[tuple[int, str, str]], at: float) -> None:
    table = m.operator_requests
    for request_id, result, message in finished:
        query = (
            update(table)
            .where(table.c.id == request_id, table.c.finished_at.is_(None))
            .values(finished_at=at, result=result, message=message)
        )
        if conn.execute(query).rowcount != 1:
            exists = conn.execute(select(table.c.id).where(table.c.id == request_id)).first()
            if exists is None:
                raise NotFound(f"no operator request {request_id}", request=request_id)
