"""``petguard-manage config check``: every mistake the daemon would hit at start or in its first incident.

Each check returns ``Finding`` values (``OK``, ``WARNING`` or ``ERROR``, a topic, and what to do),
and uses the daemon's own readers, so that the check and the start agree: the unknown-names rule of
``petguard.conf.unknown`` (which the daemon also applies at start), every policy
(``policies.check_all``), the journal (``SqlStore``: reachable, schema at head), the API's secret
files (``api_backend.authenticator``) and its address (bound and released at once), the webhook
receivers (``webhooks.receivers.from_conf``: options and key files; the receiver's address
answering TCP), Nova's clouds.yaml (``nova.compute.connect``) and Nova itself (``nova.compute.check``),
the fence inventory and its password files (``fencing.inventory.check_inventory``) and the power state
of every fence device (read-only), and the coordination backend (reachable with a short deadline;
refused when it or the journal serves one machine only but the journal has seen several leaders, or
when the journal is sqlite but other controllers are members of petguard's group on the backend).
The daemon logs the first of these as a WARNING at start (``several_controllers``).

An ERROR means the daemon refuses to start or will fail in an incident; a WARNING is worth a look
but not a failure. Messages never hold a secret: they name files and options, never their content,
and the coordination URL is shown without its credentials.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import functools
import os
import socket
import stat
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import TextIO

from oslo_config import cfg

from petguard import secrets
from petguard.api.server import parse_bind
from petguard.conf import policies, unknown
from petguard.daemon import api_backend
from petguard.errors import PetguardError
from petguard.fencing import inventory, loader, procedure
from petguard.fencing.child import FenceRunner
from petguard.ha import election
from petguard.nova import compute as nova
from petguard.store.sql import SqlStore
from petguard.webhooks import receivers

#: How long a reachability probe (coordination backend, webhook receiver) may take.
PROBE_TIMEOUT = 3.0


class Level(enum.IntEnum):
    OK = 0
    WARNING = 1
    ERROR = 2


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of ``config check``: ``topic`` says what was checked, ``message`` what was found and
    what to do."""

    level: Level
    topic: str
    message: str

    def line(self) -> str:
        """One line, whatever the message holds (a peer's error may span several)."""
        message = "; ".join(part.strip() for part in self.message.splitlines() if part.strip())
        return f"{self.level.name:<7} {self.topic}: {message}"


def ok(topic: str, message: str) -> Finding:
    return Finding(Level.OK, topic, message)


def warning(topic: str, message: str) -> Finding:
    return Finding(Level.WARNING, topic, message)


def error(topic: str, message: str) -> Finding:
    return Finding(Level.ERROR, topic, message)


# -- options ------------------------------------------------------------------------------------


def unknown_names(conf: cfg.ConfigOpts) -> list[Finding]:
    """Unknown sections and options in the files ``conf`` was read from (the daemon's start rule:
    it refuses on an ERROR here and logs a WARNING)."""
    return [(error if u.serious else warning)("options", u.message()) for u in unknown.check(conf)]


def check_options(conf: cfg.ConfigOpts) -> list[Finding]:
    findings = unknown_names(conf)
    findings += [error("options", problem) for problem in policies.check_all(conf)]
    if not findings:
        findings.append(
            ok(
                "options",
                "every name is known; every policy builds "
                "(detection, brake, fencing, evacuation, instance health, capacity)",
            )
        )
    return findings


# -- journal and coordination -------------------------------------------------------------------


def check_database(conf: cfg.ConfigOpts) -> tuple[list[Finding], SqlStore | None]:
    try:
        store = SqlStore(conf.database.connection)
        store.ping()
    except PetguardError as exc:
        return [error("database", f"[database] connection: {exc}")], None
    return [ok("database", "reachable, schema at head")], store


def check_coordination(conf: cfg.ConfigOpts, store: SqlStore | None) -> list[Finding]:
    settings = election.Settings.from_conf(conf)
    scheme = urllib.parse.urlsplit(settings.backend_url).scheme
    sqlite = conf.database.connection.startswith("sqlite")
    findings = _leaders_seen(settings, scheme, sqlite, store)
    if scheme == "file":
        findings.append(_file_backend(settings))
    else:
        findings += _reach_backend(settings, sqlite)
    return findings


def several_controllers(conf: cfg.ConfigOpts, store: SqlStore) -> list[str]:
    """What the daemon warns about at start (``config check`` reports it as an ERROR): the journal
    names several controllers that led, but it or the coordination backend serves one machine only.

    Only a warning there: several daemons on one machine (a rehearsal, the lab) are harmless, and a
    controller that refused to start would leave the cloud unwatched.
    """
    settings = election.Settings.from_conf(conf)
    scheme = urllib.parse.urlsplit(settings.backend_url).scheme
    sqlite = conf.database.connection.startswith("sqlite")
    return [f.message for f in _leaders_seen(settings, scheme, sqlite, store) if f.level is Level.ERROR]


def _leaders_seen(settings: election.Settings, scheme: str, sqlite: bool, store: SqlStore | None) -> list[Finding]:
    """More than one controller has led on this journal: then neither ``file://`` nor sqlite will do."""
    if store is None:
        return []
    try:
        messages = store.event_messages(election.GAINED)
    except PetguardError as exc:
        return [warning("coordination", f"cannot read who led from the journal: {exc}")]
    members = sorted({m for m in map(election.leader_of, messages) if m} | {settings.member_id})
    single = [what for what, one in (("file:// coordination", scheme == "file"), ("a sqlite journal", sqlite)) if one]
    if len(members) > 1 and single:
        return [
            error(
                "coordination",
                f"the journal has seen {len(members)} controllers ({', '.join(members)}) but "
                f"{' and '.join(single)} serve one machine only: controllers on different machines would "
                "each lead alone (file://) or each keep a journal of its own (sqlite), and a takeover would "
                "not see the incident in hand. "
                "Use a shared MariaDB/PostgreSQL journal and etcd, Redis, MySQL, PostgreSQL or ZooKeeper "
                "for [coordination] backend_url (docs/controllers.md). Only if every one of these daemons "
                "runs on this one machine (a rehearsal) is this harmless",
            )
        ]
    if single:
        return [
            ok(
                "coordination",
                f"{' and '.join(single)}: for a single controller only (seen: {', '.join(members)}); "
                "several controllers need a shared journal and backend (docs/controllers.md)",
            )
        ]
    return [ok("coordination", f"controllers seen in the journal: {', '.join(members)}")]


def _file_backend(settings: election.Settings) -> Finding:
    """The file backend's directory, or the nearest existing parent tooz would create it in, must be a
    directory this user can write; checked without creating anything (tooz would)."""
    path = urllib.parse.urlsplit(settings.backend_url).path.rstrip("/")
    if not path:
        return error(
            "coordination", "[coordination] backend_url file:// names no directory (e.g. file:///var/lib/petguard/coord)"
        )
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "/"
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        return error(
            "coordination",
            f"[coordination] backend_url {settings.backend}: {existing} is not a directory this user can write; "
            "create it (owned by petguard's user) or choose another path",
        )
    return ok("coordination", f"{settings.backend}: directory usable")


def _reach_backend(settings: election.Settings, sqlite: bool) -> list[Finding]:
    """Start a tooz coordinator and heartbeat once, with a short deadline, then leave; with a sqlite
    journal, also read who else is in petguard's group (without joining it)."""
    quick = dataclasses.replace(settings, leader_timeout=max(1.0, PROBE_TIMEOUT - 1))
    members: list[str] = []

    def probe() -> None:
        coordinator = election.connect(quick)
        try:
            coordinator.heartbeat()
            if sqlite:
                members.extend(election.group_members(coordinator, settings.group))
        finally:
            coordinator.stop()

    problem = _within(probe, PROBE_TIMEOUT)
    if problem is not None:
        return [
            error(
                "coordination",
                f"[coordination] backend_url {settings.backend}: {problem}; the daemon would run but never lead: "
                "start the backend or fix the URL",
            )
        ]
    findings = [ok("coordination", f"{settings.backend} answered")]
    others = sorted(set(members) - {settings.member_id})
    if others:
        findings.append(
            error(
                "coordination",
                f"other controllers are in the group {settings.group!r} on {settings.backend} "
                f"({', '.join(others)}; this one is {settings.member_id}) but the journal is sqlite, which serves "
                "one machine only: each controller keeps a journal of its own, and the one that takes over "
                "does not see the incident in hand. Use a shared MariaDB/PostgreSQL journal for all of them "
                "(docs/controllers.md)",
            )
        )
    return findings


def _within(work: Callable[[], None], timeout: float) -> str | None:
    """Run ``work`` in a thread for at most ``timeout`` s: None when it succeeded, else what happened
    (a client library that ignores its own timeout must not hang the check)."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure of a peer is a finding, not a crash
            outcome.append(f"{type(exc).__name__}: {_safe(str(exc))}")

    thread = threading.Thread(target=run, name="config-check-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _safe(text: str) -> str:
    return secrets.text(text)


# -- API ------------------------------------------------------------------------------------------


def check_api(conf: cfg.ConfigOpts) -> list[Finding]:
    if not conf.api.enabled:
        return [ok("api", "disabled ([api] enabled = false): nothing to check")]
    findings: list[Finding] = []
    try:
        api_backend.authenticator(conf)
        named = [o for o in ("token_file", "alert_token_file", "hmac_key_file") if conf.api[o]]
        findings.append(ok("api files", f"{', '.join(named)}: readable, by petguard's user only, not empty"))
    except PetguardError as exc:
        findings.append(error("api files", str(exc)))
    findings.append(_socket_path(conf.api.socket) if conf.api.socket else _bind(conf.api.bind))
    findings.append(_tls(conf))
    return findings


def _tls(conf: cfg.ConfigOpts) -> Finding:
    """Whether the API would serve TLS, and that its certificate and key can be used together."""
    _, server_settings = api_backend.settings(conf)
    try:
        context = server_settings.tls_context()
    except PetguardError as exc:
        return error("api tls", str(exc))
    if conf.api.socket:
        return ok("api tls", "none on the unix socket ([api] socket; a socket never uses TLS)")
    if context is None:
        return ok("api tls", f"off: plain HTTP on {conf.api.bind} (set [api] tls_cert_file and tls_key_file for TLS)")
    return ok("api tls", f"{conf.api.tls_cert_file} and its key match; TLS 1.2 or newer only on {conf.api.bind}")


def _bind(bind: str) -> Finding:
    """Bind the address and release it at once (as cheroot binds it: SO_REUSEADDR)."""
    try:
        host, port = parse_bind(bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except PetguardError as exc:
        return error("api bind", str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return warning(
                "api bind",
                f"[api] bind = {bind} is in use: fine if petguard-daemon runs here now; otherwise the daemon "
                "will refuse to start (find the other program with ss -ltnp)",
            )
        return error("api bind", f"[api] bind = {bind} cannot be bound: {exc.strerror}; change [api] bind")
    return ok("api bind", f"{bind} can be bound")


def _socket_path(path: str) -> Finding:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return error("api socket", f"[api] socket = {path}: {directory} does not exist; create it")
    if not os.access(directory, os.W_OK | os.X_OK):
        return error("api socket", f"[api] socket = {path}: {directory} is not writable by this user")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ok("api socket", f"{path} can be created")
    if not stat.S_ISSOCK(info.st_mode):
        return error("api socket", f"[api] socket = {path} exists and is not a socket: remove it or choose another")
    return ok("api socket", f"{path} exists (a running daemon's, or a stale one the daemon replaces)")


# -- webhooks -------------------------------------------------------------------------------------


def check_webhooks(conf: cfg.ConfigOpts) -> list[Finding]:
    try:
        listed = receivers.from_conf(conf)
    except PetguardError as exc:
        return [error("webhooks", str(exc))]
    if not listed:
        return [ok("webhooks", "no receiver configured ([webhooks] receivers is empty)")]
    findings = []
    for receiver in listed:
        topic = f"webhook {receiver.name}"
        parts = urllib.parse.urlsplit(receiver.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.scheme}://{parts.hostname}:{port}"  # never the path: a Slack URL's path is its secret
        problem = _within(functools.partial(_tcp, parts.hostname or "", port), PROBE_TIMEOUT)
        if problem is not None:
            findings.append(
                warning(
                    topic,
                    f"{where} does not accept connections ({problem}): events wait in the outbox "
                    "and are retried; check the URL and the firewall",
                )
            )
        elif not receiver.secret and receiver.format is receivers.Format.JSON:  # Slack's URL is its key
            findings.append(
                warning(
                    topic,
                    f"{where} accepts connections, but deliveries are not signed: the receiver cannot tell "
                    f"petguard's events from anyone's; set [webhook:{receiver.name}] secret_file",
                )
            )
        else:
            signed = "signed" if receiver.secret else "not signed (Slack: the URL is the key)"
            findings.append(ok(topic, f"{where} accepts connections; deliveries {signed}"))
    return findings


def _tcp(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
        pass


# -- Nova and fencing -----------------------------------------------------------------------------


def check_nova(conf: cfg.ConfigOpts) -> list[Finding]:
    try:
        compute = nova.connect(conf.nova.cloud, conf.nova.clouds_file, conf.nova.timeout)
    except PetguardError as exc:
        return [error("nova clouds", str(exc))]
    findings = [ok("nova clouds", f"cloud {conf.nova.cloud} loaded from {conf.nova.clouds_file or 'clouds.yaml'}")]
    problems = nova.check(compute)
    findings += [error("nova", problem) for problem in problems]
    if not problems:
        findings.append(ok("nova", f"Keystone and Nova answered (cloud {conf.nova.cloud})"))
    return findings


def check_fencing(conf: cfg.ConfigOpts) -> list[Finding]:
    topologies, found = inventory.check_inventory(conf.fencing.inventory_file, conf.fencing.enabled_drivers)
    # the inventory's own severities: a warning there is one the daemon logs and starts with
    findings = [
        (error if p.severity is inventory.Severity.ERROR else warning)("fencing inventory", p.message) for p in found
    ]
    if not any(p.severity is inventory.Severity.ERROR for p in found):
        findings.append(ok("fencing inventory", f"{conf.fencing.inventory_file}: {len(topologies)} host(s)"))
    enabled = list(conf.fencing.enabled_drivers)
    runner = FenceRunner(functools.partial(loader.load_driver, enabled=enabled))
    for host, topology in sorted(topologies.items()):
        for level, number, device in topology.devices():
            topic = f"fence {host} level {level} device {number}"
            try:
                driver = loader.load_driver(device.driver, enabled)
                state = procedure.read_power(device, driver, runner, conf.fencing.attempt_timeout)
            except PetguardError as exc:
                findings.append(error(topic, f"{device.describe()}: {exc}"))
                continue
            findings.append(ok(topic, f"{device.describe()}: power {state.value}"))
    return findings


# -- all of them ----------------------------------------------------------------------------------


def run(conf: cfg.ConfigOpts) -> list[Finding]:
    """Every check, in the order the daemon meets them (options first, the peers last)."""
    findings = check_options(conf)
    database, store = check_database(conf)
    findings += database
    findings += check_coordination(conf, store)
    findings += check_api(conf)
    findings += check_webhooks(conf)
    findings += check_nova(conf)
    findings += check_fencing(conf)
    if store is not None:
        store.close()
    return findings


def report(findings: Sequence[Finding], out: TextIO) -> int:
    """One line per finding, then a summary; 1 when any is an ERROR, else 0."""
    for finding in findings:
        print(finding.line(), file=out)
    errors = count(findings, Level.ERROR)
    warnings = count(findings, Level.WARNING)
    if errors:
        print(f"{errors} problem(s), {warnings} warning(s): fix every ERROR above", file=out)
        return 1
    print(f"configuration OK ({warnings} warning(s))", file=out)
    return 0


def count(findings: Iterable[Finding], level: Level) -> int:
    return sum(1 for f in findings if f.level == level)
