"""Configuration: oslo.config option groups, registered on one CONF object.

Each group lives in ``petguard.conf.opts`` with bounds and operator-facing help; ``policies`` is the
only place where CONF values become the frozen policy values the domain receives.
"""

from __future__ import annotations

from oslo_config import cfg

from petguard.conf import opts

CONF = cfg.CONF
opts.register(CONF)


def validate(conf: cfg.ConfigOpts) -> None:
    """Read every petguard option once, so a bad value fails at start-up with its name, not later.

    :raises oslo_config.cfg.Error: the first option whose value is invalid.
    """
    for group, options in opts.GROUPS:
        section = conf if group is None else conf[group]
        for option in options:
            getattr(section, option.dest)

