"""Fence levels, Redfish, fence agents and readiness against real peers on 127.0.0.1.

* Redfish through sushy against sushy-tools' emulator (fake driver, basic auth, no random power
  delay; a system whose ForceOff is accepted and never applied).
* ``fence_ipmilan`` (Debian fence-agents) through its stdin protocol against OpenIPMI's ipmi_sim.
* A level whose device refuses the credentials falls to the next level; every level failing ends in
  AWAITING_CONFIRM with an alert and one event per failed level (the whole loop, FakeCompute).
* Readiness over a good, a wrong-password and a not-listening device: snapshot and change events.

Every peer is started and stopped by its own PID. Times are printed (run with -s to see them).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard.clock import SystemClock
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice, FenceTopology, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.preflight import OK_EVENT, UNREACHABLE_EVENT, Readiness
from petguard.hosts import HostState
from petguard.store.sql import SqlStore
from tests.fakes import FakeCompute
from tests.functional.bmc import IpmiSim
from tests.functional.harness import Harness, journal_url
from tests.functional.redfish_peer import SushyEmulator, free_tcp_port, new_system

USER = "admin"
SECRET = "Pw7hq2-s3cr3t-nL"
DRIVERS = ("ipmi", "fake", "redfish", "fenceagent")
#: Fast, but with room for fence_ipmilan's own off (power_wait 2 s by default).
POLICY = procedure.FencePolicy(
    attempt_timeout=5.0, deadline=8.0, poll_interval=0.2, off_readings_required=3, retries=1, resend_after=2.0
)
needs_fence_agents = pytest.mark.skipif(
    shutil.which("fence_ipmilan", path="/usr/sbin:/sbin:/usr/bin") is None,
    reason="fence_ipmilan missing: apt-get install -y fence-agents",
)
needs_ipmi_sim = pytest.mark.skipif(shutil.which("ipmi_sim") is None, reason="apt-get install -y openipmi")


@pytest.fixture
def lookup() -> Callable[[str], Any]:
    return functools.partial(loader.load_driver, enabled=list(DRIVERS))


@pytest.fixture
def runner(lookup: Callable[[str], Any]) -> FenceRunner:
    return FenceRunner(lookup)


@pytest.fixture
def systems() -> dict[str, dict[str, Any]]:
    return {name: new_system(name) for name in ("cmp1", "cmp2", "stuck")}


@pytest.fixture
def redfish_bmc(tmp_path: Path, systems: dict[str, dict[str, Any]]) -> Iterator[SushyEmulator]:
    emulator = SushyEmulator(
        tmp_path / "sushy", list(systems.values()), password=SECRET, stuck_on=(systems["stuck"]["uuid"],)
    )
    yield emulator.start()
    emulator.stop()


@pytest.fixture
def ipmi_sim(tmp_path: Path) -> Iterator[IpmiSim]:
    if shutil.which("ipmi_sim") is None:
        pytest.skip("ipmi_sim missing: apt-get install -y openipmi")
    sim = IpmiSim(tmp_path / "ipmi_sim", USER, SECRET)
    yield sim.start()
    sim.stop()


def redfish_device(emulator: SushyEmulator, system: dict[str, Any], host: str = "cmp1", **changes: Any) -> FenceDevice:
    device = FenceDevice(
        host, "redfish", "127.0.0.1", emulator.port, USER, SECRET, {"scheme": "http", "system": emulator.path(system)}
    )
    return dataclasses.replace(device, **changes)


def agent_device(sim: IpmiSim, host: str = "cmp1", **changes: Any) -> FenceDevice:
    options = {"agent": "fence_ipmilan", "lanplus": "1", "cipher": "3"}
    return dataclasses.replace(FenceDevice(host, "fenceagent", "127.0.0.1", sim.port, USER, SECRET, options), **changes)


def redfish_power(emulator: SushyEmulator, system: dict[str, Any], lookup: Callable[[str], Any]) -> PowerState:
    device = redfish_device(emulator, system)
    state: PowerState = lookup("redfish").power_state(device, 5.0)
    return state


# -- Redfish ------------------------------------------------------------------------------------


def test_redfish_fence_is_confirmed_by_reading_off_back(
    redfish_bmc: SushyEmulator, systems: dict[str, Any], runner: FenceRunner, lookup: Callable[[str], Any]
) -> None:
    device = redfish_device(redfish_bmc, systems["cmp1"])
    started = time.monotonic()

    outcome = procedure.fence(device, lookup("redfish"), runner, POLICY, SystemClock())

    elapsed = time.monotonic() - started
    print(f"\nRedfish fence (child process per call, sushy-emulator): {elapsed:.3f} s, {outcome.readings}")
    assert outcome.confirmed, outcome.reason
    assert outcome.readings == (PowerState.OFF,) * 3
    assert redfish_power(redfish_bmc, systems["cmp1"], lookup) is PowerState.OFF
    assert redfish_power(redfish_bmc, systems["cmp2"], lookup) is PowerState.ON  # only its own system
    assert elapsed < 3.0


@pytest.mark.fault(
    "BMCX-09",
    guarantee="1",
    injected="a Redfish system accepts ForceOff and never applies it (sushy-tools)",
    expected="never confirmed: every reading ON, the reason says it still reports ON",
)
def test_redfish_accepted_but_stuck_on_is_not_confirmed(
    redfish_bmc: SushyEmulator, systems: dict[str, Any], runner: FenceRunner, lookup: Callable[[str], Any]
) -> None:
    device = redfish_device(redfish_bmc, systems["stuck"])
    policy = dataclasses.replace(POLICY, deadline=2.0)

    outcome = procedure.fence(device, lookup("redfish"), runner, policy, SystemClock())

    assert not outcome.confirmed
    assert set(outcome.readings) == {PowerState.ON}
    assert "accepted power-off but still reports ON" in outcome.reason


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        pytest.param(
            {"password": "wrong-password"},
            "refused the credentials",
            marks=pytest.mark.fault(
                "BMCX-10",
                guarantee="1",
                injected="a wrong password to a Redfish BMC (sushy-tools)",
                expected="not fenced, at once, the reason says the credentials were refused, without the password",
            ),
        ),
        pytest.param(
            {"options": {"scheme": "http", "system": "/redfish/v1/Systems/no-such"}},
            "no ComputerSystem at",
            marks=pytest.mark.fault(
                "BMCX-11",
                guarantee="1",
                injected="a Redfish device naming a system the BMC does not have",
                expected="not fenced, at once, the reason says there is no ComputerSystem there",
            ),
        ),
    ],
)
def test_redfish_refusals_end_at_once_without_the_password(
    redfish_bmc: SushyEmulator,
    systems: dict[str, Any],
    runner: FenceRunner,
    lookup: Callable[[str], Any],
    changes: dict[str, Any],
    words: str,
) -> None:
    device = redfish_device(redfish_bmc, systems["cmp1"], **changes)

    outcome = procedure.fence(device, lookup("redfish"), runner, POLICY, SystemClock())

    assert not outcome.confirmed and words in outcome.reason
    assert outcome.duration_s < 2.0
    assert SECRET not in outcome.reason and "wrong-password" not in outcome.reason


@pytest.mark.fault(
    "BMCX-12",
    guarantee="4",
    injected="nothing listens at the Redfish BMC's port",
    expected="BmcUnreachable within 1 s (no sushy retries)",
)
def test_redfish_not_listening_is_unreachable_in_milliseconds(lookup: Callable[[str], Any]) -> None:
    device = FenceDevice("cmp1", "redfish", "127.0.0.1", free_tcp_port(), USER, SECRET, {"scheme": "http"})
    started = time.monotonic()

    with pytest.raises(Exception, match="could not be reached") as caught:
        lookup("redfish").power_state(device, 5.0)

    assert type(caught.value).__name__ == "BmcUnreachable"
    assert time.monotonic() - started < 1.0  # server_side_retries=1: no 27 s of sushy retries


# -- fence_ipmilan ------------------------------------------------------------------------------


@needs_fence_agents
def test_fence_ipmilan_fences_ipmi_sim(ipmi_sim: IpmiSim, runner: FenceRunner, lookup: Callable[[str], Any]) -> None:
    device = agent_device(ipmi_sim)
    driver = lookup("fenceagent")
    assert driver.power_state(device, 5.0) is PowerState.ON
    started = time.monotonic()

    outcome = procedure.fence(device, driver, runner, POLICY, SystemClock())

    elapsed = time.monotonic() - started
    print(f"\nfence_ipmilan fence against ipmi_sim (power_wait default 2 s): {elapsed:.3f} s")
    assert outcome.confirmed, outcome.reason
    assert not ipmi_sim.powered_on
    assert driver.power_state(device, 5.0) is PowerState.OFF
    calls = ipmi_sim.calls()
    assert any("set power" in line for line in calls), calls


@needs_fence_agents
@pytest.mark.fault(
    "BMCX-13",
    guarantee="1",
    injected="fence_ipmilan run with a wrong password against ipmi_sim",
    expected="a FencingError (exit 1) without the password; the host keeps its power",
)
def test_fence_ipmilan_wrong_password_fails_fast_and_masked(ipmi_sim: IpmiSim, lookup: Callable[[str], Any]) -> None:
    device = agent_device(ipmi_sim, password="not-the-password")

    with pytest.raises(Exception, match="exit 1") as caught:
        lookup("fenceagent").power_state(device, 5.0)

    assert type(caught.value).__name__ == "FencingError"
    assert "not-the-password" not in str(caught.value)
    assert ipmi_sim.powered_on


@needs_fence_agents
@pytest.mark.fault(
    "BMCX-14",
    guarantee="4",
    injected="a fence agent that would wait 20 s (nothing listens at its BMC)",
    expected="killed at its 1 s timeout",
)
def test_fence_agent_hard_timeout_kills_the_agent(tmp_path: Path, lookup: Callable[[str], Any]) -> None:
    hole_port = free_tcp_port()  # nothing listens: fence_ipmilan would wait 20 s by itself
    device = FenceDevice(
        "cmp1", "fenceagent", "127.0.0.1", hole_port, USER, SECRET, {"agent": "fence_ipmilan", "lanplus": "1"}
    )
    started = time.monotonic()

    with pytest.raises(Exception, match="did not finish 'action=status' within 1.0 s and was killed"):
        lookup("fenceagent").power_state(device, 1.0)

    assert time.monotonic() - started < 2.0


# -- levels -------------------------------------------------------------------------------------


@needs_fence_agents
@pytest.mark.fault(
    "BMCX-15",
    guarantee="1",
    injected="level 1's device refuses the credentials (fence_ipmilan, wrong password), level 2 is a working Redfish "
    "BMC",
    expected="level 2 confirms OFF; level 1 cut nothing; the failure reason without the password",
)
def test_a_level_refusing_credentials_falls_to_the_next(
    ipmi_sim: IpmiSim,
    redfish_bmc: SushyEmulator,
    systems: dict[str, Any],
    runner: FenceRunner,
    lookup: Callable[[str], Any],
) -> None:
    wrong = agent_device(ipmi_sim, password="not-the-password")
    topology = FenceTopology("cmp1", ((wrong,), (redfish_device(redfish_bmc, systems["cmp1"]),)))
    started = time.monotonic()

    outcome = procedure.fence_topology(topology, lookup, runner, POLICY, SystemClock())

    elapsed = time.monotonic() - started
    print(f"\nlevel 1 (fence_ipmilan, wrong password) failed, level 2 (Redfish) confirmed: {elapsed:.3f} s")
    assert outcome.confirmed, outcome.reason
    assert [lv.confirmed for lv in outcome.levels] == [False, True]
    assert ipmi_sim.powered_on  # level 1 never cut anything
    assert redfish_power(redfish_bmc, systems["cmp1"], lookup) is PowerState.OFF
    [failed] = outcome.failed_levels
    assert "fence_ipmilan" in failed and "not-the-password" not in failed
    assert elapsed < 3.0


@pytest.mark.fault(
    "BMCX-16",
    guarantee="4",
    injected="every fence level fails: IPMI refuses the credentials, the Redfish system stays ON",
    expected="AWAITING_CONFIRM with an alert and one fence_level_failed per level, nothing evacuated, no password in "
    "any event",
)
def test_every_level_failing_ends_awaiting_confirm_with_an_alert(
    tmp_path: Path, ipmi_sim: IpmiSim, redfish_bmc: SushyEmulator, systems: dict[str, Any]
) -> None:
    hosts = ["cmp1", "cmp2", "cmp3"]
    compute = FakeCompute(hosts)
    wrong_ipmi = FenceDevice("cmp1", "ipmi", "127.0.0.1", ipmi_sim.port, USER, "not-the-password")
    stuck = redfish_device(redfish_bmc, systems["stuck"])
    topologies = {
        "cmp1": FenceTopology("cmp1", ((wrong_ipmi,), (stuck,))),
        **{h: FenceTopology.single(FenceDevice(h, "fake", h, 623, USER, SECRET)) for h in hosts[1:]},
    }
    policy = dataclasses.replace(POLICY, deadline=2.0)
    harness = Harness(tmp_path, compute, topologies, fence_policy=policy, enabled_drivers=DRIVERS)  # type: ignore[arg-type]
    try:
        harness.run_until(lambda: set(harness.store.load_hosts()) == set(hosts), timeout=5)
        compute.dead.add("cmp1")

        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=30)

        events = harness.store.events(None, "cmp1", 50)
        kinds = [e.kind for e in events]
        assert "awaiting_confirm" in kinds
        level_events = [e.message for e in events if e.kind == "fence_level_failed"]
        assert len(level_events) == 2
        assert level_events[0].startswith("fence level 1 failed: ipmi://admin@127.0.0.1")
        assert "refused the credentials" in level_events[0]
        assert level_events[1].startswith("fence level 2 failed: redfish://") and "still reports ON" in level_events[1]
        assert all("not-the-password" not in e.message and SECRET not in e.message for e in events)
        assert ipmi_sim.powered_on
        assert compute.evacuate_calls == {}
    finally:
        harness.close()


# -- readiness ----------------------------------------------------------------------------------


@needs_fence_agents
@pytest.mark.fault(
    "BMCX-17",
    guarantee="4",
    injected="before any failure: one device with a wrong password, one nobody listens on (readiness checks)",
    expected="the snapshot names BmcAuthError and BmcUnreachable, one event each (not repeated), one 'works again' "
    "when fixed; nothing powered off",
)
def test_readiness_over_real_peers(
    tmp_path: Path,
    ipmi_sim: IpmiSim,
    redfish_bmc: SushyEmulator,
    systems: dict[str, Any],
    runner: FenceRunner,
    lookup: Callable[[str], Any],
) -> None:
    store = SqlStore(journal_url(tmp_path))
    topologies = {
        "cmp1": FenceTopology(
            "cmp1",
            ((FenceDevice("cmp1", "ipmi", "127.0.0.1", ipmi_sim.port, USER, SECRET),), (agent_device(ipmi_sim),)),
        ),
        "cmp2": FenceTopology.single(redfish_device(redfish_bmc, systems["cmp2"], host="cmp2", password="not-it")),
        "cmp3": FenceTopology.single(
            FenceDevice("cmp3", "redfish", "127.0.0.1", free_tcp_port(), USER, SECRET, {"scheme": "http"})
        ),
    }
    readiness = Readiness(topologies, lookup, runner, SystemClock(), store.record_event, interval=2.0, timeout=2.0)
    started = time.monotonic()

    results = readiness.run_cycle()

    elapsed = time.monotonic() - started
    reads = [r.checked_at for r in results]
    offsets = [round(t - reads[0], 2) for t in reads]
    print(f"\nreadiness cycle over 4 devices, interval 2 s: {elapsed:.3f} s; reads at +{offsets}")
    snapshot = readiness.snapshot()
    assert snapshot["cmp1"] == "ok"
    assert "BmcAuthError" in snapshot["cmp2"] and "refused the credentials" in snapshot["cmp2"]
    assert "BmcUnreachable" in snapshot["cmp3"] and "could not be reached" in snapshot["cmp3"]
    assert [(h, lv, d, ok) for h, lv, d, ok in readiness.gauge_rows()] == [
        ("cmp1", "1", "1", True),
        ("cmp1", "2", "1", True),
        ("cmp2", "1", "1", False),
        ("cmp3", "1", "1", False),
    ]
    assert 1.9 < elapsed < 4.0  # spread over the interval, not a burst
    unreachable = [e for e in store.events(None, None, 50) if e.kind == UNREACHABLE_EVENT]
    assert sorted(e.host or "" for e in unreachable) == ["cmp2", "cmp3"]
    assert all(SECRET not in e.message and "not-it" not in e.message for e in store.events(None, None, 50))
    assert ipmi_sim.powered_on  # read-only

    readiness.run_cycle()  # nothing changed: no new event
    assert len([e for e in store.events(None, None, 50) if e.kind == UNREACHABLE_EVENT]) == 2

    fixed = {**topologies, "cmp2": FenceTopology.single(redfish_device(redfish_bmc, systems["cmp2"], host="cmp2"))}
    readiness.set_topologies(fixed)
    readiness.run_cycle()
    ok_events = [e for e in store.events(None, "cmp2", 50) if e.kind == OK_EVENT]
    assert len(ok_events) == 1 and "works again" in ok_events[0].message
    assert readiness.snapshot()["cmp2"] == "ok"
