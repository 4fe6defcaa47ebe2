"""petguard's own staleness reading of Nova's ``updated_at`` (the ``nova-heartbeat`` signal), and how it
folds with Nova's ``state``, forced-down services, the agent and the mass-failure brake."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest

from petguard.cloud import ServiceRecord
from petguard.detect import (
    HEARTBEAT_SOURCE,
    DetectionPolicy,
    Health,
    HeartbeatSeen,
    Signal,
    Verdict,
    brake,
    combine,
    describe_heartbeat,
    heartbeat_signal,
    nova_signal,
    observe_heartbeat,
    observe_heartbeats,
    service_signals,
)

POLICY = DetectionPolicy()  # report_interval 10 s, heartbeat_stale_after 30 s
OFF = DetectionPolicy(heartbeat_stale_after=0.0)
U, D, X = Health.UP, Health.DOWN, Health.UNCERTAIN
PETGUARD_REASON = "petguard: incident 3: host fenced"
OPERATOR_REASON = "operator: BIOS update"
HOURS = 3600.0


def service(
    state: str = "up",
    updated_at: float | None = 1000.0,
    forced_down: bool = False,
    reason: str | None = None,
    host: str = "cmp1",
) -> ServiceRecord:
    status = "disabled" if reason else "enabled"
    return ServiceRecord(host, f"svc-{host}", state, status, forced_down, updated_at, reason)


# -- observe_heartbeat ------------------------------------------------------------------------------

SEEN = HeartbeatSeen(1000.0, changed_at=50.0, seen_at=60.0)

# (previous, updated_at read, expected memory) with the reading from 100.0 to 101.0
OBSERVE_TABLE: list[tuple[HeartbeatSeen | None, float | None, HeartbeatSeen, str]] = [
    (None, 1000.0, HeartbeatSeen(1000.0, None, 100.0), "first sight: no change seen yet"),
    (None, None, HeartbeatSeen(None, None, 100.0), "first sight without a value"),
    (SEEN, 1000.0, HeartbeatSeen(1000.0, 50.0, 100.0), "unchanged: still counted from the change"),
    (SEEN, 1010.0, HeartbeatSeen(1010.0, 101.0, 100.0), "moved forward: changed at the end of the reading"),
    (SEEN, 990.0, HeartbeatSeen(990.0, 101.0, 100.0), "moved backwards (a DB restore): a change too"),
    (SEEN, 1000.0 - 5 * HOURS, HeartbeatSeen(1000.0 - 5 * HOURS, 101.0, 100.0), "hours back: a change"),
    (SEEN, None, HeartbeatSeen(None, None, 100.0), "value gone: forgotten"),
    (HeartbeatSeen(None, None, 60.0), 1000.0, HeartbeatSeen(1000.0, None, 100.0), "value back: waits for a change"),
    (HeartbeatSeen(1000.0, None, 60.0), 1000.0, HeartbeatSeen(1000.0, None, 100.0), "never changed yet"),
    (HeartbeatSeen(1000.0, None, 60.0), 1001.0, HeartbeatSeen(1001.0, 101.0, 100.0), "first change seen"),
]


@pytest.mark.parametrize(
    ("previous", "value", "expected"), [r[:3] for r in OBSERVE_TABLE], ids=[r[3] for r in OBSERVE_TABLE]
)
def test_observe_heartbeat(previous: HeartbeatSeen | None, value: float | None, expected: HeartbeatSeen) -> None:
    assert observe_heartbeat(previous, value, read_started=100.0, read_finished=101.0) == expected


def test_a_host_missing_from_the_reading_is_forgotten_and_starts_afresh() -> None:
    memory = observe_heartbeats({}, [service(updated_at=1.0), service(host="cmp2", updated_at=1.0)], 0.0, 0.0)
    memory = observe_heartbeats(memory, [service(updated_at=2.0), service(host="cmp2", updated_at=2.0)], 2.0, 2.0)
    assert memory["cmp2"].changed_at == 2.0
    memory = observe_heartbeats(memory, [service(updated_at=3.0)], 4.0, 4.0)  # cmp2 gone from Nova's list
    assert set(memory) == {"cmp1"}
    memory = observe_heartbeats(memory, [service(updated_at=3.0), service(host="cmp2", updated_at=2.0)], 90.0, 90.0)
    assert memory["cmp2"] == HeartbeatSeen(2.0, None, 90.0)  # back with its old value: no opinion yet


# -- service_signals: the combination rule, exhaustively --------------------------------------------

#: petguard's memory of the service, as (name, memory): the signal only speaks for "stale"
VIEWS: list[tuple[str, HeartbeatSeen | None]] = [
    ("no memory", None),
    ("no change seen", HeartbeatSeen(1000.0, None, 500.0)),
    ("fresh", HeartbeatSeen(1000.0, 480.0, 500.0)),
    ("at the threshold", HeartbeatSeen(1000.0, 470.0, 500.0)),
    ("stale", HeartbeatSeen(1000.0, 400.0, 500.0)),
    ("no value", HeartbeatSeen(None, None, 500.0)),
]
FORCED: list[tuple[str, bool, str | None]] = [
    ("not forced", False, None),
    ("forced by petguard", True, PETGUARD_REASON),
    ("forced by an operator", True, OPERATOR_REASON),
    ("disabled by an operator", False, OPERATOR_REASON),
]
STATES = ["up", "down", "weird"]


def expected_signals(state: str, forced: bool, reason: str | None, view: str, policy: DetectionPolicy) -> Health:
    """The rule, spelled out: the heartbeat turns only Nova's unforced "up" into DOWN, and only when stale."""
    if policy.heartbeat_stale_after > 0 and view == "stale" and state == "up" and not forced:
        return D
    return nova_signal(service(state, forced_down=forced, reason=reason), 0.0, policy).health


CASES = list(itertools.product(STATES, FORCED, VIEWS, [POLICY, OFF]))


@pytest.mark.fault(
    "STALE-01",
    guarantee="1",
    injected="every combination of Nova's state, forced-down (petguard's, an operator's), petguard's heartbeat "
    "memory (none, unchanged, fresh, at the threshold, stale, no value) and the signal on or off",
    expected="the heartbeat only turns Nova's own unforced 'up' into DOWN, and only when stale; it never says "
    "UP and never changes a forced-down or a 'down' service's signal",
)
@pytest.mark.parametrize(
    ("state", "forced", "view", "policy"),
    CASES,
    ids=[f"{s}-{f[0]}-{v[0]}-{'on' if p is POLICY else 'off'}" for s, f, v, p in CASES],
)
def test_service_signals_rule(
    state: str, forced: tuple[str, bool, str | None], view: tuple[str, HeartbeatSeen | None], policy: DetectionPolicy
) -> None:
    record = service(state, forced_down=forced[1], reason=forced[2])
    signals = service_signals(record, view[1], 42.0, policy)
    assert len(signals) == 1
    (signal,) = signals
    assert signal.health is expected_signals(state, forced[1], forced[2], view[0], policy)
    if signal.source == HEARTBEAT_SOURCE:
        assert signal.health is D and "30 s" in signal.detail
    else:
        assert signal == nova_signal(record, 42.0, policy)
    heartbeat = heartbeat_signal(record, view[1], 42.0, policy)
    assert heartbeat is None or heartbeat.health is D, "the heartbeat never says UP nor UNCERTAIN"


def test_an_agent_that_heartbeats_still_outvotes_a_stale_nova_heartbeat() -> None:
    """nova-compute hung, the host alive: the agent's UP wins (never fenced), as with Nova's own 'down'."""
    stale = service_signals(service(), HeartbeatSeen(1000.0, 400.0, 500.0), 500.0, POLICY)
    agent = Signal("agent", "cmp1", U, 500.0, "heartbeating")
    assert combine([*stale, agent])[0] is U
    assert combine(stale)[0] is D


# -- attacks over time ------------------------------------------------------------------------------


def drive(
    readings: Iterable[tuple[float, float | None]], policy: DetectionPolicy = POLICY, state: str = "up"
) -> list[Health]:
    """Feed (now, updated_at) readings one tick at a time; return the combined health of each tick."""
    memory: dict[str, HeartbeatSeen] = {}
    out = []
    for now, value in readings:
        record = service(state, updated_at=value)
        memory = observe_heartbeats(memory, [record], now, now)
        out.append(combine(service_signals(record, memory.get("cmp1"), now, policy))[0])
    return out


def ticks(until: float, step: float = 2.0, start: float = 0.0) -> list[float]:
    return [start + step * i for i in range(int((until - start) / step) + 1)]


@pytest.mark.fault(
    "STALE-02",
    guarantee="1",
    injected="a healthy host heartbeats every report_interval, late by up to report_interval now and then, "
    "with Nova's clock hours ahead of or behind petguard's",
    expected="never DOWN by the heartbeat: only changes count, never the value against petguard's clock",
)
@pytest.mark.parametrize("skew", [0.0, 7 * HOURS, -7 * HOURS, 1e9])
def test_a_heartbeating_host_is_never_down_whatever_the_clock_skew(skew: float) -> None:
    def updated_at(now: float) -> float:
        beat = now - now % 10.0
        if int(now // 10.0) % 7 == 3:  # every 7th heartbeat is late by a whole interval (a busy conductor)
            beat -= 10.0
        return beat + skew

    assert set(drive((now, updated_at(now)) for now in ticks(HOURS))) == {U}


@pytest.mark.fault(
    "STALE-03",
    guarantee="1",
    injected="Nova's updated_at goes backwards (a database restored from a backup, another cell's row)",
    expected="a change like any other: the host stays UP, no staleness from the jump",
)
def test_updated_at_going_backwards_is_a_change() -> None:
    values = [(0.0, 5000.0), (10.0, 5010.0), (20.0, 10.0), (30.0, 20.0), (40.0, 30.0), (50.0, 5.0), (60.0, 15.0)]
    assert set(drive(values)) == {U}


def test_a_dead_host_is_down_after_heartbeat_stale_after_whatever_the_skew() -> None:
    for skew in (0.0, 7 * HOURS, -7 * HOURS):
        readings = [(now, skew + min(now, 100.0) - min(now, 100.0) % 10.0) for now in ticks(200.0)]
        health = drive(readings)
        first_down = ticks(200.0)[health.index(D)]
        # the last heartbeat (100) was seen at 100; stale once unchanged for more than 30 s
        assert first_down == 132.0, skew
        assert set(health[health.index(D) :]) == {D}


@pytest.mark.fault(
    "STALE-04",
    guarantee="1",
    injected="petguard starts (or meets a new host) while the host's updated_at already stands still, or "
    "Nova gives no updated_at at all",
    expected="no opinion from the heartbeat until petguard has seen a change: Nova's own state decides",
)
@pytest.mark.parametrize("value", [1000.0, None, -5 * HOURS])
def test_no_opinion_before_a_change_is_seen(value: float | None) -> None:
    assert set(drive((now, value) for now in ticks(600.0))) == {U}


def test_a_missing_value_in_between_restarts_the_wait() -> None:
    readings = [(0.0, 1.0), (2.0, 2.0), (4.0, None), *((now, 2.0) for now in ticks(200.0, start=6.0))]
    assert set(drive(readings)) == {U}


def test_the_signal_can_be_turned_off() -> None:
    readings = [(0.0, 1.0), (2.0, 2.0), *((now, 2.0) for now in ticks(600.0, start=4.0))]
    assert set(drive(readings, OFF)) == {U}
    assert D in drive(readings, POLICY)


@pytest.mark.fault(
    "STALE-05",
    guarantee="1",
    injected="a service forced down by an operator (nova-compute stopped, updated_at standing still)",
    expected="UNCERTAIN as before the heartbeat signal existed: never DOWN on someone else's forced down",
)
def test_forced_down_by_an_operator_stays_uncertain_with_a_stale_heartbeat() -> None:
    memory = HeartbeatSeen(1000.0, 0.0, 600.0)
    record = service("down", forced_down=True, reason=OPERATOR_REASON)
    assert combine(service_signals(record, memory, 600.0, POLICY))[0] is X
    record = service("down", forced_down=True, reason=PETGUARD_REASON)
    assert service_signals(record, memory, 600.0, POLICY) == [nova_signal(record, 600.0, POLICY)]


def test_a_slow_reading_of_nova_does_not_stretch_staleness() -> None:
    """A reading that took 25 s saw the database as it was when it began, not when it ended."""
    memory = observe_heartbeat(None, 1.0, 0.0, 0.0)
    memory = observe_heartbeat(memory, 2.0, 10.0, 10.0)  # changed, seen at 10
    memory = observe_heartbeat(memory, 2.0, 12.0, 37.0)  # began at 12, answered at 37
    assert memory.unchanged_for() == 2.0
    assert heartbeat_signal(service(updated_at=2.0), memory, 37.0, POLICY) is None


# -- the brake counts the heartbeat's DOWNs -------------------------------------------------------


def stalled_cloud(n: int, stalled: Sequence[int], now: float) -> dict[str, Health]:
    """``n`` hosts that heartbeated until t=100 (each at its own phase); those in ``stalled`` stopped then."""
    health = {}
    for i in range(n):
        host = f"cmp{i:02d}"
        memory: HeartbeatSeen | None = None
        record = service(updated_at=None, host=host)
        for t in ticks(now):
            phase = i * 10.0 / n
            last = min(t, 100.0) if i in stalled else t
            record = service(updated_at=last - (last - phase) % 10.0 + 7 * HOURS, host=host)
            memory = observe_heartbeat(memory, record.updated_at, t, t)
        health[host] = combine(service_signals(record, memory, now, POLICY))[0]
    return health


@pytest.mark.fault(
    "STALE-06",
    guarantee="3",
    injected="nova-conductor, RabbitMQ or the database stalls (or the controller reads a frozen replica): no "
    "host's updated_at changes any more, while Nova still reports every service up",
    expected="every host goes DOWN by the heartbeat within one report_interval: the 'stale everywhere' brake "
    "engages, nobody is fenced",
)
def test_a_stall_everywhere_engages_the_stale_brake() -> None:
    n = 10
    health = stalled_cloud(n, range(n), now=145.0)
    assert set(health.values()) == {D}
    result = brake(health, dict.fromkeys(health, Verdict.UP), POLICY)
    assert result.engaged and "stale nearly everywhere" in result.reason


def test_one_stalled_host_among_ten_is_down_alone() -> None:
    health = stalled_cloud(10, [3], now=145.0)
    assert [h for h, v in health.items() if v is D] == ["cmp03"]


# -- what explain shows -----------------------------------------------------------------------------

DESCRIBE_TABLE: list[tuple[HeartbeatSeen | None, DetectionPolicy, str]] = [
    (None, POLICY, "not read by this controller (it does not lead, or Nova does not list the host); stale after 30 s"),
    (HeartbeatSeen(None, None, 100.0), POLICY, "Nova gives no updated_at: no opinion; stale after 30 s unchanged"),
    (HeartbeatSeen(5.0, None, 100.0), POLICY, "updated_at not seen to change yet"),
    (HeartbeatSeen(5.0, 96.0, 100.0), POLICY, "last seen to change 6 s ago, fresh: no opinion, Nova's state decides"),
    (HeartbeatSeen(5.0, 50.0, 100.0), POLICY, "last seen to change 52 s ago, stale: DOWN; stale after 30 s unchanged"),
    (HeartbeatSeen(5.0, 50.0, 100.0), OFF, "off ([detection] heartbeat_stale_after = 0): Nova's own state decides"),
]


@pytest.mark.parametrize(("seen", "policy", "text"), DESCRIBE_TABLE)
def test_describe_heartbeat(seen: HeartbeatSeen | None, policy: DetectionPolicy, text: str) -> None:
    assert text in describe_heartbeat(seen, 102.0, policy)
