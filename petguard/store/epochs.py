"""The leadership epoch in the ``meta`` row (storage edge; used by ``SqlStore``).

``SqlStore`` runs ``check_epoch`` first in each guarded write transaction (a no-op UPDATE that
matches only while the store's epoch is current) and ``advance_epoch`` when a new leader claims
(compare-and-set from the epoch it saw). ``petguard.ha.election`` decides when to claim.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from petguard.errors import StaleEpoch
from petguard.store import models as m


def stored_epoch(conn: Connection) -> int:
    return int(conn.execute(select(m.meta.c.epoch).where(m.meta.c.id == m.SINGLE_ROW_ID)).scalar_one())


def check_epoch(conn: Connection, epoch: int) -> None:
    """A no-op UPDATE that matches only while ``epoch`` is current (and, on sqlite, takes the lock)."""
    query = update(m.meta).where(m.meta.c.id == m.SINGLE_ROW_ID, m.meta.c.epoch == epoch).values(epoch=m.meta.c.epoch)
    if conn.execute(query).rowcount != 1:
        raise StaleEpoch(f"write refused: epoch {epoch} is no longer current (another controller leads)", epoch=epoch)


def advance_epoch(conn: Connection, seen: int) -> int:
    query = update(m.meta).where(m.meta.c.id == m.SINGLE_ROW_ID, m.meta.c.epoch == seen).values(epoch=seen + 1)
    if conn.execute(query).rowcount != 1:
        raise StaleEpoch(f"epoch {seen} was already claimed by another controller", epoch=seen)
    return seen + 1
