"""The agent's reporter against the real API, journal, loop and instance-health executor (in-process).

Heartbeats are detection's second signal: fresh + Nova down never fences and says nova-compute needs
a restart; stale + Nova down fences. Domain events drive restarts through (fake) Nova within limits.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from petguard import secrets
from petguard.agent.events import DomainEvent, DomainState, DomainSummary, EventKind
from petguard.agent.report import AgentStatus, Buffer
from petguard.detect import DetectionPolicy
from petguard.fencing import fake
from petguard.fencing.base import PowerState
from petguard.hosts import HostState
from tests.functional.agent.conftest import HMAC_KEY, Controller, devices

UUID = "0b1c9f4e-5d2a-4c3b-9e8f-7a6b5c4d3e2f"


def watchdog(n: int, at: float, action: str = "none", domain: str = UUID) -> DomainEvent:
    return DomainEvent(f"boot-{n}", at, domain, "pet1", EventKind.WATCHDOG, action)


def send(controller: Controller, tmp_path: Path, host: str, events: list[DomainEvent]) -> None:
    buffer = Buffer(tmp_path / f"buf-{uuid.uuid4().hex[:6]}.sqlite", 1000)
    for event in events:
        buffer.put(event)
    reporter = controller.reporter(buffer, host)
    while reporter.flush_once():
        pass
    assert len(buffer) == 0


@pytest.mark.fault(
    "DET-08",
    guarantee="-",
    injected="nova-compute dies while the host's petguard-agent keeps sending signed heartbeats",
    expected="never fenced; one nova_compute_down alert telling to restart nova-compute",
)
def test_heartbeat_fresh_and_nova_down_never_fences_and_alerts_once(controller: Controller, tmp_path: Path) -> None:
    harness = controller.harness
    status = AgentStatus(True, (DomainSummary(UUID, "pet1", DomainState.RUNNING),))
    reporter = controller.reporter(Buffer(tmp_path / "b.sqlite", 100), "cmp1", status).start()
    try:
        deadline = time.monotonic() + 5
        while reporter.last_heartbeat_ok is None and time.monotonic() < deadline:
            time.sleep(0.05)
        harness.loop.tick()
        controller.compute.dead.add("cmp1")  # nova-compute died; the host and its agent live
        harness.run_for(1.5)  # five grace periods
    finally:
        reporter.stop()
    assert harness.state("cmp1") is HostState.UP
    assert fake.REGISTRY.get(devices(["cmp1"])["cmp1"]).calls == []
    alerts = controller.events("nova_compute_down")
    assert len(alerts) == 1 and "restart nova-compute" in alerts[0]
    agents = controller.operator().get("/v1/agents").json()["agents"]
    assert agents[0]["host"] == "cmp1" and agents[0]["domains"][0]["uuid"] == UUID


@pytest.mark.fault(
    "DET-09",
    guarantee="1",
    injected="the host dies: its agent falls silent (stale), then Nova says down",
    expected="the host is fenced (BMC power OFF); no nova_compute_down alert",
)
def test_heartbeat_stale_and_nova_down_fences(controller: Controller, tmp_path: Path) -> None:
    harness = controller.harness
    harness.loop._policy = harness.loop._policy.__class__(  # agents go stale after 0.5 s in this test
        detection=DetectionPolicy(grace_period=0.3, down_samples=2, up_samples=2, agent_stale_after=0.5),
        startup_blackout=0.0,
    )
    reporter = controller.reporter(Buffer(tmp_path / "b.sqlite", 100), "cmp1")
    assert reporter.send_heartbeat()
    harness.loop.tick()
    # The host died: its agent fell silent at once; Nova says so only after service_down_time.
    time.sleep(0.6)
    controller.compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") in (HostState.FENCED, HostState.EVACUATING,
                                                       HostState.EVACUATED), timeout=20)
    assert fake.REGISTRY.get(devices(["cmp1"])["cmp1"]).power is PowerState.OFF
    assert controller.events("nova_compute_down") == []


def test_a_hung_pet_is_restarted_at_most_max_restarts_times_then_given_up(
    controller: Controller, tmp_path: Path
) -> None:
    controller.harness.loop.tick()
    controller.add_pet(UUID, "pet1", "cmp1")
    now = time.time()
    # Four hangs, each 2 s after the restart before it (under min_uptime): 3 restarts, then give up.
    for n in range(4):
        started = DomainEvent(f"b-s{n}", now + 10 * n + 1, UUID, "pet1", EventKind.LIFECYCLE, "started")
        send(controller, tmp_path, "cmp1", [started, watchdog(n, now + 10 * n + 3)])
        controller.executor.run_once()
    assert controller.compute.reboots == [(UUID, True)] * 3
    assert len(controller.events("instance_restart")) == 3
    gave_up = controller.events("instance_restart_gave_up")
    assert len(gave_up) == 1 and "gives up" in gave_up[0]
    # A daemon restart keeps the limit: a new executor over the same journal still refuses.
    fresh = controller.executor.__class__(
        controller.compute, controller.harness.store, controller.harness.clock, controller.executor._policy
    )
    send(controller, tmp_path, "cmp1", [watchdog(9, now + 60)])
    fresh.run_once()
    assert len(controller.compute.reboots) == 3


def test_restart_counts_start_again_after_min_uptime(controller: Controller, tmp_path: Path) -> None:
    controller.harness.loop.tick()
    controller.add_pet(UUID, "pet1", "cmp1")
    now = time.time()
    for n in range(5):  # each restart ran 6 s > min_uptime 5 s: every one a success
        started = DomainEvent(f"b-s{n}", now + 10 * n, UUID, "pet1", EventKind.LIFECYCLE, "started")
        send(controller, tmp_path, "cmp1", [started, watchdog(n, now + 10 * n + 6)])
        controller.executor.run_once()
    assert len(controller.compute.reboots) == 5
    assert controller.events("instance_restart_gave_up") == []


def test_a_crash_of_a_stopped_server_starts_it(controller: Controller, tmp_path: Path) -> None:
    controller.harness.loop.tick()
    server = controller.add_pet(UUID, "pet1", "cmp1")
    controller.compute.servers[UUID] = server.__class__(**{**server.__dict__, "vm_state": "stopped",
                                                           "status": "SHUTOFF", "power_state": 4})
    crash = DomainEvent("k1", time.time(), UUID, "pet1", EventKind.LIFECYCLE, "stopped_failed")
    send(controller, tmp_path, "cmp1", [crash])
    controller.executor.run_once()
    assert controller.compute.calls.get("start_server") == 1 and controller.compute.reboots == []


def test_owner_actions_opt_out_and_maintenance_are_respected(controller: Controller, tmp_path: Path) -> None:
    harness = controller.harness
    harness.loop.tick()
    other = str(uuid.uuid4())
    third = str(uuid.uuid4())
    controller.add_pet(UUID, "pet1", "cmp1", **{"petguard:restart": "false"})
    controller.add_pet(other, "pet2", "cmp1")
    controller.add_pet(third, "pet3", "cmp2")
    now = time.time()
    send(controller, tmp_path, "cmp1", [
        watchdog(1, now, "none"),  # opted out
        DomainEvent("p1", now, other, "pet2", EventKind.WATCHDOG, "poweroff"),  # the flavor's own action
        DomainEvent("p2", now + 1.6, other, "pet2", EventKind.LIFECYCLE, "stopped_failed"),  # ... and its echo
        DomainEvent("p3", now + 5, other, "pet2", EventKind.LIFECYCLE, "shutdown_guest"),
    ])
    controller.executor.run_once()
    client = controller.operator()
    client.post("/v1/hosts/cmp2/requests", json={"kind": "maintenance_on", "reason": "disk swap"})
    harness.loop.tick()
    assert harness.state("cmp2") is HostState.MAINTENANCE
    send(controller, tmp_path, "cmp2", [DomainEvent("m1", now, third, "pet3", EventKind.LIFECYCLE, "crashed_panicked")])
    controller.executor.run_once()
    assert controller.compute.reboots == [] and controller.compute.calls.get("start_server") is None
    skipped = controller.events("instance_restart_skipped")
    assert any("opted out" in m for m in skipped) and any("maintenance" in m for m in skipped)
    assert len(controller.events("instance_left_alone")) == 1


def test_a_reset_storm_is_counted_and_reported_once_per_interval(controller: Controller, tmp_path: Path) -> None:
    controller.harness.loop.tick()
    controller.add_pet(UUID, "pet1", "cmp1")
    now = time.time()
    storm = []
    for n in range(20):  # every 2.2 s: a watchdog reset and its reboots (44 s, interval 30 s)
        storm.append(watchdog(n, now + 2.2 * n, "reset"))
        storm += [DomainEvent(f"r{n}-{i}", now + 2.2 * n + 0.1, UUID, "pet1", EventKind.REBOOT, "") for i in range(3)]
    send(controller, tmp_path, "cmp1", storm)
    while controller.executor.run_once():
        pass
    reports = controller.events("instance_watchdog_reset")
    assert len(reports) == 2, reports
    assert "20 in all" not in reports[0] and controller.compute.reboots == []


def test_events_are_stored_once_and_only_signed_agents_may_report(controller: Controller, tmp_path: Path) -> None:
    events = [watchdog(1, time.time(), "reset")]
    send(controller, tmp_path, "cmp1", events)
    send(controller, tmp_path, "cmp1", events)  # the reply was lost: the agent sends again
    assert len(controller.harness.store.pending_agent_events()) == 1
    body = b'{"host": "cmp1", "events": []}'
    client = httpx.Client(transport=controller.agent_transport(), base_url="http://petguard")
    assert client.post("/v1/agent/events", content=body, headers={"Authorization": "Bearer op-token-agent-tests"}
                       ).status_code == 403
    stamp = f"{time.time():.3f}"
    path = "/v1/agent/events"
    wrong = {"X-Petguard-Timestamp": stamp, "X-Petguard-Signature": secrets.sign("wrong", stamp, "POST", path, body),
             "X-Petguard-Sender": "cmp1", "Content-Type": "application/json"}
    assert client.post(path, content=body, headers=wrong).status_code == 401
    right = dict(wrong, **{"X-Petguard-Signature": secrets.sign(HMAC_KEY, stamp, "POST", path, body)})
    assert client.post(path, content=body, headers=right).status_code == 202
    bad = b'{"host": "cmp1", "events": [{"id": "x", "at": 1, "domain_uuid": "u", "domain_name": "n", ' \
          b'"kind": "watchdog", "detail": "explode"}]}'
    signed = dict(wrong, **{"X-Petguard-Signature": secrets.sign(HMAC_KEY, stamp, "POST", path, bad)})
    answer = client.post("/v1/agent/events", content=bad, headers=signed)
    assert answer.status_code == 400 and "explode" in answer.json()["error"]["message"]


def test_the_controller_unreachable_loses_nothing(controller: Controller, tmp_path: Path) -> None:
    from tests.functional.agent.conftest import free_port

    port = free_port()
    buffer = Buffer(tmp_path / "spool.sqlite", 1000)
    reporter = controller.reporter(buffer, "cmp1", urls=(f"http://127.0.0.1:{port}",), in_process=False).start()
    try:
        now = time.time()
        for n in range(50):
            buffer.put(watchdog(n, now + n, "reset"))
        time.sleep(1.0)
        assert len(buffer) == 50 and reporter.delivered == 0
        controller.serve(port)
        deadline = time.monotonic() + 15
        while len(buffer) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        reporter.stop()
    stored = controller.harness.store.pending_agent_events(1000)
    assert sorted(r.event.id for r in stored) == sorted(f"boot-{n}" for n in range(50))
