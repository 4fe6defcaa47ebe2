"""Fencing against real IPMI peers on 127.0.0.1: OpenIPMI's ipmi_sim and pyghmi's Bmc emulator,
each driven through the real child-process runner and the real IpmiDriver."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from petguard import errors, hosts
from petguard.clock import SystemClock
from petguard.fencing import procedure
from petguard.fencing.base import FenceDevice, FenceOutcome, Op, PowerState
from petguard.fencing.child import FenceRunner, encode_request
from petguard.fencing.ipmi import IpmiDriver
from tests.functional.bmc import Blackhole, IpmiSim, PyghmiBmc, free_udp_port
from tests.functional.fencing.conftest import FAST, SECRET, StartPeer

Peer = IpmiSim | PyghmiBmc


def device_for(
    port: int, password: str = SECRET, user: str = "admin", host: str = "cmp1"
) -> FenceDevice:
    return FenceDevice(
        host=host, driver="ipmi", address="127.0.0.1", port=port, username=user, password=password
    )


def fence(
    port: int, runner: FenceRunner, clock: SystemClock, **device: str
) -> FenceOutcome:
    return procedure.fence(device_for(port, **device), IpmiDriver(), runner, FAST, clock)


def test_power_off_is_confirmed_by_reading_back(
    bmc: Peer, runner: FenceRunner, clock: SystemClock
) -> None:
    outcome = fence(bmc.port, runner, clock)

    assert outcome.confirmed, outcome.reason
    assert outcome.readings[-3:] == (PowerState.OFF,) * 3
    assert not bmc.powered_on
    assert "set power 0" in bmc.calls()
    assert outcome.duration_s < 3.0
    print(
        f"\n{bmc.kind}: fence confirmed in {outcome.duration_s:.2f} s, {len(outcome.readings)} readings"
    )


@pytest.mark.fault(
    "BMCX-04",
    guarantee="1",
    injected="a wrong password to an IPMI BMC (ipmi_sim, pyghmi)",
    expected="not fenced within 1.5 s, the reason says the credentials were refused; no power-off sent",
)
def test_wrong_password_is_not_fenced_and_fast(
    bmc: Peer, runner: FenceRunner, clock: SystemClock
) -> None:
    outcome = fence(bmc.port, runner, clock, password="wrong-password")

    assert not outcome.confirmed
    assert "refused the credentials" in outcome.reason and "Incorrect password" in outcome.reason
    assert outcome.duration_s < 1.5
    assert bmc.powered_on and "set power 0" not in bmc.calls()


@pytest.mark.fault(
    "BMCX-05",
    guarantee="1",
    injected="an IPMI user name the BMC does not know",
    expected="BmcAuthError",
)
def test_unknown_user_is_an_auth_error(bmc: Peer, runner: FenceRunner) -> None:
    with pytest.raises(errors.BmcAuthError, match="Unauthorized name"):
        runner.run("ipmi", device_for(bmc.port, user="nobody"), Op.POWER_STATE, 2.0)


@pytest.mark.fault(
    "BMCX-06",
    guarantee="4",
    injected="nothing listens at the IPMI BMC's address",
    expected="not fenced, ending within the fence deadline",
)
def test_nothing_listening_ends_within_the_deadline(
    runner: FenceRunner, clock: SystemClock
) -> None:
    started = time.monotonic()
    outcome = fence(free_udp_port(), runner, clock)

    assert not outcome.confirmed
    assert "not fenced" in outcome.reason
    # the deadline, plus at most one attempt that started just before it, plus child start-up
    assert time.monotonic() - started < FAST.deadline + FAST.attempt_timeout + 1.5


@pytest.mark.fault(
    "BMCX-02",
    guarantee="1",
    injected="an IPMI BMC accepts power-off but keeps reporting ON (stuck_on)",
    expected="never confirmed: the host goes to AWAITING_CONFIRM and nothing is evacuated",
)
def test_stuck_on_is_never_confirmed_and_goes_to_awaiting_confirm(
    bmc: Peer, runner: FenceRunner, clock: SystemClock
) -> None:
    bmc.set_mode("stuck_on")

    outcome = fence(bmc.port, runner, clock)

    assert not outcome.confirmed
    assert "accepted power-off but still reports ON after 6 s" in outcome.reason
    assert set(outcome.readings) == {PowerState.ON}
    assert bmc.calls().count("set power 0") >= 2  # re-sent while the host stays on
    # upstream: an unconfirmed fence leads to AWAITING_CONFIRM, from where evacuation is refused
    host = hosts.Host("cmp1", hosts.HostState.FENCING).apply(hosts.HostEvent.FENCE_FAILED, 0.0)
    assert host.state is hosts.HostState.AWAITING_CONFIRM
    with pytest.raises(errors.InvalidTransition):
        host.apply(hosts.HostEvent.EVACUATION_STARTED, 0.0)


@pytest.mark.fault(
    "BMCX-07",
    guarantee="1",
    injected="the BMC refuses the power-off command",
    expected="not confirmed: a FencingError, at once (under 1.5 s)",
)
def test_device_refusing_power_off_ends_at_once(
    bmc: Peer, runner: FenceRunner, clock: SystemClock
) -> None:
    bmc.set_mode("fail_set")

    outcome = fence(bmc.port, runner, clock)

    assert not outcome.confirmed
    assert "FencingError" in outcome.reason
    assert outcome.duration_s < 1.5


@pytest.mark.parametrize("hang", ["paused_ipmi_sim", "blackhole"])
@pytest.mark.fault(
    "BMCX-08",
    guarantee="4",
    injected="a hung BMC: ipmi_sim SIGSTOPped, or a port that swallows every packet",
    expected="BmcUnreachable within the call's timeout plus 1 s",
)
def test_a_hung_bmc_gives_unreachable_in_time(
    hang: str, peers: StartPeer, blackhole: Blackhole, runner: FenceRunner
) -> None:
    if hang == "paused_ipmi_sim":
        peer = peers("ipmi_sim")
        peer.pause()
        port = peer.port
    else:
        port = blackhole.port
    started = time.monotonic()

    with pytest.raises(errors.BmcUnreachable):
        runner.run("ipmi", device_for(port), Op.POWER_OFF, 1.0)

    assert time.monotonic() - started < 1.0 + 1.0  # timeout + hard margin


@pytest.mark.fault(
    "PG-09",
    guarantee="4",
    injected="petguard's own fence child SIGSTOPped (wedged) during a call",
    expected="killed at the hard deadline and reaped; BmcUnreachable",
)
def test_a_wedged_child_is_killed_at_the_hard_deadline(blackhole: Blackhole) -> None:
    children: list[int] = []

    def wedge(pid: int) -> None:
        children.append(pid)
        os.kill(pid, signal.SIGSTOP)  # a child that can no longer report anything

    runner = FenceRunner(lambda name: IpmiDriver(), hard_margin=0.5, on_spawn=wedge)
    started = time.monotonic()

    with pytest.raises(errors.BmcUnreachable, match="hard deadline of 1.5 s and was killed"):
        runner.run("ipmi", device_for(blackhole.port), Op.POWER_STATE, 1.0)

    assert 1.5 <= time.monotonic() - started < 2.5
    with pytest.raises(ProcessLookupError):  # killed and reaped: not even a zombie is left
        os.kill(children[0], 0)


def test_ten_hosts_fenced_in_parallel(
    peers: StartPeer, runner: FenceRunner, clock: SystemClock
) -> None:
    bmcs = [peers("ipmi_sim") for _ in range(10)]
    outcomes: dict[int, FenceOutcome] = {}

    def one(index: int, peer: Peer) -> None:
        device = device_for(peer.port, host=f"cmp{index}")
        outcomes[index] = procedure.fence(device, IpmiDriver(), runner, FAST, clock)

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(bmcs)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=FAST.deadline + 10)

    assert not any(thread.is_alive() for thread in threads), "a fence thread hung"
    assert all(o.confirmed for o in outcomes.values()), [o.reason for o in outcomes.values()]
    assert len(outcomes) == 10 and not any(p.powered_on for p in bmcs)
    print(f"\n10 parallel fences: {time.monotonic() - started:.2f} s wall")


def test_the_password_never_leaves(
    peers: StartPeer,
    blackhole: Blackhole,
    caplog: pytest.LogCaptureFixture,
    clock: SystemClock,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def inspect(pid: int) -> None:
        # what other local users could read about the child: its argv and its environment
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as proc_file:
                    seen.append(proc_file.read().decode("utf-8", "replace"))
            except OSError:
                pass

    runner = FenceRunner(lambda name: IpmiDriver(), on_spawn=inspect)
    good, stuck = peers("ipmi_sim"), peers("pyghmi_bmc")
    stuck.set_mode("stuck_on")
    policy = procedure.FencePolicy(attempt_timeout=1.5, deadline=4.0, poll_interval=0.2, retries=0)
    outcomes = [
        procedure.fence(device_for(good.port), IpmiDriver(), runner, policy, clock),
        procedure.fence(device_for(stuck.port), IpmiDriver(), runner, policy, clock),
        procedure.fence(device_for(blackhole.port), IpmiDriver(), runner, policy, clock),
    ]
    wrong = SECRET[::-1]  # a wrong password must not leak either
    outcomes.append(
        procedure.fence(device_for(good.port, password=wrong), IpmiDriver(), runner, policy, clock)
    )
    for op in Op:
        try:
            runner.run("ipmi", device_for(free_udp_port()), op, 0.5)
        except errors.PetguardError as exc:
            seen.extend([str(exc), repr(exc), repr(exc.context)])
    # the child's own stdout and stderr, for a failing and a succeeding operation
    for port in (blackhole.port, good.port):
        request = encode_request(IpmiDriver(), device_for(port), Op.POWER_STATE, 0.5)
        done = subprocess.run(
            [sys.executable, "-I", "-m", "petguard.fencing.child"],
            input=request,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        seen.extend([done.stdout, done.stderr])
        assert done.stdout.count("\n") == 1 and '"ok"' in done.stdout

    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(f"{o.reason} {o!r}" for o in outcomes)
    assert len(caplog.records) > 10 and any("DEBUG" == r.levelname for r in caplog.records)
    assert [o.confirmed for o in outcomes] == [True, False, False, False]
    assert not [text for text in seen if SECRET in text or wrong in text]
    assert any("cmdline" for _ in seen) and len(seen) > 20
