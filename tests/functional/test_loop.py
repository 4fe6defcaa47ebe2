"""The whole loop, functional: real sqlite journal, real IPMI fencing against ipmi_sim, in-memory Nova.

A host dies -> it is fenced through its BMC and read back OFF -> its service is forced down and
disabled -> its pets are evacuated exactly once and end in their original power state; non-pets stay
with a reason. A BMC that never confirms OFF ends in AWAITING_CONFIRM and nothing is evacuated. A
mass failure fences nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.fencing.base import FenceDevice
from petguard.hosts import HostState
from petguard.journal import MoveStatus, RequestKind
from tests.fakes import FakeCompute
from tests.functional.harness import Bmcs, Harness, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4"]
PET = {"petguard:pet": "true"}



@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs)
    nova.add_server("web-1", "cmp1", metadata=PET)
    nova.add_server("db-1", "cmp1", metadata={"HA_Enabled": "True", "petguard:priority": "10"})
    nova.add_server("batch-stopped", "cmp1", vm_state="stopped", metadata=PET)
    nova.add_server("was-error-running", "cmp1", vm_state="error", metadata=PET)
    nova.add_server("cattle-1", "cmp1")
    nova.add_server("paused-pet", "cmp1", vm_state="paused", metadata=PET)
    nova.add_server("elsewhere", "cmp2", metadata=PET)
    # An ERROR server that was running: Nova's power_state 1.
    nova.servers["was-error-running-id"] = nova.servers["was-error-running-id"].__class__(
        **{**nova.servers["was-error-running-id"].__dict__, "power_state": 1}
    )
    return nova


@pytest.fixture
def harness(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> Iterator[Harness]:
    h = Harness(tmp_path, compute, bmcs.devices)
    yield h
    h.close()


def _settle(harness: Harness) -> None:
    harness.run_until(lambda: set(harness.store.load_hosts()) == set(HOSTS), timeout=5)


@pytest.mark.fault(
    "DET-01",
    guarantee="1",
    injected="only nova-compute dies; the host keeps its power",
    expected="petguard cuts its power through the BMC, then each pet is evacuated once",
)
def test_host_death_fences_then_evacuates_pets_exactly_once(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    compute.dead.add("cmp1")  # nova-compute stops heartbeating; the host is still powered

    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)

    assert not bmcs.sims["cmp1"].powered_on, "petguard must have cut the power through IPMI"
    service = compute.services["cmp1"]
    assert service.forced_down and service.status == "disabled"
    assert service.disabled_reason and service.disabled_reason.startswith("petguard: incident")
    pets = ["web-1-id", "db-1-id", "batch-stopped-id", "was-error-running-id"]
    for server_id in pets:
        server = compute.servers[server_id]
        assert server.host not in (None, "cmp1"), server
        assert compute.evacuate_calls[server_id] == 1
    assert compute.servers["web-1-id"].vm_state == "active"
    assert compute.servers["db-1-id"].vm_state == "active"
    assert compute.servers["batch-stopped-id"].vm_state == "stopped"
    assert compute.servers["was-error-running-id"].vm_state == "active"
    for untouched in ("cattle-1-id", "paused-pet-id"):
        assert compute.servers[untouched].host == "cmp1"
        assert untouched not in compute.evacuate_calls
    incident_id = harness.store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    skips = {s.server_name: s.reason for s in harness.store.skips(incident_id)}
    assert "not a pet" in skips["cattle-1"]
    assert "paused" in skips["paused-pet"]
    assert all(m.status is MoveStatus.DONE for m in harness.store.moves(incident_id))
    # db-1 has the higher priority: it was planned first.
    assert [m.server_name for m in harness.store.moves(incident_id)][0] == "db-1"
    # The other hosts were never touched.
    assert all(bmcs.sims[h].powered_on for h in ("cmp2", "cmp3", "cmp4"))
    # Nothing happens again on later ticks (exactly once).
    harness.run_for(0.5)
    assert all(compute.evacuate_calls[s] == 1 for s in pets)


@pytest.mark.fault(
    "BMCX-01",
    guarantee="1",
    injected="total power loss; the BMC still answers, reporting off",
    expected="fence confirmed by the OFF readings; the pets evacuated",
)
def test_power_loss_with_bmc_reporting_off_is_confirmed(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    bmcs.sims["cmp2"].set_power(on=False)  # total power loss, the BMC still answers "off"
    harness.run_until(lambda: harness.state("cmp2") is HostState.EVACUATED, timeout=40)
    assert compute.servers["elsewhere-id"].host not in ("cmp2", None)


@pytest.mark.fault(
    "BMCX-02",
    guarantee="1",
    injected="an IPMI BMC accepts power-off but keeps reporting ON (stuck_on)",
    expected="never confirmed: the host goes to AWAITING_CONFIRM and nothing is evacuated",
)
def test_bmc_that_keeps_reporting_on_ends_awaiting_confirm_and_nothing_moves(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    bmcs.sims["cmp1"].set_mode("stuck_on")
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=40)
    harness.run_for(0.5)
    assert compute.evacuate_calls == {}
    assert not compute.services["cmp1"].forced_down
    kinds = [e.kind for e in harness.store.events(host="cmp1")]
    assert "awaiting_confirm" in kinds

    # The operator powers it off by hand and confirms: only now do the pets move.
    harness.store.submit_request("cmp1", RequestKind.CONFIRM_FENCED, "pulled the plugs", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    assert compute.evacuate_calls.get("web-1-id") == 1


@pytest.mark.fault(
    "BMCX-03",
    guarantee="1",
    injected="petguard's BMC password is wrong (the BMC refuses the login)",
    expected="AWAITING_CONFIRM, nothing evacuated, the host keeps its power",
)
def test_wrong_bmc_password_never_evacuates(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> None:
    devices = dict(bmcs.devices)
    good = devices["cmp1"]
    devices["cmp1"] = FenceDevice(good.host, good.driver, good.address, good.port, good.username, "wrong-password")
    harness = Harness(tmp_path, compute, devices)
    try:
        _settle(harness)
        compute.dead.add("cmp1")
        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=40)
        assert compute.evacuate_calls == {}
        assert bmcs.sims["cmp1"].powered_on
        reason = harness.store.load_hosts()["cmp1"].host.reason
        assert "wrong-password" not in reason
    finally:
        harness.close()


@pytest.mark.fault(
    "BRAKE-01",
    guarantee="3",
    injected="every compute stops heartbeating at once, as in a RabbitMQ outage",
    expected="brake engaged, nobody fenced, nothing evacuated; when they heartbeat again every host is up and the "
    "brake released",
)
def test_mass_failure_fences_nobody(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    compute.dead.update(HOSTS)  # every heartbeat stops at once: a RabbitMQ outage
    harness.run_for(2.0)
    assert all(bmcs.sims[h].powered_on for h in HOSTS)
    assert compute.evacuate_calls == {}
    assert harness.store.load_brake().engaged
    assert any(e.kind == "brake_engaged" for e in harness.store.events())
    # RabbitMQ comes back: everything is up again, the brake is released, still nobody fenced.
    compute.dead.clear()
    harness.run_until(lambda: not harness.store.load_brake().engaged, timeout=10)
    assert all(harness.state(h) is HostState.UP for h in HOSTS)


@pytest.mark.fault(
    "DET-02",
    guarantee="6",
    injected="the fenced, evacuated host is powered on again and its nova-compute heartbeats",
    expected="it stays forced down and disabled until an operator's restore; then it is up and enabled",
)
def test_restore_keeps_host_out_until_operator_returns_it(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    # The host is powered back on and nova-compute starts: petguard keeps it out of service.
    bmcs.sims["cmp1"].set_power(on=True)
    compute.dead.discard("cmp1")
    harness.run_for(0.5)
    assert harness.state("cmp1") is HostState.EVACUATED
    assert compute.services["cmp1"].forced_down and compute.services["cmp1"].status == "disabled"
    # The operator returns it.
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "hardware replaced", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.UP, timeout=20)
    assert not compute.services["cmp1"].forced_down and compute.services["cmp1"].status == "enabled"
    assert harness.store.load_hosts()["cmp1"].host.incident_id is None


@pytest.mark.fault(
    "OP-03",
    guarantee="1",
    injected="an operator's fence request for a healthy host",
    expected="fenced and read OFF before anything moves; its pets evacuated once",
)
def test_operator_fence_of_a_healthy_host_is_confirmed_before_anything_moves(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    harness.store.submit_request("cmp1", RequestKind.FENCE, "memory errors, take it out", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    assert not bmcs.sims["cmp1"].powered_on
    assert compute.evacuate_calls["web-1-id"] == 1
    incident = harness.store.incident(harness.store.load_hosts()["cmp1"].host.incident_id or -1)
    assert "fence requested by test" in incident.reason


@pytest.mark.fault(
    "GRP-04",
    guarantee="4",
    injected="every other compute disabled when the host fails, room added later",
    expected="every move FAILED with evacuation_failed; an operator's evacuate request moves each pet exactly once "
    "more",
)
def test_failed_moves_are_retried_when_the_operator_reruns_the_evacuation(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    for other in ("cmp2", "cmp3", "cmp4"):
        compute.services[other].status = "disabled"  # no valid host anywhere
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    incident_id = harness.store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    assert all(m.status is MoveStatus.FAILED for m in harness.store.moves(incident_id))
    assert "evacuation_failed" in [e.kind for e in harness.store.events(host="cmp1")]

    for other in ("cmp2", "cmp3", "cmp4"):
        compute.services[other].status = "enabled"
    harness.store.submit_request("cmp1", RequestKind.EVACUATE, "capacity added", "test", 0.0)
    harness.run_until(
        lambda: (
            harness.state("cmp1") is HostState.EVACUATED
            and all(m.status is MoveStatus.DONE for m in harness.store.moves(incident_id))
        ),
        timeout=40,
    )
    # One failed attempt (Nova said no valid host), then exactly one more.
    assert compute.evacuate_calls["web-1-id"] == 2
    assert compute.servers["web-1-id"].host in ("cmp2", "cmp3", "cmp4")


@pytest.mark.fault(
    "OP-04",
    guarantee="6",
    injected="the host was disabled by an operator (own reason) before it failed",
    expected="after restore it is un-forced but stays disabled with the operator's reason",
)
def test_restore_gives_back_an_operators_own_disable(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    compute.services["cmp1"].status = "disabled"
    compute.services["cmp1"].disabled_reason = "draining for a BIOS update (ticket 4711)"
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    assert (compute.services["cmp1"].disabled_reason or "").startswith("petguard: incident")
    bmcs.sims["cmp1"].set_power(on=True)
    compute.dead.discard("cmp1")
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "fixed", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.UP, timeout=20)
    service = compute.services["cmp1"]
    assert not service.forced_down
    assert (service.status, service.disabled_reason) == ("disabled", "draining for a BIOS update (ticket 4711)")


@pytest.mark.fault(
    "OP-05",
    guarantee="6",
    injected="restore requested while the fenced host is still off",
    expected="restore_failed saying it must clean up first, the host stays forced down; a restore once it is on goes "
    "through",
)
def test_restore_waits_until_the_host_cleaned_up_its_evacuated_guests(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    # Restore asked while the host is still off: its evacuations stay 'done', Nova would refuse.
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "too early", "test", 0.0)
    harness.run_until(lambda: any(e.kind == "restore_failed" for e in harness.store.events(host="cmp1")), timeout=30)
    assert harness.state("cmp1") is HostState.EVACUATED
    assert compute.services["cmp1"].forced_down
    failed = [e.message for e in harness.store.events(host="cmp1") if e.kind == "restore_failed"]
    assert "cleaned up" in failed[0]
    # Powered on: nova-compute cleans up, and the restore goes through.
    bmcs.sims["cmp1"].set_power(on=True)
    compute.dead.discard("cmp1")
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "now", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.UP, timeout=30)
    assert all(m.status == "completed" for m in compute.migrations if m.source_host == "cmp1")


@pytest.mark.fault(
    "HOST-01",
    guarantee="6",
    injected="the fenced host is powered on and its nova-compute heartbeats in the middle of its evacuation",
    expected="it stays forced down and disabled, the evacuation finishes, and one fenced_host_returned alert tells "
    "the operator to restart nova-compute once every evacuation is final, then restore",
)
def test_a_fenced_host_that_comes_back_mid_evacuation_is_told_and_kept_out(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.evacuation_steps = 12  # slow evacuations: the host returns while they run
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATING, timeout=40)
    bmcs.sims["cmp1"].set_power(on=True)
    compute.dead.discard("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=60)
    returned = [e.message for e in harness.store.events(host="cmp1") if e.kind == "fenced_host_returned"]
    assert len(returned) == 1
    assert "restart nova-compute on cmp1" in returned[0] and "petguard host restore cmp1" in returned[0]
    assert compute.services["cmp1"].forced_down and compute.services["cmp1"].status == "disabled"
    assert all(n == 1 for n in compute.evacuate_calls.values())
