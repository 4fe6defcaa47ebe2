"""Outgoing webhooks: the events table is the outbox, one cursor per receiver (storage edge; used by ``SqlStore``).

``petguard.webhooks.dispatch`` reads the events after a receiver's cursor, moves the cursor past what
was delivered and records failures (the cursor stays, the next try waits). A new receiver starts
after the newest event, so it gets no flood of history.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, select, update

from petguard.journal import EventRecord, WebhookCursor
from petguard.store import models as m
from petguard.store import rows


def events_after(conn: Connection, event_id: int, limit: int) -> list[EventRecord]:
    """Events with an id greater than ``event_id``, in id order."""
    query = select(m.events).where(m.events.c.id > event_id).order_by(m.events.c.id).limit(limit)
    return [rows.event_from_row(r) for r in conn.execute(query).mappings()]


def cursor(conn: Connection, receiver: str, at: float) -> WebhookCursor:
    """The receiver's cursor, created after the newest event for a new receiver."""
    table = m.webhook_cursors
    found = conn.execute(select(table).where(table.c.receiver == receiver)).mappings().first()
    if found is not None:
        return _cursor_from_row(found)
    newest = conn.execute(select(func.max(m.events.c.id))).scalar() or 0
    row = {"receiver": receiver, "last_event_id": int(newest), "attempts": 0, "updated_at": at}
    conn.execute(insert(table), [row])
    return WebhookCursor(receiver, int(newest))


def advance(conn: Connection, receiver: str, event_id: int, at: float) -> None:
    values = {
        "last_event_id": event_id,
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None,
        "updated_at": at,
    }
    table = m.webhook_cursors
    conn.execute(update(table).where(table.c.receiver == receiver).values(values))


def failed(conn: Connection, receiver: str, error: str, next_attempt_at: float, at: float) -> None:
    table = m.webhook_cursors
    values = {
        "attempts": table.c.attempts + 1,
        "next_attempt_at": next_attempt_at,
        "last_error": error,
        "updated_at": at,
    }
    conn.execute(update(table).where(table.c.receiver == receiver).values(values))


def _cursor_from_row(row: rows.Row) -> WebhookCursor:
    return WebhookCursor(
        receiver=str(row["receiver"]),
        last_event_id=int(row["last_event_id"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
    )
