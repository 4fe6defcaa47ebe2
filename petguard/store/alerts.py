"""Alerts received from Alertmanager, as host signals (storage edge; used by ``SqlStore``).

One row per fingerprint, upserted portably (no dialect-specific upsert); a firing alert that has not
expired is a DOWN signal for its host (``petguard.detect``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select, update

from petguard.detect import Health, Signal
from petguard.journal import AlertRecord
from petguard.store import models as m
from petguard.store import rows
from petguard.store.common import chunks


def record(conn: Connection, alerts: Sequence[AlertRecord], at: float) -> None:
    """Upsert by fingerprint (portable: no dialect-specific upsert); the last value of a fingerprint wins."""
    by_key = {a.fingerprint: a for a in alerts}
    table = m.alerts
    existing: set[str] = set()
    for chunk in chunks(list(by_key)):
        existing.update(conn.scalars(select(table.c.fingerprint).where(table.c.fingerprint.in_(chunk))))
    for key, alert in by_key.items():
        values = {
            "host": alert.host,
            "kind": alert.kind,
            "status": "firing" if alert.firing else "resolved",
            "summary": alert.summary,
            "starts_at": alert.starts_at,
            "expires_at": alert.expires_at,
            "sender": alert.sender,
            "updated_at": at,
        }
        if key in existing:
            conn.execute(update(table).where(table.c.fingerprint == key).values(**values))
        else:
            conn.execute(insert(table).values(fingerprint=key, **values))


def active(conn: Connection, now: float) -> list[Signal]:
    c = m.alerts.c
    query = select(m.alerts).where(c.status == "firing", c.expires_at > now).order_by(c.host, c.kind)
    return [_alert_signal(r) for r in conn.execute(query).mappings()]


def _alert_signal(row: rows.Row) -> Signal:
    detail = f"alert {row['kind']} firing" + (f": {row['summary']}" if row["summary"] else "")
    source = f"alert:{row['kind']}"
    return Signal(source=source, host=row["host"], health=Health.DOWN, at=row["updated_at"], detail=detail)
