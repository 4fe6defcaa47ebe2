"""The one table from libvirt's numbers to petguard's names."""

from __future__ import annotations

import pytest

from petguard.agent import events as ev
from petguard.agent.events import DomainState, EventKind, Lifecycle, WatchdogAction


def test_every_constant_matches_the_installed_libvirt() -> None:
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install .[agent])")
    wrong = {name: (value, getattr(libvirt, name, None)) for name, value in ev.LIBVIRT.items()
             if getattr(libvirt, name, None) != value}
    assert wrong == {}


def test_every_table_names_only_known_constants() -> None:
    names = [n for n, _ in ev.WATCHDOG_TABLE]
    names += [n for row in ev.LIFECYCLE_TABLE for n in row[:2] if n]
    names += [n for row in ev.STATE_TABLE for n in row[:2] if n]
    assert set(names) <= set(ev.LIBVIRT)


@pytest.mark.parametrize(
    ("action", "expected"),
    [(0, WatchdogAction.NONE), (1, WatchdogAction.PAUSE), (2, WatchdogAction.RESET), (3, WatchdogAction.POWEROFF),
     (4, WatchdogAction.SHUTDOWN), (5, WatchdogAction.DEBUG), (6, WatchdogAction.INJECT_NMI),
     (99, WatchdogAction.UNKNOWN)],
)
def test_watchdog_actions(action: int, expected: WatchdogAction) -> None:
    assert ev.watchdog_action(action) is expected


@pytest.mark.parametrize(
    ("event", "detail", "expected"),
    [
        (5, 5, Lifecycle.STOPPED_FAILED),  # kill -9, watchdog poweroff
        (5, 2, Lifecycle.STOPPED_CRASHED),
        (5, 0, Lifecycle.STOPPED_SHUTDOWN),
        (5, 1, Lifecycle.STOPPED_DESTROYED),
        (5, 4, Lifecycle.STOPPED_OTHER),  # saved
        (8, 0, Lifecycle.CRASHED_PANICKED),
        (8, 1, Lifecycle.CRASHED_OTHER),
        (3, 3, Lifecycle.PAUSED_WATCHDOG),
        (3, 2, Lifecycle.PAUSED_IOERROR),
        (3, 0, Lifecycle.PAUSED),
        (3, 1, Lifecycle.PAUSED_OTHER),
        (6, 1, Lifecycle.SHUTDOWN_GUEST),
        (6, 2, Lifecycle.SHUTDOWN_HOST),
        (6, 0, Lifecycle.SHUTDOWN_FINISHED),
        (2, 0, Lifecycle.STARTED),
        (4, 0, Lifecycle.RESUMED),
        (42, 0, Lifecycle.OTHER),
    ],
)
def test_lifecycle(event: int, detail: int, expected: Lifecycle) -> None:
    assert ev.lifecycle(event, detail) is expected


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        (1, 1, DomainState.RUNNING),
        (3, 6, DomainState.PAUSED_WATCHDOG),
        (3, 5, DomainState.PAUSED_IOERROR),
        (3, 1, DomainState.PAUSED),
        (5, 3, DomainState.SHUTOFF_CRASHED),
        (5, 6, DomainState.SHUTOFF_FAILED),
        (5, 0, DomainState.SHUTOFF),
        (6, 1, DomainState.CRASHED_PANICKED),
        (0, 0, DomainState.OTHER),
    ],
)
def test_domain_states(state: int, reason: int, expected: DomainState) -> None:
    assert ev.domain_state(state, reason) is expected


def test_an_event_survives_the_wire() -> None:
    event = ev.DomainEvent("boot-1", 12.5, "uuid-1", "pet", EventKind.WATCHDOG, "reset")
    assert ev.DomainEvent.from_wire(event.to_wire()) == event
    assert event.detail in ev.DETAILS[EventKind.WATCHDOG]
