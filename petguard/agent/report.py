"""Reporting to the controllers: a bounded on-disk buffer of events, and signed HTTP posts.

* ``Buffer`` keeps every domain event on disk (sqlite, one row per event) until a controller
  accepted it, so nothing is lost while the controllers are unreachable or the agent restarts. It is
  bounded: when full, the OLDEST events are dropped, counted, and a warning says how many.
* ``Reporter`` runs two threads: heartbeats every ``heartbeat_interval`` seconds (host name, libvirt
  connection, a summary of the domains; never buffered: a heartbeat is only worth its freshness), and
  the event sender, which posts the buffer's oldest events in batches and removes them only after a
  controller answered 2xx, retrying with back-off (tenacity) while no controller accepts them.
* Every request is signed like the API expects from agents (``docs/api.md``): HMAC-SHA256 over the
  timestamp, method, path and body (``petguard.secrets.signed_string``), headers
  ``X-Petguard-Timestamp``, ``X-Petguard-Signature``, ``X-Petguard-Sender``; each try anew.
  Controller URLs are tried in order; the one that answered is tried first next.
* ``https://`` controller URLs are verified with ``[agent] ca_file`` (or the system trust store,
  ``petguard.tls.client_context``); a certificate not trusted is said so, naming the URL and the option.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import tenacity

from petguard import secrets, tls
from petguard.agent.events import DomainEvent, DomainSummary

LOG = logging.getLogger(__name__)

HEARTBEAT_PATH = "/v1/agent/heartbeat"
EVENTS_PATH = "/v1/agent/events"


class Undelivered(Exception):
    """No controller accepted a request (the message says why, for each URL)."""


# -- the buffer ---------------------------------------------------------------------------------------
class Buffer:
    """A bounded FIFO of events on disk. Thread-safe."""

    def __init__(self, path: str | Path, max_events: int) -> None:
        if max_events < 1:
            raise ValueError("the buffer must hold at least one event")
        self.path = Path(path)
        self.max_events = max_events
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._cond = threading.Condition()
        self._count = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        self._dropped = int(row[0]) if row else 0

    def __len__(self) -> int:
        with self._cond:
            return self._count

    @property
    def dropped(self) -> int:
        """Events dropped because the buffer was full, since it was created (kept across restarts)."""
        with self._cond:
            return self._dropped

    def put(self, event: DomainEvent) -> None:
        """Append ``event``; when the buffer is full, drop the oldest and say so."""
        body = json.dumps(event.to_wire(), separators=(",", ":"))
        with self._cond:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO events (body) VALUES (?)", (body,))
                over = self._count + 1 - self.max_events
                if over > 0:
                    self._db.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (over,)
                    )
                    self._dropped += over
                    self._db.execute(
                        "INSERT OR REPLACE INTO counters (name, value) VALUES ('dropped', ?)", (self._dropped,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1 - max(over, 0)
            self._cond.notify_all()
        if over > 0:
            LOG.warning(
                "event buffer full (%d events, [agent] buffer_max_events): dropped the %d oldest; %d dropped in all "
                "(are the controllers reachable?)",
                self.max_events,
                over,
                self._dropped,
            )

    def peek(self, limit: int) -> list[tuple[int, DomainEvent]]:
        """The oldest ``limit`` events with their sequence numbers (they stay in the buffer)."""
        with self._cond:
            rows = self._db.execute("SELECT seq, body FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(seq), DomainEvent.from_wire(json.loads(body))) for seq, body in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""
        if not seqs:
            return
        with self._cond:
            marks = ",".join("?" * len(seqs))
            removed = self._db.execute(f"DELETE FROM events WHERE seq IN ({marks})", list(seqs)).rowcount
            self._count -= removed

    def wait(self, timeout: float) -> bool:
        """Wait until the buffer holds something (or ``timeout``); True when it does."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count > 0, timeout)

    def close(self) -> None:
        with self._cond:
            self._db.close()


# -- the reporter --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, repr=False)
class ReportSettings:
    """Where and how to report; ``repr`` hides the key."""

    urls: tuple[str, ...]
    host: str
    sender: str
    key: str
    heartbeat_interval: float = 5.0
    timeout: float = 5.0
    batch: int = 200
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    #: CA file verifying https:// controllers ([agent] ca_file); None: the system trust store.
    ca_file: str | None = None

    def __repr__(self) -> str:
        return f"ReportSettings(urls={self.urls}, host={self.host!r}, sender={self.sender!r})"


@dataclasses.dataclass(frozen=True)
class AgentStatus:
    """What a heartbeat says about the agent besides its domains."""

    libvirt_connected: bool
    domains: Sequence[DomainSummary]


class Reporter:
    """Sends heartbeats and buffered events to the controllers, in two threads."""

    def __init__(
        self,
        settings: ReportSettings,
        buffer: Buffer,
        status: Callable[[], AgentStatus],
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        version: str = "",
    ) -> None:
        if not settings.urls:
            raise ValueError("no controller URL to report to ([agent] controller_urls)")
        self.settings = settings
        self._buffer = buffer
        self._status = status
        self._clock = clock
        self._version = version
        verify = tls.client_context(settings.ca_file, "[agent] ca_file")  # ConfigError: a bad CA file
        self._client = httpx.Client(timeout=settings.timeout, transport=transport, verify=verify)
        self._urls = list(settings.urls)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reachable: bool | None = None
        self.delivered = 0  # events accepted by a controller since start
        self.last_heartbeat_ok: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Reporter:
        for name, target in (("heartbeat", self._heartbeats), ("event-sender", self._send_events)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._client.close()

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    # -- heartbeats -----------------------------------------------------------------------------
    def heartbeat_body(self) -> dict[str, Any]:
        status = self._status()
        return {
            "host": self.settings.host,
            "sent_at": self._clock(),
            "interval": self.settings.heartbeat_interval,
            "libvirt_connected": status.libvirt_connected,
            "domains": [d.to_wire() for d in status.domains],
            "buffered": len(self._buffer),
            "dropped": self._buffer.dropped,
            "version": self._version,
        }

    def send_heartbeat(self) -> bool:
        """One heartbeat; True when a controller accepted it."""
        try:
            self._post(HEARTBEAT_PATH, self.heartbeat_body())
        except Undelivered as exc:
            self._note_reachable(False, str(exc))
            return False
        self._note_reachable(True, "")
        self.last_heartbeat_ok = self._clock()
        return True

    def _heartbeats(self) -> None:
        while not self._stop.is_set():
            self.send_heartbeat()
            self._stop.wait(self.settings.heartbeat_interval)

    # -- events ---------------------------------------------------------------------------------
    def flush_once(self) -> int:
        """Post the oldest batch of buffered events; returns how many were delivered (0: none left).

        :raises Undelivered: no controller accepted them (they stay buffered).
        """
        batch = self._buffer.peek(self.settings.batch)
        if not batch:
            return 0
        body = {"host": self.settings.host, "events": [event.to_wire() for _, event in batch]}
        self._post(EVENTS_PATH, body)
        self._buffer.remove([seq for seq, _ in batch])
        self.delivered += len(batch)
        return len(batch)

    def _send_events(self) -> None:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Undelivered),
            wait=tenacity.wait_exponential(multiplier=self.settings.backoff_min, max=self.settings.backoff_max),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        while not self._stop.is_set():
            if not self._buffer.wait(0.5):
                continue
            try:
                retrying(self._flush_all)
            except Undelivered:
                pass  # only when stopping: the events stay in the buffer for the next start

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _flush_all(self) -> None:
        while not self._stop.is_set() and self.flush_once():
            pass

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log = LOG.warning if state.attempt_number == 1 else LOG.debug
        log(
            "%d event(s) buffered, not delivered: %s; trying again in %.1f s (attempt %d)",
            len(self._buffer),
            error,
            wait,
            state.attempt_number,
        )

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        errors = []
        for url in list(self._urls):
            try:
                response = self._client.post(url.rstrip("/") + path, content=body, headers=self._signed(path, body))
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {_transport_problem(exc)}")
                continue
            if response.is_success:
                if self._urls[0] != url:
                    self._urls.remove(url)
                    self._urls.insert(0, url)
                return
            errors.append(f"{url}: HTTP {response.status_code}: {_error_message(response)}")
        raise Undelivered("; ".join(errors))

    def _signed(self, path: str, body: bytes) -> dict[str, str]:
        """Headers of one try, signed anew: a controller accepts each signature once, so a try at the next
        URL (which may be the same controller by another name) must not reuse the last one. ``path`` is
        the API path (``/v1/...``), without any prefix of the controller URL a proxy would strip."""
        timestamp = f"{self._clock():.3f}"
        return {
            "Content-Type": "application/json",
            "X-Petguard-Timestamp": timestamp,
            "X-Petguard-Signature": secrets.sign(self.settings.key, timestamp, "POST", path, body),
            "X-Petguard-Sender": self.settings.sender,
        }

    def _note_reachable(self, reachable: bool, why: str) -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            LOG.info("heartbeats reach a controller again (%s)", self._urls[0])
        else:
            LOG.warning("no controller accepts heartbeats: %s; the controllers will treat this host as silent", why)


def _transport_problem(exc: httpx.HTTPError) -> str:
    """Why a request got no answer; an untrusted certificate says which option to set."""
    error = tls.untrusted(exc)
    if error is not None:
        return (
            f"the controller's TLS certificate is not trusted ({tls.reason(error)}): set [agent] ca_file "
            "to the CA certificate that signed it"
        )
    return f"{type(exc).__name__}: {exc}"


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
