"""``SqlStore``: the journal (``petguard.journal.Store``) on SQLAlchemy 2 Core (adapter).

The loop thread and the action lanes share one ``SqlStore``; each method is one transaction on a
connection of its own from the engine's pool, and returns domain values, never rows. Writes:

* are retried as a whole (tenacity, a few attempts, built per call) when the database says the
  transaction may succeed if repeated: sqlite "database is locked", MySQL deadlocks, PostgreSQL
  serialization failures. Anything else is mapped once into petguard's error tree
  (``StoreUnavailable`` is Temporary, ``StoreRefused`` Permanent) and chained.
* change rows with conditional UPDATEs (``attempts = attempts + 1``, ``WHERE closed_at IS NULL``),
  never ``SELECT ... FOR UPDATE`` (Galera does not honour it across nodes).
* carry the leadership epoch when the store was given one: the first statement of each write
  transaction is ``UPDATE meta SET epoch = epoch WHERE epoch = :mine``, and no matching row means a
  newer leader exists (``StaleEpoch``). ``claim_epoch`` is the compare-and-set a new leader runs.

The store never migrates: it refuses a schema that is not at head (``petguard-manage db upgrade``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

import tenacity
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from petguard.agent.events import DomainEvent
from petguard.cloud import Plan
from petguard.detect import FenceStart, Health, Signal
from petguard.errors import InvalidTransition, NotFound, StaleEpoch, StaleWrite
from petguard.evacuate.transitions import check_loan, check_move, move_sources
from petguard.guests.policy import AgentEventRecord, AgentHeartbeat, ServerHealth
from petguard.hosts import HostState
from petguard.journal import (
    AlertRecord,
    AuditRecord,
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    MoveStatus,
    OperatorRequest,
    RequestKind,
    RequestStatus,
    ReservedHost,
    ReservedState,
    SkipRecord,
    TickRecord,
    Transition,
    WebhookCursor,
)
from petguard.store import agents, rows
from petguard.store import models as m
from petguard.store.engine import SQLITE_BUSY_TIMEOUT, WRITE_OPTION, is_transient, make_engine, map_error, parse_url
from petguard.store.migrate import check_at_head

T = TypeVar("T")

#: Whole-transaction retries for transient conflicts (each sqlite attempt already waited busy_timeout).
RETRY_ATTEMPTS = 4
#: Host names per ``IN (...)`` list (well under every backend's bound-parameter limit).
CHUNK = 500


class SqlStore:
    """The persistent journal on a SQL database. Thread-safe: share one instance.

    :param url: a SQLAlchemy URL (``sqlite:////var/lib/petguard/petguard.sqlite``,
        ``mysql+pymysql://...``, ``postgresql+psycopg://...``).
    :param epoch: when given, every write is refused with ``StaleEpoch`` once the stored epoch has
        moved past it (several controllers); None writes unconditionally (one controller).
    :param busy_timeout: sqlite only: seconds a writer waits for another's lock before the
        transaction is retried (a few times) and then fails with ``StoreUnavailable``.
    :raises petguard.errors.ConfigError: bad URL, missing sqlite directory, missing driver, or a
        schema that is not at head (the message says to run ``petguard-manage db upgrade``).
    :raises petguard.store.engine.StoreUnavailable: the database could not be reached.
    """

    def __init__(self, url: str | URL, *, epoch: int | None = None, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> None:
        self._url = parse_url(url)
        self._epoch = epoch
        self._engine: Engine = make_engine(self._url, busy_timeout=busy_timeout)
        try:
            check_at_head(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlStore({self._url.render_as_string(hide_password=True)!r}, epoch={self._epoch})"

    # -- beyond the Protocol -------------------------------------------------------------------
    @property
    def epoch(self) -> int | None:
        """The leadership epoch this store writes with (None: unconditional)."""
        return self._epoch

    def close(self) -> None:
        """Close every pooled connection (the store can still be used; it reconnects)."""
        self._engine.dispose()

    def ping(self) -> None:
        """A cheap round trip to the database, for health checks.

        :raises petguard.store.engine.StoreUnavailable: the database did not answer.
        """
        self._read(lambda conn: conn.execute(text("SELECT 1")).scalar_one(), "answer a ping")

    def current_epoch(self) -> int:
        """The leadership epoch stored in the database."""
        return self._read(_stored_epoch, "read the epoch")

    def claim_epoch(self, seen: int) -> int:
        """Compare-and-set: move the stored epoch from ``seen`` to ``seen + 1``, and write with it.

        :raises petguard.errors.StaleEpoch: the stored epoch is no longer ``seen`` (another
            controller claimed it first).
        """
        new = self._write(lambda conn: _advance_epoch(conn, seen), "claim the epoch", guard=False)
        self._epoch = new
        return new

    # -- hosts and ticks ----------------------------------------------------------------------
    def load_hosts(self) -> dict[str, HostRecord]:
        return self._read(_load_hosts, "load the hosts")

    def save_tick(self, tick: TickRecord) -> None:
        self._write(lambda conn: _save_tick(conn, tick), "save a tick")

    def load_brake(self) -> BrakeState:
        return self._read(_load_brake, "load the brake")

    # -- operator requests ----------------------------------------------------------------------
    def submit_request(self, host: str, kind: RequestKind, reason: str, requested_by: str, at: float) -> int:
        row = {"host": host, "kind": kind.value, "reason": reason, "requested_by": requested_by, "requested_at": at}
        return self._write(lambda conn: _insert_id(conn, m.operator_requests, row), "queue an operator request")

    def pending_requests(self) -> list[OperatorRequest]:
        query = (
            select(m.operator_requests)
            .where(m.operator_requests.c.finished_at.is_(None))
            .order_by(m.operator_requests.c.requested_at, m.operator_requests.c.id)
        )
        return self._read(
            lambda conn: [rows.request_from_row(r) for r in conn.execute(query).mappings()], "list requests"
        )

    def request_status(self, request_id: int) -> RequestStatus:
        """One operator request and the loop's answer to it.

        :raises petguard.errors.NotFound: no such request.
        """
        return self._read(lambda conn: _request_status(conn, request_id), "read an operator request")

    # -- alerts ---------------------------------------------------------------------------------
    def record_alerts(self, alerts: Sequence[AlertRecord], at: float) -> None:
        if alerts:
            self._write(lambda conn: _record_alerts(conn, alerts, at), "record alerts", guard=False)

    def active_alerts(self, now: float) -> list[Signal]:
        c = m.alerts.c
        query = select(m.alerts).where(c.status == "firing", c.expires_at > now).order_by(c.host, c.kind)
        return self._read(lambda conn: [_alert_signal(r) for r in conn.execute(query).mappings()], "read alerts")

    # -- petguard agents (heartbeats, domain events) and instance health ------------------------
    def record_heartbeat(self, beat: AgentHeartbeat) -> None:
        """Keep a host's newest heartbeat (one row per host)."""
        self._write(lambda conn: agents.record_heartbeat(conn, beat), "record an agent heartbeat", guard=False)

    def agent_heartbeats(self) -> dict[str, float]:
        """When each host's agent was last heard (controller time); hosts without an agent are absent."""
        table = m.agent_hosts
        query = select(table.c.host, table.c.last_heartbeat)
        return self._read(lambda conn: {h: float(at) for h, at in conn.execute(query)}, "read agent heartbeats")

    def agents(self) -> list[AgentHeartbeat]:
        """Every host's last heartbeat, by host name."""
        return self._read(agents.load_heartbeats, "read agent heartbeats")

    def record_agent_events(self, host: str, events: Sequence[DomainEvent], at: float) -> int:
        """Store an agent's events once each (by its event id); returns how many were new."""
        if not events:
            return 0
        work = lambda conn: agents.record_events(conn, host, events, at)  # noqa: E731
        return self._write(work, "record agent events", guard=False)

    def pending_agent_events(self, limit: int = 200) -> list[AgentEventRecord]:
        """Agent events not processed yet, in arrival order."""
        return self._read(lambda conn: agents.pending_events(conn, limit), "read agent events")

    def finish_agent_events(self, ids: Sequence[int], at: float) -> None:
        """Mark agent events processed."""
        if ids:
            self._write(lambda conn: agents.finish_events(conn, ids, at), "mark agent events processed")

    def instance_health(self, server_ids: Sequence[str]) -> dict[str, ServerHealth]:
        """The instance-health state of these servers (servers never seen are absent)."""
        return self._read(lambda conn: agents.load_health(conn, server_ids), "read instance health")

    def pending_restarts(self) -> list[ServerHealth]:
        """Servers with a restart decided and not yet acknowledged by Nova."""
        return self._read(agents.pending_restarts, "read pending restarts")

    def save_instance_health(self, states: Sequence[ServerHealth], at: float) -> None:
        """Write these servers' instance-health states (one transaction)."""
        if states:
            self._write(lambda conn: agents.save_health(conn, states, at), "save instance health")

    # -- incidents and events -------------------------------------------------------------------
    def incident(self, incident_id: int) -> Incident:
        return self._read(lambda conn: _incident(conn, incident_id), "read an incident")

    def incidents(self, host: str | None = None, limit: int = 50) -> list[Incident]:
        query = select(m.incidents).order_by(m.incidents.c.opened_at.desc(), m.incidents.c.id.desc()).limit(limit)
        if host is not None:
            query = query.where(m.incidents.c.host == host)
        return self._read(
            lambda conn: [rows.incident_from_row(r) for r in conn.execute(query).mappings()], "list incidents"
        )

    def events(self, incident_id: int | None = None, host: str | None = None, limit: int = 200) -> list[EventRecord]:
        table = m.events
        query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        if incident_id is not None:
            query = query.where(table.c.incident_id == incident_id)
        if host is not None:
            query = query.where(table.c.host == host)
        return self._read(lambda conn: _oldest_first(conn, query, rows.event_from_row), "list events")

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        row = {"at": at, "host": host, "incident_id": incident_id, "kind": kind, "message": message}
        self._write(lambda conn: conn.execute(insert(m.events), [row]), "record an event")

    def transitions(self, host: str | None = None, limit: int = 200) -> list[Transition]:
        table = m.transitions
        query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        if host is not None:
            query = query.where(table.c.host == host)
        return self._read(lambda conn: _oldest_first(conn, query, rows.transition_from_row), "list transitions")

    def fences_started(self, since: float) -> list[FenceStart]:
        table = m.transitions
        query = (
            select(table.c.host, table.c.at)
            .where(table.c.at > since, table.c.to_state == HostState.FENCING.value)
            .order_by(table.c.at, table.c.id)
        )
        return self._read(
            lambda conn: [FenceStart(r.host, r.at) for r in conn.execute(query)], "list the fences started"
        )

    # -- the evacuation journal -----------------------------------------------------------------
    def record_plan(self, incident_id: int, plan: Plan, at: float) -> None:
        self._write(lambda conn: _record_plan(conn, incident_id, plan, at), "record an evacuation plan")

    def moves(self, incident_id: int) -> list[MoveRecord]:
        c = m.moves.c
        query = (
            select(m.moves)
            .where(c.incident_id == incident_id)
            .order_by(c.wave, c.priority.desc(), c.server_name, c.server_id, c.plan_order)
        )
        return self._read(lambda conn: [rows.move_from_row(r) for r in conn.execute(query).mappings()], "list moves")

    def skips(self, incident_id: int) -> list[SkipRecord]:
        c = m.skips.c
        query = select(m.skips).where(c.incident_id == incident_id).order_by(c.server_name, c.server_id)
        return self._read(lambda conn: [rows.skip_from_row(r) for r in conn.execute(query).mappings()], "list skips")

    def update_move(
        self,
        incident_id: int,
        server_id: str,
        status: MoveStatus,
        at: float,
        *,
        expected: MoveStatus | None = None,
        reason: str | None = None,
        dest_host: str | None = None,
        request_id: str | None = None,
        count_attempt: bool = False,
        target_host: str | None = None,
        fall_back: bool = False,
        waiting: str | None = None,
    ) -> MoveRecord:
        if expected is not None:
            check_move(expected, status, f"move of server {server_id} (incident {incident_id})")
        values: dict[str, Any] = {"status": status.value, "updated_at": at}
        if waiting is not None:
            # a wait keeps the moment it began across its retries; "" ends it
            values["waiting"] = waiting
            values["waiting_since"] = func.coalesce(m.moves.c.waiting_since, at) if waiting else None
        given = (("reason", reason), ("dest_host", dest_host), ("request_id", request_id), ("target_host", target_host))
        for column, value in given:
            if value is not None:
                values[column] = value
        if count_attempt:
            values["attempts"] = m.moves.c.attempts + 1
        if fall_back:
            values["fell_back"] = True
            values["target_host"] = None
        sources = {expected} if expected is not None else move_sources(status)
        return self._write(
            lambda conn: _update_move(conn, incident_id, server_id, values, sources, expected), "update a move"
        )

    # -- reserved failover hosts ----------------------------------------------------------------
    def reserved_hosts(self) -> list[ReservedHost]:
        query = select(m.reserved_hosts).order_by(m.reserved_hosts.c.host)
        return self._read(
            lambda conn: [rows.reserved_from_row(r) for r in conn.execute(query).mappings()], "list reserved hosts"
        )

    def add_reserved_hosts(self, hosts: Sequence[str], at: float) -> None:
        if hosts:
            self._write(lambda conn: _add_reserved_hosts(conn, hosts, at), "add reserved hosts")

    def borrow_reserved_host(self, host: str, incident_id: int, at: float) -> bool:
        check_loan(ReservedState.IDLE, ReservedState.BORROWING, host)
        table = m.reserved_hosts
        query = (
            update(table)
            .where(table.c.host == host, table.c.state == ReservedState.IDLE.value)
            .values(state=ReservedState.BORROWING.value, incident_id=incident_id, updated_at=at)
        )
        return self._write(lambda conn: conn.execute(query).rowcount == 1, "borrow a reserved host")

    def set_reserved_state(
        self, host: str, incident_id: int, expected: ReservedState, new: ReservedState, at: float
    ) -> bool:
        check_loan(expected, new, host)
        table = m.reserved_hosts
        holder = None if new is ReservedState.IDLE else incident_id
        query = (
            update(table)
            .where(table.c.host == host, table.c.state == expected.value, table.c.incident_id == incident_id)
            .values(state=new.value, incident_id=holder, updated_at=at)
        )
        return self._write(lambda conn: conn.execute(query).rowcount == 1, "change a reserved host's state")

    # -- audit trail ----------------------------------------------------------------------------
    def record_audit(self, actor: str, action: str, target: str | None, result: str, detail: str, at: float) -> None:
        """Record one request that changed something (or tried to)."""
        row = {"at": at, "actor": actor, "action": action, "target": target, "result": result, "detail": detail}
        self._write(lambda conn: conn.execute(insert(m.audit), [row]), "record an audit entry", guard=False)

    def audit_log(self, limit: int = 200) -> list[AuditRecord]:
        """The newest ``limit`` audit entries, oldest first."""
        query = select(m.audit).order_by(m.audit.c.id.desc()).limit(limit)
        return self._read(lambda conn: _oldest_first(conn, query, _audit_from_row), "read the audit trail")

    # -- outgoing webhooks: the events table is the outbox ----------------------------------------
    def events_after(self, event_id: int, limit: int = 100) -> list[EventRecord]:
        """Events with an id greater than ``event_id``, in id order."""
        query = select(m.events).where(m.events.c.id > event_id).order_by(m.events.c.id).limit(limit)
        return self._read(lambda conn: [rows.event_from_row(r) for r in conn.execute(query).mappings()], "read events")

    def webhook_cursor(self, receiver: str, at: float) -> WebhookCursor:
        """The receiver's cursor; a new receiver starts after the newest event (no flood of history)."""
        return self._write(lambda conn: _webhook_cursor(conn, receiver, at), "read a webhook cursor", guard=False)

    def advance_webhook_cursor(self, receiver: str, event_id: int, at: float) -> None:
        """``event_id`` was delivered to ``receiver``: move its cursor and clear its failures."""
        values = {
            "last_event_id": event_id,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
            "updated_at": at,
        }
        table = m.webhook_cursors
        self._write(
            lambda conn: conn.execute(update(table).where(table.c.receiver == receiver).values(values)),
            "advance a webhook cursor",
            guard=False,
        )

    def webhook_failed(self, receiver: str, error: str, next_attempt_at: float, at: float) -> None:
        """A delivery to ``receiver`` failed; the cursor stays, the next try waits."""
        table = m.webhook_cursors
        values = {
            "attempts": table.c.attempts + 1,
            "next_attempt_at": next_attempt_at,
            "last_error": error,
            "updated_at": at,
        }
        self._write(
            lambda conn: conn.execute(update(table).where(table.c.receiver == receiver).values(values)),
            "record a webhook failure",
            guard=False,
        )

    # -- transactions ---------------------------------------------------------------------------
    def _read(self, work: Callable[[Connection], T], doing: str) -> T:
        return self._transaction(work, doing, write=False, guard=False)

    def _write(self, work: Callable[[Connection], T], doing: str, *, guard: bool = True) -> T:
        return self._transaction(work, doing, write=True, guard=guard)

    def _transaction(self, work: Callable[[Connection], T], doing: str, *, write: bool, guard: bool) -> T:
        """Run ``work`` in one transaction, retrying the whole of it on transient conflicts."""
        epoch = self._epoch if guard else None
        try:
            for attempt in _retrying():
                with attempt, self._engine.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: write})
                    with conn.begin():
                        if epoch is not None:
                            _check_epoch(conn, epoch)
                        return work(conn)
        except SQLAlchemyError as exc:
            raise map_error(exc, doing) from exc
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _retrying() -> tenacity.Retrying:
    """The retry policy for one call (built per call, never at import)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1.0) + tenacity.wait_random(0, 0.05),
        reraise=True,
    )


# -- epoch ------------------------------------------------------------------------------------------
def _stored_epoch(conn: Connection) -> int:
    return int(conn.execute(select(m.meta.c.epoch).where(m.meta.c.id == m.SINGLE_ROW_ID)).scalar_one())


def _check_epoch(conn: Connection, epoch: int) -> None:
    """A no-op UPDATE that matches only while ``epoch`` is current (and, on sqlite, takes the lock)."""
    query = update(m.meta).where(m.meta.c.id == m.SINGLE_ROW_ID, m.meta.c.epoch == epoch).values(epoch=m.meta.c.epoch)
    if conn.execute(query).rowcount != 1:
        raise StaleEpoch(f"write refused: epoch {epoch} is no longer current (another controller leads)", epoch=epoch)


def _advance_epoch(conn: Connection, seen: int) -> int:
    query = update(m.meta).where(m.meta.c.id == m.SINGLE_ROW_ID, m.meta.c.epoch == seen).values(epoch=seen + 1)
    if conn.execute(query).rowcount != 1:
        raise StaleEpoch(f"epoch {seen} was already claimed by another controller", epoch=seen)
    return seen + 1


# -- reads ------------------------------------------------------------------------------------------
def _load_hosts(conn: Connection) -> dict[str, HostRecord]:
    records = (rows.host_from_row(r) for r in conn.execute(select(m.hosts)).mappings())
    return {record.host.name: record for record in records}


def _load_brake(conn: Connection) -> BrakeState:
    row = conn.execute(select(m.brake).where(m.brake.c.id == m.SINGLE_ROW_ID)).mappings().one_or_none()
    return BrakeState() if row is None else rows.brake_from_row(row)


def _incident(conn: Connection, incident_id: int) -> Incident:
    row = conn.execute(select(m.incidents).where(m.incidents.c.id == incident_id)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no incident {incident_id}", incident=incident_id)
    return rows.incident_from_row(row)


def _oldest_first(conn: Connection, newest_first: Any, convert: Callable[[rows.Row], T]) -> list[T]:
    found = [convert(r) for r in conn.execute(newest_first).mappings()]
    found.reverse()
    return found


def _insert_id(conn: Connection, table: Any, row: dict[str, Any]) -> int:
    key = conn.execute(insert(table).values(**row)).inserted_primary_key
    if key is None:  # pragma: no cover - every dialect petguard supports reports it
        raise AssertionError(f"no primary key for the new {table.name} row")
    return int(key[0])


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_names(conn: Connection, names: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(names):
        found.update(conn.scalars(select(m.hosts.c.name).where(m.hosts.c.name.in_(chunk))))
    return found


# -- save_tick --------------------------------------------------------------------------------------
def _save_tick(conn: Connection, tick: TickRecord) -> None:
    """Everything one tick decided, in the order that keeps references valid."""
    _upsert_hosts(conn, tick.hosts)
    if tick.transitions:
        conn.execute(insert(m.transitions), [rows.transition_to_row(t) for t in tick.transitions])
    _open_incidents(conn, tick.open_incidents, tick.at)
    # Events are attributed before closes: the event of a tick that closes an incident is about it.
    _insert_events(conn, tick.events, tick.at)
    _close_incidents(conn, tick.close_incidents, tick.at)
    _finish_requests(conn, tick.finished_requests, tick.at)
    if tick.brake is not None:
        conn.execute(update(m.brake).where(m.brake.c.id == m.SINGLE_ROW_ID).values(**rows.brake_to_row(tick.brake)))
    for incident_id in tick.retry_failed_moves:
        _retry_failed_moves(conn, incident_id, tick.at)


def _retry_failed_moves(conn: Connection, incident_id: int, at: float) -> None:
    """An operator re-runs an evacuation: FAILED moves go back to PLANNED with a fresh attempt count
    (compare-and-set: only the rows that are FAILED in this statement)."""
    check_move(MoveStatus.FAILED, MoveStatus.PLANNED, f"incident {incident_id}'s failed moves")
    failed = (m.moves.c.incident_id == incident_id, m.moves.c.status == MoveStatus.FAILED.value)
    values = {"status": MoveStatus.PLANNED.value, "attempts": 0, "reason": "retried by an operator", "updated_at": at}
    conn.execute(update(m.moves).where(*failed).values(**values))


def _upsert_hosts(conn: Connection, records: Iterable[HostRecord]) -> None:
    """Insert new hosts, update known ones (portable: no dialect-specific upsert)."""
    by_name = {r.host.name: rows.host_to_row(r) for r in records}  # the last value of a host wins
    if not by_name:
        return
    existing = _existing_names(conn, list(by_name))
    new = [row for name, row in by_name.items() if name not in existing]
    known = [_keyed(row) for name, row in by_name.items() if name in existing]
    if new:
        conn.execute(insert(m.hosts), new)
    if known:
        conn.execute(update(m.hosts).where(m.hosts.c.name == bindparam("key_name")), known)


def _keyed(row: dict[str, Any]) -> dict[str, Any]:
    """An executemany UPDATE row: the key under its own parameter name, the rest as SET values."""
    values = {k: v for k, v in row.items() if k != "name"}
    values["key_name"] = row["name"]
    return values


def _open_incidents(conn: Connection, opened: Iterable[tuple[str, str]], at: float) -> None:
    for host, reason in opened:
        incident_id = _insert_id(
            conn, m.incidents, {"host": host, "opened_at": at, "closed_at": None, "reason": reason, "outcome": ""}
        )
        attached = conn.execute(update(m.hosts).where(m.hosts.c.name == host).values(incident_id=incident_id))
        if attached.rowcount != 1:
            raise NotFound(f"cannot open an incident for unknown host {host!r}", host=host)


def _insert_events(conn: Connection, events: Sequence[tuple[str | None, str, str]], at: float) -> None:
    if not events:
        return
    names = sorted({host for host, _, _ in events if host is not None})
    current: dict[str, int | None] = {}
    for chunk in _chunks(names):
        query = select(m.hosts.c.name, m.hosts.c.incident_id).where(m.hosts.c.name.in_(chunk))
        current.update((name, incident_id) for name, incident_id in conn.execute(query))
    values = [
        {"at": at, "host": host, "incident_id": current.get(host) if host else None, "kind": kind, "message": message}
        for host, kind, message in events
    ]
    conn.execute(insert(m.events), values)


def _close_incidents(conn: Connection, closed: Iterable[tuple[int, str]], at: float) -> None:
    for incident_id, outcome in closed:
        query = (
            update(m.incidents)
            .where(m.incidents.c.id == incident_id, m.incidents.c.closed_at.is_(None))
            .values(closed_at=at, outcome=outcome)
        )
        if conn.execute(query).rowcount != 1:
            _incident(conn, incident_id)  # NotFound if it does not exist; closing twice keeps the first
        conn.execute(update(m.hosts).where(m.hosts.c.incident_id == incident_id).values(incident_id=None))


def _finish_requests(conn: Connection, finished: Iterable[tuple[int, str, str]], at: float) -> None:
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


# -- the evacuation journal -------------------------------------------------------------------------
def _record_plan(conn: Connection, incident_id: int, plan: Plan, at: float) -> None:
    _incident(conn, incident_id)
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


def _update_move(
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


def _add_reserved_hosts(conn: Connection, hosts: Sequence[str], at: float) -> None:
    table = m.reserved_hosts
    known = set(conn.scalars(select(table.c.host).where(table.c.host.in_(list(hosts)))))
    new = [{"host": h, "state": ReservedState.IDLE.value, "incident_id": None, "updated_at": at} for h in hosts]
    new = [row for row in _unique_hosts(new) if row["host"] not in known]
    if new:
        conn.execute(insert(table), new)


def _unique_hosts(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in values:
        seen.setdefault(row["host"], row)
    return list(seen.values())


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


def _cursor_from_row(row: rows.Row) -> WebhookCursor:
    return WebhookCursor(
        receiver=str(row["receiver"]),
        last_event_id=int(row["last_event_id"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
    )


def _webhook_cursor(conn: Connection, receiver: str, at: float) -> WebhookCursor:
    table = m.webhook_cursors
    found = conn.execute(select(table).where(table.c.receiver == receiver)).mappings().first()
    if found is not None:
        return _cursor_from_row(found)
    newest = conn.execute(select(func.max(m.events.c.id))).scalar() or 0
    row = {"receiver": receiver, "last_event_id": int(newest), "attempts": 0, "updated_at": at}
    conn.execute(insert(table), [row])
    return WebhookCursor(receiver, int(newest))


def _request_status(conn: Connection, request_id: int) -> RequestStatus:
    table = m.operator_requests
    row = conn.execute(select(table).where(table.c.id == request_id)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no operator request {request_id}", request=request_id)
    status = "pending" if row["finished_at"] is None else str(row["result"])
    return RequestStatus(rows.request_from_row(row), status, row["message"] or "", row["finished_at"])


def _record_alerts(conn: Connection, alerts: Sequence[AlertRecord], at: float) -> None:
    """Upsert by fingerprint (portable: no dialect-specific upsert); the last value of a fingerprint wins."""
    by_key = {a.fingerprint: a for a in alerts}
    table = m.alerts
    existing: set[str] = set()
    for chunk in _chunks(list(by_key)):
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


def _alert_signal(row: rows.Row) -> Signal:
    detail = f"alert {row['kind']} firing" + (f": {row['summary']}" if row["summary"] else "")
    source = f"alert:{row['kind']}"
    return Signal(source=source, host=row["host"], health=Health.DOWN, at=row["updated_at"], detail=detail)
