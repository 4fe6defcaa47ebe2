"""Entry point and composition root of petguard-agent.

``petguard-agent --config-file /etc/petguard/agent.conf`` watches libvirt, buffers domain events on
disk and reports them and heartbeats to the controllers. Under systemd (``Type=notify``) it sends
``READY=1`` once it runs, and ``WATCHDOG=1`` only while its own threads are alive (the libvirt event
loop, the watcher, the heartbeat and the event sender): a wedged agent is restarted by systemd
instead of looking active while it reports nothing.

Exit statuses (``petguard.startup``): 0 after SIGTERM, 2 for a bad command line, 78 for a
configuration error (libvirt's bindings missing included; systemd does not restart), 75 for a
transient failure at start. ``--help`` and ``--version`` work without libvirt's bindings.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from oslo_config import cfg
from oslo_log import log as logging

from petguard import sdnotify, secrets, startup
from petguard.agent import opts
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings
from petguard.errors import ConfigError, PetguardError

if TYPE_CHECKING:  # imported when the agent is built: --help and --version work without libvirt
    from petguard.agent.libvirt_watch import LibvirtWatch

LOG = logging.getLogger(__name__)

BUFFER_FILE = "events.sqlite"
#: Seconds between two self-checks (and WATCHDOG=1 notifications).
SELF_CHECK_INTERVAL = 5.0


class EventIds:
    """Event ids unique per agent: a random boot id and a counter (thread-safe)."""

    def __init__(self) -> None:
        self._boot = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            return f"{self._boot}-{next(self._counter)}"


class Agent:
    """A wired agent: libvirt watcher, buffer and reporter."""

    def __init__(self, watch: LibvirtWatch, buffer: Buffer, reporter: Reporter) -> None:
        self.watch = watch
        self.buffer = buffer
        self.reporter = reporter
        self.stop = threading.Event()

    def healthy(self) -> tuple[bool, str]:
        """The agent's self-check: every thread it relies on is alive."""
        if not self.watch.alive():
            return False, "the libvirt watcher or libvirt's event loop stopped"
        if not self.reporter.alive():
            return False, "the heartbeat or event-sender thread stopped"
        return True, "ok"

    def run(self) -> None:
        self.watch.start()
        self.reporter.start()
        sdnotify.notify("READY=1", f"STATUS=watching {self.watch.uri}")
        urls = ", ".join(self.reporter.settings.urls)
        LOG.info("petguard-agent started: watching %s, reporting to %s", self.watch.uri, urls)
        try:
            while not self.stop.wait(self_check_interval()):
                ok, why = self.healthy()
                if ok:
                    libvirt = "connected" if self.watch.connected else "NOT connected"
                    sdnotify.notify("WATCHDOG=1", f"STATUS=libvirt {libvirt}; {len(self.buffer)} event(s) buffered")
                else:
                    LOG.error("self-check failed: %s; not notifying systemd's watchdog (it restarts the agent)", why)
        finally:
            sdnotify.notify("STOPPING=1")
            self.reporter.stop()
            self.watch.stop()
            self.buffer.close()
            LOG.info("petguard-agent stopped")


def self_check_interval() -> float:
    """Seconds between self-checks: ``SELF_CHECK_INTERVAL``, or half of systemd's WatchdogSec if shorter."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    return min(SELF_CHECK_INTERVAL, usec / 2e6) if usec > 0 else SELF_CHECK_INTERVAL


def read_key(path: str) -> str:
    """The agent's HMAC key (one secret; a 'NAME KEY' line works too). :raises ConfigError:"""
    keys = secrets.load_secrets(path, "hmac", "[agent] hmac_key_file")
    if len(keys) != 1:
        raise ConfigError(f"[agent] hmac_key_file {path} must hold exactly one key, found {len(keys)}")
    return next(iter(keys.values()))


def check_sender(sender: str, host: str) -> str:
    """``sender`` if the controllers will let its key speak for ``host``.

    :raises ConfigError: the key's name binds it to another host (or to none): every report would be
        refused with 403.
    """
    bound = secrets.bound_host(sender)
    if bound != host:
        speaks = f"host {bound!r}" if bound is not None else "no host (a bare, shared key)"
        raise ConfigError(
            f"[agent] sender = {sender!r} names a key that speaks for {speaks}, not for this host {host!r}: "
            f"the controllers would refuse every report; give this host its own key and set "
            f"sender = agent-{host} (its line in the controllers' [api] hmac_key_file: 'agent-{host} <key>')"
        )
    return sender


def libvirt_watch_class() -> type[LibvirtWatch]:
    """``LibvirtWatch``, imported now: the only import of libvirt's Python bindings.

    :raises ConfigError: the bindings are not installed (the ``[agent]`` extra) or cannot load.
    """
    try:
        from petguard.agent.libvirt_watch import LibvirtWatch  # deferred on purpose: see above
    except ImportError as exc:
        raise ConfigError(
            f"petguard-agent needs libvirt's Python bindings, which cannot be imported ({exc}): install "
            "them with pip install 'petguard[agent]' (building needs Debian's libvirt-dev and pkg-config)"
        ) from exc
    return LibvirtWatch


def build(conf: cfg.ConfigOpts) -> Agent:
    """Wire the agent from ``[agent]``. :raises ConfigError:"""
    watch_class = libvirt_watch_class()
    a = conf.agent
    directory = Path(a.buffer_dir)
    if not directory.is_dir():
        raise ConfigError(f"[agent] buffer_dir {directory} does not exist: create it (systemd: StateDirectory=)")
    settings = ReportSettings(
        urls=tuple(a.controller_urls),
        host=a.host,
        sender=check_sender(a.sender or a.host, a.host),
        key=read_key(a.hmac_key_file),
        heartbeat_interval=a.heartbeat_interval,
        timeout=a.request_timeout,
        ca_file=a.ca_file,
    )
    buffer = Buffer(directory / BUFFER_FILE, a.buffer_max_events)
    watch = watch_class(
        a.libvirt_uri,
        buffer.put,
        EventIds(),
        keepalive_interval=a.keepalive_interval,
        keepalive_count=a.keepalive_count,
    )

    def status() -> AgentStatus:
        return AgentStatus(watch.connected, watch.domains())

    return Agent(watch, buffer, Reporter(settings, buffer, status, version=startup.version()))


def main(argv: list[str] | None = None) -> int:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    logging.register_options(conf)
    try:
        conf(
            sys.argv[1:] if argv is None else argv,
            project="petguard",
            prog="petguard-agent",
            version=startup.version(),
        )
        startup.check_journal(conf.use_journal)
    except cfg.Error as exc:
        print(f"petguard-agent: configuration error: {secrets.config_error(exc)}", file=sys.stderr)
        return startup.CONFIG
    except PetguardError as exc:
        print(f"petguard-agent: configuration error: {exc}", file=sys.stderr)
        return startup.exit_status(exc)
    logging.setup(conf, "petguard-agent")
    try:
        agent = build(conf)
    except PetguardError as exc:
        LOG.error("cannot start: %s", exc)
        print(f"petguard-agent: cannot start: {exc}", file=sys.stderr)
        return startup.exit_status(exc)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        agent.stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        LOG.info("SIGHUP: nothing to reload (restart the agent to apply a changed configuration)")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    agent.run()
    return startup.OK


if __name__ == "__main__":
    sys.exit(main())
