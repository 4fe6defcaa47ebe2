"""Agent heartbeats as detection's second signal: Nova down + agent alive never fences and says once
that nova-compute needs a restart; Nova down + agent silent fences; a host without an agent works on
Nova's signal alone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from petguard import detect
from petguard.decide import NOVA_DOWN_HOST_ALIVE, Outcome, TickDecision, TickInputs, decide
from petguard.detect import DetectionPolicy, Health
from petguard.hosts import HostState
from tests.unit.test_decide import POLICY, Sim

S = HostState


class AgentSim(Sim):
    """``Sim`` plus agents: ``heartbeats[host]`` is the time of the host's last heartbeat."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__(names)
        self.heartbeats: dict[str, float] = {}

    def tick(self, dt: float = 5.0, outcomes: Sequence[Outcome] = (), busy: Iterable[str] = ()) -> TickDecision:
        self.now += dt
        signals = [detect.agent_signal(h, at, self.now, self.policy.detection) for h, at in self.heartbeats.items()]
        inputs = TickInputs(
            now=self.now,
            started_at=self.started_at,
            hosts=dict(self.hosts),
            services=self.services(),
            brake=self.brake,
            outcomes=tuple(outcomes),
            requests=tuple(self.pending),
            busy=frozenset(busy),
            extra_signals=signals,
        )
        decision = decide(inputs, self.policy)
        assert decide(inputs, self.policy) == decision
        self.save(decision)
        self.decisions.append(decision)
        return decision

    def beat(self, *hosts: str) -> None:
        for host in hosts:
            self.heartbeats[host] = self.now


def test_agent_signal_is_up_while_fresh_and_down_when_stale() -> None:
    policy = DetectionPolicy(agent_stale_after=20.0)
    assert detect.agent_signal("h", 100.0, 120.0, policy).health is Health.UP
    stale = detect.agent_signal("h", 100.0, 120.5, policy)
    assert stale.health is Health.DOWN and stale.source == detect.AGENT_SOURCE
    assert "20 s" in stale.detail


def test_nova_down_with_a_live_agent_never_fences_and_alerts_once() -> None:
    sim = AgentSim(["cmp1", "cmp2", "cmp3", "cmp4"])
    sim.beat("cmp1")
    sim.tick()
    sim.nova["cmp1"] = "down"
    for _ in range(30):  # 150 s: five grace periods
        sim.beat("cmp1")
        sim.tick()
    assert sim.state("cmp1") is S.UP
    assert not sim.all_actions()
    alerts = sim.events_of("nova_compute_down", "cmp1")
    assert len(alerts) == 1 and "restart nova-compute" in alerts[0][2]
    assert sim.hosts["cmp1"].host.reason == NOVA_DOWN_HOST_ALIVE
    sim.nova["cmp1"] = "up"
    sim.tick()
    assert sim.hosts["cmp1"].host.reason == ""
    sim.nova["cmp1"] = "down"  # a second episode is a second alert
    sim.beat("cmp1")
    sim.tick()
    assert len(sim.events_of("nova_compute_down", "cmp1")) == 2


def test_nova_down_and_agent_silent_fences() -> None:
    sim = AgentSim(["cmp1", "cmp2", "cmp3", "cmp4"])
    sim.beat("cmp1")
    sim.tick()
    sim.run(12)  # the host died: its agent fell silent at once, Nova notices after service_down_time
    sim.nova["cmp1"] = "down"
    for _ in range(20):
        sim.tick()
        if sim.state("cmp1") is S.FENCING:
            break
    assert sim.state("cmp1") is S.FENCING
    assert not sim.events_of("nova_compute_down", "cmp1")


def test_agent_silent_but_nova_up_is_not_a_failure() -> None:
    sim = AgentSim(["cmp1", "cmp2", "cmp3"])
    sim.beat("cmp1")
    sim.run(20)  # the agent died long ago; nova-compute heartbeats
    assert sim.state("cmp1") is S.UP
    assert not sim.all_actions()


def test_a_host_without_an_agent_fences_on_novas_signal_alone() -> None:
    sim = AgentSim(["cmp1", "cmp2", "cmp3", "cmp4"])
    sim.beat("cmp2")  # only cmp2 has an agent
    sim.tick()
    sim.nova["cmp1"] = "down"
    for _ in range(20):
        sim.beat("cmp2")
        sim.tick()
    assert sim.state("cmp1") is S.FENCING
    assert sim.state("cmp2") is S.UP


def test_policy_default_keeps_agent_stale_after_above_a_few_heartbeats() -> None:
    assert POLICY.detection.agent_stale_after >= 4 * 5.0


def test_nova_down_everywhere_with_live_agents_is_one_control_plane_event() -> None:
    hosts = ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5"]
    sim = AgentSim(hosts)
    sim.beat(*hosts)
    sim.tick()
    for host in hosts:
        sim.nova[host] = "down"  # RabbitMQ is down: every nova-compute looks dead
    for _ in range(20):
        sim.beat(*hosts)
        sim.tick()
    assert all(sim.state(h) is S.UP for h in hosts) and not sim.all_actions()
    events = sim.events_of("nova_compute_down")
    assert len(events) == 1 and events[0][0] is None and "control-plane" in events[0][2]
