"""The instance-health policy as pure code: what each event means, limits, windows, minimum uptime,
dedupe of one failure's many events and of reset storms, opt-outs, maintenance and Nova's view."""

from __future__ import annotations

import dataclasses

import pytest

from petguard.agent.events import DomainEvent, EventKind
from petguard.cloud import Server
from petguard.guests import policy as health
from petguard.guests.policy import HealthPolicy, Intent, Phase, RestartHow, ServerHealth
from petguard.hosts import HostState

POLICY = HealthPolicy(min_uptime=60.0, max_restarts=3, window=3600.0, restart_timeout=120.0,
                      reset_report_interval=300.0, max_event_age=600.0)
UUID = "uuid-1"


def event(at: float, kind: EventKind, detail: str = "") -> DomainEvent:
    return DomainEvent(f"e{at}", at, UUID, "pet1", kind, detail)


def wd(at: float, action: str = "none") -> DomainEvent:
    return event(at, EventKind.WATCHDOG, action)


def life(at: float, detail: str) -> DomainEvent:
    return event(at, EventKind.LIFECYCLE, detail)


class Run:
    """Feeds events through ``assess``; restarts are 'done' by Nova at once (pending cleared)."""

    def __init__(self, policy: HealthPolicy = POLICY) -> None:
        self.policy = policy
        self.state = ServerHealth(UUID, host="cmp1")
        self.notes: list[tuple[str, str]] = []
        self.restarts = 0

    def feed(self, e: DomainEvent, now: float | None = None) -> health.Assessment:
        a = health.assess(self.state, e, self.policy, e.at if now is None else now)
        self.state = a.state
        if a.intent is Intent.NOTE:
            self.notes.append((a.kind, a.message))
        if a.intent is Intent.RESTART:
            self.restarts += 1
            self.state = health.restart_sent(health.restart_requested(self.state, RestartHow.HARD_REBOOT, e.at))
        return a

    def kinds(self) -> list[str]:
        return [k for k, _ in self.notes]


@pytest.mark.parametrize(
    ("e", "intent"),
    [
        (wd(0, "none"), Intent.RESTART),
        (wd(0, "pause"), Intent.RESTART),
        (wd(0, "reset"), Intent.NOTE),
        (wd(0, "poweroff"), Intent.NOTE),
        (wd(0, "shutdown"), Intent.NOTE),
        (wd(0, "inject-nmi"), Intent.NONE),
        (life(0, "crashed_panicked"), Intent.RESTART),
        (life(0, "stopped_crashed"), Intent.RESTART),
        (life(0, "stopped_failed"), Intent.RESTART),
        (life(0, "paused_watchdog"), Intent.RESTART),
        (life(0, "paused_ioerror"), Intent.NOTE),
        (life(0, "shutdown_guest"), Intent.NOTE),
        (life(0, "stopped_shutdown"), Intent.NONE),
        (life(0, "stopped_destroyed"), Intent.NONE),  # a Nova stop or delete
        (life(0, "shutdown_host"), Intent.NONE),
        (life(0, "paused"), Intent.NONE),
        (event(0, EventKind.REBOOT), Intent.NONE),
        (event(0, EventKind.STATE, "shutoff_crashed"), Intent.RESTART),
        (event(0, EventKind.STATE, "paused_watchdog"), Intent.RESTART),
        (event(0, EventKind.STATE, "shutoff"), Intent.NONE),
        (event(0, EventKind.STATE, "running"), Intent.NONE),
    ],
)
def test_what_each_event_asks_for(e: DomainEvent, intent: Intent) -> None:
    assert health.assess(ServerHealth(UUID), e, POLICY, 0.0).intent is intent


def test_one_failure_many_events_one_restart() -> None:
    run = Run()
    run.feed(life(0, "crashed_panicked"))
    run.feed(life(2, "stopped_crashed"))  # the same panic, on_crash=destroy
    run.feed(event(30, EventKind.STATE, "shutoff_crashed"))  # the agent reconnected meanwhile
    assert run.restarts == 1
    run.feed(wd(100, "pause"))
    run.feed(life(100.1, "paused_watchdog"))
    assert run.restarts == 1, "no run in between: still the same failure"


def test_a_watchdog_poweroff_and_its_stop_are_left_alone() -> None:
    run = Run()
    run.feed(wd(0, "poweroff"))
    run.feed(life(1.6, "stopped_failed"))  # QEMU exits: looks like a crash, is the flavor's action
    run.feed(event(20, EventKind.STATE, "shutoff_failed"))
    assert run.restarts == 0 and run.kinds() == ["instance_left_alone"]


def test_crash_loop_gives_up_after_max_restarts_and_holds_for_the_window() -> None:
    run = Run()
    t = 0.0
    for _ in range(3):
        run.feed(life(t, "started"))
        run.feed(life(t + 10, "crashed_panicked"))  # 10 s < min_uptime: the restart did not help
        t += 20
    assert run.restarts == 3
    run.feed(life(t, "started"))
    gave_up = run.feed(life(t + 10, "crashed_panicked"))
    assert gave_up.kind == "instance_restart_gave_up" and run.state.phase is Phase.GAVE_UP
    assert "3 restart(s)" in gave_up.message
    run.feed(life(t + 20, "started"))
    held = run.feed(life(t + 30, "crashed_panicked"))
    assert held.intent is Intent.NONE and run.restarts == 3
    later = t + 30 + POLICY.window
    run.feed(life(later, "started"))
    assert run.feed(life(later + 10, "crashed_panicked")).intent is Intent.RESTART, "the window passed"


def test_min_uptime_makes_a_restart_a_success() -> None:
    run = Run()
    t = 0.0
    for _ in range(6):
        run.feed(life(t, "started"))
        run.feed(wd(t + 61, "none"))  # ran 61 s > min_uptime each time
        t += 100
    assert run.restarts == 6 and "instance_restart_gave_up" not in run.kinds()


def test_restarts_outside_the_window_do_not_count() -> None:
    run = Run(dataclasses.replace(POLICY, window=100.0))
    t = 0.0
    for _ in range(6):
        run.feed(life(t, "started"))
        run.feed(wd(t + 10, "none"))  # short runs, but 60 s apart against a 100 s window
        t += 60
    assert run.restarts == 6


def test_a_restart_that_never_came_back_is_a_new_failure_after_restart_timeout() -> None:
    run = Run()
    run.feed(wd(0, "pause"))
    assert run.feed(life(50, "paused_watchdog"), now=50).intent is Intent.NONE
    assert run.feed(event(200, EventKind.STATE, "paused_watchdog"), now=200).intent is Intent.RESTART


def test_a_reset_storm_is_counted_and_reported_once_per_interval() -> None:
    run = Run()
    for n in range(300):  # ten minutes of a guest resetting every 2 s, with its reboot events
        run.feed(wd(2.0 * n, "reset"))
        run.feed(event(2.0 * n + 0.1, EventKind.REBOOT))
        run.feed(event(2.0 * n + 0.2, EventKind.REBOOT))
    assert run.kinds() == ["instance_watchdog_reset"] * 2
    assert run.state.resets_total == 300 and run.restarts == 0
    assert "150 reset(s) since the last report, 151 in all" in run.notes[1][1]


def test_an_old_failure_is_recorded_not_acted_on() -> None:
    a = health.assess(ServerHealth(UUID), wd(0), POLICY, now=601.0)
    assert a.intent is Intent.NOTE and a.kind == "instance_event_too_old"


def test_state_survives_the_journal_as_json() -> None:
    run = Run()
    run.feed(life(0, "started"))
    run.feed(wd(10))
    assert ServerHealth.from_dict(run.state.to_dict()) == run.state


# -- the gate: Nova's and petguard's view ---------------------------------------------------------------
def server(**fields: object) -> Server:
    base: dict[str, object] = {"id": UUID, "name": "pet1", "host": "cmp1", "status": "ACTIVE", "vm_state": "active",
                               "power_state": 1, "metadata": {"petguard:pet": "true"}}
    base.update(fields)
    return Server(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("srv", "host_state", "how", "why"),
    [
        (server(), HostState.UP, RestartHow.HARD_REBOOT, "hard reboot"),
        (server(vm_state="paused"), HostState.UP, RestartHow.HARD_REBOOT, "hard reboot"),
        (server(vm_state="stopped"), HostState.UP, RestartHow.START, "starting"),
        (server(metadata={"petguard:pet": "true", "petguard:restart": "false"}), HostState.UP, None, "opted out"),
        (server(metadata={"petguard:pet": "false"}), HostState.UP, None, "opted out"),
        (server(metadata={}), HostState.UP, None, "not a pet"),
        (server(), HostState.MAINTENANCE, None, "maintenance"),
        (server(), HostState.FENCING, None, "handling the host"),
        (server(), None, None, "not a compute host"),
        (server(host="cmp2"), HostState.UP, None, "moved"),
        (server(task_state="powering-off"), HostState.UP, None, "busy"),
        (server(vm_state="shelved_offloaded"), HostState.UP, None, "not restarted"),
        (None, HostState.UP, None, "no server"),
    ],
)
def test_gate(srv: Server | None, host_state: HostState | None, how: RestartHow | None, why: str) -> None:
    got, reason = health.gate(srv, "cmp1", host_state, POLICY)
    assert got is how and why in reason


def test_gate_off_when_disabled() -> None:
    assert health.gate(server(), "cmp1", HostState.UP, dataclasses.replace(POLICY, enabled=False))[0] is None


def test_a_skipped_restart_is_not_counted_and_its_echoes_are_absorbed() -> None:
    a = health.assess(ServerHealth(UUID), wd(0), POLICY, 0.0)
    skipped = health.skipped(a.state, "opted out")
    assert skipped.kind == "instance_restart_skipped" and skipped.state.restarts == ()
    again = health.assess(skipped.state, life(0.1, "paused_watchdog"), POLICY, 0.1)
    assert again.intent is Intent.NONE
