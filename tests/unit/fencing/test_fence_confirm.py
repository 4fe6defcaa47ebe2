"""Confirmation under the default settings (docs/fencing.md, "How fast, and why it is safe"): the
rule is N >= 2 consecutive OFF readings, each a fresh request of its own, spaced at least
``poll_interval`` apart; the command's acceptance never counts and any other reading resets the
count. Attacked here at the procedure's seams (fake driver, fake clock); the same attacks run
against real BMC peers in tests/functional/fencing/test_fence_confirm_peers.py."""

from __future__ import annotations

import dataclasses

import pytest
from oslo_config import cfg

from petguard import errors
from petguard.conf import opts, policies
from petguard.fencing import procedure
from petguard.fencing.base import FenceDevice, FenceOutcome, FenceTopology, Op, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.fake import Behaviour, FakeDriver, FakeRegistry
from tests.fakes import FakeClock

OFF, ON, UNKNOWN = PowerState.OFF, PowerState.ON, PowerState.UNKNOWN
DEFAULTS = procedure.FencePolicy()
DEVICE = FenceDevice(host="cmp1", driver="fake", address="10.0.0.9", port=623, username="admin", password="pw-x")


class RecordingRunner:
    """The real runner (fake driver in-process), recording (time, op, result) of every call."""

    def __init__(self, inner: FenceRunner, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.calls: list[tuple[float, Op, PowerState | None]] = []

    def run(self, driver_name: str, device: FenceDevice, op: Op, timeout: float) -> PowerState | None:
        result = self.inner.run(driver_name, device, op, timeout)
        self.calls.append((self.clock.monotonic(), op, result))
        return result


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def driver(registry: FakeRegistry) -> FakeDriver:
    return FakeDriver(registry)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runner(driver: FakeDriver, clock: FakeClock) -> RecordingRunner:
    return RecordingRunner(FenceRunner(lambda name: driver), clock)


def fence(
    driver: FakeDriver, runner: RecordingRunner, clock: FakeClock, policy: procedure.FencePolicy = DEFAULTS
) -> FenceOutcome:
    return procedure.fence(DEVICE, driver, runner, policy, clock)


def conf(**fencing: object) -> cfg.ConfigOpts:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    for name, value in fencing.items():
        c.set_override(name, value, group="fencing")
    return c


def test_the_defaults_are_two_readings_half_a_second_apart_and_match_the_options() -> None:
    assert (DEFAULTS.off_readings_required, DEFAULTS.poll_interval) == (2, 0.5)
    assert policies.fencing(conf()) == DEFAULTS


def test_defaults_confirm_with_two_fresh_readings(
    registry: FakeRegistry, driver: FakeDriver, runner: RecordingRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed, outcome.reason
    assert outcome.readings == (OFF, OFF)
    assert [op for _, op, _ in runner.calls] == [Op.POWER_OFF, Op.POWER_STATE, Op.POWER_STATE]
    assert outcome.duration_s == pytest.approx(DEFAULTS.poll_interval)


@pytest.mark.fault(
    "CONFIRM-01",
    guarantee="1",
    injected="[fencing] off_readings = 1 (or a FencePolicy with one OFF reading)",
    expected="refused at start: one reading can be a single glitch; at least 2 consecutive OFF readings",
)
def test_a_single_off_reading_is_refused_as_a_setting() -> None:
    with pytest.raises(errors.ConfigError, match="at least 2"):
        procedure.FencePolicy(off_readings_required=1)
    with pytest.raises(ValueError):
        conf(off_readings=1)


@pytest.mark.fault(
    "CONFIRM-02",
    guarantee="1",
    injected="with the default settings, the BMC reads OFF once, then ON again, over and over (flap)",
    expected="never confirmed: every ON resets the count; the deadline ends it, not fenced",
)
def test_off_once_then_on_never_confirms_with_the_defaults(
    registry: FakeRegistry, driver: FakeDriver, runner: RecordingRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.STUCK_ON)
    registry.queue_readings(DEVICE.address, DEVICE.port, [OFF, ON] * 100)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert OFF in outcome.readings
    assert all((a, b) != (OFF, OFF) for a, b in zip(outcome.readings, outcome.readings[1:], strict=False))
    assert outcome.duration_s == pytest.approx(DEFAULTS.deadline)
    assert "not fenced" in outcome.reason


@pytest.mark.fault(
    "CONFIRM-03",
    guarantee="1",
    injected="with the default settings, power-off is accepted but no reading ever succeeds",
    expected="never confirmed: acceptance is not a reading; ends at the deadline, 'could not be read'",
)
def test_accepted_power_off_without_a_reading_never_confirms(
    registry: FakeRegistry, driver: FakeDriver, runner: RecordingRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port)
    registry.queue_readings(DEVICE.address, DEVICE.port, [UNKNOWN] * 1000)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert outcome.attempts == 1  # accepted once, and that never counted
    assert set(outcome.readings) == {UNKNOWN}
    assert "could not be read" in outcome.reason and "not fenced" in outcome.reason


@pytest.mark.fault(
    "CONFIRM-04",
    guarantee="1",
    injected="a BMC that answers a reading instantly (as a cache would), with the default settings",
    expected="each counted OFF reading is its own request, at least poll_interval after the previous one",
)
def test_every_counted_reading_is_its_own_request_spaced_by_the_interval(
    registry: FakeRegistry, driver: FakeDriver, runner: RecordingRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port)
    # OFF, ON, then OFF: the count restarts, so the final streak is readings 3 and 4
    registry.queue_readings(DEVICE.address, DEVICE.port, [OFF, ON])

    outcome = fence(driver, runner, clock)

    reads = [(t, result) for t, op, result in runner.calls if op is Op.POWER_STATE]
    assert outcome.confirmed
    assert len(reads) == len(outcome.readings) == 4  # one request per reading, none reused
    assert tuple(r for _, r in reads) == outcome.readings == (OFF, ON, OFF, OFF)
    times = [t for t, _ in reads]
    assert all(b - a >= DEFAULTS.poll_interval for a, b in zip(times, times[1:], strict=False))
    # power-off's acceptance is not among the readings, and the first reading comes after it
    assert runner.calls[0][1] is Op.POWER_OFF and runner.calls[0][2] is None


@pytest.mark.parametrize("needed", [2, 3])
def test_timeout_is_not_fenced_and_the_level_waits_for_an_operator(
    registry: FakeRegistry, driver: FakeDriver, runner: RecordingRunner, clock: FakeClock, needed: int
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.STUCK_ON)
    policy = dataclasses.replace(DEFAULTS, off_readings_required=needed, deadline=5.0)
    topology = FenceTopology.single(DEVICE)

    result = procedure.fence_topology(topology, lambda name: driver, runner, policy, clock, draw=lambda m: 0.0)

    assert not result.confirmed
    assert "every fence level failed" in result.reason and "still reports ON after 5 s" in result.reason
