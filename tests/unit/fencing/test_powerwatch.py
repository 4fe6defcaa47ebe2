"""The BMC signal's reader (``PowerWatch``) with a scripted runner and a fake clock: read-only, one reading per
host in flight and per ``min_interval``, levels read in order, and an error never a reading."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from petguard import errors
from petguard.detect import Power
from petguard.fencing.base import FenceDevice, FenceDriver, FenceTopology, Op, PowerState
from petguard.fencing.fake import FakeDriver, FakeRegistry
from petguard.fencing.powerwatch import PowerWatch, WatchPolicy, read_topology
from tests.fakes import FakeClock

SECRET = "pw-Zq8-never-logged"


def device(host: str, address: str) -> FenceDevice:
    return FenceDevice(host, "fake", address, 623, "admin", SECRET)


class Runner:
    """Answers each device from ``script`` (a PowerState, or an exception to raise); records every call."""

    def __init__(self, clock: FakeClock, script: dict[str, PowerState | Exception], takes: float = 0.0) -> None:
        self.clock = clock
        self.script = script
        self.takes = takes
        self.calls: list[tuple[str, Op, float]] = []

    def run(self, driver_name: str, device: FenceDevice, op: Op, timeout: float) -> PowerState | None:
        self.calls.append((device.address, op, timeout))
        self.clock.advance(self.takes)
        answer = self.script[device.address]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Deferred:
    """A ``submit`` that holds the work until ``run_all`` (a reading in flight)."""

    def __init__(self) -> None:
        self.work: list[Callable[[], None]] = []

    def __call__(self, fn: Callable[[], None]) -> None:
        self.work.append(fn)

    def run_all(self) -> None:
        work, self.work = self.work, []
        for fn in work:
            fn()


def lookup_for() -> Callable[[str], FenceDriver]:
    driver = FakeDriver(FakeRegistry())
    return lambda name: driver


TOPOLOGIES = {
    "cmp1": FenceTopology.single(device("cmp1", "bmc-1")),
    "cmp2": FenceTopology("cmp2", ((device("cmp2", "bmc-2"),), (device("cmp2", "pdu-a"), device("cmp2", "pdu-b")))),
}


def watch(
    script: dict[str, PowerState | Exception], policy: WatchPolicy | None = None, takes: float = 0.0
) -> tuple[PowerWatch, Runner, Deferred, FakeClock]:
    clock = FakeClock()
    runner = Runner(clock, script, takes)
    submit = Deferred()
    return PowerWatch(TOPOLOGIES, lookup_for(), runner, clock, policy, submit=submit), runner, submit, clock


@pytest.mark.fault(
    "BMCSIG-05",
    guarantee="3",
    injected="the loop asks for a reading of the same host on every tick while it looks down (2 s ticks, "
    "min_interval 5 s), with a reading still in flight, and for a host with no fence device",
    expected="at most one reading of a host in flight, none started within min_interval of the last; only "
    "power_state is ever run, never a power-off; no reading for a host without a fence device",
)
def test_rate_limited_per_host_and_read_only() -> None:
    w, runner, submit, clock = watch({"bmc-1": PowerState.ON}, WatchPolicy(min_interval=5.0))
    assert w.request(["cmp1", "cmp9"]) == ["cmp1"]
    clock.advance(2.0)
    assert w.request(["cmp1"]) == []  # in flight
    submit.run_all()
    assert w.request(["cmp1"]) == []  # started 2 s ago
    clock.advance(3.0)
    assert w.request(["cmp1"]) == ["cmp1"]
    submit.run_all()
    assert [op for _, op, _ in runner.calls] == [Op.POWER_STATE, Op.POWER_STATE]
    assert w.readings()["cmp1"].power is Power.ON


@pytest.mark.fault(
    "BMCSIG-06",
    guarantee="1",
    injected="a host's BMC answers OFF, ON, UNKNOWN, an auth error, no answer in time, or the reading raises "
    "something unexpected; a dual-supply level with one outlet OFF and the other unreadable or ON",
    expected="OFF only when every device of a level read OFF; anything that is not a reading is UNREADABLE "
    "(never OFF), the worker survives, and no secret is in the detail",
)
@pytest.mark.parametrize(
    ("script", "power"),
    [
        ({"bmc-2": PowerState.OFF}, Power.OFF),
        ({"bmc-2": PowerState.ON}, Power.ON),
        ({"bmc-2": PowerState.POWERING_OFF}, Power.ON),
        ({"bmc-2": PowerState.UNKNOWN, "pdu-a": PowerState.OFF, "pdu-b": PowerState.OFF}, Power.OFF),
        (
            {"bmc-2": errors.BmcAuthError(f"refused {SECRET}"), "pdu-a": PowerState.OFF, "pdu-b": PowerState.ON},
            Power.ON,
        ),
        (
            {"bmc-2": errors.BmcUnreachable("no answer"), "pdu-a": PowerState.OFF, "pdu-b": errors.FencingError("x")},
            Power.UNREADABLE,
        ),
        ({"bmc-2": errors.BmcUnreachable("no answer"), "pdu-a": errors.BmcUnreachable("no answer")}, Power.UNREADABLE),
        ({"bmc-2": RuntimeError(f"bug {SECRET}")}, Power.UNREADABLE),
    ],
)
def test_what_a_reading_finds(script: dict[str, PowerState | Exception], power: Power) -> None:
    w, runner, submit, clock = watch(script)
    w.request(["cmp2"])
    submit.run_all()
    found = w.readings()["cmp2"]
    assert found.power is power
    assert SECRET not in found.detail
    assert all(op is Op.POWER_STATE for _, op, _ in runner.calls)
    assert w.request(["cmp2"]) == []  # not in flight any more, but within min_interval


def test_the_reading_is_bounded_over_all_devices() -> None:
    clock = FakeClock()
    runner = Runner(clock, {"bmc-2": errors.BmcUnreachable("no answer"), "pdu-a": PowerState.OFF}, takes=3.0)
    power, detail = read_topology(TOPOLOGIES["cmp2"], lookup_for(), runner, clock, timeout=5.0)
    assert power is Power.UNREADABLE
    assert [t for _, _, t in runner.calls] == [5.0, 2.0]  # the second call gets what is left
    assert "pdu-b" in detail and "were spent" in detail


def test_off_and_describe() -> None:
    w, _, submit, clock = watch({"bmc-1": PowerState.OFF})
    assert "not read by this controller" in w.describe("cmp1", clock.now())
    w.request(["cmp1"])
    assert "in flight" in w.describe("cmp1", clock.now())
    submit.run_all()
    clock.advance(3.0)
    assert w.describe("cmp1", clock.now()).startswith("OFF (level 1: fake://admin@bmc-1:623 (host cmp1) reads off)")
    assert "read 3 s ago" in w.describe("cmp1", clock.now())
    assert "no fence device" in w.describe("cmp9", clock.now())
    w.clear()
    assert w.readings() == {}


def test_disabled_reads_nothing() -> None:
    w, runner, submit, clock = watch({"bmc-1": PowerState.OFF}, WatchPolicy(enabled=False))
    assert w.request(["cmp1"]) == []
    submit.run_all()
    assert runner.calls == [] and w.readings() == {}
    assert "bmc_signal = false" in w.describe("cmp1", clock.now())


def test_a_reading_started_before_a_clear_is_not_kept() -> None:
    """A new term clears the readings; one in flight from the earlier term must not come back after it."""
    w, _, submit, _ = watch({"bmc-1": PowerState.OFF})
    w.request(["cmp1"])
    w.clear()
    submit.run_all()
    assert w.readings() == {}
