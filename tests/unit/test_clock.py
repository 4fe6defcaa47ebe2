"""petguard's time when the system clock steps: the grace period and the fence rate window hold.

The attacks drive detect's pure rules with ``now`` read from the production clock (SteadyTime) over a
system clock that a test steps. Each attack is also run against the raw system clock (``RAW``: a slew
rate so large that every step is taken at once, i.e. ``time.time()``) to show it bites there.
"""

from __future__ import annotations

import logging

import pytest

from petguard.clock import SLEW_RATE, SteadyTime, SystemClock
from petguard.detect import DetectionPolicy, FenceStart, Health, HostHealth, Verdict, assess, fence_rate_brake

POLICY = DetectionPolicy()  # grace 30 s, 3 fences per 3600 s
RAW = 1e12


class Machine:
    """A monotonic clock that only ``run`` advances, and a system clock that can also be stepped."""

    def __init__(self) -> None:
        self.mono = 5_000.0
        self.offset = 1_700_000_000.0 - self.mono

    def wall(self) -> float:
        return self.mono + self.offset

    def run(self, seconds: float) -> None:
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.offset += seconds


def steady(machine: Machine, rate: float = SLEW_RATE) -> SteadyTime:
    return SteadyTime(wall=machine.wall, mono=lambda: machine.mono, slew_rate=rate)


def seconds_until_failed(rate: float, step: float, step_after: float = 5.0) -> float:
    """Tick every second on a host that is DOWN from the first tick; the clock steps ``step`` s after
    ``step_after`` s. Returns the monotonic seconds from the first DOWN tick to the FAILED verdict."""
    machine = Machine()
    time = steady(machine, rate)
    health, first = HostHealth(), machine.mono
    while True:
        health = assess(health, Health.DOWN, "nova: down", POLICY, time.now())
        if health.verdict is Verdict.FAILED:
            return machine.mono - first
        machine.run(1.0)
        if machine.mono - first == step_after:
            machine.step(step)


@pytest.mark.parametrize("step", [120.0, 3600.0, 86_400.0])
@pytest.mark.fault(
    "CLOCK-01",
    guarantee="1",
    injected="the controller's clock steps forward (NTP, by hand) 5 s into a host's grace period: +2 min, +1 h, +1 day",
    expected="the host is still given its whole grace period, measured on the monotonic clock (within 1 %)",
)
def test_a_forward_step_never_shortens_the_grace_period(step: float) -> None:
    assert seconds_until_failed(RAW, step) < 10, "the attack must bite on the raw system clock"
    assert seconds_until_failed(SLEW_RATE, step) >= POLICY.grace_period * (1 - SLEW_RATE)


@pytest.mark.parametrize("step", [-120.0, -3600.0])
@pytest.mark.fault(
    "CLOCK-02",
    guarantee="1",
    injected="the controller's clock steps backward during a host's grace period",
    expected="petguard's time never goes back; the grace period is not stretched beyond 1 %",
)
def test_a_backward_step_neither_rewinds_time_nor_stretches_the_grace(step: float) -> None:
    assert seconds_until_failed(RAW, step) > POLICY.grace_period + 60, "the attack must bite on the raw system clock"
    assert seconds_until_failed(SLEW_RATE, step) <= POLICY.grace_period * (1 + SLEW_RATE) + 1


def fences_then_step(rate: float, step: float) -> tuple[list[FenceStart], float]:
    """Three fences, 10 min apart; then the clock steps ``step`` s; the fences and ``now`` 10 min later
    (all three started within the last hour of real time)."""
    machine = Machine()
    time = steady(machine, rate)
    started = []
    for host in ("cmp1", "cmp2", "cmp3"):
        started.append(FenceStart(host, time.now()))
        machine.run(600.0)
    machine.step(step)
    machine.run(600.0)
    return started, time.now()


@pytest.mark.parametrize("step", [1800.0, 7200.0])
@pytest.mark.fault(
    "CLOCK-03",
    guarantee="3",
    injected="the controller's clock steps forward after three fences within the hour",
    expected="the three still count: the fence rate brake holds a fourth host",
)
def test_a_forward_step_never_loosens_the_fence_rate_brake(step: float) -> None:
    assert not fence_rate_brake(*_fourth(RAW, step)).engaged, "the attack must bite on the raw system clock"
    assert fence_rate_brake(*_fourth(SLEW_RATE, step)).engaged, "three fences in the hour: a fourth must wait"


def _fourth(rate: float, step: float) -> tuple[list[FenceStart], list[str], int, DetectionPolicy, float]:
    started, now = fences_then_step(rate, step)
    return started, ["cmp4"], 10, POLICY, now


def test_small_drift_is_followed_exactly() -> None:
    machine = Machine()
    time = steady(machine)
    for _ in range(100):
        machine.run(10.0)
        machine.step(0.001)  # 100 ppm, a badly drifting crystal that NTP corrects
        assert time.now() == pytest.approx(machine.wall(), abs=1e-6)


def test_after_a_step_time_slews_to_the_system_clock_and_never_goes_back() -> None:
    machine = Machine()
    time = steady(machine)
    machine.step(60.0)
    seen = [time.now()]
    for _ in range(200):
        machine.run(60.0)
        seen.append(time.now())
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(machine.wall()), "caught up after 200 min (a 60 s step takes 100 min)"
    machine.step(-600.0)
    machine.run(1.0)
    assert time.now() >= seen[-1], "a step back never rewinds petguard's time"


def test_a_step_is_told_once_and_the_catch_up_once(caplog: pytest.LogCaptureFixture) -> None:
    machine = Machine()
    time = steady(machine)
    caplog.set_level(logging.INFO, logger="petguard.clock")
    machine.step(30.0)
    for _ in range(60):
        machine.run(60.0)
        time.now()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "stepped +30.0 s" in warnings[0].getMessage()
    assert "grace periods and the fence rate window are unchanged" in warnings[0].getMessage()
    assert len(infos) == 1 and "caught up" in infos[0].getMessage()


def test_every_system_clock_of_a_process_shares_one_timeline() -> None:
    machine = Machine()
    shared = steady(machine)
    first, second = SystemClock(time_source=shared), SystemClock(time_source=shared)
    machine.step(100.0)
    machine.run(10.0)
    assert first.now() == second.now()
    assert SystemClock().now() == pytest.approx(SystemClock().now(), abs=1.0)
