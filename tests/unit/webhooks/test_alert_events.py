"""The events added for alerts, recorded by the real decide(): one per meaningful change, quiet under the brake."""

from __future__ import annotations

from petguard.hosts import HostEvent as E
from petguard.hosts import HostState as S
from tests.unit.test_decide import Sim, outcome, until_state


def test_one_host_failure_tells_each_step() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.run(3)
    sim.nova["cmp1"] = "down"
    until_state(sim, "cmp1", S.FENCING)
    sim.tick(outcomes=[outcome("cmp1", E.FENCE_CONFIRMED, "fence_confirmed")])
    kinds = [kind for host, kind, _ in sim.events if host == "cmp1"]
    assert kinds == ["host_suspect", "fence_started", "fence_confirmed", "evacuation_started"]


def test_false_alarm_is_cleared() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"], started_at=1000.0)
    sim.run(3)
    sim.nova["cmp1"] = "down"
    until_state(sim, "cmp1", S.SUSPECT)
    sim.nova["cmp1"] = "up"
    until_state(sim, "cmp1", S.UP)
    assert [kind for host, kind, _ in sim.events if host == "cmp1"] == ["host_suspect", "suspect_cleared"]


def test_mass_failure_is_one_brake_alert_not_one_per_host() -> None:
    names = [f"cmp{i:02d}" for i in range(10)]
    sim = Sim(names)
    sim.tick()
    for name in names:
        sim.nova[name] = "down"
    sim.run(50)
    assert sim.brake.engaged
    for name in names:
        sim.nova[name] = "up"
    sim.run(10)
    assert not sim.brake.engaged
    suspect = [e for e in sim.events if e[1] in ("host_suspect", "suspect_cleared")]
    assert len(sim.events_of("brake_engaged")) == 1
    assert len(suspect) <= 2, suspect
