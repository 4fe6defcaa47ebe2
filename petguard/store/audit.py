"""The audit trail: each API request that changed something, or tried to (storage edge; used by ``SqlStore``).

``SqlStore`` writes entries without the leadership epoch guard; they are read newest first and
returned oldest first.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from petguard.journal import AuditRecord
from petguard.store import models as m
from petguard.store import rows
from petguard.store.common import oldest_first


def record(conn: Connection, actor: str, action: str, target: str | None, result: str, detail: str, at: float) -> None:
    row = {"at": at, "actor": actor, "action": action, "target": target, "result": result, "detail": detail}
    conn.execute(insert(m.audit), [row])


def newest(conn: Connection, limit: int) -> list[AuditRecord]:
    """The newest ``limit`` entries, oldest first."""
    query = select(m.audit).order_by(m.audit.c.id.desc()).limit(limit)
    return oldest_first(conn, query, _audit_from_row)


def _audit_from_row(row: rows.Row) -> AuditRecord:
    return AuditRecord(
        id=int(row["id"]),
        at=float(row["at"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        target=row["target"],
        result=str(row["result"]),
        detail=str(row["detail"]),
    )
