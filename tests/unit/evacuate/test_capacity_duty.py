"""The capacity duty with a fake clock and a scripted read: the last report is kept, alerts only on a
change between ok and short, unknown when Nova or placement cannot be read, one INFO/WARNING line per
change and DEBUG otherwise, and a failed alert is tried again."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from petguard import errors
from petguard.cloud import Server
from petguard.evacuate.capacity import (
    DISK_GB,
    MEMORY_MB,
    VCPU,
    CapacityReport,
    HostCapacity,
    Inventory,
    PlacedServer,
    Resources,
    Verdict,
)
from petguard.evacuate.capacity_duty import NOT_CHECKED, CapacityWatch
from petguard.evacuate.plan import EvacuationPolicy
from tests.fakes import FakeClock

PET = Server("p1", "db", "cmp1", "ACTIVE", "active", metadata={"petguard:pet": "true"})


def hosts(room_mb: int) -> list[HostCapacity]:
    """cmp1 with a 4 GiB pet; cmp2 with ``room_mb`` of memory."""
    inventories = {VCPU: Inventory(8), DISK_GB: Inventory(100)}
    return [
        HostCapacity(
            "cmp1", {**inventories, MEMORY_MB: Inventory(8192)}, servers=(PlacedServer(PET, Resources(1, 4096)),)
        ),
        HostCapacity("cmp2", {**inventories, MEMORY_MB: Inventory(room_mb)}),
    ]


class Script:
    """What each read returns: a room size, or an error."""

    def __init__(self) -> None:
        self.next: int | Exception = 8192

    def __call__(self) -> list[HostCapacity]:
        if isinstance(self.next, Exception):
            raise self.next
        return hosts(self.next)


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str | None, int | None, str, str, float]] = []
        self.fail = False

    def __call__(self, host: str | None, incident: int | None, kind: str, message: str, at: float) -> None:
        if self.fail:
            raise errors.Temporary("database is locked")
        self.rows.append((host, incident, kind, message, at))

    def kinds(self) -> list[str]:
        return [kind for _, _, kind, _, _ in self.rows]


@pytest.fixture
def setup() -> tuple[CapacityWatch, Script, Events, FakeClock]:
    clock, script, events = FakeClock(), Script(), Events()
    return CapacityWatch(script, EvacuationPolicy(), clock, events, interval=300.0), script, events, clock


def test_before_the_first_check_it_is_unknown_not_checked_yet(setup) -> None:
    watch, *_ = setup
    report = watch.report()
    assert report.verdict is Verdict.UNKNOWN and report.checked_at is None and report.reason == NOT_CHECKED


def test_alerts_when_it_turns_short_and_when_it_recovers_not_on_every_check(setup) -> None:
    watch, script, events, clock = setup
    assert watch.check_once().verdict is Verdict.OK
    assert events.kinds() == []  # fine from the start: nothing to say

    clock.advance(300)
    script.next = 2048
    report = watch.check_once()
    assert report.verdict is Verdict.SHORT and watch.report() is report and report.checked_at == clock.now()
    assert events.kinds() == ["capacity_short"]
    host, incident, _, message, at = events.rows[0]
    assert host is None and incident is None and at == clock.now()
    assert "cmp1: 1 pet" in message and "MEMORY_MB 2048 MiB missing" in message and "reserved_hosts" in message

    clock.advance(300)
    watch.check_once()  # still short
    assert events.kinds() == ["capacity_short"]

    clock.advance(300)
    script.next = 8192
    watch.check_once()
    assert events.kinds() == ["capacity_short", "capacity_ok"]
    assert "would find room again" in events.rows[1][3]


def test_short_on_the_first_check_alerts(setup) -> None:
    watch, script, events, _ = setup
    script.next = 1024
    watch.check_once()
    assert events.kinds() == ["capacity_short"]


def test_unknown_when_placement_cannot_be_read_and_no_alert_either_way(setup) -> None:
    watch, script, events, _ = setup
    script.next = 1024
    watch.check_once()
    script.next = errors.NovaUnavailable("read the placement usages of cmp2: HTTP 503 (request req-9)")
    report = watch.check_once()
    assert report.verdict is Verdict.UNKNOWN and "req-9" in report.reason and report.checked_at is not None
    script.next = 1024
    watch.check_once()  # short, unknown, short: alerted once
    assert events.kinds() == ["capacity_short"]


def test_an_alert_that_cannot_be_recorded_is_tried_at_the_next_check(setup) -> None:
    watch, script, events, _ = setup
    script.next = 1024
    events.fail = True
    watch.check_once()
    events.fail = False
    watch.check_once()
    assert events.kinds() == ["capacity_short"]


def test_one_line_per_change_at_info_or_warning_debug_otherwise(setup, caplog: pytest.LogCaptureFixture) -> None:
    watch, script, _, _ = setup
    caplog.set_level(logging.DEBUG, logger="petguard.evacuate.capacity_duty")
    watch.check_once()
    watch.check_once()
    script.next = 1024
    watch.check_once()
    levels = [(r.levelname, r.getMessage().split(";")[0].split(":")[1].strip()) for r in caplog.records]
    assert levels == [("INFO", "ok"), ("DEBUG", "unchanged"), ("WARNING", "short")]
    assert "cmp1: 1 pet, 1 vCPU / 4 GiB RAM / 0 GiB disk" in caplog.records[2].getMessage()
    assert "next: add room" in caplog.records[2].getMessage()


def test_the_thread_checks_at_once_then_waits_the_interval_and_stops_promptly(setup) -> None:
    watch, *_ = setup
    checked = threading.Event()
    seen = []
    real = watch.check_once

    def counting() -> CapacityReport:
        seen.append(1)
        checked.set()
        return real()

    watch.check_once = counting  # type: ignore[method-assign]
    watch.start()
    assert checked.wait(5)
    started = time.monotonic()
    watch.stop(timeout=5)
    assert time.monotonic() - started < 2  # the 300 s wait ends with stop()
    assert seen == [1]
