"""The nova-heartbeat signal through the whole loop: real sqlite journal, real IPMI fencing against ipmi_sim,
in-memory Nova whose services' ``updated_at`` can stand still while Nova still reports them up.

A hung nova-compute is fenced and its pets evacuated on petguard's own staleness reading, before Nova
would say anything; a control-plane stall (no ``updated_at`` moves anywhere) fences nobody; a loop that
starts while a heartbeat already stands still has no opinion on it until it sees a change.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.hosts import HostState
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_DETECTION, Bmcs, Harness, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4"]
PET = {"petguard:pet": "true"}
#: Nova's heartbeats every 0.2 s (the fake's updated_at moves on every reading), stale after 0.6 s.
HEARTBEAT = dataclasses.replace(FAST_DETECTION, report_interval=0.2, heartbeat_stale_after=0.6)


@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs)
    nova.add_server("web-1", "cmp1", metadata=PET)
    nova.add_server("cattle-1", "cmp1")
    return nova


@pytest.fixture
def harness(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> Iterator[Harness]:
    h = Harness(tmp_path, compute, bmcs.devices, detection=HEARTBEAT)
    yield h
    h.close()


def _settle(harness: Harness) -> None:
    """Every host known, and each heartbeat seen to move at least once."""
    harness.settle(HOSTS, heartbeats=True)


@pytest.mark.fault(
    "STALE-09",
    guarantee="1",
    injected="cmp1's nova-compute hangs with the host powered: its updated_at stands still while Nova keeps "
    "reporting it up (within Nova's service_down_time)",
    expected="down by petguard's own staleness reading, fenced through the BMC (read back OFF), its pet "
    "evacuated once, the non-pet left; nobody else touched",
)
def test_a_hung_nova_compute_is_fenced_before_nova_reports_it_down(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.stalled["cmp1"] = time.time()
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    assert not bmcs.sims["cmp1"].powered_on
    assert compute.evacuate_calls == {"web-1-id": 1}
    assert compute.servers["cattle-1-id"].host == "cmp1"
    suspect = [e for e in harness.store.events(None, "cmp1", 50) if e.kind == "host_suspect"]
    assert suspect and "nova-heartbeat: updated_at unchanged" in suspect[-1].message
    assert all(bmcs.sims[h].powered_on for h in HOSTS[1:])


@pytest.mark.fault(
    "STALE-10",
    guarantee="3",
    injected="nova-conductor or RabbitMQ stalls (or the controller reads a frozen database replica): no "
    "service's updated_at moves any more, while Nova still reports every one up",
    expected="every host down by the heartbeat in the same tick: the 'stale everywhere' brake engages, nobody "
    "fenced, nothing evacuated; when the heartbeats move again every host is up and the brake released",
)
def test_a_stall_of_every_heartbeat_fences_nobody(harness: Harness, compute: FakeCompute, bmcs: Bmcs) -> None:
    _settle(harness)
    now = time.time()
    compute.stalled.update(dict.fromkeys(HOSTS, now))
    harness.run_until(lambda: harness.store.load_brake().engaged, timeout=10)
    harness.run_for(2.0)  # many grace periods
    assert "stale nearly everywhere" in harness.store.load_brake().reason
    assert all(bmcs.sims[h].powered_on for h in HOSTS)
    assert compute.evacuate_calls == {}
    assert all(harness.state(h) is HostState.SUSPECT for h in HOSTS)
    assert "stale: DOWN" in harness.loop.heartbeat("cmp2")
    compute.stalled.clear()
    harness.run_until(lambda: not harness.store.load_brake().engaged, timeout=10)
    assert all(harness.state(h) is HostState.UP for h in HOSTS)


@pytest.mark.fault(
    "STALE-11",
    guarantee="1",
    injected="petguard (re)starts while cmp1's updated_at already stands still and Nova still reports it up",
    expected="no opinion from the heartbeat until petguard sees a change (memory only): cmp1 stays up on "
    "Nova's word, nobody is fenced on a reading petguard did not watch",
)
def test_a_restarted_loop_waits_for_a_change(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> None:
    first = Harness(tmp_path, compute, bmcs.devices, detection=HEARTBEAT)
    try:
        _settle(first)
        compute.stalled["cmp1"] = time.time()
    finally:
        first.close()
    second = Harness(tmp_path, compute, bmcs.devices, detection=HEARTBEAT)
    try:
        second.run_for(2.0)  # more than three thresholds
        assert second.state("cmp1") is HostState.UP
        assert "not seen to change yet" in second.loop.heartbeat("cmp1")
        assert bmcs.sims["cmp1"].powered_on
        compute.stalled["cmp1"] = time.time()  # one more heartbeat gets through, then none
        second.run_until(lambda: second.state("cmp1") is not HostState.UP, timeout=10)
        second.loop.reset()  # a new term forgets what an earlier one saw
        assert "not read by this controller" in second.loop.heartbeat("cmp1")
    finally:
        second.close()
