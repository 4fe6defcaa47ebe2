"""How the composition root wires the fence readiness checker as a leader duty: stopping it on a loss
of leadership ends the checker, wakes it from its wait between cycles, and never stops the daemon."""

from __future__ import annotations

import threading
import time

from oslo_config import cfg

from petguard.conf import opts
from petguard.daemon import service
from petguard.errors import ConfigError
from petguard.fencing.base import FenceDriver


class Journal:
    def record_event(self, *args: object) -> None:
        pass


def no_driver(name: str) -> FenceDriver:
    raise ConfigError(f"no driver {name} in this test")


def test_a_stopped_readiness_duty_ends_at_once_and_leaves_the_daemon_running() -> None:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard-test", default_config_files=[])
    conf.set_override("readiness_interval", 300, group="fencing")
    make = service.fence_readiness_duty(conf, {}, no_driver, None, Journal())  # type: ignore[arg-type]
    duties = service.LeaderDuties({"fence readiness": make})

    duties.start(1)
    checker = duties.running("fence readiness")
    assert checker is not None
    time.sleep(0.2)  # into its 300 s wait between cycles
    started = time.monotonic()
    duties.stop("leadership lost", wait=True)

    assert time.monotonic() - started < 5, "the checker's wait did not wake on stop"
    assert not any(t.name == "fence-readiness" and t.is_alive() for t in threading.enumerate())
    # The next term's checker runs: the first one's stop was its own, not an event shared with the
    # daemon (when it was the daemon's stop event, losing leadership once stopped the whole daemon).
    duties.start(2)
    assert duties.running("fence readiness") is not checker
    time.sleep(0.3)
    assert any(t.name == "fence-readiness" and t.is_alive() for t in threading.enumerate())
    duties.stop("test over", wait=True)
