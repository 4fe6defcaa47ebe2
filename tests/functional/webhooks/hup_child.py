"""A process that uses petguard's lifecycle helpers as the daemon does: oslo.log, SIGHUP reload, SIGTERM.

Run: python hup_child.py --config-file FILE. It logs "tick" at DEBUG every 50 ms until SIGTERM.
"""

from __future__ import annotations

import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from petguard.daemon import lifecycle


def main() -> int:
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf(sys.argv[1:], project="petguard-hup-test", default_config_files=[], default_config_dirs=[])
    logging.setup(conf, "petguard")
    log = logging.getLogger("petguard.hup_child")
    stop = threading.Event()
    lifecycle.install_signal_handlers(stop, lambda: lifecycle.reload_config(conf))
    log.info("started")
    while not stop.wait(0.05):
        log.debug("tick at debug")
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
