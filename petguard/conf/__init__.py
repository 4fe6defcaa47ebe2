"""Configuration: oslo.config option groups, registered on one CONF object.

Each group lives in ``petguard.conf.opts`` with bounds and operator-facing help; ``policies`` is the
only place where CONF values become the frozen policy values the domain receives.
"""

from __future__ import annotations

from oslo_config import cfg

from petguard.conf import opts

CONF = cfg.CONF
opts.register(CONF)
