"""Leader election among controllers (tooz) and the journal's leadership epoch (fencing token). Adapter.

Every controller runs petguard-daemon; exactly one leads and acts, the others serve the API. A
``Leadership`` runs one thread that heartbeats the tooz backend and, while this controller neither
leads nor has an action in flight, tries to take the leader lock (a tooz lock named after the group:
an etcd lease, a Redis key with expiry, MySQL ``GET_LOCK``, a PostgreSQL advisory lock, a ZooKeeper
ephemeral node, or a file lock for one machine). tooz's own election API exists on a few backends
only; its locks exist on all of them.

Gaining: with the lock held, the next epoch is claimed in the journal (a compare-and-set of the
``meta`` row, ``SqlStore.claim_epoch``) through the *acting* store, the one the loop and its lanes
write with. From then on every write of an action carries that epoch and the store refuses the
writes of any older leader (``StaleEpoch``). Then ``on_gain(epoch)`` runs (the loop drops its cache;
the dispatcher starts), and only then ``leading()`` turns true and ``halt`` is cleared.

Losing, for any of these reasons: no successful round (backend heartbeat, the lock still ours, the
journal's epoch still ours) for ``leader_timeout`` seconds; the lock or the epoch found taken; the
journal refused a write (the loop calls ``step_down`` on ``StaleEpoch``); the daemon stops. ``halt``
is set first (lanes stop at their next journal step, waits end at once), then ``leading()`` is
false (the loop decides nothing), then ``on_loss(reason)``. The lock is released, and a new
election entered, only once no lane of ours is running, so that the next leader never acts beside a
step of ours (a dead or unreachable leader's lock expires after ``2 x leader_timeout``).

``leading()`` measures the lease on the monotonic clock at every call: a leader that was paused
(SIGSTOP, a frozen VM) or whose heartbeat hangs knows it the moment it runs again, before it acts.
``ha.guards`` asks it before every Nova change and every fence.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

import tooz
import tooz.coordination
import tooz.locking
from oslo_config import cfg

from petguard.clock import PROCESS_TIME
from petguard.errors import ConfigError, PetguardError, Temporary
from petguard.reconcile import Loop

LOG = logging.getLogger(__name__)

#: The epoch an acting store is opened with before its controller ever led: no stored epoch
#: matches it, so every guarded write is refused until ``claim_epoch`` (``SqlStore(url, epoch=NO_EPOCH)``).
NO_EPOCH = -1
#: The leader lock expires after this many leader timeouts (backends with expiring locks).
LOCK_TTL_FACTOR = 2.0
#: Journal event kinds (the events table is also the webhook outbox).
GAINED, LOST = "leader_elected", "leader_lost"
#: The message of a ``leader_elected`` event (``leader_of`` reads the member back).
GAINED_MESSAGE = "{member} leads (epoch {epoch})"
_GAINED_RE = re.compile(r"^(?P<member>.+) leads \(epoch \d+\)$")


def leader_of(message: str) -> str | None:
    """The member id in a ``leader_elected`` event's message (None: not such a message)."""
    match = _GAINED_RE.match(message)
    return match.group("member") if match else None


class NotLeading(Temporary):
    """This controller does not lead (any more): the call was not made. Temporary, so that a lane
    leaves its journal step as it was for the next leader, rather than failing it."""


class EpochStore(Protocol):
    """The acting store's epoch calls (``petguard.store.sql.SqlStore`` has them)."""

    @property
    def epoch(self) -> int | None: ...

    def current_epoch(self) -> int: ...

    def claim_epoch(self, seen: int) -> int: ...


class EventSink(Protocol):
    """Where leadership changes are recorded (an unguarded ``SqlStore``: the events are the outbox)."""

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """``[coordination]``, resolved."""

    backend_url: str
    member_id: str
    group: str = "petguard"
    heartbeat_interval: float = 1.0
    leader_timeout: float = 10.0

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Settings:
        group = conf.coordination
        return cls(
            backend_url=group.backend_url,
            member_id=group.member_id or socket.gethostname(),
            group=group.group,
            heartbeat_interval=group.heartbeat_interval,
            leader_timeout=group.leader_timeout,
        )

    @property
    def backend(self) -> str:
        """The backend's scheme and address, without credentials (for logs and status)."""
        parts = urllib.parse.urlsplit(self.backend_url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path if not host else ''}"


@dataclasses.dataclass(frozen=True)
class LeaderStatus:
    """What ``status()`` reports: whether this controller leads, with which epoch, on which backend."""

    leader: bool
    member_id: str
    epoch: int | None
    backend: str
    last_heartbeat_age: float | None


def backend_options(settings: Settings) -> dict[str, str]:
    """tooz options petguard sets unless ``backend_url`` names them: lock expiry after
    ``2 x leader_timeout`` and request timeouts short enough for the lease to be noticed."""
    parts = urllib.parse.urlsplit(settings.backend_url)
    given = set(urllib.parse.parse_qs(parts.query))
    ttl = str(max(2, math.ceil(settings.leader_timeout * LOCK_TTL_FACTOR)))
    request = str(max(1, math.ceil(settings.leader_timeout / 2)))
    wanted: dict[str, str] = {}
    if parts.scheme.startswith("etcd3"):
        wanted = {"lock_timeout": ttl, "membership_timeout": ttl, "timeout": request}
    elif parts.scheme == "redis":
        wanted = {"lock_timeout": ttl, "membership_timeout": ttl, "socket_timeout": request}
    return {k: v for k, v in wanted.items() if k not in given}


def group_members(coordinator: tooz.coordination.CoordinationDriver, group: str) -> list[str]:
    """The member ids in ``group`` on the backend (the controllers whose daemons run), without
    joining it; empty when the group does not exist yet or the backend has no groups (MySQL and
    PostgreSQL have locks only)."""
    try:
        members = coordinator.get_members(group.encode()).get()
    except (tooz.NotImplemented, tooz.coordination.GroupNotCreated):
        return []
    return sorted(m.decode(errors="replace") if isinstance(m, bytes) else str(m) for m in members)


def connect(settings: Settings) -> tooz.coordination.CoordinationDriver:
    """A started tooz coordinator for ``settings`` (not yet in the group).

    :raises petguard.errors.ConfigError: unknown backend or a missing client library.
    :raises tooz.ToozError: the backend could not be reached.
    """
    try:
        options: dict[str, Any] = dict(backend_options(settings))
        coordinator = tooz.coordination.get_coordinator(
            settings.backend_url, settings.member_id.encode(), None, **options
        )
    except (RuntimeError, ImportError) as exc:  # stevedore: no such driver; the driver's client missing
        raise ConfigError(
            f"[coordination] backend_url {settings.backend!r} cannot be used: {exc}; "
            "install the backend's client (pip install 'petguard[etcd]', [redis], [mysql], "
            "[postgresql] or [zookeeper])"
        ) from exc
    coordinator.start(start_heart=False)
    return coordinator


class Leadership:
    """Runs for leader, keeps the lease, claims the epoch, and stops every action when it is lost.

    :param settings: ``[coordination]``.
    :param store: the acting store (opened with ``epoch=NO_EPOCH``); its epoch is claimed on gain.
    :param journal: where ``leader_elected`` / ``leader_lost`` events go (an unguarded store).
    :param idle: True when this controller has no action in flight (``Loop.idle``).
    :param on_gain: called with the new epoch before ``leading()`` turns true.
    :param on_loss: called with the reason after ``halt`` is set and ``leading()`` turned false.
    :param coordinator_factory: builds a started coordinator (tests); default ``connect``.
    :param journal_one_machine: the journal serves one machine only (sqlite): on joining the group,
        other members (controllers on other machines, each with a journal of its own) are warned about.
    """

    def __init__(
        self,
        settings: Settings,
        store: EpochStore,
        journal: EventSink | None = None,
        *,
        idle: Callable[[], bool] = lambda: True,
        on_gain: Callable[[int], None] = lambda epoch: None,
        on_loss: Callable[[str], None] = lambda reason: None,
        coordinator_factory: Callable[[Settings], tooz.coordination.CoordinationDriver] = connect,
        journal_one_machine: bool = False,
    ) -> None:
        self.settings = settings
        self._journal_one_machine = journal_one_machine
        self._members_warned = False
        self._store = store
        self._journal = journal
        self._idle = idle
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._factory = coordinator_factory
        #: Set whenever this controller must not act: lanes and waits stop on it.
        self.halt = threading.Event()
        self.halt.set()
        self._mutex = threading.Lock()
        self._leading = False
        self._epoch: int | None = None
        self._last_ok: float | None = None  # start of the last good round while leading (the lease)
        self._last_round: float | None = None  # end of the last good round, in any role (health)
        self._coordinator: tooz.coordination.CoordinationDriver | None = None
        self._lock: tooz.locking.Lock | None = None
        self._held = False
        self._failing = False
        self._stopping = threading.Event()
        self._stop_timeout = 60.0
        self._thread: threading.Thread | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, store: EpochStore, journal: EventSink | None, **kw: Any) -> Leadership:
        kw.setdefault("journal_one_machine", conf.database.connection.startswith("sqlite"))
        return cls(Settings.from_conf(conf), store, journal, **kw)

    # -- what the rest of the daemon asks ---------------------------------------------------------
    def leading(self) -> bool:
        """True while this controller leads and its lease is fresh; steps down when the lease ran out."""
        with self._mutex:
            if not self._leading or self._last_ok is None:
                return False
            age = time.monotonic() - self._last_ok
        if age <= self.settings.leader_timeout:
            return True
        self.step_down(
            f"no successful heartbeat to {self.settings.backend} for {age:.1f} s "
            f"(leader_timeout {self.settings.leader_timeout:g} s)"
        )
        return False

    @property
    def epoch(self) -> int | None:
        """The epoch of this controller's current or last term (None: it never led)."""
        return self._epoch

    def status(self) -> LeaderStatus:
        """Whether this controller leads; ``last_heartbeat_age``: seconds since the last round that
        reached the backend, leader or follower (None: never), for health checks on followers."""
        last = self._last_round
        return LeaderStatus(
            leader=self.leading(),
            member_id=self.settings.member_id,
            epoch=self._epoch,
            backend=self.settings.backend,
            last_heartbeat_age=None if last is None else time.monotonic() - last,
        )

    def require(self, doing: str) -> None:
        """Raise ``NotLeading`` unless this controller leads (before any action outside the journal)."""
        if not self.leading():
            raise NotLeading(f"not the leader any more: {doing} not done; the next leader resumes it")

    def attach(self, loop: Loop) -> None:
        """Bind to the daemon's loop: it ticks only while this controller leads, steps down on a
        ``StaleEpoch``, is reset (reloads from the journal) on every gain, and the election waits for
        its lanes before letting the lock go or running again."""
        loop.leading = self.leading
        loop.on_stale_epoch = self.step_down
        self._idle = loop.idle
        then = self._on_gain

        def gain(epoch: int) -> None:
            loop.reset()
            then(epoch)

        self._on_gain = gain

    # -- start, stop, step down -------------------------------------------------------------------
    def start(self) -> None:
        """Connect once, then start the election thread (``leading()`` says when this controller leads).

        :raises petguard.errors.ConfigError: the backend URL names no usable tooz backend. An
            unreachable backend is not an error here: the thread keeps trying.
        """
        try:
            self._connected()
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreachable backend is retried by the thread
            self._failed(exc)
        LOG.info(
            "leader election: member %s in group %s on %s; leader_timeout %.0f s",
            self.settings.member_id,
            self.settings.group,
            self.settings.backend,
            self.settings.leader_timeout,
        )
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop acting, wait (up to ``timeout``) for the lanes in flight, release the lock, leave."""
        self._stop_timeout = timeout
        self._stopping.set()
        self.step_down("the daemon is stopping")
        if self._thread is not None:
            self._thread.join(timeout + 2 * self.settings.leader_timeout)
        else:
            self._disconnect()

    def step_down(self, reason: str) -> None:
        """Stop every action now (idempotent, any thread): halt, then not leading, then ``on_loss``."""
        with self._mutex:
            if not self._leading:
                return
            self._leading = False
            epoch = self._epoch
        self.halt.set()
        LOG.error(
            "%s steps down as leader (epoch %s): %s; every action stops; lanes in flight stop at their "
            "next journal step; next: another controller takes over and resumes from the journal",
            self.settings.member_id,
            epoch,
            reason,
        )
        self._record(LOST, f"{self.settings.member_id} stopped leading (epoch {epoch}): {reason}")
        try:
            self._on_loss(reason)
        except Exception:
            LOG.exception("leadership: on_loss failed")

    # -- the election thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._round()
            self._stopping.wait(self.settings.heartbeat_interval)
        self._wait_idle(self._stop_timeout)
        self._disconnect()

    def _round(self) -> None:
        started = time.monotonic()
        try:
            coordinator = self._connected()
            coordinator.heartbeat()
            if self._leading:
                self._verify()
                with self._mutex:
                    self._last_ok = started
            else:
                self._settle_after_loss()
                if not self._held and self._idle() and not self._stopping.is_set():
                    self._campaign(coordinator, started)
            self._recovered()
            self._last_round = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the election thread never dies (a dead one looks alive)
            self._failed(exc)
        self.leading()  # steps down when the lease ran out, even if the backend call hung

    def _connected(self) -> tooz.coordination.CoordinationDriver:
        if self._coordinator is None:
            self._coordinator = self._factory(self.settings)
            try:
                self._coordinator.join_group_create(self.settings.group.encode())
            except tooz.NotImplemented:
                pass  # mysql and postgresql have locks, not groups
            except tooz.coordination.MemberAlreadyExist:
                # This controller's member id is still registered by its previous process (killed
                # or crashed; the file backend keeps members until they leave): it is us.
                LOG.info(
                    "member %s is already in group %s (a previous run of this controller)",
                    self.settings.member_id,
                    self.settings.group,
                )
            if self._journal_one_machine and not self._members_warned:
                self._warn_other_members(self._coordinator)
        return self._coordinator

    def _warn_other_members(self, coordinator: tooz.coordination.CoordinationDriver) -> None:
        """Other controllers in the group while the journal is sqlite: each keeps a journal of its own,
        and the one that takes over does not see the incident in hand (``config check`` refuses this)."""
        try:
            others = [m for m in group_members(coordinator, self.settings.group) if m != self.settings.member_id]
        except Exception as exc:  # noqa: BLE001 - only a warning: the election goes on regardless
            LOG.debug("cannot list the members of group %s: %s", self.settings.group, exc)
            return
        if others:
            self._members_warned = True  # once: a backend that comes and goes would repeat it
            LOG.warning(
                "other controllers are in the group %r on %s (%s; this one is %s) but the journal is sqlite, "
                "which serves one machine only: each keeps a journal of its own, and the one that takes over "
                "does not see the incident in hand; use a shared MariaDB/PostgreSQL journal for all of them "
                "(docs/controllers.md; petguard-manage config check reports this as an ERROR)",
                self.settings.group,
                self.settings.backend,
                ", ".join(others),
                self.settings.member_id,
            )

    def _verify(self) -> None:
        """The lock is still ours and nobody claimed a newer epoch; else step down now."""
        lock = self._lock
        if lock is not None:
            try:
                owner = lock.is_still_owner()
            except tooz.NotImplemented:
                owner = True  # etcd: the lease refresh in heartbeat() and the epoch below decide
            if not owner:
                self.step_down("the leader lock is no longer ours (it expired or was taken)")
                return
        stored = self._store.current_epoch()
        if stored != self._epoch:
            self.step_down(f"the journal's epoch is {stored}, ours is {self._epoch}: another controller took over")

    def _campaign(self, coordinator: tooz.coordination.CoordinationDriver, started: float) -> None:
        lock = self._lock = coordinator.get_lock(f"{self.settings.group}-leader".encode())
        if not lock.acquire(blocking=False):
            return
        self._held = True
        try:
            epoch = self._store.claim_epoch(self._store.current_epoch())
        except PetguardError as exc:
            LOG.warning("took the leader lock but could not claim an epoch in the journal: %s; releasing it", exc)
            self._disconnect()
            return
        self._gain(epoch, started)

    def _gain(self, epoch: int, started: float) -> None:
        LOG.warning(
            "%s leads now (epoch %d): every write carries it; next: resume in-flight incidents from the journal",
            self.settings.member_id,
            epoch,
        )
        self._epoch = epoch
        self._record(GAINED, GAINED_MESSAGE.format(member=self.settings.member_id, epoch=epoch))
        try:
            self._on_gain(epoch)
        except Exception:
            LOG.exception("leadership: on_gain failed; not leading")
            self._disconnect()
            return
        with self._mutex:
            self._leading, self._last_ok = True, started
        self.halt.clear()

    def _settle_after_loss(self) -> None:
        """After a term: once no lane runs, let the lock go (leave the backend) before running again."""
        if self._held and self._idle():
            LOG.info("no action in flight any more: releasing the leader lock")
            self._disconnect()

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._idle() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _disconnect(self) -> None:
        """Release the lock, leave the group, stop the coordinator; errors only logged."""
        coordinator, lock, held = self._coordinator, self._lock, self._held
        self._coordinator, self._lock, self._held = None, None, False
        if coordinator is None:
            return
        try:
            if lock is not None and held:
                lock.release()
            coordinator.stop()  # leaves the groups; etcd and Redis drop what they held
        except Exception as exc:  # noqa: BLE001 - best effort: what was held expires by itself
            LOG.info("leaving %s: %s (what was held expires by itself)", self.settings.backend, exc)

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            LOG.warning(
                "coordination backend %s: %s: %s; next: retry every %.1f s%s",
                self.settings.backend,
                type(exc).__name__,
                exc,
                self.settings.heartbeat_interval,
                f"; this leader stops acting after {self.settings.leader_timeout:g} s" if self._leading else "",
            )
        self._failing = True
        if not self._leading and not self._held:
            self._disconnect()  # connect afresh next round

    def _recovered(self) -> None:
        if self._failing:
            LOG.warning("coordination backend %s answers again", self.settings.backend)
        self._failing = False

    def _record(self, kind: str, message: str) -> None:
        if self._journal is None:
            return
        try:
            self._journal.record_event(None, None, kind, message, PROCESS_TIME.now())
        except PetguardError as exc:
            LOG.warning("cannot record %s in the journal: %s", kind, exc)
