"""Confirmation under the default settings against real IPMI peers (OpenIPMI ipmi_sim and pyghmi's
Bmc emulator), through the real child-process runner and the real IpmiDriver.

The defaults (2 consecutive OFF readings, 0.5 s apart; docs/fencing.md "How fast, and why it is
safe") are attacked with a BMC whose reading flaps, one that reports OFF for a moment after the
command although the host stays on, and checked for fresh requests: every reading petguard counts
is one request the BMC answered (its own log; also sushy-tools' Redfish emulator), never a cache.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest

from petguard import errors, hosts
from petguard.clock import SystemClock
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice, FenceTopology, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.ipmi import IpmiDriver
from tests.functional.bmc import IpmiSim, PyghmiBmc
from tests.functional.fencing.conftest import SECRET
from tests.functional.redfish_peer import SushyEmulator, new_system

Peer = IpmiSim | PyghmiBmc
#: The shipped defaults, with a deadline short enough for a test.
DEFAULTS = dataclasses.replace(procedure.FencePolicy(), attempt_timeout=2.0, deadline=4.0)


def device_for(peer: Peer) -> FenceDevice:
    return FenceDevice("cmp1", "ipmi", "127.0.0.1", peer.port, "admin", SECRET)


def fence_host(peer: Peer, runner: FenceRunner) -> procedure.FenceResult:
    topology = FenceTopology.single(device_for(peer))
    return procedure.fence_topology(topology, lambda name: IpmiDriver(), runner, DEFAULTS, SystemClock())


def assert_waits_for_an_operator(result: procedure.FenceResult) -> None:
    assert not result.confirmed
    assert "every fence level failed" in result.reason and "not fenced" in result.reason
    host = hosts.Host("cmp1", hosts.HostState.FENCING).apply(hosts.HostEvent.FENCE_FAILED, 0.0)
    assert host.state is hosts.HostState.AWAITING_CONFIRM
    with pytest.raises(errors.InvalidTransition):
        host.apply(hosts.HostEvent.EVACUATION_STARTED, 0.0)


@pytest.mark.fault(
    "CONFIRM-05",
    guarantee="1",
    injected="a real IPMI BMC (ipmi_sim, pyghmi) acknowledges power-off, the host stays on, and its "
    "power reading flaps: OFF, ON, OFF, ON ... (default settings)",
    expected="never confirmed (no two OFF readings in a row); at the deadline the host waits for an "
    "operator's confirm-fenced",
)
def test_a_flapping_reading_never_confirms(bmc: Peer, runner: FenceRunner) -> None:
    bmc.set_mode("flap")

    result = fence_host(bmc, runner)

    readings = result.levels[0].devices[0].readings
    assert PowerState.OFF in readings and PowerState.ON in readings
    assert all((a, b) != (PowerState.OFF,) * 2 for a, b in zip(readings, readings[1:], strict=False))
    assert bmc.powered_on
    assert_waits_for_an_operator(result)


@pytest.mark.fault(
    "CONFIRM-06",
    guarantee="1",
    injected="a real IPMI BMC acknowledges power-off and then reports OFF for poll_interval seconds "
    "(from the first reading) although the host stays on: an early or optimistic OFF, default settings",
    expected="never confirmed: the next reading comes more than poll_interval later and reads ON; the "
    "host waits for an operator's confirm-fenced",
)
def test_an_off_shorter_than_the_spacing_never_confirms(bmc: Peer, runner: FenceRunner) -> None:
    (bmc.state / "optimistic").write_text(f"{DEFAULTS.poll_interval}\n")
    bmc.set_mode("optimistic")

    result = fence_host(bmc, runner)

    readings = result.levels[0].devices[0].readings
    print(f"\n{bmc.kind}: optimistic OFF for {DEFAULTS.poll_interval} s -> readings {[str(r) for r in readings]}")
    assert readings[0] is PowerState.OFF and readings[1] is PowerState.ON
    assert bmc.powered_on
    assert_waits_for_an_operator(result)


@pytest.mark.fault(
    "CONFIRM-07",
    guarantee="1",
    injected="a fence with the default settings against real IPMI BMCs (ipmi_sim, pyghmi), watched "
    "from the BMC's side",
    expected="every counted reading is one Get Chassis Status the BMC answered (its own log): "
    "readings + one pre-read per power-off = the BMC's reads; none served from a cache",
)
def test_every_reading_is_a_fresh_request_to_the_bmc(bmc: Peer, runner: FenceRunner) -> None:
    before = bmc.calls().count("get power")

    result = fence_host(bmc, runner)

    outcome = result.levels[0].devices[0]
    assert result.confirmed, result.reason
    assert outcome.readings == (PowerState.OFF,) * DEFAULTS.off_readings_required
    # pyghmi's set_power reads the power once itself before it sends the command
    assert bmc.calls().count("get power") - before == len(outcome.readings) + outcome.attempts
    assert not bmc.powered_on
    print(f"\n{bmc.kind}: confirmed with the defaults in {result.duration_s:.2f} s")


@pytest.mark.fault(
    "CONFIRM-08",
    guarantee="1",
    injected="a fence with the default settings against sushy-tools' Redfish emulator, watched from "
    "the emulator's request log",
    expected="confirmed by 2 OFF readings, each one GET of the system the emulator answered (plus one "
    "GET by sushy before the ForceOff); none served from a cache",
)
def test_every_redfish_reading_is_a_fresh_request(tmp_path: Path) -> None:
    system = new_system("cmp1")
    emulator = SushyEmulator(tmp_path / "sushy", [system], password=SECRET).start()
    try:
        options = {"scheme": "http", "system": emulator.path(system)}
        device = FenceDevice("cmp1", "redfish", "127.0.0.1", emulator.port, "admin", SECRET, options)
        lookup = functools.partial(loader.load_driver, enabled=["redfish"])
        before = emulator.system_reads(system)

        outcome = procedure.fence(device, lookup("redfish"), FenceRunner(lookup), DEFAULTS, SystemClock())

        assert outcome.confirmed, outcome.reason
        assert outcome.readings == (PowerState.OFF,) * DEFAULTS.off_readings_required
        assert emulator.system_reads(system) - before == len(outcome.readings) + outcome.attempts
        print(f"\nredfish: confirmed with the defaults in {outcome.duration_s:.2f} s")
    finally:
        emulator.stop()
