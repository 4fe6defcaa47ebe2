"""Evidence, deadlines and secrets of fencing with real processes: fence agents and fence children
that misbehave the way real programs do.

* A fence agent whose ``status`` exits 2 without printing ``Status: OFF`` (a usage error, a shell
  syntax error, a missing interpreter file all exit 2) is not a reading: the level fails and the host
  waits for an operator, with an alert, instead of being evacuated.
* A fence child whose reply is malformed (``power: "Off"``, ``delay: "soon"``) or that exits non-zero
  after an OFF reply is a fencing error, not a crash of the lane.
* An agent or a child that leaves a ``setsid`` helper holding its pipes cannot hold the lane past
  its deadline plus a small bound.
* An option that names a secret (SNMP community, privacy password) never reaches a reason or an
  event, even when the agent echoes it.

The programs are small scripts written into ``tmp_path``; every helper they leave behind is killed
by its PID at teardown. ``fence_ipmilan`` against ipmi_sim shows the rule accepts the real agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import stat
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard import errors
from petguard.clock import SystemClock
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice, FenceTopology, Op, PowerState
from petguard.fencing.child import FenceRunner
from petguard.hosts import HostState
from tests.fakes import FakeCompute
from tests.functional.bmc import IpmiSim
from tests.functional.harness import Harness

USER = "admin"
SECRET = "Pw7hq2-s3cr3t-nL"
COMMUNITY = "comm-Hq83-private"
PRIV_PASSWORD = "priv-Zk29-never-seen"
DRIVERS = ("ipmi", "fake", "fenceagent")
POLICY = procedure.FencePolicy(
    attempt_timeout=2.0, deadline=4.0, poll_interval=0.1, off_readings_required=3, retries=1, resend_after=2.0
)
#: How long a helper left behind keeps the pipes open: far beyond every deadline here.
HELPER_LIFETIME = 8
#: What a bounded kill may add to a deadline (SIGKILL, closing pipes, reaping) on a loaded machine.
KILL_BOUND = 1.0

#: A fence agent speaking the stdin protocol; ``mode=`` chooses how it misbehaves.
FAKE_AGENT = """\
#!{python}
import os, sys, time
params = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
mode, action = params.get("mode"), params.get("action")
if mode == "usage":  # off: no answer; status: a usage error, exit 2 (as argparse, sh and python do)
    if action == "off":
        sys.stderr.write("ERROR: Connection timed out\\n")
        sys.exit(1)
    sys.stderr.write("ERROR: Failed: unknown option\\nERROR: Please use '-h' for usage\\n")
    sys.exit(2)
if mode == "echo":  # a failure that echoes the helper's command line with its secrets
    sys.stderr.write("Failed: Unable to obtain correct plug status (snmpget -c %s -X %s)\\n"
                     % (params.get("community"), params.get("snmp_priv_passwd")))
    sys.exit(1)
if mode == "setsid":  # a helper in its own session keeps stdout and stderr open
    pid = os.fork()
    if pid == 0:
        os.setsid()
        time.sleep({lifetime})
        os._exit(0)
    with open(params["pidfile"], "w") as f:
        f.write(str(pid))
    time.sleep({lifetime})
sys.exit(1)
"""


@pytest.fixture
def lookup() -> Callable[[str], Any]:
    return functools.partial(loader.load_driver, enabled=list(DRIVERS))


@pytest.fixture
def helpers(tmp_path: Path) -> Iterator[Path]:
    """A directory for pid files; every helper pid written there is SIGKILLed at teardown."""
    folder = tmp_path / "pids"
    folder.mkdir()
    yield folder
    for pidfile in folder.iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def fake_agent(tmp_path: Path) -> str:
    return script(tmp_path / "fence_fake", FAKE_AGENT.format(python=sys.executable, lifetime=HELPER_LIFETIME))


def agent_device(agent: str, host: str = "cmp1", **options: str) -> FenceDevice:
    return FenceDevice(host, "fenceagent", "127.0.0.1", 0, USER, SECRET, {"agent": agent, **options})


def child_script(tmp_path: Path, body: str) -> str:
    """A stand-in for ``python -I -m petguard.fencing.child``: the request in $request, then ``body``."""
    return script(tmp_path / "child.sh", "#!/bin/sh\nrequest=$(cat)\n" + textwrap.dedent(body))


# -- item 1: exit 2 alone is not OFF ------------------------------------------------------------


@pytest.mark.fault(
    "FENCE-01",
    guarantee="1",
    injected="a fence agent's status exits 2 without 'Status: OFF' (usage error, shell syntax error)",
    expected="not a reading: the level fails, AWAITING_CONFIRM with an alert, nothing evacuated",
)
def test_a_usage_error_of_status_is_not_an_off_reading(fake_agent: str, lookup: Callable[[str], Any]) -> None:
    device = agent_device(fake_agent, mode="usage")

    outcome = procedure.fence(device, lookup("fenceagent"), FenceRunner(lookup), POLICY, SystemClock())

    assert not outcome.confirmed
    assert PowerState.OFF not in outcome.readings
    assert "Status: OFF" in outcome.reason and "Please use '-h' for usage" in outcome.reason
    assert "evacuation may start" not in outcome.reason


@pytest.mark.fault(
    "FENCE-01",
    guarantee="1",
    injected="a fence agent's status exits 2 without 'Status: OFF' (usage error, shell syntax error)",
    expected="not a reading: the level fails, AWAITING_CONFIRM with an alert, nothing evacuated",
)
@pytest.mark.parametrize(
    "program",
    ["if then\n", "exec python3 /nonexistent/fence_agent\n"],
    ids=["sh-syntax-error", "interpreter-missing"],
)
def test_a_broken_agent_exiting_2_is_an_error(tmp_path: Path, lookup: Callable[[str], Any], program: str) -> None:
    agent = script(tmp_path / "fence_broken", "#!/bin/sh\n" + program)

    with pytest.raises(errors.FencingError, match="exit 2"):
        lookup("fenceagent").power_state(agent_device(agent), 2.0)


@pytest.mark.fault(
    "FENCE-01",
    guarantee="1",
    injected="a fence agent's status exits 2 without 'Status: OFF' (usage error, shell syntax error)",
    expected="not a reading: the level fails, AWAITING_CONFIRM with an alert, nothing evacuated",
)
def test_a_wrong_agent_level_ends_awaiting_confirm_with_an_alert(tmp_path: Path, fake_agent: str) -> None:
    hosts = ["cmp1", "cmp2", "cmp3"]
    compute = FakeCompute(hosts)
    topologies = {
        "cmp1": FenceTopology.single(agent_device(fake_agent, mode="usage")),
        **{h: FenceTopology.single(FenceDevice(h, "fake", h, 623, USER, SECRET)) for h in hosts[1:]},
    }
    harness = Harness(tmp_path, compute, topologies, fence_policy=POLICY, enabled_drivers=DRIVERS)  # type: ignore[arg-type]
    try:
        harness.run_until(lambda: set(harness.store.load_hosts()) == set(hosts), timeout=5)
        compute.dead.add("cmp1")

        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=30)

        events = harness.store.events(None, "cmp1", 50)
        kinds = [e.kind for e in events]
        assert "awaiting_confirm" in kinds and "fence_level_failed" in kinds
        assert HostState.FENCED.value not in {r.host.state.value for r in harness.store.load_hosts().values()}
        assert compute.evacuate_calls == {}
        assert all(SECRET not in e.message for e in events)
    finally:
        harness.close()


@pytest.mark.skipif(shutil.which("ipmi_sim") is None, reason="apt-get install -y openipmi")
@pytest.mark.skipif(
    shutil.which("fence_ipmilan", path="/usr/sbin:/sbin:/usr/bin") is None, reason="apt-get install -y fence-agents"
)
def test_the_real_fence_ipmilan_status_is_positive_evidence(tmp_path: Path, lookup: Callable[[str], Any]) -> None:
    """fence-agents print 'Status: ON' (exit 0) and 'Status: OFF' (exit 2): the strict rule reads both."""
    sim = IpmiSim(tmp_path / "ipmi_sim", USER, SECRET).start()
    try:
        options = {"agent": "fence_ipmilan", "lanplus": "1", "cipher": "3", "power_wait": "0"}
        device = FenceDevice("cmp1", "fenceagent", "127.0.0.1", sim.port, USER, SECRET, options)
        driver = lookup("fenceagent")
        assert driver.power_state(device, 5.0) is PowerState.ON

        policy = dataclasses.replace(POLICY, attempt_timeout=5.0, deadline=8.0)

        outcome = procedure.fence(device, driver, FenceRunner(lookup), policy, SystemClock())

        assert outcome.confirmed, outcome.reason
        assert outcome.readings[-3:] == (PowerState.OFF,) * 3
        assert not sim.powered_on
    finally:
        sim.stop()


# -- item 5: a malformed child reply is a fencing error ----------------------------------------


MALFORMED = {
    "power-Off": ('{"ok": true, "power": "Off"}', 0),
    "delay-soon": ('{"ok": false, "error": "BmcUnreachable", "message": "slow", "delay": "soon"}', 0),
    "off-then-exit-1": ('{"ok": true, "power": "off"}', 1),
    "off-then-killed": ('{"ok": true, "power": "off"}', -9),
}


@pytest.mark.fault(
    "FENCE-04",
    guarantee="4",
    injected="a fence child replies power 'Off' or delay 'soon' (malformed)",
    expected="a FencingError for that device: the level fails, AWAITING_CONFIRM with an alert, no crashed lane",
)
@pytest.mark.fault(
    "FENCE-05",
    guarantee="1",
    injected="a fence child prints an OFF reply, then exits non-zero or is killed",
    expected="not a reading: an error, never one of the OFF readings that confirm",
)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_child_reply_is_a_fencing_error(tmp_path: Path, lookup: Callable[[str], Any], case: str) -> None:
    reply, code = MALFORMED[case]
    body = f"echo '{reply}'\n" + ("kill -9 $$\n" if code < 0 else f"exit {code}\n")
    runner = FenceRunner(lookup, python=child_script(tmp_path, body))
    device = FenceDevice("cmp1", "ipmi", "127.0.0.1", 623, USER, SECRET)

    with pytest.raises(errors.PetguardError) as caught:
        runner.run("ipmi", device, Op.POWER_STATE, 1.0)

    if code == 0:
        assert type(caught.value) is errors.FencingError and "malformed" in str(caught.value)
    outcome = procedure.fence(device, lookup("ipmi"), runner, dataclasses.replace(POLICY, deadline=1.0), SystemClock())
    assert not outcome.confirmed and PowerState.OFF not in outcome.readings


@pytest.mark.fault(
    "FENCE-04",
    guarantee="4",
    injected="a fence child replies power 'Off' or delay 'soon' (malformed)",
    expected="a FencingError for that device: the level fails, AWAITING_CONFIRM with an alert, no crashed lane",
)
def test_a_malformed_child_reply_ends_awaiting_confirm_with_an_alert(tmp_path: Path) -> None:
    hosts = ["cmp1", "cmp2", "cmp3"]
    compute = FakeCompute(hosts)
    devices = {h: FenceDevice(h, "ipmi", "127.0.0.1", 623, USER, SECRET) for h in hosts}
    python = child_script(tmp_path, """\
        case "$request" in
          *'"op": "power_off"'*) echo '{"ok": true, "power": null}' ;;
          *) echo '{"ok": true, "power": "Off"}' ;;
        esac
        """)
    harness = Harness(tmp_path, compute, devices, fence_policy=POLICY, enabled_drivers=DRIVERS, child_python=python)
    try:
        harness.run_until(lambda: set(harness.store.load_hosts()) == set(hosts), timeout=5)
        compute.dead.add("cmp1")

        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=30)

        events = harness.store.events(None, "cmp1", 50)
        kinds = [e.kind for e in events]
        assert "awaiting_confirm" in kinds
        [failed] = [e.message for e in events if e.kind == "fence_level_failed"]
        assert "power-state reading failed" in failed and "sent a malformed reply (power is not one of" in failed
        assert compute.evacuate_calls == {}
    finally:
        harness.close()


# -- item 4: the deadline is hard, also with a helper holding the pipes --------------------------


@pytest.mark.fault(
    "FENCE-07",
    guarantee="4",
    injected="a fence child hangs and leaves a setsid helper holding its stdout and stderr",
    expected="the call ends within its hard deadline plus 1 s (BmcUnreachable), the lane is free",
)
def test_a_child_helper_holding_the_pipes_cannot_hold_the_lane(
    tmp_path: Path, helpers: Path, lookup: Callable[[str], Any]
) -> None:
    python = child_script(tmp_path, f"""\
        setsid sleep {HELPER_LIFETIME} &
        echo $! > {helpers / "child-helper"}
        sleep {HELPER_LIFETIME}
        """)
    runner = FenceRunner(lookup, python=python, hard_margin=0.5)
    device = FenceDevice("cmp1", "ipmi", "127.0.0.1", 623, USER, SECRET)
    started = time.monotonic()

    with pytest.raises(errors.BmcUnreachable, match="hard deadline"):
        runner.run("ipmi", device, Op.POWER_STATE, 1.0)

    elapsed = time.monotonic() - started
    print(f"\nfence child with a setsid helper: returned after {elapsed:.2f} s (hard deadline 1.5 s)")
    assert elapsed < 1.5 + KILL_BOUND


@pytest.mark.fault(
    "FENCE-08",
    guarantee="4",
    injected="a fence agent hangs and leaves a setsid helper holding its stdout and stderr",
    expected="the call ends within its timeout plus 1 s (BmcUnreachable), the lane is free",
)
def test_an_agent_helper_holding_the_pipes_cannot_hold_the_lane(
    fake_agent: str, helpers: Path, lookup: Callable[[str], Any]
) -> None:
    device = agent_device(fake_agent, mode="setsid", pidfile=str(helpers / "agent-helper"))
    started = time.monotonic()

    with pytest.raises(errors.BmcUnreachable, match="was killed"):
        lookup("fenceagent").power_state(device, 1.0)

    elapsed = time.monotonic() - started
    print(f"\nfence agent with a setsid helper: returned after {elapsed:.2f} s (timeout 1.0 s)")
    assert elapsed < 1.0 + KILL_BOUND


@pytest.mark.fault(
    "FENCE-07",
    guarantee="4",
    injected="a fence child hangs and leaves a setsid helper holding its stdout and stderr",
    expected="the call ends within its hard deadline plus 1 s (BmcUnreachable), the lane is free",
)
def test_a_whole_fence_with_such_a_child_ends_at_its_deadline(
    tmp_path: Path, helpers: Path, lookup: Callable[[str], Any]
) -> None:
    python = child_script(tmp_path, f"""\
        setsid sleep {HELPER_LIFETIME} &
        echo $! > {helpers}/helper-$$
        sleep {HELPER_LIFETIME}
        """)
    runner = FenceRunner(lookup, python=python, hard_margin=0.5)
    device = FenceDevice("cmp1", "ipmi", "127.0.0.1", 623, USER, SECRET)
    policy = dataclasses.replace(POLICY, attempt_timeout=1.0, deadline=2.0, retries=0)
    started = time.monotonic()

    outcome = procedure.fence(device, lookup("ipmi"), runner, policy, SystemClock())

    elapsed = time.monotonic() - started
    print(f"\nwhole fence, deadline 2 s, child with a setsid helper: {elapsed:.2f} s")
    assert not outcome.confirmed
    # The last call may start just before the deadline: deadline + one call's hard margin + the kill.
    assert elapsed < policy.deadline + 1.5 + KILL_BOUND


# -- item 7: secrets in options --------------------------------------------------------------


@pytest.mark.fault(
    "FENCE-09",
    guarantee="7",
    injected="a fence agent echoes its SNMP community and privacy password (options) in its failure",
    expected="both are masked in the reason and the events; repr of the device shows neither",
)
def test_secret_options_echoed_by_an_agent_never_reach_reasons_or_events(
    tmp_path: Path, fake_agent: str
) -> None:
    device = agent_device(fake_agent, mode="echo", community=COMMUNITY, snmp_priv_passwd=PRIV_PASSWORD)
    hosts = ["cmp1", "cmp2", "cmp3"]
    compute = FakeCompute(hosts)
    topologies = {
        "cmp1": FenceTopology.single(device),
        **{h: FenceTopology.single(FenceDevice(h, "fake", h, 623, USER, SECRET)) for h in hosts[1:]},
    }
    harness = Harness(tmp_path, compute, topologies, fence_policy=POLICY, enabled_drivers=DRIVERS)  # type: ignore[arg-type]
    try:
        harness.run_until(lambda: set(harness.store.load_hosts()) == set(hosts), timeout=5)
        compute.dead.add("cmp1")

        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=30)

        events = harness.store.events(None, "cmp1", 50)
        failed = [e.message for e in events if e.kind == "fence_level_failed"]
        assert failed and "snmpget -c *** -X ***" in failed[0]
        for text in [e.message for e in events] + [repr(device), str(topologies["cmp1"])]:
            assert COMMUNITY not in text and PRIV_PASSWORD not in text and SECRET not in text
    finally:
        harness.close()


# -- undecodable output ------------------------------------------------------------------------


@pytest.mark.fault(
    "FENCE-10",
    guarantee="4",
    injected="a fence agent or child prints bytes that are not UTF-8",
    expected="decoded with replacement: an error or a reading, never an exception out of the call",
)
def test_bytes_that_are_not_utf8_are_an_error_not_a_crash(tmp_path: Path, lookup: Callable[[str], Any]) -> None:
    runner = FenceRunner(lookup, python=child_script(tmp_path, "printf '\\377\\376\\n'\n"))
    agent = script(tmp_path / "fence_latin1", "#!/bin/sh\nprintf 'Status: \\326FF\\n'\nprintf '\\377' >&2\nexit 2\n")
    device = FenceDevice("cmp1", "ipmi", "127.0.0.1", 623, USER, SECRET)

    with pytest.raises(errors.FencingError, match="malformed reply"):
        runner.run("ipmi", device, Op.POWER_STATE, 1.0)
    with pytest.raises(errors.FencingError, match="not a power reading"):
        lookup("fenceagent").power_state(agent_device(agent), 2.0)
