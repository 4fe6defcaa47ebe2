"""A journal that crashes on cue, for the runner's crash-resume tests: the real store, with ``Crash``
(a SIGKILL stand-in nothing in petguard catches) raised right after a chosen write was committed."""

from __future__ import annotations

from typing import Any

from petguard.journal import MoveRecord, MoveStatus
from petguard.store.sql import SqlStore


class Crash(BaseException):
    """A SIGKILL stand-in: nothing in petguard catches it."""


class CrashingStore:
    """The real store; raises ``Crash`` once, right after the write named ``at``: an event of that
    kind, or a move update that ``point_of`` names so (subclasses say which updates are which)."""

    def __init__(self, store: SqlStore, at: str) -> None:
        self._store = store
        self._at = at
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def point_of(self, status: MoveStatus, record: MoveRecord, changes: dict[str, Any]) -> str | None:
        """The crash point that this move update is, if any."""
        return None

    def _maybe_crash(self, point: str | None) -> None:
        if self.armed and point == self._at:
            self.armed = False
            raise Crash(point)

    def update_move(self, incident_id: int, server_id: str, status: MoveStatus, at: float, **kw: Any) -> MoveRecord:
        record = self._store.update_move(incident_id, server_id, status, at, **kw)
        self._maybe_crash(self.point_of(status, record, kw))
        return record

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        self._store.record_event(host, incident_id, kind, message, at)
        self._maybe_crash(kind)
