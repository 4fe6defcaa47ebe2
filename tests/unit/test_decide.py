"""One tick's decisions, driven through whole scenarios tick by tick.

``Sim`` plays the loop and the store: it builds ``TickInputs``, calls ``decide`` and saves the
``TickRecord`` the way the store does (hosts overwrite; opened incidents get the next id and are
attached to their host; closing one detaches it; finished requests leave the queue). Nothing here
runs an action: outcomes are fed back by hand, as an action lane would report them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petguard.cloud import ServiceRecord
from petguard.decide import Action, LoopPolicy, Outcome, TickDecision, TickInputs, decide
from petguard.detect import RATE_LIMIT, DetectionPolicy, FenceStart, HostHealth, Verdict
from petguard.hosts import Host, HostEvent, HostState
from petguard.journal import BrakeState, HostRecord, OperatorRequest, RequestKind

S, E = HostState, HostEvent
DETECTION = DetectionPolicy(grace_period=30.0, down_samples=2, up_samples=2)
POLICY = LoopPolicy(detection=DETECTION, startup_blackout=0.0)
PETGUARD_REASON = "petguard: incident 1: host fenced"


@dataclasses.dataclass
class IncidentRow:
    host: str
    reason: str
    outcome: str | None = None


class Sim:
    """The loop and the store around ``decide``; time advances only when told."""

    def __init__(
        self, names: Iterable[str], policy: LoopPolicy = POLICY, now: float = 1000.0, started_at: float | None = None
    ) -> None:
        self.policy = policy
        self.now = now
        self.started_at = now if started_at is None else started_at
        self.nova: dict[str, str | None] = {name: "up" for name in names}  # None: missing from Nova's list
        self.hosts: dict[str, HostRecord] = {}
        self.brake = BrakeState()
        self.incidents: dict[int, IncidentRow] = {}
        self.events: list[tuple[str | None, str, str]] = []
        self.pending: list[OperatorRequest] = []
        self.finished: dict[int, tuple[str, str]] = {}
        self.decisions: list[TickDecision] = []
        self.fences: list[FenceStart] = []  # every transition into FENCING, as the journal keeps them
        self._next_request = 1
        self._next_incident = 100

    # -- the world -------------------------------------------------------------------------------
    def services(self) -> list[ServiceRecord]:
        out = []
        for name, state in sorted(self.nova.items()):
            if state is None:
                continue
            record = self.hosts.get(name)
            held = record is not None and record.host.state in (S.FENCED, S.EVACUATING, S.EVACUATED)
            if held:  # petguard forced it down and disabled it (the restore lane unforces it)
                out.append(ServiceRecord(name, f"svc-{name}", "down", "disabled", True, None, PETGUARD_REASON))
            else:
                out.append(ServiceRecord(name, f"svc-{name}", state, "enabled", False))
        return out

    def request(self, host: str, kind: RequestKind, reason: str = "because") -> int:
        rid = self._next_request
        self._next_request += 1
        self.pending.append(OperatorRequest(rid, host, kind, reason, "alice", self.now))
        return rid

    # -- one tick ----------------------------------------------------------------------------------
    def tick(self, dt: float = 5.0, outcomes: Sequence[Outcome] = (), busy: Iterable[str] = ()) -> TickDecision:
        self.now += dt
        inputs = TickInputs(
            now=self.now,
            started_at=self.started_at,
            hosts=dict(self.hosts),
            services=self.services(),
            brake=self.brake,
            outcomes=tuple(outcomes),
            requests=tuple(self.pending),
            busy=frozenset(busy),
            recent_fences=self.recent_fences(),
        )
        decision = decide(inputs, self.policy)
        assert decide(inputs, self.policy) == decision  # pure: same inputs, same decision
        self.save(decision)
        self.decisions.append(decision)
        return decision

    def run(self, ticks: int, dt: float = 5.0, busy: Iterable[str] = ()) -> list[TickDecision]:
        return [self.tick(dt, busy=busy) for _ in range(ticks)]

    def recent_fences(self) -> list[FenceStart]:
        """What the loop reads from the journal: the fences started within the rate-limit window."""
        since = self.now - self.policy.detection.fence_rate_window
        return [f for f in self.fences if f.at > since]

    def save(self, decision: TickDecision) -> None:
        record = decision.record
        self.fences.extend(FenceStart(t.host, t.at) for t in record.transitions if t.to_state is S.FENCING)
        for host_record in record.hosts:
            self.hosts[host_record.host.name] = host_record
        for name, reason in record.open_incidents:
            iid = self._next_incident
            self._next_incident += 1
            self.incidents[iid] = IncidentRow(name, reason)
            self._attach(name, iid)
        for iid, outcome in record.close_incidents:
            assert self.incidents[iid].outcome is None, "incident closed twice"
            self.incidents[iid].outcome = outcome
            name = self.incidents[iid].host
            if self.hosts[name].host.incident_id == iid:
                self._attach(name, None)
        self.events.extend(record.events)
        done = {rid for rid, _, _ in record.finished_requests}
        for rid, result, message in record.finished_requests:
            self.finished[rid] = (result, message)
        self.pending = [r for r in self.pending if r.id not in done]
        if record.brake is not None:
            self.brake = record.brake

    def _attach(self, name: str, iid: int | None) -> None:
        rec = self.hosts[name]
        self.hosts[name] = dataclasses.replace(rec, host=rec.host.with_incident(iid))

    # -- reading -----------------------------------------------------------------------------------
    def state(self, name: str) -> HostState:
        return self.hosts[name].host.state

    def events_of(self, kind: str, host: str | None = "*") -> list[tuple[str | None, str, str]]:
        return [e for e in self.events if e[1] == kind and (host == "*" or e[0] == host)]

    def all_actions(self) -> list[tuple[str, Action]]:
        return [a for d in self.decisions for a in d.actions]


def until_state(sim: Sim, name: str, state: HostState, max_ticks: int = 50, **kw: object) -> TickDecision:
    for _ in range(max_ticks):
        decision = sim.tick(**kw)  # type: ignore[arg-type]
        if sim.state(name) is state:
            return decision
    raise AssertionError(f"{name} never reached {state.value}; it is {sim.state(name).value}")


def store_host(sim: Sim, name: str, state: HostState, verdict: Verdict = Verdict.FAILED) -> int:
    """Put ``name`` in the store in ``state``, with an open incident (as a previous run left it)."""
    iid = sim._next_incident
    sim._next_incident += 1
    sim.incidents[iid] = IncidentRow(name, "left by a previous run")
    sim.hosts[name] = HostRecord(Host(name, state, since=0.0, incident_id=iid), HostHealth(verdict, 5, 0, 0.0, "down"))
    return iid


def outcome(host: str, event: HostEvent, alert: str | None = None) -> Outcome:
    return Outcome(host, event, f"lane says {event.value}", alert)


# -- the whole life of one failure ---------------------------------------------------------------------


def test_host_dies_is_fenced_evacuated_and_restored() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    first = sim.tick()
    assert {n: sim.state(n) for n in sim.nova} == dict.fromkeys(sim.nova, S.UP)
    assert sum("new compute host" in line for line in first.log) == 3
    assert sim.run(3)[-1].actions == ()

    sim.nova["cmp1"] = "down"
    sim.tick()
    assert sim.state("cmp1") is S.UP  # one sample is not enough
    sim.tick()
    assert sim.state("cmp1") is S.SUSPECT
    assert sim.hosts["cmp1"].host.incident_id == 100 and sim.incidents[100].host == "cmp1"
    fencing = until_state(sim, "cmp1", S.FENCING)
    assert fencing.actions == (("cmp1", Action.FENCE),)
    assert sim.now - 1020.0 >= DETECTION.grace_period  # down since the first DOWN tick at 1020

    # while the lane fences, nothing new starts for cmp1
    assert all(d.actions == () for d in sim.run(3, busy={"cmp1"}))
    assert sim.state("cmp1") is S.FENCING

    evacuating = sim.tick(outcomes=[outcome("cmp1", E.FENCE_CONFIRMED, "fence_confirmed")])
    assert sim.state("cmp1") is S.EVACUATING
    assert [(t.from_state, t.to_state) for t in evacuating.record.transitions] == [
        (S.FENCING, S.FENCED),
        (S.FENCED, S.EVACUATING),
    ]
    assert evacuating.actions == (("cmp1", Action.EVACUATE),)
    assert sim.events_of("fence_confirmed", "cmp1")

    sim.run(3, busy={"cmp1"})
    finished = sim.tick(outcomes=[outcome("cmp1", E.EVACUATION_FINISHED, "evacuation_finished")])
    assert sim.state("cmp1") is S.EVACUATED and finished.actions == ()
    assert all(d.actions == () for d in sim.run(10))  # held down until an operator restores it
    assert sim.state("cmp1") is S.EVACUATED

    rid = sim.request("cmp1", RequestKind.RESTORE)
    restoring = sim.tick()
    assert sim.state("cmp1") is S.RESTORING and restoring.actions == (("cmp1", Action.RESTORE),)
    assert sim.finished[rid][0] == "done"
    sim.nova["cmp1"] = "up"
    sim.tick(outcomes=[outcome("cmp1", E.SERVICE_RESTORED)])
    assert sim.state("cmp1") is S.UP
    assert sim.incidents[100].outcome == "recovered" and sim.hosts["cmp1"].host.incident_id is None

    # back in service: a healthy host is not suspected again
    sim.run(10)
    assert sim.state("cmp1") is S.UP and len(sim.incidents) == 1


def test_restored_host_gets_a_fresh_grace_period() -> None:
    """After a restore the debouncing starts from scratch: no instant FAILED from the old incident."""
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    store_host(sim, "cmp1", S.RESTORING)
    sim.tick(outcomes=[outcome("cmp1", E.SERVICE_RESTORED)])
    assert sim.state("cmp1") is S.UP
    assert sim.hosts["cmp1"].health.verdict is Verdict.UP
    sim.nova["cmp1"] = "down"
    sim.run(3)
    assert sim.state("cmp1") is S.SUSPECT  # suspect again, but not fenced before its grace period
    assert ("cmp1", Action.FENCE) not in sim.all_actions()


@pytest.mark.fault(
    "OP-01",
    guarantee="1",
    injected="an operator's confirm-fenced on a host in AWAITING_CONFIRM (its fence could not be confirmed)",
    expected="nothing is evacuated before it; its pets are evacuated after it",
)
def test_fence_failure_waits_for_the_operator() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    until_state(sim, "cmp1", S.FENCING)
    failed = sim.tick(outcomes=[outcome("cmp1", E.FENCE_FAILED, "awaiting_confirm")])
    assert sim.state("cmp1") is S.AWAITING_CONFIRM and failed.actions == ()
    assert len(sim.events_of("awaiting_confirm", "cmp1")) == 1
    sim.run(50)
    assert sim.state("cmp1") is S.AWAITING_CONFIRM
    assert ("cmp1", Action.EVACUATE) not in sim.all_actions()
    assert sim.all_actions().count(("cmp1", Action.FENCE)) == 1

    rid = sim.request("cmp1", RequestKind.CONFIRM_FENCED, "powered off at the PDU")
    confirmed = sim.tick()
    assert sim.finished[rid][0] == "done"
    assert sim.state("cmp1") is S.EVACUATING and confirmed.actions == (("cmp1", Action.EVACUATE),)
    assert [t.to_state for t in confirmed.record.transitions] == [S.FENCED, S.EVACUATING]
    assert sim.events_of("operator_confirm_fenced", "cmp1")


@pytest.mark.fault(
    "DET-04",
    guarantee="-",
    injected="a host down for less than the grace period, then up again",
    expected="SUSPECT then UP, the incident closed as false_alarm, no action",
)
def test_flaky_host_recovers_before_grace_and_incident_closes_as_false_alarm() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(2)
    assert sim.state("cmp1") is S.SUSPECT
    sim.nova["cmp1"] = "up"
    sim.run(2)
    assert sim.state("cmp1") is S.UP
    assert sim.incidents[100].outcome == "false_alarm"
    assert sim.hosts["cmp1"].host.incident_id is None
    assert not sim.all_actions()


@pytest.mark.fault(
    "DET-03",
    guarantee="1",
    injected="a host's signals flap between down and up, never down for a whole grace period",
    expected="never judged failed, never fenced",
)
def test_flapping_host_is_never_fenced() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(2)
    for i in range(60):
        sim.nova["cmp1"] = "up" if i % 3 == 0 else "down"
        sim.tick()
    assert sim.state("cmp1") is S.SUSPECT
    assert not sim.all_actions()


# -- the mass-failure brake -----------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "dead"), [(3, 3), (10, 3), (10, 10), (2, 2)])
@pytest.mark.fault(
    "BRAKE-02",
    guarantee="3",
    injected="several hosts go down at once (3 of 3, 3 of 10, 10 of 10, 2 of 2)",
    expected="brake engaged once, no fence, one fence_held per host; released only when every host is up again",
)
def test_mass_failure_brakes_and_nobody_is_fenced(size: int, dead: int) -> None:
    names = [f"cmp{i:02d}" for i in range(size)]
    sim = Sim(names)
    sim.tick()
    for name in names[:dead]:
        sim.nova[name] = "down"
    sim.run(100)
    assert sim.brake.engaged
    assert len(sim.events_of("brake_engaged")) == 1
    assert not sim.all_actions()
    assert all(sim.state(n) is S.SUSPECT for n in names[:dead])
    # one host is held once, not every tick
    for name in names[:dead]:
        assert len(sim.events_of("fence_held", name)) == 1

    # recovering one by one: the brake stays engaged until every watched host is up
    for name in names[:dead]:
        sim.nova[name] = "up"
        sim.run(3)
        if name != names[dead - 1]:
            assert sim.brake.engaged
    assert not sim.brake.engaged
    assert len(sim.events_of("brake_released")) == 1
    assert all(sim.state(n) is S.UP for n in names)
    assert not sim.all_actions()


def test_two_host_cloud_one_dies_is_fenced() -> None:
    sim = Sim(["cmp1", "cmp2"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    until_state(sim, "cmp1", S.FENCING)
    assert not sim.brake.engaged


def test_sequential_failures_are_each_fenced_when_the_rate_limit_is_off() -> None:
    policy = dataclasses.replace(POLICY, detection=dataclasses.replace(DETECTION, fence_rate_max=0))
    sim = Sim([f"cmp{i}" for i in range(10)], policy=policy)
    sim.tick()
    for name in ("cmp1", "cmp2", "cmp3", "cmp4", "cmp5"):
        sim.nova[name] = "down"
        until_state(sim, name, S.FENCING)
    assert not sim.brake.engaged


# -- the fence rate limit (the brake over time) ------------------------------------------------------------

TEN_MIN = 120  # ticks of 5 s


def fence_and_evacuate(sim: Sim, name: str) -> None:
    """``name`` dies, is fenced (the lane confirms) and its pets evacuated: it leaves the watched hosts."""
    sim.nova[name] = "down"
    until_state(sim, name, S.FENCING)
    sim.tick(outcomes=[outcome(name, E.FENCE_CONFIRMED, "fence_confirmed")])
    sim.tick(outcomes=[outcome(name, E.EVACUATION_FINISHED, "evacuation_finished")])
    assert sim.state(name) is S.EVACUATED


def rolling_failure(sim: Sim, names: Sequence[str]) -> None:
    """One host after another, ten minutes apart, each fenced and evacuated (a rolling failure)."""
    sim.tick()
    for name in names:
        fence_and_evacuate(sim, name)
        sim.run(TEN_MIN)
    assert not sim.brake.engaged


@pytest.mark.fault(
    "BRAKE-03",
    guarantee="3",
    injected="hosts fail one after another, more than fence_rate_max within fence_rate_window (a rolling failure)",
    expected="the first fence_rate_max are fenced; then the brake, its reason naming the fences, the limit, the next "
    "host and `petguard brake override`",
)
def test_rolling_failure_fences_three_then_brakes_and_says_why() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2", "cmp3"])
    sim.nova["cmp4"] = "down"
    sim.run(20)
    assert sim.hosts["cmp4"].health.verdict is Verdict.FAILED
    assert sim.state("cmp4") is S.SUSPECT
    assert sim.brake.engaged and sim.brake.reason.startswith("fence rate limit")
    assert "3 fences started in the last 60 min (cmp1, cmp2, cmp3)" in sim.brake.reason
    assert "cmp4 would be next" in sim.brake.reason
    [engaged] = sim.events_of("brake_engaged")
    assert engaged[0] is None and "fence rate limit" in engaged[2] and "`petguard brake override`" in engaged[2]
    [held] = sim.events_of("fence_held", "cmp4")
    assert "fence rate limit" in held[2]
    fenced = [name for name, action in sim.all_actions() if action is Action.FENCE]
    assert fenced == ["cmp1", "cmp2", "cmp3"]


def test_rate_brake_does_not_release_when_the_window_slides_while_a_host_is_still_down() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2", "cmp3"])
    sim.nova["cmp4"] = "down"
    sim.run(12 * TEN_MIN)  # two hours: every fence left the window
    assert not sim.recent_fences()
    assert sim.brake.engaged and sim.state("cmp4") is S.SUSPECT
    assert ("cmp4", Action.FENCE) not in sim.all_actions()
    assert len(sim.events_of("brake_engaged")) == 1 and len(sim.events_of("fence_held", "cmp4")) == 1


def test_after_the_window_with_every_host_up_fencing_works_again() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2", "cmp3"])
    sim.nova["cmp4"] = "down"
    sim.run(20)
    sim.nova["cmp4"] = "up"  # it came back by itself: every watched host is up
    sim.run(3)
    assert not sim.brake.engaged and sim.events_of("brake_released")
    # still inside the window: the next failure is braked again
    sim.nova["cmp5"] = "down"
    sim.run(20)
    assert sim.brake.engaged and sim.state("cmp5") is S.SUSPECT
    sim.nova["cmp5"] = "up"
    sim.run(6 * TEN_MIN)  # the window passed with every host up
    assert not sim.brake.engaged
    sim.nova["cmp6"] = "down"
    until_state(sim, "cmp6", S.FENCING)
    assert not sim.brake.engaged


def test_operator_override_lets_the_rate_braked_host_be_fenced() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2", "cmp3"])
    sim.nova["cmp4"] = "down"
    sim.run(20)
    assert sim.brake.engaged
    rid = sim.request("*", RequestKind.BRAKE_OVERRIDE, "checked: three unrelated disk failures")
    decision = sim.tick()
    assert sim.finished[rid][0] == "done"
    assert decision.actions == (("cmp4", Action.FENCE),)


def test_operator_fence_follows_the_brake_rules_under_the_rate_limit() -> None:
    """Refused while the rate brake holds (override first); accepted while it is open, and it counts."""
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2"])
    rid = sim.request("cmp7", RequestKind.FENCE, "disk controller errors")
    sim.tick()
    assert sim.finished[rid][0] == "done" and sim.state("cmp7") is S.FENCING  # the third fence
    sim.nova["cmp4"] = "down"
    sim.run(20)
    assert sim.brake.engaged and "(cmp1, cmp2, cmp7)" in sim.brake.reason
    rid = sim.request("cmp8", RequestKind.FENCE, "also suspicious")
    sim.tick()
    result, message = sim.finished[rid]
    assert result == "refused" and "fence rate limit" in message and "override the brake" in message


def test_a_fence_started_within_the_limit_is_finished_under_the_rate_brake() -> None:
    """Guarantee 4: the rate limit stops new fences; a started one (resumed after a restart) goes on."""
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2"])
    sim.nova["cmp3"] = "down"
    until_state(sim, "cmp3", S.FENCING)  # the third fence; then the daemon restarts: its lane is gone
    sim.nova["cmp4"] = "down"
    decisions = sim.run(20, busy={"cmp3"})
    assert sim.brake.engaged and sim.brake.reason.startswith("fence rate limit")
    assert all(("cmp4", Action.FENCE) not in d.actions for d in decisions)
    assert ("cmp3", Action.FENCE) in sim.tick().actions  # not busy any more: resumed
    assert not sim.events_of("fence_held", "cmp3")


def test_a_mass_failure_under_the_rate_brake_holds_resumed_fences_too() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2"])
    sim.nova["cmp3"] = "down"
    until_state(sim, "cmp3", S.FENCING)
    sim.nova["cmp4"] = "down"
    sim.run(20, busy={"cmp3"})
    assert sim.brake.reason.startswith("fence rate limit")
    for name in ("cmp5", "cmp6", "cmp7"):  # now many at once: a mass failure as well
        sim.nova[name] = "down"
    sim.run(3, busy={"cmp3"})
    decisions = sim.run(5)
    assert all(("cmp3", Action.FENCE) not in d.actions for d in decisions)
    assert len(sim.events_of("fence_held", "cmp3")) == 1


@pytest.mark.fault(
    "BRAKE-05",
    guarantee="3",
    injected="two hosts fail together when the rate limit leaves room for one fence",
    expected="both are held, the brake naming both as next",
)
def test_two_hosts_failing_together_beyond_the_limit_are_both_held() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    rolling_failure(sim, ["cmp1", "cmp2"])
    sim.nova["cmp4"] = sim.nova["cmp5"] = "down"
    sim.run(20)
    assert sim.brake.engaged and "cmp4, cmp5 would be next" in sim.brake.reason
    assert sim.state("cmp4") is S.SUSPECT and sim.state("cmp5") is S.SUSPECT


def test_fences_outside_the_window_do_not_count() -> None:
    sim = Sim([f"cmp{i}" for i in range(10)])
    sim.fences = [FenceStart(f"cmp{i}", sim.now - 3600.0 + 30.0) for i in (7, 8, 9)]  # leave it in 35 s
    sim.tick()
    sim.nova["cmp1"] = "down"
    until_state(sim, "cmp1", S.FENCING)  # failed after 40 s: the three old fences are out of the window
    assert not sim.brake.engaged
    assert sim.now - 3600.0 >= sim.fences[0].at


def test_fences_inside_the_window_count_from_the_journal() -> None:
    """The count is the journal's (e.g. fences of an earlier run of the daemon), not this run's memory."""
    sim = Sim([f"cmp{i}" for i in range(10)])
    sim.fences = [FenceStart(f"cmp{i}", sim.now - 1800.0) for i in (7, 8, 9)]
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(20)
    assert sim.brake.engaged and sim.state("cmp1") is S.SUSPECT


def test_single_host_cloud_is_never_braked_by_the_rate_limit() -> None:
    sim = Sim(["cmp1"])
    sim.tick()
    for _ in range(5):
        fence_and_evacuate(sim, "cmp1")
        sim.request("cmp1", RequestKind.RESTORE)
        sim.tick()
        sim.nova["cmp1"] = "up"
        sim.tick(outcomes=[outcome("cmp1", E.SERVICE_RESTORED)])
        assert sim.state("cmp1") is S.UP
    assert len(sim.recent_fences()) == 5
    assert not sim.brake.engaged and not sim.events_of("brake_engaged")


def test_brake_override_lets_fencing_proceed() -> None:
    names = [f"cmp{i}" for i in range(10)]
    sim = Sim(names)
    sim.tick()
    for name in names[:3]:
        sim.nova[name] = "down"
    sim.run(20)
    assert sim.brake.engaged and not sim.all_actions()
    rid = sim.request("*", RequestKind.BRAKE_OVERRIDE, "rack 4 lost power, checked")
    decision = sim.tick()
    assert sim.finished[rid][0] == "done"
    assert sim.events_of("brake_override")
    assert sorted(decision.actions) == [(n, Action.FENCE) for n in names[:3]]
    assert sim.brake.override_until == pytest.approx(sim.now + POLICY.brake_override_s)


def test_brake_override_expires() -> None:
    names = [f"cmp{i}" for i in range(10)]
    sim = Sim(names, policy=dataclasses.replace(POLICY, brake_override_s=10.0))
    sim.tick()
    sim.request("*", RequestKind.BRAKE_OVERRIDE)
    sim.tick()
    sim.run(5)  # the override ran out
    for name in names[:3]:
        sim.nova[name] = "down"
    sim.run(20)
    assert sim.brake.engaged and not sim.all_actions()


@pytest.mark.fault(
    "BRAKE-06",
    guarantee="3",
    injected="a host stored in FENCING (a restart, a crashed lane) while the brake is engaged",
    expected="not fenced again, one fence_held; fenced once an operator overrides the brake",
)
def test_no_fence_resumes_while_the_brake_is_engaged() -> None:
    """A host stored in FENCING (restart, crashed lane) is not fenced again while the brake holds."""
    names = [f"cmp{i}" for i in range(10)]
    sim = Sim(names)
    sim.tick()
    for name in names[1:4]:
        sim.nova[name] = "down"
    sim.run(5)
    assert sim.brake.engaged
    sim.nova["cmp0"] = "down"
    store_host(sim, "cmp0", S.FENCING)
    sim.run(10)
    assert not sim.all_actions()
    assert len(sim.events_of("fence_held", "cmp0")) == 1
    sim.request("*", RequestKind.BRAKE_OVERRIDE)
    assert ("cmp0", Action.FENCE) in sim.tick().actions


# -- holds: startup blackout, dry run, busy lanes ----------------------------------------------------


@pytest.mark.fault(
    "PG-06",
    guarantee="3",
    injected="petguard restarted: a host fails within the startup blackout",
    expected="not fenced during the blackout, said once; fenced after it",
)
def test_startup_blackout_holds_fencing_and_says_so_once() -> None:
    policy = dataclasses.replace(POLICY, startup_blackout=120.0)
    sim = Sim(["cmp1", "cmp2", "cmp3"], policy=policy)
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(20)  # 100 s after start: failed long ago, still in the blackout
    assert sim.hosts["cmp1"].health.verdict is Verdict.FAILED
    assert sim.state("cmp1") is S.SUSPECT and not sim.all_actions()
    assert len(sim.events_of("fence_held", "cmp1")) == 1
    held_logs = [line for d in sim.decisions for line in d.log if "not fenced" in line]
    assert len(held_logs) == 1 and "blackout" in held_logs[0]
    until_state(sim, "cmp1", S.FENCING, max_ticks=5)
    assert sim.now >= sim.started_at + 120.0


def test_dry_run_never_fences_or_evacuates() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3", "cmp4"], policy=dataclasses.replace(POLICY, dry_run=True))
    sim.tick()
    store_host(sim, "cmp3", S.FENCING)  # left by a run without dry_run
    store_host(sim, "cmp4", S.EVACUATING)
    sim.nova["cmp1"] = "down"
    sim.run(30)
    assert sim.state("cmp1") is S.SUSPECT
    assert len(sim.events_of("fence_held", "cmp1")) == 1
    store_host(sim, "cmp2", S.AWAITING_CONFIRM)
    sim.request("cmp2", RequestKind.CONFIRM_FENCED)
    sim.run(5)
    assert sim.state("cmp2") is S.FENCED  # recorded, but not evacuated
    kinds = {action for _, action in sim.all_actions()}
    assert Action.FENCE not in kinds and Action.EVACUATE not in kinds


def test_busy_host_gets_no_action_and_its_requests_wait() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    store_host(sim, "cmp1", S.EVACUATING)
    rid = sim.request("cmp1", RequestKind.MAINTENANCE_ON)
    for decision in sim.run(5, busy={"cmp1"}):
        assert decision.actions == ()
        assert decision.record.finished_requests == []
    assert [r.id for r in sim.pending] == [rid]
    decision = sim.tick()  # the lane ended (without an outcome): the request is decided, and refused
    assert sim.finished[rid] == ("refused", "maintenance_on refused: host cmp1 is evacuating")
    assert decision.actions == (("cmp1", Action.EVACUATE),)


def test_busy_suspect_host_is_not_fenced() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(10, busy={"cmp1"})
    assert sim.state("cmp1") is S.SUSPECT and not sim.all_actions()
    assert sim.tick().actions == (("cmp1", Action.FENCE),)


# -- restart ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (S.FENCING, Action.FENCE),
        (S.EVACUATING, Action.EVACUATE),
        (S.RESTORING, Action.RESTORE),
        (S.FENCED, Action.EVACUATE),
    ],
)
@pytest.mark.fault(
    "PG-05",
    guarantee="2",
    injected="petguard restarted with a host stored mid-action (FENCING, FENCED, EVACUATING, RESTORING)",
    expected="the action of that state is resumed once, not while its lane is busy",
)
def test_restart_resumes_the_action_of_a_stored_state(state: HostState, action: Action) -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    store_host(sim, "cmp1", state)
    decision = sim.tick()
    assert decision.actions == (("cmp1", action),)
    assert sim.state("cmp1") is (S.EVACUATING if state is S.FENCED else state)
    assert sim.tick(busy={"cmp1"}).actions == ()


@pytest.mark.parametrize("state", [S.AWAITING_CONFIRM, S.EVACUATED, S.MAINTENANCE, S.UP, S.SUSPECT])
def test_restart_starts_nothing_for_settled_states(state: HostState) -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    store_host(sim, "cmp1", state, verdict=Verdict.UP)
    assert sim.tick().actions == ()


# -- operator requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (S.EVACUATING, RequestKind.RESTORE),
        (S.FENCING, RequestKind.MAINTENANCE_ON),
        (S.UP, RequestKind.CONFIRM_FENCED),
        (S.SUSPECT, RequestKind.CONFIRM_FENCED),
        (S.FENCING, RequestKind.CONFIRM_FENCED),
        (S.UP, RequestKind.RESTORE),
        (S.UP, RequestKind.MAINTENANCE_OFF),
        (S.EVACUATED, RequestKind.MAINTENANCE_ON),
        (S.MAINTENANCE, RequestKind.MAINTENANCE_ON),
        (S.AWAITING_CONFIRM, RequestKind.RESTORE),
    ],
)
@pytest.mark.fault(
    "OP-06",
    guarantee="-",
    injected="an operator request that does not fit the host's state (confirm-fenced on an up host, restore while "
    "evacuating, ...)",
    expected="refused with '<request> refused: host <h> is <state>', no transition",
)
def test_illegal_request_is_refused_with_a_clear_message(state: HostState, kind: RequestKind) -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    store_host(sim, "cmp1", state, verdict=Verdict.UP)
    rid = sim.request("cmp1", kind)
    decision = sim.tick()
    result, message = sim.finished[rid]
    assert result == "refused"
    assert message == f"{kind.value} refused: host cmp1 is {state.value}"
    assert any(message in line for line in decision.log)
    assert not [t for t in decision.record.transitions if t.event.value == kind.value]


@pytest.mark.fault(
    "OP-07",
    guarantee="-",
    injected="an operator request for a host Nova does not know",
    expected="refused: unknown host, not a nova-compute host",
)
def test_unknown_host_request_is_refused() -> None:
    sim = Sim(["cmp1"])
    rid = sim.request("nope", RequestKind.MAINTENANCE_ON)
    sim.tick()
    assert sim.finished[rid] == ("refused", "unknown host 'nope': not a nova-compute host")


@pytest.mark.fault(
    "OP-08",
    guarantee="-",
    injected="maintenance on for a suspect host (an incident open), which stays down",
    expected="MAINTENANCE, the incident closed as maintenance, never fenced while down; up after maintenance off",
)
def test_maintenance_on_and_off() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(2)
    assert sim.state("cmp1") is S.SUSPECT
    sim.request("cmp1", RequestKind.MAINTENANCE_ON, "replacing a DIMM")
    sim.tick()
    assert sim.state("cmp1") is S.MAINTENANCE and sim.incidents[100].outcome == "maintenance"
    sim.run(30)  # down in maintenance: not watched, never fenced
    assert sim.state("cmp1") is S.MAINTENANCE and not sim.all_actions()
    sim.nova["cmp1"] = "up"
    sim.request("cmp1", RequestKind.MAINTENANCE_OFF)
    sim.run(5)
    assert sim.state("cmp1") is S.UP and sim.hosts["cmp1"].health.verdict is Verdict.UP


@pytest.mark.fault(
    "OP-09",
    guarantee="4",
    injected="maintenance on for a host in AWAITING_CONFIRM",
    expected="MAINTENANCE, the incident closed as maintenance",
)
def test_awaiting_confirm_host_can_leave_through_maintenance() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    iid = store_host(sim, "cmp1", S.AWAITING_CONFIRM)
    sim.request("cmp1", RequestKind.MAINTENANCE_ON)
    sim.tick()
    assert sim.state("cmp1") is S.MAINTENANCE and sim.incidents[iid].outcome == "maintenance"
    assert sim.hosts["cmp1"].host.incident_id is None


# -- hosts coming and going ------------------------------------------------------------------------


def test_new_host_appears_up() -> None:
    sim = Sim(["cmp1"])
    sim.tick()
    sim.nova["cmp9"] = "up"
    decision = sim.tick()
    assert sim.state("cmp9") is S.UP
    assert any("cmp9: new compute host" in line for line in decision.log)
    assert "cmp9" in {r.host.name for r in decision.record.hosts}


@pytest.mark.fault(
    "DET-12",
    guarantee="-",
    injected="a suspect host's service disappears from Nova's list for 50 ticks",
    expected="it stays as it was, the time without a signal does not count toward the grace period, no action",
)
def test_host_missing_from_nova_stays_as_it_is() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    sim.nova["cmp1"] = "down"
    sim.run(2)
    before = sim.hosts["cmp1"]
    sim.nova["cmp1"] = None
    sim.run(50)
    after = sim.hosts["cmp1"]
    assert after.host == before.host
    # The streak is kept, but time without a signal does not count toward the grace period.
    assert (after.health.verdict, after.health.down_streak) == (before.health.verdict, before.health.down_streak)
    assert after.health.down_since is None
    assert after.health.detail == "no signal"
    assert not sim.all_actions()


def test_outcome_for_a_state_that_moved_on_is_ignored_with_a_warning() -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    sim.tick()
    decision = sim.tick(outcomes=[outcome("cmp1", E.FENCE_CONFIRMED), outcome("ghost", E.FENCE_CONFIRMED)])
    assert sim.state("cmp1") is S.UP
    assert any("ignored outcome fence_confirmed" in w for w in decision.warnings)
    assert not decision.record.transitions


# -- properties: any sequence of the world -----------------------------------------------------------

NAMES = ("cmp1", "cmp2", "cmp3", "cmp4")
nova_state = st.sampled_from(["up", "down", "down", "down", "weird", None])
step = st.fixed_dictionaries(
    {
        "dt": st.sampled_from([1.0, 5.0, 20.0, 60.0]),
        "nova": st.fixed_dictionaries({n: nova_state for n in NAMES}),
        "outcomes": st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(list(HostEvent))), max_size=3),
        "requests": st.lists(
            st.tuples(st.sampled_from((*NAMES, "*", "ghost")), st.sampled_from(list(RequestKind))), max_size=2
        ),
        "busy": st.frozensets(st.sampled_from(NAMES), max_size=2),
    }
)
policies = st.builds(
    LoopPolicy,
    detection=st.builds(
        DetectionPolicy,
        grace_period=st.sampled_from([0.0, 10.0, 30.0]),
        down_samples=st.integers(1, 3),
        up_samples=st.integers(1, 3),
        brake_max_hosts=st.integers(0, 3),
        brake_max_percent=st.sampled_from([0.0, 34.0, 60.0, 100.0]),
        stale_min_hosts=st.integers(1, 5),
        fence_rate_max=st.integers(0, 3),
        fence_rate_window=st.sampled_from([20.0, 3600.0]),
    ),
    startup_blackout=st.sampled_from([0.0, 30.0]),
    brake_override_s=st.sampled_from([10.0, 900.0]),
    dry_run=st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, steps=st.lists(step, min_size=1, max_size=40))
@pytest.mark.fault(
    "DET-11",
    guarantee="1",
    injected="any history of Nova states, lane outcomes, operator requests and busy lanes, with any detection policy "
    "(hypothesis)",
    expected="EVACUATING only from FENCED, FENCED only from a confirmed fence, no new fence while braked, "
    "rate-limited, in the blackout, dry run or while Nova says up",
)
def test_safety_properties_hold_for_any_history(policy: LoopPolicy, steps: list[dict]) -> None:  # type: ignore[type-arg]
    sim = Sim(NAMES, policy=policy, started_at=1000.0)
    for s in steps:
        sim.nova.update(s["nova"])
        for host, kind in s["requests"]:
            sim.request("*" if kind is RequestKind.BRAKE_OVERRIDE else host, kind)
        brake_before = sim.brake
        fencing_before = {name: rec.host.state is S.FENCING for name, rec in sim.hosts.items()}
        decision = sim.tick(
            dt=s["dt"],
            outcomes=[Outcome(h, e, "lane") for h, e in s["outcomes"]],
            busy=s["busy"],
        )
        for t in decision.record.transitions:
            # guarantee 1: EVACUATING only from FENCED, FENCED only from a confirmed fence
            if t.to_state is S.EVACUATING:
                assert t.from_state is S.FENCED
            if t.to_state is S.FENCED:
                assert t.from_state in (S.FENCING, S.AWAITING_CONFIRM, S.EVACUATED)
            if t.to_state is S.FENCING and t.event is not HostEvent.OPERATOR_FENCE:
                assert t.from_state is S.SUSPECT
        brake = decision.record.brake or brake_before
        overridden = brake.override_until is not None and sim.now < brake.override_until
        fences = [h for h, a in decision.actions if a is Action.FENCE]
        if brake.engaged and not overridden:
            assert not [t for t in decision.record.transitions if t.event is HostEvent.FENCE_STARTED]
            if brake.reason.startswith(RATE_LIMIT):  # only fences that started before the brake go on
                by_operator = {t.host for t in decision.record.transitions if t.event is HostEvent.OPERATOR_FENCE}
                started = {h for h, fencing in fencing_before.items() if fencing} | by_operator
                assert set(fences) <= started, "new FENCE while the rate brake holds"
            else:
                assert not fences, "FENCE while the brake is engaged"
        automatic = [t for t in decision.record.transitions if t.event is HostEvent.FENCE_STARTED]
        rate_max = policy.detection.fence_rate_max
        if automatic and rate_max and not overridden:
            assert len(sim.recent_fences()) <= rate_max, "more fences started in the window than the rate limit"
        if policy.dry_run:
            assert not [a for _, a in decision.actions if a in (Action.FENCE, Action.EVACUATE)]
        if sim.now < sim.started_at + policy.startup_blackout:
            assert not [t for t in decision.record.transitions if t.to_state is S.FENCING]
        for name, _ in decision.actions:
            assert name not in s["busy"]
        # a transition to FENCING needs a FAILED verdict this tick
        for t in decision.record.transitions:
            if t.to_state is S.FENCING and t.event is not HostEvent.OPERATOR_FENCE:
                assert sim.hosts[t.host].health.verdict is Verdict.FAILED
                assert s["nova"][t.host] != "up"  # never fenced in a tick where Nova says it is up
        # every finished request is answered with a message
        assert all(message for _, _, message in decision.record.finished_requests)


@pytest.mark.fault(
    "CP-17",
    guarantee="2",
    injected="an operator's `petguard host resend` for a host whose evacuation is not running (up, fenced, evacuated, "
    "in maintenance, unknown), and during dry_run",
    expected="refused naming the host's state (or dry_run), nothing vouched; on an evacuating host: accepted, the "
    "incident's stuck moves vouched in the tick's one transaction, no lifecycle transition, an operator_resend event",
)
@pytest.mark.parametrize("state", [S.UP, S.SUSPECT, S.FENCED, S.EVACUATED, S.MAINTENANCE, S.AWAITING_CONFIRM])
def test_resend_is_taken_only_while_the_host_evacuates(state: HostState) -> None:
    sim = Sim(["cmp1", "cmp2", "cmp3"])
    store_host(sim, "cmp1", state, verdict=Verdict.UP)
    rid = sim.request("cmp1", RequestKind.RESEND, "restarted nova-api and nova-conductor on ctl1-3")
    decision = sim.tick(busy=["cmp1"])
    result, message = sim.finished[rid]
    assert result == "refused" and f"host cmp1 is {state.value}" in message
    assert decision.record.vouch_resends == ()
    evacuating = Sim(["cmp1", "cmp2", "cmp3"])
    iid = store_host(evacuating, "cmp1", S.EVACUATING)
    rid = evacuating.request("cmp1", RequestKind.RESEND, "restarted nova-api and nova-conductor on ctl1-3")
    decision = evacuating.tick(busy=["cmp1"])  # the evacuation runs: the vouch does not wait for it
    assert evacuating.finished[rid][0] == "done" and decision.record.vouch_resends == (iid,)
    assert not [t for t in decision.record.transitions if t.host == "cmp1"]
    assert [e for e in decision.record.events if e[1] == "operator_resend"]
    unknown = Sim(["cmp1"])
    rid = unknown.request("cmp9", RequestKind.RESEND)
    unknown.tick()
    assert unknown.finished[rid][0] == "refused"
    dry = Sim(["cmp1", "cmp2", "cmp3"], policy=dataclasses.replace(POLICY, dry_run=True))
    store_host(dry, "cmp1", S.EVACUATING)
    rid = dry.request("cmp1", RequestKind.RESEND)
    dry.tick()
    assert dry.finished[rid][0] == "refused" and "dry_run" in dry.finished[rid][1]
