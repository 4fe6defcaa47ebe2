"""The fence procedure against the fake driver and a fake clock: confirmation only by N consecutive
OFF readings before the deadline, and a clear reason for every way of not confirming."""

from __future__ import annotations

import logging

import pytest

from petguard import errors
from petguard.fencing import procedure
from petguard.fencing.base import FenceDevice, FenceOutcome, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.fake import Behaviour, FakeDriver, FakeRegistry
from tests.fakes import FakeClock

OFF, ON, POWERING_OFF, UNKNOWN = (
    PowerState.OFF,
    PowerState.ON,
    PowerState.POWERING_OFF,
    PowerState.UNKNOWN,
)
SECRET = "pw-Zq8-never-logged"
POLICY = procedure.FencePolicy(
    attempt_timeout=5.0,
    deadline=30.0,
    poll_interval=1.0,
    off_readings_required=3,
    retries=3,
    resend_after=5.0,
)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def driver(registry: FakeRegistry) -> FakeDriver:
    return FakeDriver(registry)


@pytest.fixture
def runner(driver: FakeDriver) -> FenceRunner:
    return FenceRunner(lambda name: driver)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


DEVICE = FenceDevice(
    host="cmp1", driver="fake", address="10.0.0.1", port=623, username="admin", password=SECRET
)


def fence(
    driver: FakeDriver,
    runner: FenceRunner,
    clock: FakeClock,
    policy: procedure.FencePolicy = POLICY,
) -> FenceOutcome:
    return procedure.fence(DEVICE, driver, runner, policy, clock)


def test_normal_host_is_confirmed_by_n_consecutive_off_readings(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    bmc = registry.script(DEVICE.address, DEVICE.port, Behaviour.NORMAL)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    assert outcome.readings == (OFF, OFF, OFF)
    assert outcome.attempts == 1
    assert bmc.calls == ["power_off", "power_state", "power_state", "power_state"]
    assert outcome.duration_s == pytest.approx(2.0)  # readings at t=0, 1, 2
    assert "OFF 3 times in a row" in outcome.reason


def test_already_off_host_is_confirmed(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, power=OFF)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    assert outcome.readings == (OFF, OFF, OFF)


def test_accepted_but_stuck_on_is_not_confirmed_by_the_deadline(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    bmc = registry.script(DEVICE.address, DEVICE.port, Behaviour.STUCK_ON)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert set(outcome.readings) == {ON}
    assert outcome.duration_s == pytest.approx(POLICY.deadline)
    assert "accepted power-off but still reports ON after 30 s" in outcome.reason
    # power-off is re-sent while the host stays on (idempotent), every resend_after seconds
    assert bmc.calls.count("power_off") == outcome.attempts >= 5


def test_flapping_readings_reset_the_count(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port)
    flaps = [OFF, OFF, ON, OFF, POWERING_OFF, OFF, UNKNOWN, OFF, OFF]
    registry.queue_readings(DEVICE.address, DEVICE.port, flaps)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    # the queued readings never give 3 in a row; the host's real OFF completes the third
    assert outcome.readings == (*flaps, OFF)


def test_flapping_until_the_deadline_is_not_confirmed(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port)
    registry.queue_readings(DEVICE.address, DEVICE.port, [OFF, OFF, UNKNOWN] * 20)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert "consecutive OFF" in outcome.reason or "could not be read" in outcome.reason


def test_powering_off_is_not_off(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.POWERING_OFF_FOR_N_READS, n=2)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    assert outcome.readings == (POWERING_OFF, POWERING_OFF, OFF, OFF, OFF)


def test_powering_off_forever_ends_at_the_deadline(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.POWERING_OFF_FOR_N_READS, n=1000)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert "still reports POWERING_OFF after 30 s" in outcome.reason


def test_auth_failure_stops_at_once(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    bmc = registry.script(DEVICE.address, DEVICE.port, Behaviour.AUTH_FAILS)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert outcome.attempts == 1
    assert outcome.readings == ()
    assert outcome.duration_s == 0.0
    assert bmc.calls == ["power_off"]
    assert "refused the credentials" in outcome.reason
    assert "confirm-fenced" in outcome.reason


def test_device_refusal_stops_at_once(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.REFUSES_OFF)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert outcome.duration_s == 0.0
    assert "FencingError" in outcome.reason and "next fence level" in outcome.reason


def test_temporary_errors_are_retried(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    bmc = registry.script(DEVICE.address, DEVICE.port, Behaviour.UNREACHABLE_FOR_N_CALLS, n=2)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    assert outcome.attempts == 3
    assert bmc.calls[:3] == ["power_off"] * 3
    assert outcome.readings == (OFF, OFF, OFF)


def test_power_off_never_accepted_but_resent_later(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    # 4 failures use up the retries (1 + 3); the readings then show ON, so power-off is re-sent.
    registry.script(DEVICE.address, DEVICE.port, Behaviour.UNREACHABLE_FOR_N_CALLS, n=4)

    outcome = fence(driver, runner, clock)

    assert outcome.confirmed
    assert outcome.attempts == 5
    assert outcome.readings[0] is ON


def test_unreachable_bmc_is_not_confirmed(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner, clock: FakeClock
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.UNREACHABLE)

    outcome = fence(driver, runner, clock)

    assert not outcome.confirmed
    assert set(outcome.readings) == {UNKNOWN}
    assert outcome.duration_s == pytest.approx(POLICY.deadline)
    assert "never accepted power-off within 30 s" in outcome.reason


def test_invalid_device_record_is_not_fenced(runner: FenceRunner, clock: FakeClock) -> None:
    bad = FenceDevice(
        host="cmp1",
        driver="fake",
        address="x",
        port=1,
        username="u",
        password="p",
        options={"fake_behaviour": "no-such-behaviour"},
    )

    outcome = procedure.fence(bad, FakeDriver(FakeRegistry()), runner, POLICY, clock)

    assert not outcome.confirmed
    assert "invalid" in outcome.reason and "fix the inventory" in outcome.reason


def test_one_info_line_per_decision_and_no_secret(
    registry: FakeRegistry,
    driver: FakeDriver,
    runner: FenceRunner,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry.script(DEVICE.address, DEVICE.port)
    caplog.set_level(logging.DEBUG)

    fence(driver, runner, clock)

    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(messages) == 5  # power-off sent, 3 readings, confirmed
    assert "power-off sent" in messages[0] and "confirmed" in messages[-1]
    assert all(SECRET not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "changes",
    [
        {"off_readings_required": 0},
        {"deadline": 0},
        {"poll_interval": -1},
        {"attempt_timeout": 0},
        {"retries": -1},
    ],
)
def test_policy_rejects_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(errors.ConfigError):
        procedure.FencePolicy(**changes)  # type: ignore[arg-type]


def test_read_power_is_one_reading(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner
) -> None:
    bmc = registry.script(DEVICE.address, DEVICE.port, power=OFF)

    assert procedure.read_power(DEVICE, driver, runner, timeout=2.0) is OFF
    assert bmc.calls == ["power_state"]


def test_read_power_raises_the_drivers_error(
    registry: FakeRegistry, driver: FakeDriver, runner: FenceRunner
) -> None:
    registry.script(DEVICE.address, DEVICE.port, Behaviour.AUTH_FAILS)

    with pytest.raises(errors.BmcAuthError):
        procedure.read_power(DEVICE, driver, runner, timeout=2.0)
