"""Fence readiness with the fake driver and a fake clock: readings spread over the interval, events
only when a device's readiness changes, the status snapshot and the gauge rows, and no secrets."""

from __future__ import annotations

import pytest

from petguard import errors
from petguard.fencing.base import FenceDevice, FenceDriver, FenceTopology, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.fake import Behaviour, FakeDriver, FakeRegistry
from petguard.fencing.preflight import OK_EVENT, UNREACHABLE_EVENT, Readiness
from tests.fakes import FakeClock

SECRET = "pw-Zq8-never-logged"


def device(host: str, address: str) -> FenceDevice:
    return FenceDevice(host, "fake", address, 623, "admin", SECRET)


TOPOLOGIES = {
    "cmp1": FenceTopology("cmp1", ((device("cmp1", "bmc-1"),), (device("cmp1", "pdu-a"), device("cmp1", "pdu-b")))),
    "cmp2": FenceTopology.single(device("cmp2", "bmc-2")),
}


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str | None, int | None, str, str, float]] = []

    def __call__(self, host: str | None, incident: int | None, kind: str, message: str, at: float) -> None:
        self.rows.append((host, incident, kind, message, at))

    def kinds(self) -> list[tuple[str | None, str]]:
        return [(host, kind) for host, _, kind, _, _ in self.rows]


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


class Setup:
    def __init__(self, registry: FakeRegistry) -> None:
        driver = FakeDriver(registry)

        def lookup(name: str) -> FenceDriver:
            return driver

        self.clock = FakeClock()
        self.events = Events()
        self.readiness = Readiness(
            TOPOLOGIES, lookup, FenceRunner(lookup), self.clock, self.events, interval=300.0, timeout=2.0
        )


def test_one_device_every_interval_over_n_seconds_and_never_a_power_off(registry: FakeRegistry) -> None:
    bmcs = [registry.script(a, 623) for a in ("bmc-1", "pdu-a", "pdu-b", "bmc-2")]
    s = Setup(registry)
    start = s.clock.monotonic()

    results = s.readiness.run_cycle()

    assert s.readiness.step == 75.0  # 300 s / 4 devices
    assert [r.checked_at - start for r in results] == [0.0, 75.0, 150.0, 225.0]
    assert s.clock.monotonic() - start == 300.0  # the next cycle starts one interval later
    assert [r.key for r in results] == [("cmp1", 1, 1), ("cmp1", 2, 1), ("cmp1", 2, 2), ("cmp2", 1, 1)]
    assert all(bmc.calls == ["power_state"] for bmc in bmcs)
    assert s.events.rows == []  # all ready from the start: nothing to say
    assert s.readiness.snapshot() == {"cmp1": "ok", "cmp2": "ok"}


def test_events_only_when_readiness_changes(registry: FakeRegistry) -> None:
    for address in ("bmc-1", "pdu-a", "bmc-2"):
        registry.script(address, 623)
    pdu_b = registry.script("pdu-b", 623, Behaviour.AUTH_FAILS)
    s = Setup(registry)

    s.readiness.run_cycle()
    s.readiness.run_cycle()  # still broken: no second alert
    assert s.events.kinds() == [("cmp1", UNREACHABLE_EVENT)]
    host, incident, _, message, _ = s.events.rows[0]
    assert incident is None
    assert message.startswith("level 2 device 2 (fake://admin@pdu-b:623 (host cmp1)): BmcAuthError: ")
    assert "refused the credentials" in message and "petguard-manage config check" in message

    pdu_b.behaviour = Behaviour.NORMAL
    s.readiness.run_cycle()
    s.readiness.run_cycle()
    assert s.events.kinds() == [("cmp1", UNREACHABLE_EVENT), ("cmp1", OK_EVENT)]
    assert "works again" in s.events.rows[1][3]


def test_snapshot_unknown_until_read_then_why_not(registry: FakeRegistry) -> None:
    registry.script("bmc-1", 623)
    registry.script("pdu-a", 623, Behaviour.UNREACHABLE)
    registry.script("pdu-b", 623)
    registry.script("bmc-2", 623, power=PowerState.OFF)
    s = Setup(registry)
    assert s.readiness.snapshot() == {"cmp1": "unknown", "cmp2": "unknown"}

    s.readiness.run_cycle()

    snapshot = s.readiness.snapshot()
    assert snapshot["cmp2"] == "ok"
    assert snapshot["cmp1"].startswith("level 2 device 1 (fake://admin@pdu-a:623 (host cmp1)): BmcUnreachable: ")
    assert SECRET not in str(snapshot) and SECRET not in str(s.events.rows)
    assert list(s.readiness.gauge_rows()) == [
        ("cmp1", "1", "1", True),
        ("cmp1", "2", "1", False),
        ("cmp1", "2", "2", True),
        ("cmp2", "1", "1", True),
    ]
    [off] = [r for r in s.readiness.results() if r.host == "cmp2"]
    assert off.power is PowerState.OFF and off.summary().endswith("ok, power off")


def test_a_driver_that_cannot_be_loaded_is_not_ready(registry: FakeRegistry) -> None:
    def lookup(name: str) -> FenceDriver:
        raise errors.DriverLoadError("fence driver 'fake' is not enabled; add it", driver=name)

    events = Events()
    readiness = Readiness(TOPOLOGIES, lookup, FenceRunner(lookup), FakeClock(), events, interval=40.0)

    results = readiness.run_cycle()

    assert not any(r.ready for r in results)
    assert len(events.rows) == 4
    assert "DriverLoadError: fence driver 'fake' is not enabled" in events.rows[0][3]


def test_stop_ends_the_cycle_between_devices(registry: FakeRegistry) -> None:
    for address in ("bmc-1", "pdu-a", "pdu-b", "bmc-2"):
        registry.script(address, 623)
    s = Setup(registry)
    s.readiness.stop()

    assert s.readiness.run_cycle() == []
