"""The daemon's process lifecycle: signals, the log level at run time, systemd readiness and watchdog.

Small functions for ``petguard.cmd.daemon`` and ``petguard.daemon.service`` to call:

* ``install_signal_handlers(stop, reload_fn)``: SIGTERM/SIGINT set ``stop``; SIGHUP runs ``reload_fn``
  on a short-lived thread (never inside the signal handler, which may interrupt a tick holding locks).
* ``reload_config(conf)``: re-read the config files; oslo.log applies a changed ``debug`` at once; an
  unknown option name is logged as a WARNING (the next start refuses it).
* ``set_log_level(name)``: the API's ``log-level`` command; lasts until the next SIGHUP or restart.
* ``Watchdog``: READY=1 after the first tick (state loaded), WATCHDOG=1 after each tick that returned,
  STOPPING=1 on shutdown, with a STATUS line. A wedged loop stops sending WATCHDOG=1 and systemd
  restarts the daemon (``WatchdogSec`` in systemd/petguard.service).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import types
from collections.abc import Callable

from oslo_config import cfg

from petguard import sdnotify
from petguard.conf import unknown
from petguard.reconcile import TickReport

LOG = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Requests a tick may make to Keystone and Nova when they hang (token, then compute services).
CALLS_PER_TICK = 2


def install_signal_handlers(stop: threading.Event, reload_fn: Callable[[], None]) -> None:
    """SIGTERM and SIGINT set ``stop``; SIGHUP calls ``reload_fn`` on its own thread. Main thread only."""

    def on_stop(signum: int, frame: types.FrameType | None) -> None:
        LOG.info("received signal %d: finishing the step in hand, then exiting", signum)
        stop.set()

    def on_hup(signum: int, frame: types.FrameType | None) -> None:
        threading.Thread(target=_reload, args=(reload_fn,), name="sighup-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)


def _reload(reload_fn: Callable[[], None]) -> None:
    LOG.info("received SIGHUP: re-reading the configuration")
    try:
        reload_fn()
    except Exception:
        LOG.exception("reload on SIGHUP failed; the daemon keeps running with the options it had")


def reload_config(conf: cfg.ConfigOpts) -> None:
    """Re-read the config files and apply the mutable options (oslo.log's ``debug`` among them).

    Options that are not mutable keep their value until a restart; oslo.config logs each one that
    changed in the file.
    """
    conf.mutate_config_files()
    LOG.info("configuration re-read; log level now %s", current_log_level())
    warn_unknown_names(conf)


def warn_unknown_names(conf: cfg.ConfigOpts) -> None:
    """After a reload: one WARNING per unknown section or option (``petguard.conf.unknown``). A
    running daemon keeps going with the values it has; the next start refuses such a name."""
    try:
        found = unknown.check(conf)
    except (OSError, cfg.Error) as exc:
        LOG.warning("cannot re-read the config files for unknown names: %s", exc)
        return
    for name in found:
        if name.serious:
            LOG.warning("%s; the next start refuses it: fix it now (petguard-manage config check)", name.message())
        else:
            LOG.warning("%s", name.message())


#: The name the brief and the wiring use; same function.
reload_log_level = reload_config


def current_log_level() -> str:
    """The root logger's level name, e.g. INFO."""
    return logging.getLevelName(logging.getLogger().level)


def set_log_level(level: str) -> str:
    """Set the daemon's log level now (until the next SIGHUP or restart); returns the level now in force
    (what ``petguard.api.ports.Inbox.set_log_level`` returns).

    :raises ValueError: not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.
    """
    name = level.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    previous = current_log_level()
    logging.getLogger().setLevel(name)
    LOG.warning("log level changed from %s to %s (until the next SIGHUP or restart)", previous, name)
    return current_log_level()


class Watchdog:
    """Tells systemd the daemon is ready, alive after each tick, and stopping."""

    def __init__(self, notify: Callable[..., bool] = sdnotify.notify) -> None:
        self._notify = notify
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def after_tick(self, report: TickReport) -> None:
        """Call after every ``Loop.tick()`` that returned.

        A tick that could not read Nova still counts as alive: the loop runs and decides nothing,
        which is the safe thing; restarting the daemon would not bring Nova back. The STATUS line
        says which it was (``systemctl status petguard``).
        """
        status = "STATUS=watching: last tick ok" if report.ok else f"STATUS=Nova unreachable: {report.error}"[:200]
        if not self._ready:
            self._notify("READY=1", status)
            self._ready = True
            LOG.debug("told systemd: ready")
            return
        self._notify("WATCHDOG=1", status)

    def stopping(self) -> None:
        """Call when shutdown starts (before waiting for the steps in hand)."""
        self._notify("STOPPING=1", "STATUS=stopping: finishing the steps in hand")


def watchdog_budget_warning(tick_interval: float, nova_timeout: float) -> str | None:
    """A warning when a tick that waits out Nova's timeouts could outlast systemd's WatchdogSec, or None.

    systemd sets ``WATCHDOG_USEC`` when ``WatchdogSec`` is on; without it there is nothing to check.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    budget = int(usec) / 1e6
    worst = tick_interval + CALLS_PER_TICK * nova_timeout
    if worst < budget:
        return None
    return (
        f"WatchdogSec ({budget:.0f} s) is shorter than a tick that waits out Nova's timeouts "
        f"({worst:.0f} s = tick_interval + {CALLS_PER_TICK} x [nova] timeout): systemd would restart "
        "petguard during a Nova brown-out; raise WatchdogSec (systemctl edit petguard) or lower [nova] timeout"
    )
