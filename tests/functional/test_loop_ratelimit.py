"""The fence rate limit through the whole loop: real sqlite journal, real IPMI fencing against ipmi_sim,
in-memory Nova, and a daemon restart in the middle.

Hosts fail one after another (a rolling failure): the first ``fence_rate_max`` are fenced and
evacuated; then the daemon stops and a new one starts on the same journal; the next failed host is
NOT fenced, because the count of fences in the window comes from the journal, not from memory. The
brake says why, the host's BMC is never called, and an operator's override lets it be fenced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from petguard.hosts import HostState
from petguard.journal import RequestKind
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_DETECTION, Bmcs, Harness, journal_url, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4"]
PET = {"petguard:pet": "true"}
#: Two fences per ten minutes: far longer than the test, so only a journal that forgot could fence a third.
RATE_LIMITED = dataclasses.replace(FAST_DETECTION, fence_rate_max=2, fence_rate_window=600.0)



@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs)
    for host in ("cmp1", "cmp2", "cmp3"):
        nova.add_server(f"pet-on-{host}", host, metadata=PET)
    return nova


def _fail_and_recover(harness: Harness, compute: FakeCompute, host: str) -> None:
    compute.dead.add(host)  # nova-compute stops heartbeating; the host is still powered
    harness.run_until(lambda: harness.state(host) is HostState.EVACUATED, timeout=40)


@pytest.mark.fault(
    "BRAKE-04",
    guarantee="3",
    injected="a rolling failure with petguard-daemon restarted between the fences",
    expected="the next failed host is not fenced (the count comes from the journal), its BMC never called; an "
    "operator's brake override lets it be fenced",
)
def test_rate_limit_holds_across_a_daemon_restart(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> None:
    url = journal_url(tmp_path)
    first = Harness(tmp_path, compute, bmcs.devices, detection=RATE_LIMITED, url=url)
    try:
        first.run_until(lambda: set(first.store.load_hosts()) == set(HOSTS), timeout=5)
        _fail_and_recover(first, compute, "cmp1")
        _fail_and_recover(first, compute, "cmp2")
        assert not first.store.load_brake().engaged
    finally:
        first.close()
    assert not bmcs.sims["cmp1"].powered_on and not bmcs.sims["cmp2"].powered_on

    second = Harness(tmp_path, compute, bmcs.devices, detection=RATE_LIMITED, url=url)  # the restarted daemon
    try:
        compute.dead.add("cmp3")
        second.run_until(lambda: second.store.load_brake().engaged, timeout=20)
        second.run_for(1.0)  # well past the grace period: failed, and still not fenced
        assert second.store.load_hosts()["cmp3"].health.verdict.value == "failed"
        assert second.state("cmp3") is HostState.SUSPECT
        assert bmcs.sims["cmp3"].powered_on, "the rate limit must keep petguard away from cmp3's BMC"
        brake = second.store.load_brake()
        assert brake.reason.startswith("fence rate limit: 2 fences started in the last 10 min (cmp1, cmp2)")
        assert "cmp3 would be next" in brake.reason
        kinds = [e.kind for e in second.store.events()]
        assert kinds.count("brake_engaged") == 1
        assert [e.kind for e in second.store.events(host="cmp3")].count("fence_held") == 1
        assert compute.servers["pet-on-cmp3-id"].host == "cmp3"

        second.store.submit_request("*", RequestKind.BRAKE_OVERRIDE, "checked: cmp3 is really dead", "test", 0.0)
        second.run_until(lambda: second.state("cmp3") is HostState.EVACUATED, timeout=40)
        assert not bmcs.sims["cmp3"].powered_on
        assert compute.servers["pet-on-cmp3-id"].host not in ("cmp3", None)
        assert bmcs.sims["cmp4"].powered_on
    finally:
        second.close()
