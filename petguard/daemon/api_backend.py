"""The HTTP API's seams implemented over the journal (``SqlStore``) and the running ``Loop``.

``petguard.api`` may not import the store, the loop or any adapter (``.importlinter``); this module
sits outside it and gives the app what it needs: ``StoreView`` (reads), ``StoreInbox`` (queue
requests, record alerts, audit, set the log level) and ``LogLevels``. ``start_api(conf, store, loop)``
is what the composition root calls to serve the API in a thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from oslo_config import cfg

from petguard import __version__, secrets
from petguard.agent.events import DomainEvent
from petguard.api import auth, wire
from petguard.api.alerts import AlertPolicy
from petguard.api.app import ApiSettings, make_app
from petguard.api.ports import Explanation, Exposition, Liveness, Status
from petguard.api.server import ApiServer, ServerSettings
from petguard.clock import Clock, SystemClock
from petguard.cloud import PowerGoal, Server
from petguard.compute import Compute
from petguard.conf import policies
from petguard.daemon.metrics import Metrics, Snapshot
from petguard.errors import ConfigError, NotFound, PetguardError
from petguard.evacuate import plan as planning
from petguard.evacuate.capacity import CapacityReport
from petguard.evacuate.ready import ready_spec
from petguard.guests.policy import AgentHeartbeat
from petguard.journal import (
    AlertRecord,
    AuditRecord,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    RequestKind,
    RequestStatus,
    SkipRecord,
)
from petguard.reconcile import Loop
from petguard.store.sql import SqlStore

LOG = logging.getLogger(__name__)

#: ``/healthz`` fails when the last successful tick is older than this many tick intervals.
HEALTHY_TICKS = 3.0
#: Incidents searched (newest first) when ``explain`` is asked about a server.
EXPLAIN_INCIDENTS = 50


class LogLevels:
    """Reads and sets the running daemon's log level (the root logger, where oslo.log's handlers are)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger()

    def get(self) -> str:
        return logging.getLevelName(self._logger.getEffectiveLevel())

    def set(self, level: str) -> str:
        self._logger.setLevel(level)
        LOG.warning("log level set to %s through the API", level)
        return self.get()


@dataclasses.dataclass
class StoreView:
    """``petguard.api.ports.View`` over the journal and the loop."""

    store: SqlStore
    loop: Loop
    tick_interval: float
    dry_run: bool = False
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    log_level: Callable[[], str] = dataclasses.field(default_factory=lambda: LogLevels().get)
    #: host -> "ok" | "unknown" | what is wrong with its fence devices (petguard.fencing.preflight)
    fence_readiness: Callable[[], Mapping[str, str]] = dict
    #: whether this controller leads (petguard.ha.election); a single controller always does
    leading: Callable[[], bool] = lambda: True
    #: seconds since this controller's last round with the coordination backend (None: none yet);
    #: a follower does not tick, so this is what its /healthz judges
    coordination_age: Callable[[], float | None] = lambda: None
    #: Nova, read-only, for the dry run of ``explain HOST`` (None: no dry run)
    compute: Compute | None = None
    evacuation: planning.EvacuationPolicy = dataclasses.field(default_factory=planning.EvacuationPolicy)
    #: [evacuation] tier_delay, shown in the dry run with each pet's readiness
    tier_delay: float = 0.0
    #: the last capacity check of this term (petguard.evacuate.capacity_duty); unknown on a follower
    capacity: Callable[[], CapacityReport] = lambda: CapacityReport.unknown("not checked yet")
    #: [evacuation] cloud_wait_timeout: when a move's wait for the cloud gives up (None: not said)
    cloud_wait_timeout: float | None = None

    def now(self) -> float:
        return self.clock.now()

    def hosts(self) -> list[HostRecord]:
        return [record for _, record in sorted(self.store.load_hosts().items())]

    def host(self, name: str) -> HostRecord:
        record = self.store.load_hosts().get(name)
        if record is None:
            raise NotFound(f"no host {name!r}: petguard watches the hosts of Nova's nova-compute services", host=name)
        return record

    def incident(self, incident_id: int) -> Incident:
        return self.store.incident(incident_id)

    def incidents(self, host: str | None, limit: int) -> list[Incident]:
        return self.store.incidents(host, limit)

    def events(self, incident_id: int | None, host: str | None, limit: int) -> list[EventRecord]:
        return self.store.events(incident_id, host, limit)

    def moves(self, incident_id: int) -> list[MoveRecord]:
        return self.store.moves(incident_id)

    def skips(self, incident_id: int) -> list[SkipRecord]:
        return self.store.skips(incident_id)

    def request(self, request_id: int) -> RequestStatus:
        return self.store.request_status(request_id)

    def audit(self, limit: int) -> list[AuditRecord]:
        return self.store.audit_log(limit)

    def liveness(self) -> Liveness:
        if not self.leading():
            return self._follower_liveness()
        last, sight, now = self.loop.last_ok_tick, self.loop.sight, self.now()
        if sight.blind:
            # Unhealthy for load balancers and monitors; systemd's watchdog still gets WATCHDOG=1 after
            # every tick (lifecycle.Watchdog): a restart would not make Nova readable again.
            reason = f"{sight.describe(now)}; hosts not watched: {sight.unwatched_text()}; petguard tries every tick"
            return Liveness(False, reason, last)
        nova = f"; {sight.describe(now)}" if sight.failures else ""
        if last is None:
            return Liveness(False, f"no tick has succeeded yet (starting, or Nova cannot be read){nova}", None)
        age, limit = now - last, HEALTHY_TICKS * self.tick_interval
        if age > limit:
            return Liveness(False, f"the last successful tick was {age:.1f} s ago (limit {limit:.1f} s){nova}", last)
        return Liveness(True, f"the last tick succeeded {age:.1f} s ago", last)

    def _follower_liveness(self) -> Liveness:
        """A follower is healthy while it is in touch with the coordination backend: it is ready
        to take over. It does not tick (only the leader does), so its last tick says nothing."""
        age, limit = self.coordination_age(), HEALTHY_TICKS * self.tick_interval
        if age is None:
            return Liveness(False, "follower: no round with the coordination backend has succeeded yet", None)
        if age > limit:
            return Liveness(
                False,
                f"follower: the last round with the coordination backend was {age:.1f} s ago (limit {limit:.1f} s); "
                "it could not take over",
                self.loop.last_ok_tick,
            )
        return Liveness(
            True,
            f"follower: in touch with the coordination backend {age:.1f} s ago, ready to take over",
            self.loop.last_ok_tick,
        )

    def status(self) -> Status:
        live = self.liveness()
        return Status(
            version=__version__,
            leader=self.leading(),
            brake=self.store.load_brake(),
            last_tick=live.last_tick,
            tick_ok=live.ok,
            dry_run=self.dry_run,
            log_level=self.log_level(),
            fence_readiness=self.fence_readiness(),
            capacity=self.capacity(),
            reserved_hosts=self.store.reserved_hosts(),
            nova=self.loop.sight,
        )

    def explain(self, name: str) -> Explanation:
        hosts = self.store.load_hosts()
        if name in hosts:
            return self._explain_host(hosts[name])
        found = self._explain_server(name)
        if found is None:
            raise NotFound(
                f"no host or server {name!r} in petguard's journal (a server is known once an incident planned it)",
                name=name,
            )
        return found

    def agents(self) -> list[AgentHeartbeat]:
        return self.store.agents()

    def _explain_host(self, record: HostRecord) -> Explanation:
        host, health, now = record.host, record.health, self.now()
        why = f": {host.reason}" if host.reason else ""
        lines = [f"{host.name} is {host.state.value} since {_when(host.since)}{why}"]
        lines.append(f"detection: {health.verdict.value}, {health.describe(now)}")
        lines.append(f"nova heartbeat (petguard's own reading): {self.loop.heartbeat(host.name)}")
        lines.append(f"bmc power (read-only, while the host looks down): {self.loop.power(host.name)}")
        if host.incident_id is not None:
            incident = self.store.incident(host.incident_id)
            lines.append(f"incident {incident.id} opened {_when(incident.opened_at)}: {incident.reason}")
            moves = self.store.moves(incident.id)
            if moves:
                counts: dict[str, int] = {}
                for move in moves:
                    counts[move.status.value] = counts.get(move.status.value, 0) + 1
                lines.append("moves: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
                lines.extend(
                    f"  {move.server_name} ({move.server_id}): {self._waiting(move)}" for move in moves if move.waiting
                )
            skips = self.store.skips(incident.id)
            if skips:
                lines.append(f"{len(skips)} server(s) left on the host (see the incident for why)")
        for event in self.store.events(None, host.name, 5):
            lines.append(f"{_when(event.at)} {event.kind}: {event.message}")
        rows: list[planning.ServerDecision] = []
        if host.incident_id is None and self.compute is not None:
            rows = self._dry_run(host.name, lines)
        return Explanation("host", host.name, host.state.value, lines, rows)

    def _waiting(self, move: MoveRecord) -> str:
        """Why ``move`` waits for the cloud, since when and until when (or that it is stuck)."""
        until = move.gives_up_at(self.cloud_wait_timeout) if self.cloud_wait_timeout is not None else None
        return wire.waiting_text(move.waiting, move.waiting_since, until, _when)

    def _dry_run(self, host: str, lines: list[str]) -> list[planning.ServerDecision]:
        """What would happen to each server of ``host`` if it failed now (reads Nova, changes nothing)."""
        assert self.compute is not None
        try:
            servers = self.compute.servers_on(host)
        except PetguardError as exc:
            lines.append(f"if {host} failed now: cannot tell, Nova could not list its servers: {exc}")
            return []
        try:
            aggregates = self.compute.aggregates_of(host) if self.evacuation.hints.by_aggregate else frozenset()
        except PetguardError as exc:
            lines.append(f"if {host} failed now: its aggregates could not be read ({exc}); hints by aggregate ignored")
            aggregates = frozenset()
        the_plan, rows = planning.dry_run(host, servers, self.evacuation, aggregates)
        waves = len({m.wave for m in the_plan.moves})
        lines.append(
            f"if {host} failed now (dry run, read from Nova, nothing changed): {len(the_plan.moves)} of "
            f"{len(rows)} server(s) would be evacuated in {waves} wave(s); {len(the_plan.skipped)} would stay"
        )
        by_id = {s.id: s for s in servers}
        lines.extend(
            _what_if_line(row) + (_readiness_note(by_id[row.server_id], self.tier_delay) if row.evacuate else "")
            for row in rows
        )
        return rows

    def _explain_server(self, name: str) -> Explanation | None:
        for incident in self.store.incidents(None, EXPLAIN_INCIDENTS):
            for move in self.store.moves(incident.id):
                if name in (move.server_id, move.server_name):
                    lines = [
                        f"server {move.server_name} ({move.server_id}) was on {move.source_host}, "
                        f"incident {incident.id} ({incident.reason})",
                        f"evacuation {move.status.value} after {move.attempts} attempt(s)"
                        + (f", now on {move.dest_host}" if move.dest_host else ""),
                    ]
                    if move.hint or move.hint_note:
                        lines.append(_hint_text(move.hint, move.hint_source, move.hint_note, move.fell_back))
                    if move.reason:
                        lines.append(f"reason: {move.reason}")
                    if move.waiting:
                        lines.append(self._waiting(move))
                    return Explanation("server", move.server_name, move.status.value, lines)
            for skip in self.store.skips(incident.id):
                if name in (skip.server_id, skip.server_name):
                    lines = [
                        f"server {skip.server_name} ({skip.server_id}) was left on {incident.host} "
                        f"in incident {incident.id}: {skip.reason}"
                    ]
                    return Explanation("server", skip.server_name, "skipped", lines)
        return None


@dataclasses.dataclass
class StoreInbox:
    """``petguard.api.ports.Inbox`` over the journal: the loop acts on what is queued here."""

    store: SqlStore
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    set_level: Callable[[str], str] = dataclasses.field(default_factory=lambda: LogLevels().set)

    def submit_request(self, host: str, kind: RequestKind, reason: str, actor: str) -> RequestStatus:
        request_id = self.store.submit_request(host, kind, reason, actor, self.clock.now())
        return self.store.request_status(request_id)

    def record_alerts(self, alerts: Sequence[AlertRecord]) -> None:
        self.store.record_alerts(alerts, self.clock.now())

    def audit(self, actor: str, action: str, target: str | None, result: str, detail: str) -> None:
        self.store.record_audit(actor, action, target, result, detail, self.clock.now())

    def set_log_level(self, level: str) -> str:
        return self.set_level(level)

    def record_heartbeat(self, beat: AgentHeartbeat) -> None:
        self.store.record_heartbeat(beat)

    def record_agent_events(self, host: str, events: Sequence[DomainEvent]) -> int:
        return self.store.record_agent_events(host, events, self.clock.now())


def authenticator(conf: cfg.ConfigOpts, now: Callable[[], float] = time.time) -> auth.Authenticator:
    """The API's credentials from ``[api]`` files.

    :raises ConfigError: ``token_file`` is not set, or a file is missing, too open or empty.
    """
    api = conf.api
    if not api.token_file:
        raise ConfigError("[api] token_file is not set: create a file with a token (chmod 600) and name it there")
    tokens = secrets.load_secrets(api.token_file, "token", "[api] token_file")
    alert_tokens = {}
    if api.alert_token_file:
        alert_tokens = secrets.load_secrets(api.alert_token_file, "alert", "[api] alert_token_file")
    hmac_keys = secrets.load_secrets(api.hmac_key_file, "hmac", "[api] hmac_key_file") if api.hmac_key_file else {}
    return auth.Authenticator(tokens, alert_tokens, hmac_keys, now)


def settings(conf: cfg.ConfigOpts) -> tuple[ApiSettings, ServerSettings]:
    api = conf.api
    app_settings = ApiSettings(
        max_body_bytes=api.max_body_bytes,
        alerts=AlertPolicy(host_labels=tuple(api.alert_host_labels), ttl=api.alert_ttl),
        cloud_wait_timeout=conf.evacuation.cloud_wait_timeout,
    )
    server_settings = ServerSettings(
        bind=api.bind,
        socket=api.socket,
        threads=api.threads,
        client_timeout=api.client_timeout,
        request_timeout=api.request_timeout,
        max_body_bytes=api.max_body_bytes,
        tls_cert_file=api.tls_cert_file,
        tls_key_file=api.tls_key_file,
    )
    return app_settings, server_settings


class ReadinessView(Protocol):
    """What the API and the metrics read of fence readiness (``petguard.fencing.preflight.Readiness``)."""

    def snapshot(self) -> Mapping[str, str]: ...

    def gauge_rows(self) -> Iterable[tuple[str, str, str, bool]]: ...


def start_api(
    conf: cfg.ConfigOpts,
    store: SqlStore,
    loop: Loop,
    *,
    set_log_level: Callable[[str], str] | None = None,
    metrics: Exposition | None = None,
    readiness: ReadinessView | None = None,
    leading: Callable[[], bool] | None = None,
    coordination_age: Callable[[], float | None] | None = None,
    compute: Compute | None = None,
    capacity: Callable[[], CapacityReport] | None = None,
) -> ApiServer:
    """Build the API over ``store`` and ``loop`` and serve it in a thread; the caller stops it.

    Also hooks the metrics into the loop (``loop.recorder``). ``set_log_level`` changes the running
    daemon's log level (default: the root logger's level).

    :raises ConfigError: bad ``[api]`` options or secret files, or the address cannot be bound.
    """
    levels = LogLevels()
    clock = SystemClock()
    view = StoreView(store, loop, conf.tick_interval, conf.dry_run, clock, levels.get)
    view.cloud_wait_timeout = conf.evacuation.cloud_wait_timeout
    if readiness is not None:
        view.fence_readiness = readiness.snapshot
    if leading is not None:
        view.leading = leading
    if coordination_age is not None:
        view.coordination_age = coordination_age
    if compute is not None:
        view.compute = compute
        view.evacuation = policies.evacuation(conf)
        view.tier_delay = conf.evacuation.tier_delay
    if capacity is not None:
        view.capacity = capacity
    inbox = StoreInbox(store, clock, set_log_level or levels.set)
    if metrics is None:
        rows = readiness.gauge_rows if readiness is not None else None
        recorder = Metrics(lambda: snapshot(store, loop), fence_readiness=rows, capacity=capacity)
        loop.recorder = recorder
        metrics = recorder
    app_settings, server_settings = settings(conf)
    # Signed requests are checked against the system clock itself, not petguard's steady time: the
    # question there is whether the sender's clock agrees with ours, not how long something lasted.
    app = make_app(view, inbox, authenticator(conf), metrics, app_settings)
    return ApiServer(app, server_settings).start()


def snapshot(store: SqlStore, loop: Loop) -> Snapshot:
    """What ``/metrics`` reports about the journal and the loop, read at scrape time."""
    hosts = store.load_hosts()
    waiting: dict[str, int] = {}
    stuck: dict[str, int] = {}
    for name, record in hosts.items():
        if record.host.incident_id is not None:  # a few hosts at most: one read of moves each
            moves = [m for m in store.moves(record.host.incident_id) if m.waiting]
            stuck[name] = sum(1 for m in moves if m.stuck)
            waiting[name] = len(moves) - stuck[name]
    return Snapshot(
        host_states={name: record.host.state for name, record in hosts.items()},
        open_incidents=sum(1 for record in hosts.values() if record.host.incident_id is not None),
        brake_engaged=store.load_brake().engaged,
        last_ok_tick=loop.last_ok_tick,
        nova=loop.sight,
        moves_waiting=waiting,
        moves_stuck=stuck,
    )


def _hint_text(hint: str, source: str, note: str, fell_back: bool = False) -> str:
    """Where a move is sent and which rule said so (evacuate.hints)."""
    if hint:
        text = f"target hint {hint} (from {source})"
        return text + ("; not met, the scheduler chose" if fell_back else "")
    return f"the scheduler's choice ({note})" if note else "the scheduler's choice"


def _what_if_line(row: planning.ServerDecision) -> str:
    group = f"; group {row.group.name or row.group.id} ({row.group.policy.value})" if row.group else ""
    classes = f"; {'+'.join(c.value for c in row.classes)}" if row.classes else ""
    if row.evacuate:
        return (
            f"  {row.server_name} ({row.server_id}): evacuate in wave {row.wave} "
            f"(tier {row.tier}, priority {row.priority}{classes}{group}) to "
            f"{_hint_text(row.hint, row.hint_source, row.hint_note)}: {row.reason}"
        )
    return f"  {row.server_name} ({row.server_id}): stays (tier {row.tier}{classes}{group}): {row.reason}"


def _readiness_note(server: Server, tier_delay: float) -> str:
    """What the next tier would wait for on this pet (docs/evacuation.md, "Readiness between tiers"),
    and any malformed readiness metadata, so that a typo shows up before a failure."""
    spec = ready_spec(server.metadata, tier_delay)
    parts = [f"ready check {spec.check.describe(spec.check.address(server.addresses))}"] if spec.check else []
    if spec.delay > 0:
        parts.append(f"ready delay {spec.delay:g} s")
    if parts and planning.power_goal(server) is PowerGoal.STOPPED:
        parts.append("not waited for: it comes back stopped")
    parts.extend(spec.problems)
    return "".join(f"; {part}" for part in parts)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
