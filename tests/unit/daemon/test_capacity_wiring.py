"""How the composition root wires the capacity check: ``[capacity] interval`` (0 = off, too small =
refused), the leader duty, and what status reads on a leader, a follower and with the check off."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from petguard.conf import opts
from petguard.daemon import service
from petguard.errors import ConfigError
from petguard.evacuate.capacity import Verdict
from petguard.evacuate.capacity_duty import CapacityWatch
from petguard.nova import compute as nova
from tests.fakes import FakeClock


def conf(interval: float, reserved: list[str] | None = None) -> cfg.ConfigOpts:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    c.set_override("interval", interval, group="capacity")
    c.set_override("reserved_hosts", reserved or [], group="evacuation")
    return c


class Journal:
    def record_event(self, *args: object) -> None:
        pass


def duty(interval: float) -> dict[str, object]:
    compute = nova.NovaCompute(object())  # type: ignore[arg-type] - never called here
    return dict(service._capacity_duty(conf(interval), compute, Journal(), FakeClock()))  # type: ignore[arg-type]


def test_defaults() -> None:
    c = conf(300)
    c.clear_override("interval", group="capacity")
    c.clear_override("reserved_hosts", group="evacuation")
    assert c.capacity.interval == 300 and c.evacuation.reserved_hosts == []


def test_zero_turns_the_check_off() -> None:
    assert duty(0) == {}


def test_an_interval_below_the_minimum_is_refused_with_the_option_named() -> None:
    with pytest.raises(ConfigError, match=r"\[capacity\] interval = 5: use 0 \(off\) or at least 10"):
        duty(5)


def test_a_leader_duty_that_builds_a_fresh_watch_each_term() -> None:
    factories = duty(300)
    assert list(factories) == ["capacity check"]
    make = factories["capacity check"]
    first, second = make(), make()  # type: ignore[operator]
    assert isinstance(first, CapacityWatch) and first is not second


def test_status_reads_the_watch_of_the_term_and_unknown_otherwise() -> None:
    watch = CapacityWatch(lambda: [], service.policies.EvacuationPolicy(), FakeClock(), lambda *a: None)
    duties = service.LeaderDuties({"capacity check": lambda: watch})
    live = service._LiveCapacity(duties, enabled=True)
    follower = live.report()
    assert follower.verdict is Verdict.UNKNOWN and "does not lead" in follower.reason
    duties.start(1)
    watch.check_once()
    assert live.report().verdict is Verdict.OK and live.report() is watch.report()
    off = service._LiveCapacity(service.LeaderDuties({}), enabled=False).report()
    assert off.verdict is Verdict.UNKNOWN and "disabled ([capacity] interval = 0)" in off.reason
