"""The BMC as a detection signal through the whole loop: real sqlite journal, real ipmi_sim BMCs read through
the fence child processes, in-memory Nova whose services' ``updated_at`` can stand still while Nova still
reports them up.

A host whose heartbeat stands still and whose BMC reads OFF fails ``bmc_settle`` into its down episode, long
before its grace period ends; one whose BMC does not answer waits out the whole grace period, as before.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.fencing.powerwatch import WatchPolicy
from petguard.hosts import HostState
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_DETECTION, Bmcs, Harness, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4"]
PET = {"petguard:pet": "true"}
GRACE, SETTLE = 8.0, 1.0
#: Nova's heartbeats every 0.2 s (the fake's updated_at moves on every reading), stale after 0.6 s.
DETECTION = dataclasses.replace(
    FAST_DETECTION, grace_period=GRACE, report_interval=0.2, heartbeat_stale_after=0.6, bmc_settle=SETTLE
)
WATCH = WatchPolicy(timeout=1.5, min_interval=0.5)
LATER = {HostState.FENCING, HostState.FENCED, HostState.EVACUATING, HostState.EVACUATED}


@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs)
    # Nova does not see the power: the host's updated_at stands still (``stalled``) while Nova still says up
    # (within its service_down_time), whatever the BMC says; only the BMC tells that the host is off.
    nova.is_alive = lambda host: host not in nova.dead  # type: ignore[method-assign]
    nova.add_server("web-1", "cmp1", metadata=PET)
    nova.add_server("web-2", "cmp2", metadata=PET)
    return nova


@pytest.fixture
def harness(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> Iterator[Harness]:
    h = Harness(tmp_path, compute, bmcs.devices, detection=DETECTION, power=WATCH)
    yield h
    h.close()


def _settle(harness: Harness) -> None:
    """Every host known, and each heartbeat seen to move at least once."""
    harness.settle(HOSTS, heartbeats=True)


def _first_event(harness: Harness, host: str, kind: str) -> tuple[float, str] | None:
    found = [e for e in harness.store.events(None, host, 100) if e.kind == kind]
    return (found[-1].at, found[-1].message) if found else None


@pytest.mark.fault(
    "BMCSIG-07",
    guarantee="1",
    injected="cmp1 loses power: its BMC (ipmi_sim) reads OFF while Nova still reports it up with an updated_at "
    "that stands still; grace_period 8 s, bmc_settle 1 s",
    expected="its BMC is read (read-only, through the fence child) as soon as the heartbeat is stale; cmp1 "
    "fails and is fenced about bmc_settle into its down episode, well before the grace period; the fence "
    "still confirms by fresh OFF readings; its pet is evacuated once; nobody else is touched",
)
def test_a_stale_host_whose_bmc_reads_off_fails_before_its_grace_period(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    assert all("not read by this controller" in harness.loop.power(h) for h in HOSTS)  # healthy: never read
    assert all(sim.calls() == [] for sim in bmcs.sims.values())  # a healthy cloud sends its BMCs nothing
    bmcs.sims["cmp1"].set_power(on=False)
    compute.stalled["cmp1"] = time.time()
    harness.run_until(lambda: harness.state("cmp1") in LATER, timeout=GRACE - 1.0)
    suspect = _first_event(harness, "cmp1", "host_suspect")
    started = _first_event(harness, "cmp1", "fence_started")
    assert suspect is not None and started is not None
    assert started[0] - suspect[0] < GRACE / 2, "failed on the BMC's OFF, not after the grace period"
    assert "bmc: power reads OFF" in started[1]
    assert harness.loop.power("cmp1").startswith("OFF (level 1: ipmi://admin@127.0.0.1:")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=30)
    assert compute.evacuate_calls == {"web-1-id": 1}
    # (read-only is asserted on the runner's calls in tests/unit/fencing/test_powerwatch.py: pyghmi sends no
    # set-power to a host that already reads off, so ipmi_sim's log cannot tell the fence's reads apart)
    assert "get power" in bmcs.sims["cmp1"].calls()
    assert all(bmcs.sims[h].calls() == [] for h in HOSTS[1:])
    assert all(bmcs.sims[h].powered_on for h in HOSTS[1:])
    assert all(harness.state(h) is HostState.UP for h in HOSTS[1:])


@pytest.mark.fault(
    "BMCSIG-08",
    guarantee="1",
    injected="cmp2's heartbeat stands still while Nova still reports it up, and its BMC does not answer (ipmi_sim "
    "stopped with SIGSTOP: the fence child times out); grace_period 8 s, bmc_settle 1 s",
    expected="the reading is UNREADABLE, never OFF: cmp2 stays suspect for the whole grace period (not failed "
    "at bmc_settle), then takes the normal path (fence)",
)
def test_a_stale_host_whose_bmc_is_unreachable_waits_out_its_grace_period(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    bmcs.sims["cmp2"].pause()
    compute.stalled["cmp2"] = time.time()
    harness.run_until(lambda: harness.state("cmp2") is HostState.SUSPECT, timeout=5)
    suspect_at = time.time()
    harness.run_until(lambda: harness.loop.power("cmp2").startswith("UNREADABLE"), timeout=6)
    assert "BmcUnreachable" in harness.loop.power("cmp2")
    harness.run_for(SETTLE * 3)
    assert harness.state("cmp2") is HostState.SUSPECT
    assert harness.store.load_hosts()["cmp2"].health.verdict.value == "suspect"
    assert "bmc: power unreadable" in harness.store.load_hosts()["cmp2"].health.detail
    bmcs.sims["cmp2"].resume()  # the BMC answers again, reading ON: still the normal path
    bmcs.sims["cmp2"].set_power(on=True)
    harness.run_until(lambda: harness.state("cmp2") in LATER, timeout=GRACE + 5)
    started = _first_event(harness, "cmp2", "fence_started")
    assert started is not None and started[0] - suspect_at >= GRACE - 1.0
    harness.run_until(lambda: harness.state("cmp2") is HostState.EVACUATED, timeout=30)
    assert compute.evacuate_calls == {"web-2-id": 1}
