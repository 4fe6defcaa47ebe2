"""The runner's tier gate: a higher tier starts only once the lower tiers' pets are ready, or after the timeout.

In-memory Nova (``FakeCompute``), a fake clock and a fake prober whose pets start answering at a set
time on that clock; the real prober has its own functional test (tests/functional/test_ready_probe.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest

from petguard.cloud import PowerGoal, Server
from petguard.errors import NovaConflict, NovaError, NovaUnavailable
from petguard.evacuate.ready import ProbeResult, ReadyCheck, ReadyPolicy
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.journal import MoveRecord, MoveStatus
from tests.fakes import FakeClock, FakeCompute
from tests.unit.evacuate.stubs import MovesStore

READY = ReadyPolicy(timeout=120.0, default_delay=0.0, interval=2.0, probe_timeout=1.0)
POLICY = RunPolicy(max_parallel=4, poll_interval=0.5, move_timeout=60, ready=READY)


class _Compute(FakeCompute):
    """FakeCompute that notes the fake clock's time of every evacuate call."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(["cmp1", "cmp2", "cmp3"], evacuation_steps=3)
        self.clock = clock
        self.asked_at: dict[str, float] = {}
        self.unreadable = False

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        self.asked_at[server_id] = self.clock.now()
        return super().evacuate(server_id, host)

    def get_server(self, server_id: str) -> Server:
        if self.unreadable:
            raise NovaUnavailable("nova flaps (fake)")
        return super().get_server(server_id)


class _Prober:
    """Answers for an address:port once the fake clock reaches its time (never, if it has none)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.answers_from: dict[tuple[str, int], float] = {}
        self.calls: list[tuple[str, int, float]] = []
        self.after_call: list[threading.Event] = []  # set after this many calls (the stop test)

    def probe(self, check: ReadyCheck, address: str, timeout: float) -> ProbeResult:
        self.calls.append((address, check.port, self.clock.now()))
        if len(self.calls) >= 3:
            for event in self.after_call:
                event.set()
        at = self.answers_from.get((address, check.port))
        if at is not None and self.clock.now() >= at:
            return ProbeResult(True, "connected")
        return ProbeResult(False, "connection refused")


@dataclasses.dataclass
class World:
    clock: FakeClock
    compute: _Compute
    prober: _Prober
    store: MovesStore
    stop: threading.Event

    def run(self, policy: RunPolicy = POLICY) -> None:
        Evacuator(self.compute, self.store, self.clock, policy, self.stop, self.prober).run(1, since=0.0)  # type: ignore[arg-type]

    def status(self, name: str) -> MoveStatus:
        return self.store.rows[f"{name}-id"].status


def world(pets: dict[str, tuple[int, int, dict[str, str]]], stopped: frozenset[str] = frozenset()) -> World:
    """``pets``: name -> (tier, wave, extra metadata); each has fixed IPs 10.0.<n>.5 and 10.1.<n>.5."""
    clock = FakeClock()
    compute = _Compute(clock)
    moves = []
    for n, (name, (tier, wave, metadata)) in enumerate(pets.items()):
        vm_state = "stopped" if name in stopped else "active"
        compute.add_server(
            name,
            "cmp1",
            vm_state=vm_state,
            metadata={"petguard:tier": str(tier), **metadata},
            addresses=(f"10.0.{n}.5", f"10.1.{n}.5"),
        )
        goal = PowerGoal.STOPPED if name in stopped else PowerGoal.RUNNING
        moves.append(MoveRecord(1, f"{name}-id", name, 0, goal, MoveStatus.PLANNED, "cmp1", wave=wave))
    compute.dead.add("cmp1")
    compute.services["cmp1"].forced_down = True
    return World(clock, compute, _Prober(clock), MovesStore(moves), threading.Event())


DB_CHECK = {"petguard:ready_check": "tcp:5432"}


def test_tier_1_is_not_requested_before_tier_0_answers_its_check(caplog: pytest.LogCaptureFixture) -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.prober.answers_from[("10.0.0.5", 5432)] = w.clock.now() + 50
    with caplog.at_level(logging.INFO):
        w.run()
    assert w.status("db") is MoveStatus.DONE and w.status("app") is MoveStatus.DONE
    answered_at = w.prober.answers_from[("10.0.0.5", 5432)]
    assert w.compute.asked_at["app-id"] >= answered_at  # not asked before db answered
    assert w.compute.asked_at["app-id"] < answered_at + READY.interval + 1  # and promptly after
    assert {address for address, _, _ in w.prober.calls} == {"10.0.0.5"}  # the first fixed IP
    assert "tier_not_ready" not in w.store.kinds()
    assert "tier 1 waits for tier 0 to be ready: db (tcp 10.0.0.5:5432): connection refused; next: wave 1" in (
        caplog.text
    )


def test_a_tier_that_is_ready_at_once_lets_the_next_start_without_waiting() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.prober.answers_from[("10.0.0.5", 5432)] = 0.0
    w.run()
    assert w.status("app") is MoveStatus.DONE
    assert len(w.prober.calls) == 1


def test_the_timeout_lets_the_next_tier_start_anyway_with_an_event() -> None:
    w = world({"db": (0, 0, DB_CHECK), "cache": (0, 0, {}), "app": (1, 1, {})})
    w.run()  # db never answers
    assert w.status("app") is MoveStatus.DONE
    done_at = w.store.rows["db-id"].updated_at
    assert w.compute.asked_at["app-id"] >= done_at + READY.timeout
    ((kind, message),) = [e for e in w.store.events if e[0] == "tier_not_ready"]
    assert "tier 0 not ready after 120 s: db (tcp 10.0.0.5:5432): connection refused" in message
    assert "tier 1 starts anyway" in message and "cache" not in message


def test_the_waves_of_one_tier_wait_once_not_once_each() -> None:
    """Tier 1's second wave only serialises an anti-affinity group: it does not wait (and time out) again."""
    w = world({"db": (0, 0, DB_CHECK), "anti-1": (1, 1, {}), "anti-2": (1, 2, {})})
    w.run()
    assert w.status("anti-2") is MoveStatus.DONE
    assert w.store.kinds().count("tier_not_ready") == 1
    assert w.compute.asked_at["anti-2-id"] - w.compute.asked_at["anti-1-id"] < READY.timeout


def test_every_lower_tier_is_waited_for() -> None:
    w = world({"base": (-1, 0, {"petguard:ready_check": "tcp:22"}), "db": (0, 1, DB_CHECK), "app": (1, 2, {})})
    w.prober.answers_from[("10.0.0.5", 22)] = w.clock.now() + 200  # answers only after tier 0 started
    w.prober.answers_from[("10.0.1.5", 5432)] = w.clock.now()
    w.run()
    assert w.status("app") is MoveStatus.DONE
    assert w.store.kinds().count("tier_not_ready") == 1  # base held tier 0 until the timeout
    assert w.compute.asked_at["app-id"] >= w.prober.answers_from[("10.0.0.5", 22)]  # and tier 1 until it answered


def test_stopped_pets_and_failed_moves_are_not_checked() -> None:
    w = world(
        {"stopped-db": (0, 0, DB_CHECK), "refused": (0, 0, {"petguard:ready_check": "tcp:80"}), "app": (1, 1, {})},
        stopped=frozenset({"stopped-db"}),
    )
    original = w.compute.evacuate

    def refuse(server_id: str, host: str | None = None) -> str:
        if server_id == "refused-id":
            raise NovaConflict("refused (fake)")
        return original(server_id, host)

    w.compute.evacuate = refuse  # type: ignore[method-assign]
    w.run()
    assert w.status("stopped-db") is MoveStatus.DONE and w.status("refused") is MoveStatus.FAILED
    assert w.status("app") is MoveStatus.DONE
    assert w.prober.calls == []
    assert "tier_not_ready" not in w.store.kinds()


def test_the_stop_event_ends_the_wait_and_the_next_run_checks_again() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.prober.after_call.append(w.stop)  # SIGTERM while tier 1 waits
    w.run()
    assert w.status("db") is MoveStatus.DONE
    assert w.status("app") is MoveStatus.PLANNED and "app-id" not in w.compute.evacuate_calls
    assert "tier_not_ready" not in w.store.kinds()
    stopped_after = len(w.prober.calls)
    assert stopped_after == 3

    w.stop.clear()
    w.prober.after_call.clear()
    w.prober.answers_from[("10.0.0.5", 5432)] = w.clock.now() + 10
    w.run()  # the restarted daemon's run waits again, then goes on
    assert w.status("app") is MoveStatus.DONE
    assert len(w.prober.calls) > stopped_after


def test_a_wave_that_began_in_an_earlier_run_is_not_held_again() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.run(dataclasses.replace(POLICY, ready=dataclasses.replace(READY, timeout=0.0)))  # db done, app started
    w.store.rows["app-id"] = dataclasses.replace(w.store.rows["app-id"], status=MoveStatus.ARRIVED)
    calls = len(w.prober.calls)
    w.run()
    assert len(w.prober.calls) == calls  # resumed without checking tier 0 again
    assert w.status("app") is MoveStatus.DONE


def test_a_delay_holds_the_next_tier_after_the_pet_is_back() -> None:
    w = world({"db": (0, 0, {"petguard:ready_delay": "30"}), "app": (1, 1, {})})
    w.run()
    assert w.compute.asked_at["app-id"] >= w.store.rows["db-id"].updated_at + 30
    assert w.prober.calls == [] and "tier_not_ready" not in w.store.kinds()


def test_the_default_delay_applies_to_every_pet_and_the_pets_own_wins() -> None:
    w = world({"db": (0, 0, {}), "quick": (0, 0, {"petguard:ready_delay": "1"}), "app": (1, 1, {})})
    w.run(dataclasses.replace(POLICY, ready=dataclasses.replace(READY, default_delay=45.0)))
    done_at = max(w.store.rows[s].updated_at for s in ("db-id", "quick-id"))
    assert w.compute.asked_at["app-id"] >= w.store.rows["db-id"].updated_at + 45
    assert w.compute.asked_at["app-id"] < done_at + 45 + READY.interval + 1


def test_a_delay_and_a_check_both_hold() -> None:
    w = world({"db": (0, 0, {**DB_CHECK, "petguard:ready_delay": "40"}), "app": (1, 1, {})})
    w.prober.answers_from[("10.0.0.5", 5432)] = 0.0  # answers at once
    w.run()
    assert w.compute.asked_at["app-id"] >= w.store.rows["db-id"].updated_at + 40
    assert all(at >= w.store.rows["db-id"].updated_at + 40 for _, _, at in w.prober.calls)  # no probe in the delay


def test_a_malformed_check_is_reported_and_does_not_hold_the_next_tier(caplog: pytest.LogCaptureFixture) -> None:
    w = world({"db": (0, 0, {"petguard:ready_check": "tcp:postgres"}), "app": (1, 1, {})})
    with caplog.at_level(logging.WARNING):
        w.run()
    assert w.status("app") is MoveStatus.DONE and w.prober.calls == []
    assert [k for k in w.store.kinds() if k != "server_evacuated"] == ["ready_check_invalid"]
    line = next(r.getMessage() for r in caplog.records if "ready_check" in r.getMessage())
    assert "db (db-id)" in line and "'tcp:postgres'" in line and "tcp:HOST:PORT" in line


def test_an_explicit_host_is_checked_instead_of_the_fixed_ip() -> None:
    w = world({"db": (0, 0, {"petguard:ready_check": "http://127.0.0.1:8080/health"}), "app": (1, 1, {})})
    w.prober.answers_from[("127.0.0.1", 8080)] = 0.0
    w.run()
    assert [(a, p) for a, p, _ in w.prober.calls] == [("127.0.0.1", 8080)]


def test_a_pet_without_a_fixed_ip_is_named_in_the_timeout() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.compute.servers["db-id"] = dataclasses.replace(w.compute.servers["db-id"], addresses=())
    w.run()
    assert w.status("app") is MoveStatus.DONE and w.prober.calls == []
    (message,) = [m for k, m in w.store.events if k == "tier_not_ready"]
    assert "no fixed IP address" in message and "give a HOST" in message


def test_a_pet_that_is_not_active_any_more_is_not_ready() -> None:
    w = world({"db": (0, 0, {}), "app": (1, 1, {})})
    original = w.compute.get_server

    def shut_off_once_done(server_id: str) -> Server:
        server = original(server_id)
        if server_id == "db-id" and w.status("db") is MoveStatus.DONE:
            return dataclasses.replace(server, status="SHUTOFF", vm_state="stopped")
        return server

    w.compute.get_server = shut_off_once_done  # type: ignore[method-assign]
    w.run()
    (message,) = [m for k, m in w.store.events if k == "tier_not_ready"]
    assert "db (ACTIVE): SHUTOFF in Nova" in message


def test_nova_unreadable_at_the_gate_ends_the_run_without_starting_the_tier() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.store.rows["db-id"] = dataclasses.replace(w.store.rows["db-id"], status=MoveStatus.DONE)
    w.compute.unreadable = True
    w.run()
    assert w.status("app") is MoveStatus.PLANNED and "app-id" not in w.compute.evacuate_calls
    assert w.store.events == [] and w.prober.calls == []
    w.compute.unreadable = False
    w.prober.answers_from[("10.0.0.5", 5432)] = 0.0
    w.run()  # the next run checks again, then goes on
    assert w.status("app") is MoveStatus.DONE


def test_a_pet_that_becomes_active_again_is_read_again_and_lets_the_tier_start() -> None:
    w = world({"db": (0, 0, {}), "app": (1, 1, {})})
    original = w.compute.get_server
    shut_off_reads = [3]

    def shut_off_for_a_while(server_id: str) -> Server:
        server = original(server_id)
        if server_id == "db-id" and w.status("db") is MoveStatus.DONE and shut_off_reads[0] > 0:
            shut_off_reads[0] -= 1
            return dataclasses.replace(server, status="SHUTOFF", vm_state="stopped")
        return server

    w.compute.get_server = shut_off_for_a_while  # type: ignore[method-assign]
    w.run()
    assert w.status("app") is MoveStatus.DONE and "tier_not_ready" not in w.store.kinds()
    assert w.compute.asked_at["app-id"] < w.store.rows["db-id"].updated_at + READY.timeout


def test_a_delay_longer_than_the_timeout_is_waited_in_full_then_the_checks_get_their_timeout() -> None:
    w = world({"db": (0, 0, {**DB_CHECK, "petguard:ready_delay": "300"}), "app": (1, 1, {})})
    w.prober.answers_from[("10.0.0.5", 5432)] = w.clock.now() + 300 + READY.timeout - 10
    w.run()
    assert "tier_not_ready" not in w.store.kinds()
    assert w.compute.asked_at["app-id"] >= w.prober.answers_from[("10.0.0.5", 5432)]


def test_nova_refusing_the_read_at_the_gate_does_not_hold_the_recovery() -> None:
    w = world({"db": (0, 0, DB_CHECK), "app": (1, 1, {})})
    w.store.rows["db-id"] = dataclasses.replace(w.store.rows["db-id"], status=MoveStatus.DONE)
    original = w.compute.get_server

    def forbidden_for_db(server_id: str) -> Server:
        if server_id == "db-id":
            raise NovaError("show server db-id: HTTP 403 (fake)")
        return original(server_id)

    w.compute.get_server = forbidden_for_db  # type: ignore[method-assign]
    w.run()
    assert w.status("app") is MoveStatus.DONE and w.prober.calls == []
