"""The BMC's power reading as a detection signal (``bmc``), attacked through ``detect`` and whole ticks of ``decide``.

The rule under attack (docs/detection.md, "The BMC as a signal"):

* the reading never votes in ``combine``: it cannot make a host DOWN (alone, or against a live agent or a
  fresh heartbeat), nor UP;
* OFF, read during the host's current down episode, lets a host that every other source calls DOWN fail
  ``bmc_settle`` seconds into that episode instead of ``grace_period``;
* ON, unreadable (an error, a timeout) change nothing: the normal path (grace, then fence);
* the mass-failure brake decides exactly as before, also when every BMC reads OFF (a power feed dropped).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence

import pytest

from petguard import detect
from petguard.cloud import ServiceRecord
from petguard.decide import LoopPolicy, Outcome, TickDecision, TickInputs, decide
from petguard.detect import (
    BMC_SOURCE,
    DetectionPolicy,
    HeartbeatSeen,
    HostHealth,
    Power,
    PowerReading,
    Signal,
    Verdict,
    bmc_signal,
    combine,
)
from petguard.detect import Health as H
from petguard.hosts import HostState
from petguard.journal import BrakeState
from tests.unit.test_decide import Sim
from tests.unit.test_decide_heartbeat import REPORT_INTERVAL, HeartbeatSim

S = HostState
TICK = 2.0
GRACE, SETTLE = 60.0, 10.0
DETECTION = DetectionPolicy(grace_period=GRACE, down_samples=2, up_samples=2, bmc_settle=SETTLE)
POLICY = LoopPolicy(detection=DETECTION, startup_blackout=0.0)
HOSTS = [f"cmp{i}" for i in range(6)]  # one host down of six: the brake stays open on its own

#: What the BMC reading says in each case (an error and a timeout both come out as UNREADABLE readings).
BMC_CASES: dict[str, tuple[Power, str] | None] = {
    "off": (Power.OFF, "ipmi 127.0.0.1:623 reads off"),
    "on": (Power.ON, "ipmi 127.0.0.1:623 reads on"),
    "error": (Power.UNREADABLE, "ipmi 127.0.0.1:623: BmcAuthError: the BMC refused the credentials"),
    "timeout": (Power.UNREADABLE, "ipmi 127.0.0.1:623: BmcUnreachable: no answer within 5.0 s"),
    "none": None,  # no reading yet (no fence device, the signal off, or the read still in flight)
}


def reading(host: str, case: str, at: float) -> PowerReading | None:
    found = BMC_CASES[case]
    return None if found is None else PowerReading(host, found[0], at, found[1])


# -- detect: the reading as a signal -------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in BMC_CASES if c != "none"])
def test_only_off_is_down_and_nothing_is_up(case: str) -> None:
    found = reading("cmp0", case, 5.0)
    assert found is not None
    signal = bmc_signal(found)
    assert signal.source == BMC_SOURCE and signal.host == "cmp0" and signal.at == 5.0
    assert signal.health is (H.DOWN if case == "off" else H.UNCERTAIN)
    assert signal.health is not H.UP
    assert found.detail in signal.detail


@pytest.mark.fault(
    "BMCSIG-01",
    guarantee="1",
    injected="a BMC power reading (OFF, ON, unreadable) folded with every other source's health (none, UP, "
    "DOWN, UNCERTAIN, an alert)",
    expected="the reading never votes: combine gives exactly what the other sources give without it; a "
    "reading alone is 'no signal', never DOWN",
)
@pytest.mark.parametrize("power", list(Power))
@pytest.mark.parametrize("others", [(), (H.UP,), (H.DOWN,), (H.UNCERTAIN,), (H.DOWN, H.UP), ("alert",)])
def test_a_reading_never_votes_in_combine(power: Power, others: Sequence[H | str]) -> None:
    votes = [
        Signal("alert:HostDown", "cmp0", H.DOWN, 1.0, "firing")
        if o == "alert"
        else Signal(f"src{i}", "cmp0", H(o), 1.0, "x")
        for i, o in enumerate(others)
    ]
    bmc = bmc_signal(PowerReading("cmp0", power, 1.0, "ipmi reads"))
    without, _ = combine(votes)
    with_bmc, _ = combine([*votes, bmc])
    assert with_bmc is without
    assert combine([bmc])[0] is H.UNCERTAIN


@pytest.mark.parametrize(
    ("off_at", "verdict"),
    [
        (None, Verdict.SUSPECT),  # no OFF: the grace period runs
        (100.0, Verdict.FAILED),  # OFF read at the episode's start, settle passed
        (99.0, Verdict.SUSPECT),  # OFF read before the episode began: not this episode's evidence
    ],
)
def test_assess_takes_an_off_only_from_this_down_episode(off_at: float | None, verdict: Verdict) -> None:
    previous = HostHealth(Verdict.SUSPECT, down_streak=5, down_since=100.0)
    now = 100.0 + SETTLE
    got = detect.assess(previous, H.DOWN, "x", DETECTION, now, powered_off_at=off_at)
    assert got.verdict is verdict


def test_assess_keeps_down_samples_and_settle_with_an_off() -> None:
    fresh = HostHealth()
    first = detect.assess(fresh, H.DOWN, "x", DETECTION, 100.0, powered_off_at=100.0)
    assert first.verdict is Verdict.UP  # one DOWN tick is not suspect, OFF or not
    second = detect.assess(first, H.DOWN, "x", DETECTION, 102.0, powered_off_at=100.0)
    assert second.verdict is Verdict.SUSPECT  # within bmc_settle
    later = detect.assess(second, H.DOWN, "x", DETECTION, 100.0 + SETTLE, powered_off_at=100.0)
    assert later.verdict is Verdict.FAILED


@pytest.mark.parametrize("health", [H.UP, H.UNCERTAIN])
def test_an_off_never_fails_a_host_that_is_not_down(health: H) -> None:
    previous = HostHealth(Verdict.SUSPECT, down_streak=5, down_since=100.0)
    got = detect.assess(previous, health, "x", DETECTION, 100.0 + GRACE * 2, powered_off_at=100.0)
    assert got.verdict is not Verdict.FAILED


# -- decide: every combination of sources, tick by tick --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    bmc: str  # key of BMC_CASES
    heartbeat: str  # "stale" or "fresh": petguard's reading of updated_at
    nova: str  # Nova's own state: "up" or "down"
    agent: str  # "up", "down" or "absent"
    brake: bool  # the stored brake already engaged (another cause)

    @property
    def down(self) -> bool:
        """Every source that speaks says DOWN (``combine``'s rule, the reading left out)."""
        nova_down = self.nova == "down" or self.heartbeat == "stale"
        return nova_down and self.agent != "up"

    @property
    def bad(self) -> bool:
        """Some source (not an alert) says DOWN: the loop is asked for a reading."""
        return self.nova == "down" or self.heartbeat == "stale" or self.agent == "down"


CASES = [
    Case(*combo)
    for combo in itertools.product(
        list(BMC_CASES), ["stale", "fresh"], ["up", "down"], ["up", "down", "absent"], [False, True]
    )
]


class SourcesSim(Sim):
    """``Sim`` over six hosts whose ``cmp0`` the case describes from ``since`` on; the others stay up."""

    def __init__(self, case: Case, policy: LoopPolicy = POLICY) -> None:
        super().__init__(HOSTS, policy, now=0.0)
        self.case = case
        self.since: float | None = None
        self.readings: dict[str, PowerReading] = {}

    def tick_sources(self) -> TickDecision:
        self.now += TICK
        if self.case.brake and "cmp0" in self.hosts and self.state("cmp0") is S.SUSPECT and not self.brake.engaged:
            # engaged by another cause (a brake on all hosts released only when every one is up again)
            self.brake = BrakeState(True, "many hosts suspect at once elsewhere", self.now)
        case, broken = self.case, self.since is not None
        services, seen, extra = [], {}, []
        for name in HOSTS:
            state = case.nova if broken and name == "cmp0" else "up"
            services.append(ServiceRecord(name, f"svc-{name}", state, "enabled", False, updated_at=1.0))
            stale = broken and name == "cmp0" and case.heartbeat == "stale"
            seen[name] = HeartbeatSeen(1.0, changed_at=self.now - (1000.0 if stale else 1.0), seen_at=self.now)
        if case.agent != "absent":
            for name in HOSTS:
                up = not (broken and name == "cmp0" and case.agent == "down")
                health, detail = (H.UP, "heartbeating") if up else (H.DOWN, "silent")
                extra.append(Signal("agent", name, health, self.now, detail))
        extra.extend(bmc_signal(r) for r in self.readings.values())
        inputs = TickInputs(
            now=self.now,
            started_at=0.0,
            hosts=dict(self.hosts),
            services=services,
            brake=self.brake,
            extra_signals=extra,
            heartbeats=seen,
        )
        decision = decide(inputs, self.policy)
        assert decide(inputs, self.policy) == decision
        self.save(decision)
        self.decisions.append(decision)
        # The loop reads the BMC of each host decide asks for (here at once, the answer by the next tick).
        for name in decision.power_reads:
            found = reading(name, case.bmc, self.now)
            if found is not None:
                self.readings[name] = found
        return decision

    def fenced_after(self) -> float | None:
        for d in self.decisions:
            for t in d.record.transitions:
                if t.host == "cmp0" and t.to_state is S.FENCING:
                    assert self.since is not None
                    return t.at - self.since
        return None


@pytest.mark.fault(
    "BMCSIG-02",
    guarantee="3",
    injected="cmp0's evidence turns bad in every combination of: BMC reading OFF / ON / auth error / timeout / "
    "none, petguard's heartbeat reading stale / fresh, Nova's state up / down, the agent up / down / absent, "
    "the brake already engaged or not; 120 s of 2 s ticks through decide",
    expected="fenced only when every source says DOWN and the brake is open: after bmc_settle (10 s) when the "
    "BMC read OFF during the down episode, else after the grace period (60 s); a live agent or a fresh "
    "heartbeat with Nova up: never; ON, error, timeout: never sooner than the grace period; a reading is "
    "asked only while some source says DOWN, and only for a host still watched",
)
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"bmc-{c.bmc}-hb-{c.heartbeat}-nova-{c.nova}-agent-{c.agent}-brake-{c.brake}"
)
def test_every_combination_of_sources(case: Case) -> None:
    sim = SourcesSim(case)
    for _ in range(5):
        decision = sim.tick_sources()
        assert decision.power_reads == ()  # everything healthy: no reading asked
    sim.since = sim.now + TICK  # the first tick that sees cmp0's evidence turn bad
    asked_while: list[str] = []
    for _ in range(60):
        decision = sim.tick_sources()
        asked_while.extend(decision.power_reads)
        assert set(decision.power_reads) <= {"cmp0"}
        if "cmp0" in decision.power_reads:
            assert sim.state("cmp0") in (S.UP, S.SUSPECT)  # a host being fenced is read by its fence
    fenced = sim.fenced_after()
    assert bool(asked_while) is case.bad
    if not case.down or case.brake:
        assert fenced is None
        assert sim.state("cmp0") in (S.UP, S.SUSPECT)
        return
    assert fenced is not None
    first_down_to_fence = fenced  # since is the first DOWN tick
    if case.bmc == "off":
        assert SETTLE <= first_down_to_fence <= SETTLE + 2 * TICK
        assert all("bmc: power reads OFF" in e[2] for e in sim.events_of("fence_started", "cmp0"))
    else:
        assert GRACE <= first_down_to_fence <= GRACE + 2 * TICK


def test_the_fence_started_event_says_the_bmc_read_off() -> None:
    sim = SourcesSim(Case("off", "stale", "up", "absent", False))
    for _ in range(3):
        sim.tick_sources()
    sim.since = sim.now + TICK
    for _ in range(10):
        sim.tick_sources()
    (event,) = sim.events_of("fence_started", "cmp0")
    assert "bmc: power reads OFF" in event[2]
    assert "ipmi 127.0.0.1:623 reads off" in event[2]


@pytest.mark.fault(
    "BMCSIG-03",
    guarantee="1",
    injected="cmp0's BMC read OFF while it was healthy-but-suspect earlier, the host recovered (UP), then its "
    "heartbeat goes stale again and the BMC cannot be read any more",
    expected="the old OFF belongs to an earlier episode and shortens nothing: fenced only after the grace period",
)
def test_an_off_from_an_earlier_episode_shortens_nothing() -> None:
    sim = SourcesSim(Case("timeout", "stale", "up", "absent", False))
    for _ in range(3):
        sim.tick_sources()
    sim.readings["cmp0"] = PowerReading("cmp0", Power.OFF, sim.now, "ipmi reads off (long ago)")
    sim.since = sim.now + TICK
    for _ in range(40):
        sim.tick_sources()
    fenced = sim.fenced_after()
    assert fenced is not None and fenced >= GRACE


# -- the brake: a power feed drops every host at once --------------------------------------------------------
class FeedSim(HeartbeatSim):
    """``HeartbeatSim`` whose dead hosts' BMCs read OFF the tick after they are asked."""

    def __init__(self, n: int, policy: LoopPolicy) -> None:
        super().__init__(n, policy)
        self.readings: dict[str, PowerReading] = {}

    def tick(self, dt: float = 2.0, outcomes: Sequence[Outcome] = (), busy: Iterable[str] = ()) -> TickDecision:
        self.agents_up.clear()
        decision = super().tick(dt, outcomes, busy)
        for name in decision.power_reads:
            if name in self.stopped:
                self.readings[name] = PowerReading(name, Power.OFF, self.now, "ipmi reads off")
        return decision

    def extra_signals(self) -> list[Signal]:
        return [bmc_signal(r) for r in self.readings.values()]


FEED_DETECTION = DetectionPolicy(grace_period=30.0, down_samples=2, up_samples=2, bmc_settle=1.5 * REPORT_INTERVAL)


@pytest.mark.fault(
    "BMCSIG-04",
    guarantee="3",
    injected="a power feed drops: every host (10 of 10, and 3 of 10) loses power at once; their heartbeats stop "
    "(each at its own phase within one report_interval) and every BMC reads OFF as soon as it is asked",
    expected="the brake decides exactly as before: it engages before any host's bmc_settle (15 s, 1.5 x "
    "report_interval) ends, and nobody is fenced, then or later",
)
@pytest.mark.parametrize("dead", [10, 3])
def test_a_power_feed_dropping_every_bmc_to_off_still_brakes(dead: int) -> None:
    sim = FeedSim(10, LoopPolicy(detection=FEED_DETECTION, startup_blackout=0.0))
    sim.run(50)
    for name in sim.names[:dead]:
        sim.stopped[name] = sim.now
    sim.run(100)
    assert sim.fencing_started() == {}
    assert sim.brake.engaged
    assert sim.readings, "the BMCs were read"


def test_one_dead_host_among_ten_is_fenced_at_settle_not_grace() -> None:
    sim = FeedSim(10, LoopPolicy(detection=FEED_DETECTION, startup_blackout=0.0))
    sim.run(50)
    sim.stopped["cmp03"] = dies = sim.now
    sim.run(60)
    started = sim.fencing_started()
    assert set(started) == {"cmp03"}
    # stale after 30 s (its last heartbeat up to one interval before), then 15 s settle instead of 30 s grace
    assert started["cmp03"] - dies <= 30.0 + 15.0 + 3 * 2.0
    assert not sim.brake.engaged
