"""Entry point of petguard-daemon: parse config, set up oslo.log, run the composition root."""

from __future__ import annotations

import functools
import sys

from oslo_config import cfg
from oslo_log import log as logging

from petguard import secrets
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
        CONF(sys.argv[1:] if argv is None else argv, project="petguard")
        validate(CONF)
    except cfg.Error as exc:
        print(f"petguard-daemon: configuration error: {secrets.config_error(exc)}", file=sys.stderr)
        return 2
    logging.setup(CONF, "petguard")
    if not _names_known():
        return 2
    try:
        daemon = service.build(CONF)
    except PetguardError as exc:
        LOG.error("cannot start: %s", exc)
        print(f"petguard-daemon: cannot start: {exc}", file=sys.stderr)
        return 2
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
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
