"""The nova-heartbeat signal through whole ticks of ``decide``: a host that stops heartbeating is fenced about
30 s sooner than on Nova's own state; a stall of the control plane fences nobody.

``HeartbeatSim`` is ``tests.unit.test_decide.Sim`` with Nova's clock: every service writes its heartbeat
(``updated_at``, on a Nova clock hours off petguard's) every ``report_interval`` at its own phase until
it stops; Nova reports it down ``service_down_time`` after its last heartbeat. The loop's memory of the
heartbeats is folded in each tick as ``petguard.reconcile`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import pytest

from petguard.cloud import ServiceRecord
from petguard.decide import NOVA_DOWN_HOST_ALIVE, LoopPolicy, Outcome, TickDecision, TickInputs, decide
from petguard.detect import DetectionPolicy, HeartbeatSeen, Signal, observe_heartbeats
from petguard.detect import Health as H
from petguard.hosts import HostState
from tests.unit.test_decide import Sim

S = HostState
REPORT_INTERVAL, SERVICE_DOWN_TIME = 10.0, 60.0
SKEW = -9 * 3600.0  # Nova's database clock, hours behind petguard's: it never matters
DETECTION = DetectionPolicy(grace_period=30.0, down_samples=2, up_samples=2)
POLICY = LoopPolicy(detection=DETECTION, startup_blackout=0.0)
NOVA_ONLY = LoopPolicy(detection=dataclasses.replace(DETECTION, heartbeat_stale_after=0.0), startup_blackout=0.0)


class HeartbeatSim(Sim):
    """``Sim`` whose services heartbeat on Nova's clock; ``stopped[host]`` is when one stopped."""

    def __init__(self, n: int, policy: LoopPolicy = POLICY) -> None:
        self.names = [f"cmp{i:02d}" for i in range(n)]
        super().__init__(self.names, policy, now=0.0)
        self.stopped: dict[str, float] = {}
        self.forced_by_operator: set[str] = set()
        self.agents_up: set[str] = set()
        self.memory: dict[str, HeartbeatSeen] = {}

    def last_beat(self, name: str) -> float:
        phase = self.names.index(name) * REPORT_INTERVAL / len(self.names)
        t = min(self.now, self.stopped.get(name, self.now))
        return t - (t - phase) % REPORT_INTERVAL

    def services(self) -> list[ServiceRecord]:
        out = []
        for record in super().services():
            if record.forced_down:
                out.append(record)
                continue
            beat = self.last_beat(record.host)
            state = "down" if self.now - beat > SERVICE_DOWN_TIME else "up"
            forced = record.host in self.forced_by_operator
            out.append(
                dataclasses.replace(
                    record,
                    state="down" if forced else state,
                    forced_down=forced,
                    disabled_reason="operator: BIOS update" if forced else None,
                    updated_at=beat + SKEW,
                )
            )
        return out

    def tick(self, dt: float = 2.0, outcomes: Sequence[Outcome] = (), busy: Iterable[str] = ()) -> TickDecision:
        self.now += dt
        services = self.services()
        self.memory = observe_heartbeats(self.memory, services, self.now, self.now)
        inputs = TickInputs(
            now=self.now,
            started_at=self.started_at,
            hosts=dict(self.hosts),
            services=services,
            brake=self.brake,
            outcomes=tuple(outcomes),
            busy=frozenset(busy),
            extra_signals=self.extra_signals(),
            recent_fences=self.recent_fences(),
            heartbeats=self.memory,
        )
        decision = decide(inputs, self.policy)
        self.save(decision)
        self.decisions.append(decision)
        return decision

    def extra_signals(self) -> list[Signal]:
        """The tick's signals besides Nova's: the live agents (a subclass adds its own)."""
        return [Signal("agent", name, H.UP, self.now, "heartbeating") for name in sorted(self.agents_up)]

    def run(self, ticks: int, dt: float = 2.0, busy: Iterable[str] = ()) -> list[TickDecision]:
        return [self.tick(dt, busy=busy) for _ in range(ticks)]

    def fencing_started(self) -> dict[str, float]:
        return {t.host: t.at for d in self.decisions for t in d.record.transitions if t.to_state is S.FENCING}


def fenced_at(policy: LoopPolicy, host: str = "cmp03", dies_at: float = 100.0) -> float:
    sim = HeartbeatSim(10, policy)
    sim.run(int(dies_at / 2.0), dt=2.0)
    sim.stopped[host] = dies_at
    for _ in range(100):
        sim.tick()
        started = sim.fencing_started()
        if started:
            assert set(started) == {host}
            return started[host] - dies_at
    raise AssertionError(f"{host} never fenced")


def test_a_dead_host_is_fenced_about_30_s_sooner_than_on_novas_own_state() -> None:
    """Last heartbeat up to report_interval before the power cut; stale 30 s later, then the grace."""
    with_heartbeat, nova_only = fenced_at(POLICY), fenced_at(NOVA_ONLY)
    assert 30.0 + 30.0 - REPORT_INTERVAL <= with_heartbeat <= 30.0 + 30.0 + 3 * 2.0
    assert SERVICE_DOWN_TIME + 30.0 - REPORT_INTERVAL <= nova_only <= SERVICE_DOWN_TIME + 30.0 + 3 * 2.0
    assert nova_only - with_heartbeat == pytest.approx(SERVICE_DOWN_TIME - 30.0, abs=4.0)


@pytest.mark.fault(
    "STALE-08",
    guarantee="3",
    injected="nova-conductor (or RabbitMQ, or Nova's database) stalls: no service's updated_at moves any more "
    "while Nova still reports all of them up for service_down_time; 10 hosts and 3 hosts, through decide",
    expected="the heartbeat calls them down over one report_interval, the brake engages ('stale nearly "
    "everywhere' or too many suspects) before any grace period ends: nobody is fenced, then or after",
)
@pytest.mark.parametrize("n", [10, 3])
def test_a_control_plane_stall_fences_nobody(n: int) -> None:
    sim = HeartbeatSim(n)
    sim.run(50)
    for name in sim.names:
        sim.stopped[name] = sim.now
    sim.run(150)  # 300 s: through petguard's staleness, Nova's own down and beyond
    assert sim.fencing_started() == {}
    assert sim.brake.engaged
    engaged = sim.events_of("brake_engaged")
    assert len(engaged) == 1, "engaged once, and held"
    assert all(sim.state(name) is S.SUSPECT for name in sim.names)


def test_the_stall_brakes_before_nova_itself_reports_anything_down() -> None:
    sim = HeartbeatSim(10)
    sim.run(50)
    for name in sim.names:
        sim.stopped[name] = sim.now
    stalled = sim.now
    while not sim.brake.engaged:
        sim.tick()
        assert all(s.state == "up" for s in sim.services())  # Nova still says every one is up
    assert sim.now - stalled <= 30.0 + REPORT_INTERVAL + 2 * 2.0


def test_a_host_whose_heartbeat_moves_is_never_suspect() -> None:
    sim = HeartbeatSim(10)
    sim.run(1800)  # one hour of 2 s ticks
    assert all(sim.state(name) is S.UP for name in sim.names)
    assert sim.events_of("host_suspect") == []


def test_a_host_forced_down_by_an_operator_is_never_fenced_on_its_stale_heartbeat() -> None:
    sim = HeartbeatSim(10)
    sim.run(50)
    sim.forced_by_operator.add("cmp03")
    sim.stopped["cmp03"] = sim.now  # the operator stopped nova-compute too
    sim.run(300)
    assert sim.fencing_started() == {}
    assert sim.state("cmp03") is S.UP


def test_a_stale_heartbeat_with_a_live_agent_is_never_fenced_and_is_told() -> None:
    sim = HeartbeatSim(10)
    sim.agents_up.add("cmp03")
    sim.run(50)
    sim.stopped["cmp03"] = sim.now  # nova-compute hung; the host and its agent live
    sim.run(300)
    assert sim.fencing_started() == {}
    assert sim.state("cmp03") is S.UP
    assert sim.hosts["cmp03"].host.reason == NOVA_DOWN_HOST_ALIVE
    assert len(sim.events_of("nova_compute_down", "cmp03")) == 1


def test_the_signal_shows_in_the_hosts_detail() -> None:
    sim = HeartbeatSim(10)
    sim.run(50)
    sim.stopped["cmp03"] = sim.now
    sim.run(20)
    detail = sim.hosts["cmp03"].health.detail
    assert detail.startswith("nova-heartbeat: updated_at unchanged for more than 30 s")
