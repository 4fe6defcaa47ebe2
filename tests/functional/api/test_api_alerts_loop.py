"""Alerts reach the loop as evidence: an alert alone never fences a host; an alert while Nova also
says the host is down does not stop the fence-then-evacuate path. Real app, journal and loop; fake
Nova and fake fence devices."""

from __future__ import annotations

import time

import pytest

from petguard.fencing import fake
from petguard.fencing.base import PowerState
from petguard.hosts import HostState
from tests.functional.api.conftest import Api

FIRING = {"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing", "summary": "ping fails"}]}


@pytest.mark.fault(
    "DET-05",
    guarantee="8",
    injected="a firing node-down alert for a host that Nova sees up",
    expected="no fence: the host stays up, its BMC is never called",
)
def test_an_alert_alone_never_fences(api: Api) -> None:
    api.tick()
    assert api.client.post("/v1/alerts", json=FIRING).status_code == 202
    api.harness.run_for(1.5)  # five grace periods
    host = api.client.get("/v1/hosts/cmp1").json()["host"]
    assert host["state"] == "up"
    assert fake.REGISTRY.get(api.harness_device("cmp1")).calls == []


@pytest.mark.fault(
    "DET-06",
    guarantee="8",
    injected="a node-down alert for a host forced down in Nova by someone else (an operator)",
    expected="never fenced (Nova's signal is uncertain); the host's detail names the alert",
)
def test_an_alert_on_a_host_forced_down_by_someone_else_never_fences(api: Api) -> None:
    api.tick()
    api.compute.services["cmp1"].forced_down = True  # an operator did it: Nova's signal is uncertain
    api.client.post("/v1/alerts", json=FIRING)
    api.harness.run_for(1.5)
    assert api.harness.state("cmp1") in (HostState.UP, HostState.SUSPECT)
    assert fake.REGISTRY.get(api.harness_device("cmp1")).calls == []
    assert "alert:node_down" in api.client.get("/v1/hosts/cmp1").json()["host"]["detail"]


def test_an_alert_plus_nova_down_fences_then_evacuates(api: Api) -> None:
    api.tick()
    api.client.post("/v1/alerts", json=FIRING)
    api.compute.dead.add("cmp1")
    api.harness.run_until(lambda: api.harness.state("cmp1") is HostState.EVACUATED, timeout=20)
    bmc = fake.REGISTRY.get(api.harness_device("cmp1"))
    assert bmc.power is PowerState.OFF
    detail = api.client.get("/v1/hosts/cmp1").json()
    assert detail["incident"] is not None
    api.harness.loop.wait_idle(5)
    families = api.anonymous().get("/metrics").text
    assert 'petguard_fence_attempts_total{outcome="confirmed"} 1.0' in families
    assert time.time() - api.harness.loop.last_ok_tick < 5  # type: ignore[operator]


@pytest.mark.fault(
    "DET-07",
    guarantee="8",
    injected="a node-down alert for a host whose service Nova no longer lists (the alert is the only signal)",
    expected="never fenced, the host stays up",
)
def test_an_alert_as_the_only_signal_never_fences(api: Api) -> None:
    """Nova no longer lists the host's service: the alert is the only voice, and it is not enough."""
    api.tick()
    del api.compute.services["cmp1"]
    api.client.post("/v1/alerts", json=FIRING)
    api.harness.run_for(1.5)
    assert api.harness.state("cmp1") is HostState.UP
    assert fake.REGISTRY.get(api.harness_device("cmp1")).calls == []
