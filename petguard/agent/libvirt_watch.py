"""The libvirt adapter of petguard-agent: domain events in, ``DomainEvent`` values out.

This is the ONLY module that imports libvirt. It:

* registers libvirt's default event implementation once per process (before any connection is
  opened) and runs it in a daemon thread (``virEventRunDefaultImpl`` in a loop);
* connects read-only (events need no more), sets a keepalive so a hung libvirtd is noticed, and
  subscribes to WATCHDOG, LIFECYCLE and REBOOT;
* on a close (libvirtd stopped or restarted, keepalive timeout) drops the connection and reconnects
  with back-off; after every (re)connect it reads every domain's state and reason and reports them
  as ``state`` events, because events that happen while libvirtd is down are lost;
* translates libvirt's numbers with ``petguard.agent.events`` (one table).

Callbacks run in the event-loop thread: they only build a value and hand it to ``sink`` (which must
be quick; the agent's sink appends to the on-disk buffer).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import libvirt

from petguard.agent import events as ev

LOG = logging.getLogger(__name__)

Sink = Callable[[ev.DomainEvent], None]

_impl_lock = threading.Lock()
_impl_thread: threading.Thread | None = None


def _ignore_libvirt_errors(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; petguard logs what it catches instead."""


def ensure_event_loop() -> threading.Thread:
    """Register libvirt's default event implementation and run it in a daemon thread (once)."""
    global _impl_thread
    with _impl_lock:
        if _impl_thread is None:
            libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
            libvirt.virEventRegisterDefaultImpl()
            _impl_thread = threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True)
            _impl_thread.start()
        return _impl_thread


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError as exc:  # pragma: no cover - libvirt reports, the loop goes on
            LOG.warning("libvirt event loop: %s", exc)
            time.sleep(0.1)


def event_loop_alive() -> bool:
    """True while the libvirt event-loop thread runs (the agent's systemd watchdog checks it)."""
    return _impl_thread is not None and _impl_thread.is_alive()


class LibvirtWatch:
    """Watches one libvirt URI for domain events, reconnecting for ever until ``stop``."""

    def __init__(
        self,
        uri: str,
        sink: Sink,
        new_id: Callable[[], str],
        *,
        keepalive_interval: int = 5,
        keepalive_count: int = 3,
        backoff_min: float = 0.5,
        backoff_max: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uri = uri
        self._sink = sink
        self._new_id = new_id
        self._keepalive = (keepalive_interval, keepalive_count)
        self._backoff = (backoff_min, backoff_max)
        self._clock = clock
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.connects = 0  # successful (re)connections, for tests and the heartbeat

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LibvirtWatch:
        ensure_event_loop()
        self._thread = threading.Thread(target=self._supervise, name="libvirt-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._conn is not None

    def alive(self) -> bool:
        """The watcher thread and libvirt's event loop both run (not whether libvirtd answers)."""
        return self._thread is not None and self._thread.is_alive() and event_loop_alive()

    def domains(self) -> list[ev.DomainSummary]:
        """Every domain libvirt knows, with its state; empty while disconnected."""
        with self._lock:
            conn = self._conn
        if conn is None:
            return []
        try:
            return [self._summary(dom) for dom in conn.listAllDomains(0)]
        except libvirt.libvirtError as exc:
            LOG.debug("cannot list domains: %s", exc)
            return []

    # -- connection supervision -----------------------------------------------------------------
    def _supervise(self) -> None:
        delay, failures = self._backoff[0], 0
        while not self._stop.is_set():
            self._closed.clear()
            try:
                conn, callbacks = self._connect()
            except libvirt.libvirtError as exc:
                failures += 1
                log = LOG.warning if failures == 1 else LOG.debug
                log("cannot connect to libvirt at %s: %s; retrying in %.1f s", self.uri, _message(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay, failures = self._backoff[0], 0
            self._closed.wait()
            self._teardown(conn, callbacks)
            if not self._stop.is_set():
                LOG.warning("the connection to libvirt at %s closed; reconnecting", self.uri)

    def _connect(self) -> tuple[libvirt.virConnect, list[int]]:
        conn = libvirt.openReadOnly(self.uri)
        try:
            conn.registerCloseCallback(self._on_close, None)
            if not self.uri.startswith("test"):
                conn.setKeepAlive(*self._keepalive)
            callbacks = [
                conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None),
                conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None),
                conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG, self._on_watchdog, None),
            ]
        except libvirt.libvirtError:
            _quietly(conn.close)
            raise
        with self._lock:
            self._conn = conn
        self.connects += 1
        LOG.info("connected to libvirt at %s; watching domain events", self.uri)
        self._resync(conn)
        return conn, callbacks

    def _resync(self, conn: libvirt.virConnect) -> None:
        """Report every domain's state: what happened while no connection was open is lost."""
        try:
            domains = conn.listAllDomains(0)
        except libvirt.libvirtError as exc:
            LOG.warning("cannot list domains after connecting: %s", _message(exc))
            return
        for dom in domains:
            try:
                state = self._summary(dom).state
            except libvirt.libvirtError as exc:
                LOG.debug("cannot read the state of a domain: %s", _message(exc))
                continue
            self._emit(dom, ev.EventKind.STATE, state.value)

    def _teardown(self, conn: libvirt.virConnect, callbacks: list[int]) -> None:
        with self._lock:
            self._conn = None
        for callback_id in callbacks:
            _quietly(functools.partial(conn.domainEventDeregisterAny, callback_id))
        _quietly(conn.unregisterCloseCallback)
        _quietly(conn.close)

    # -- callbacks (libvirt's event-loop thread) -------------------------------------------------
    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        LOG.debug("libvirt connection closed (reason %d)", reason)
        self._closed.set()

    def _on_lifecycle(self, _conn: object, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
        self._emit(dom, ev.EventKind.LIFECYCLE, ev.lifecycle(event, detail).value)

    def _on_reboot(self, _conn: object, dom: libvirt.virDomain, _opaque: object) -> None:
        self._emit(dom, ev.EventKind.REBOOT, "")

    def _on_watchdog(self, _conn: object, dom: libvirt.virDomain, action: int, _opaque: object) -> None:
        self._emit(dom, ev.EventKind.WATCHDOG, ev.watchdog_action(action).value)

    def _emit(self, dom: libvirt.virDomain, kind: ev.EventKind, detail: str) -> None:
        try:
            event = ev.DomainEvent(self._new_id(), self._clock(), dom.UUIDString(), dom.name(), kind, detail)
            self._sink(event)
        except Exception:  # a callback must never raise into libvirt's event loop
            LOG.exception("cannot record a libvirt %s event", kind.value)

    @staticmethod
    def _summary(dom: libvirt.virDomain) -> ev.DomainSummary:
        state, reason = dom.state()
        return ev.DomainSummary(dom.UUIDString(), dom.name(), ev.domain_state(state, reason))


def _message(exc: libvirt.libvirtError) -> str:
    return str(exc.get_error_message() or exc)


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except libvirt.libvirtError as exc:
        LOG.debug("ignored while closing a libvirt connection: %s", _message(exc))
