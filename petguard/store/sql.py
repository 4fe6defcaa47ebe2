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

This module is the facade and the transaction plumbing: each method opens its transaction and
calls one concern's function with the connection. The SQL is in one module per concern:
``epochs`` (leadership), ``hosts`` (hosts, ticks, transitions, the brake), ``incidents``
(incidents, events), ``moves`` (plans, moves, skips), ``loans`` (reserved hosts), ``requests``
(operator requests), ``alerts``, ``audit``, ``cursors`` (outgoing webhooks) and ``agents`` (agents,
instance health); ``rows`` converts rows, ``common`` holds the helpers they share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import tenacity
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from petguard.agent.events import DomainEvent
from petguard.cloud import Plan
from petguard.detect import FenceStart, Signal
from petguard.evacuate.transitions import check_loan, check_move, move_sources
from petguard.guests.policy import AgentEventRecord, AgentHeartbeat, ServerHealth
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
from petguard.store import agents, audit, cursors, epochs, hosts, incidents, loans, moves, requests
from petguard.store import alerts as alerts_  # ``alerts`` is also a parameter name below
from petguard.store.engine import SQLITE_BUSY_TIMEOUT, WRITE_OPTION, is_transient, make_engine, map_error, parse_url
from petguard.store.migrate import check_at_head

T = TypeVar("T")

#: Whole-transaction retries for transient conflicts (each sqlite attempt already waited busy_timeout).
RETRY_ATTEMPTS = 4


class SqlStore:
    """The persistent journal on a SQL database. Thread-safe: share one instance.

    :param url: a SQLAlchemy URL (``sqlite:////var/lib/petguard/petguard.sqlite``,
        ``mysql+pymysql://...``, ``postgresql+psycopg://...``).
    :param epoch: when given, every write is refused with ``StaleEpoch`` once the stored epoch has
        moved past it (several controllers); None writes unconditionally (one controller).
    :param busy_timeout: sqlite only: seconds a writer waits for another's lock before the
        transaction is retried (a few times) and then fails with ``StoreUnavailable``.
    :raises petguard.errors.ConfigError: bad URL, missing sqlite directory, missing driver, a login
        the server refused (wrong user, password or database name), or a schema that is not at head
        (the message says to run ``petguard-manage db upgrade``).
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
        return self._read(epochs.stored_epoch, "read the epoch")

    def claim_epoch(self, seen: int) -> int:
        """Compare-and-set: move the stored epoch from ``seen`` to ``seen + 1``, and write with it.

        :raises petguard.errors.StaleEpoch: the stored epoch is no longer ``seen`` (another
            controller claimed it first).
        """
        new = self._write(lambda conn: epochs.advance_epoch(conn, seen), "claim the epoch", guard=False)
        self._epoch = new
        return new

    # -- hosts and ticks ----------------------------------------------------------------------
    def load_hosts(self) -> dict[str, HostRecord]:
        return self._read(hosts.load_hosts, "load the hosts")

    def save_tick(self, tick: TickRecord) -> None:
        self._write(lambda conn: hosts.save_tick(conn, tick), "save a tick")

    def load_brake(self) -> BrakeState:
        return self._read(hosts.load_brake, "load the brake")

    # -- operator requests ----------------------------------------------------------------------
    def submit_request(self, host: str, kind: RequestKind, reason: str, requested_by: str, at: float) -> int:
        work = lambda conn: requests.submit(conn, host, kind, reason, requested_by, at)  # noqa: E731
        return self._write(work, "queue an operator request")

    def pending_requests(self) -> list[OperatorRequest]:
        return self._read(requests.pending, "list requests")

    def request_status(self, request_id: int) -> RequestStatus:
        """One operator request and the loop's answer to it.

        :raises petguard.errors.NotFound: no such request.
        """
        return self._read(lambda conn: requests.request_status(conn, request_id), "read an operator request")

    # -- alerts ---------------------------------------------------------------------------------
    def record_alerts(self, alerts: Sequence[AlertRecord], at: float) -> None:
        if alerts:
            self._write(lambda conn: alerts_.record(conn, alerts, at), "record alerts", guard=False)

    def active_alerts(self, now: float) -> list[Signal]:
        return self._read(lambda conn: alerts_.active(conn, now), "read alerts")

    # -- petguard agents (heartbeats, domain events) and instance health ------------------------
    def record_heartbeat(self, beat: AgentHeartbeat) -> None:
        """Keep a host's newest heartbeat (one row per host)."""
        self._write(lambda conn: agents.record_heartbeat(conn, beat), "record an agent heartbeat", guard=False)

    def agent_heartbeats(self) -> dict[str, float]:
        """When each host's agent was last heard (controller time); hosts without an agent are absent."""
        return self._read(agents.heartbeat_times, "read agent heartbeats")

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
        return self._read(lambda conn: incidents.incident(conn, incident_id), "read an incident")

    def incidents(self, host: str | None = None, limit: int = 50) -> list[Incident]:
        return self._read(lambda conn: incidents.recent(conn, host, limit), "list incidents")

    def events(self, incident_id: int | None = None, host: str | None = None, limit: int = 200) -> list[EventRecord]:
        return self._read(lambda conn: incidents.events(conn, incident_id, host, limit), "list events")

    def event_messages(self, kind: str, limit: int = 1000) -> list[str]:
        """The different messages recorded under ``kind`` (e.g. who led: ``config check``)."""
        return self._read(lambda conn: incidents.distinct_messages(conn, kind, limit), "list event messages")

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        self._write(lambda conn: incidents.record_event(conn, host, incident_id, kind, message, at), "record an event")

    def transitions(self, host: str | None = None, limit: int = 200) -> list[Transition]:
        return self._read(lambda conn: hosts.transitions(conn, host, limit), "list transitions")

    def fences_started(self, since: float) -> list[FenceStart]:
        return self._read(lambda conn: hosts.fences_started(conn, since), "list the fences started")

    # -- the evacuation journal -----------------------------------------------------------------
    def record_plan(self, incident_id: int, plan: Plan, at: float) -> None:
        self._write(lambda conn: moves.record_plan(conn, incident_id, plan, at), "record an evacuation plan")

    def moves(self, incident_id: int) -> list[MoveRecord]:
        return self._read(lambda conn: moves.moves(conn, incident_id), "list moves")

    def skips(self, incident_id: int) -> list[SkipRecord]:
        return self._read(lambda conn: moves.skips(conn, incident_id), "list skips")

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
        end_vouch: bool = False,
    ) -> MoveRecord:
        # not an edge of the move table: refused before any transaction
        if expected is not None:
            check_move(expected, status, f"move of server {server_id} (incident {incident_id})")
        values = moves.move_values(
            status,
            at,
            reason=reason,
            dest_host=dest_host,
            request_id=request_id,
            count_attempt=count_attempt,
            target_host=target_host,
            fall_back=fall_back,
            waiting=waiting,
            end_vouch=end_vouch,
        )
        sources = {expected} if expected is not None else move_sources(status)
        return self._write(
            lambda conn: moves.update_move(conn, incident_id, server_id, values, sources, expected), "update a move"
        )

    # -- reserved failover hosts ----------------------------------------------------------------
    def reserved_hosts(self) -> list[ReservedHost]:
        return self._read(loans.reserved_hosts, "list reserved hosts")

    def add_reserved_hosts(self, hosts: Sequence[str], at: float) -> None:
        if hosts:
            self._write(lambda conn: loans.add(conn, hosts, at), "add reserved hosts")

    def borrow_reserved_host(self, host: str, incident_id: int, at: float) -> bool:
        check_loan(ReservedState.IDLE, ReservedState.BORROWING, host)  # before any transaction
        return self._write(lambda conn: loans.borrow(conn, host, incident_id, at), "borrow a reserved host")

    def set_reserved_state(
        self, host: str, incident_id: int, expected: ReservedState, new: ReservedState, at: float
    ) -> bool:
        check_loan(expected, new, host)  # before any transaction
        return self._write(
            lambda conn: loans.set_state(conn, host, incident_id, expected, new, at), "change a reserved host's state"
        )

    # -- audit trail ----------------------------------------------------------------------------
    def record_audit(self, actor: str, action: str, target: str | None, result: str, detail: str, at: float) -> None:
        """Record one request that changed something (or tried to)."""
        work = lambda conn: audit.record(conn, actor, action, target, result, detail, at)  # noqa: E731
        self._write(work, "record an audit entry", guard=False)

    def audit_log(self, limit: int = 200) -> list[AuditRecord]:
        """The newest ``limit`` audit entries, oldest first."""
        return self._read(lambda conn: audit.newest(conn, limit), "read the audit trail")

    # -- outgoing webhooks: the events table is the outbox ----------------------------------------
    def events_after(self, event_id: int, limit: int = 100) -> list[EventRecord]:
        """Events with an id greater than ``event_id``, in id order."""
        return self._read(lambda conn: cursors.events_after(conn, event_id, limit), "read events")

    def webhook_cursor(self, receiver: str, at: float) -> WebhookCursor:
        """The receiver's cursor; a new receiver starts after the newest event (no flood of history)."""
        return self._write(lambda conn: cursors.cursor(conn, receiver, at), "read a webhook cursor", guard=False)

    def advance_webhook_cursor(self, receiver: str, event_id: int, at: float) -> None:
        """``event_id`` was delivered to ``receiver``: move its cursor and clear its failures."""
        work = lambda conn: cursors.advance(conn, receiver, event_id, at)  # noqa: E731
        self._write(work, "advance a webhook cursor", guard=False)

    def webhook_failed(self, receiver: str, error: str, next_attempt_at: float, at: float) -> None:
        """A delivery to ``receiver`` failed; the cursor stays, the next try waits."""
        work = lambda conn: cursors.failed(conn, receiver, error, next_attempt_at, at)  # noqa: E731
        self._write(work, "record a webhook failure", guard=False)

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
                            epochs.check_epoch(conn, epoch)
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
