"""Benchmark: what one fence child costs, and how long a fence takes against each IPMI peer.

Prints medians and maxima (n runs each); asserts nothing. Run from the repository root:

    .venv/bin/python bench/fence_child.py [-n 10]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petguard.clock import SystemClock
from petguard.fencing import loader, procedure
from petguard.fencing.base import FenceDevice
from petguard.fencing.child import FenceRunner, Op, encode_request
from petguard.fencing.fake import FakeDriver
from petguard.fencing.ipmi import IpmiDriver
from tests.functional.bmc import IpmiSim, PyghmiBmc

PASSWORD = "bench-pw-16bytes"


def timed(n: int, action: Callable[[], object]) -> str:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return f"median {statistics.median(samples):7.1f} ms   max {max(samples):7.1f} ms"


def child(request: str) -> None:
    subprocess.run(
        [sys.executable, "-I", "-m", "petguard.fencing.child"],
        input=request,
        capture_output=True,
        text=True,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    n = parser.parse_args().n
    fake = FenceDevice("h", "fake", "10.0.0.1", 623, "u", PASSWORD)
    print(f"n={n}")
    print(
        "bare interpreter (python -I -c pass)     ",
        timed(n, lambda: subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)),
    )
    print(
        "child, fake driver (protocol overhead)   ",
        timed(n, lambda: child(encode_request(FakeDriver(), fake, Op.POWER_STATE, 1.0))),
    )
    print(
        "import pyghmi.ipmi.command in a child    ",
        timed(
            n,
            lambda: subprocess.run(
                [sys.executable, "-I", "-c", "import pyghmi.ipmi.command"], check=True
            ),
        ),
    )
    runner = FenceRunner(functools.partial(loader.load_driver, enabled=["ipmi"]))
    with tempfile.TemporaryDirectory() as tmp:
        for cls in (IpmiSim, PyghmiBmc):
            bench_peer(cls(Path(tmp) / cls.kind, "admin", PASSWORD).start(), runner, n)


def bench_peer(peer: IpmiSim | PyghmiBmc, runner: FenceRunner, n: int) -> None:
    policy = procedure.FencePolicy(attempt_timeout=2.0, deadline=10.0, poll_interval=0.2)
    device = FenceDevice("h", "ipmi", "127.0.0.1", peer.port, "admin", PASSWORD)

    def one_fence() -> None:
        peer.set_power(on=True)
        outcome = procedure.fence(device, IpmiDriver(), runner, policy, SystemClock())
        assert outcome.confirmed, outcome.reason

    try:
        read = timed(n, lambda: runner.run("ipmi", device, Op.POWER_STATE, 2.0))
        print(f"{peer.kind:10} child power_state          ", read)
        print(f"{peer.kind:10} fence (off + 3 OFF reads)", timed(n, one_fence))
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
