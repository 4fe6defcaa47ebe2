"""Fixtures for functional fencing tests: real IPMI peers on 127.0.0.1, started and stopped by PID.

``bmc`` is parametrised over both peers (OpenIPMI ipmi_sim and pyghmi's Bmc emulator); ``peers``
starts any number of them. Every peer started here is stopped at teardown, also when a test fails.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petguard.clock import SystemClock
from petguard.fencing import loader, procedure
from petguard.fencing.child import FenceRunner
from tests.functional.bmc import Blackhole, IpmiSim, PyghmiBmc

USER = "admin"
SECRET = "Pw7hq2-s3cr3t-nL"  # 16 bytes: IPMI 1.5 limit honoured by ipmi_sim
PEER_KINDS = {"ipmi_sim": IpmiSim, "pyghmi_bmc": PyghmiBmc}

#: Short but realistic: a fence against a healthy loopback BMC takes well under a second.
FAST = procedure.FencePolicy(
    attempt_timeout=2.0,
    deadline=6.0,
    poll_interval=0.2,
    off_readings_required=3,
    retries=1,
    resend_after=2.0,
)

StartPeer = Callable[..., IpmiSim | PyghmiBmc]


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[StartPeer]:
    started: list[IpmiSim | PyghmiBmc] = []

    def start(kind: str = "ipmi_sim", password: str = SECRET) -> IpmiSim | PyghmiBmc:
        if kind == "ipmi_sim" and shutil.which("ipmi_sim") is None:
            pytest.skip("ipmi_sim missing: apt-get install -y openipmi")
        peer = PEER_KINDS[kind](tmp_path / f"{kind}-{len(started)}", USER, password)
        started.append(peer)
        return peer.start()

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture(params=sorted(PEER_KINDS))
def bmc(request: pytest.FixtureRequest, peers: StartPeer) -> IpmiSim | PyghmiBmc:
    return peers(request.param)


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def runner() -> FenceRunner:
    return FenceRunner(functools.partial(loader.load_driver, enabled=["ipmi", "fake"]))


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()
