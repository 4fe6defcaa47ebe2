"""Entry point of petguard-daemon: parse config, set up oslo.log, run the composition root.

Exit statuses (``petguard.startup``): 0 after SIGTERM, 2 for a bad command line, 78 for a
configuration error (systemd does not restart), 75 for a transient failure at start such as an
unreachable database (systemd restarts).
"""

from __future__ import annotations

import functools
import sys

from oslo_config import cfg
from oslo_log import log as logging

from petguard import secrets, startup
from petguard.conf import CONF, unknown, validate
from petguard.daemon import lifecycle, service
from petguard.errors import PetguardError

LOG = logging.getLogger(__name__)


def _names_known() -> bool:
    """Refuse unknown sections and options, warn about the lesser ones (``petguard.conf.unknown``).

    Refused rather than warned about: oslo.config would ignore the name, so a typo in a safety option
    (``dryrun = true``, ``brake_max_host``) would leave its default in force without a word, and the
    daemon would act unlike what its operator wrote. Every other bad value already stops the start.
    """
    serious = False
    for found in unknown.check(CONF):
        if found.serious:
            serious = True
            LOG.error("cannot start: %s", found.message())
            print(f"petguard-daemon: configuration error: {found.message()}", file=sys.stderr)
        else:
            LOG.warning("%s", found.message())
    return not serious


def main(argv: list[str] | None = None) -> int:
    logging.register_options(CONF)
    try:
        CONF(sys.argv[1:] if argv is None else argv, project="petguard", version=startup.version())
        validate(CONF)
        startup.check_journal(CONF.use_journal)
    except cfg.Error as exc:
        print(f"petguard-daemon: configuration error: {secrets.config_error(exc)}", file=sys.stderr)
        return startup.CONFIG
    except PetguardError as exc:
        print(f"petguard-daemon: configuration error: {exc}", file=sys.stderr)
        return startup.exit_status(exc)
    logging.setup(CONF, "petguard")
    if not _names_known():
        return startup.CONFIG
    try:
        daemon = service.build(CONF)
    except PetguardError as exc:
        return _refused(exc)
    LOG.info(
        "watching Nova cloud %r; journal %s; fence inventory %s%s",
        CONF.nova.cloud,
        CONF.database.connection.split("://", 1)[0],
        CONF.fencing.inventory_file,
        "; DRY RUN: nothing will be fenced or evacuated" if CONF.dry_run else "",
    )

    budget = lifecycle.watchdog_budget_warning(CONF.tick_interval, CONF.nova.timeout)
    if budget is not None:
        LOG.warning("%s", budget)
    lifecycle.install_signal_handlers(daemon.stop, functools.partial(lifecycle.reload_config, CONF))
    try:
        daemon.start()
    except PetguardError as exc:
        if daemon.api is not None:
            daemon.api.stop()  # build started it last; nothing else runs yet
        return _refused(exc)
    daemon.run()
    return startup.OK


def _refused(exc: PetguardError) -> int:
    """Say why the daemon cannot start, in the log and on stderr; the status tells systemd whether
    to restart it (75: transient) or not (78: configuration)."""
    status = startup.exit_status(exc)
    kind = "transient failure, systemd retries" if status == startup.TEMPFAIL else "configuration error"
    LOG.error("cannot start (%s): %s", kind, exc)
    print(f"petguard-daemon: cannot start ({kind}): {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
