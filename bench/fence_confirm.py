"""Benchmark: what confirming a fence costs on each real BMC peer, and under which settings.

For each peer on 127.0.0.1 (OpenIPMI ipmi_sim, pyghmi's Bmc emulator, sushy-tools' Redfish
emulator), through the real child-process runner and the real drivers, over ``-n`` runs:

* ``read``: one power-state reading (a child process, a new BMC session, one request);
* ``read: CPU of the child``: the CPU seconds that child used (interpreter, driver import, request):
  what each reading costs a controller whatever the load;
* ``read in-process``: the same reading without the child (what the child costs);
* ``off->1st OFF``: from the power-off command being accepted to the end of the first reading that
  says OFF (readings back to back, no sleep), and how many readings that took;
* ``fence NxI``: a whole confirmed fence (``procedure.fence``: power-off, then N consecutive OFF
  readings ``I`` seconds apart) for each candidate setting, and the span from the start of the
  first counted OFF reading to the end of the last (what the BMC had to keep saying OFF for).

It also counts the BMC's own reads against the readings petguard counted (the IPMI peers log
every Get Chassis Status, sushy-tools every GET of the system; pyghmi and sushy each read once
themselves before power-off): equal means every reading was a fresh request answered by the BMC,
none a cache (``fresh k/n``).
Prints medians and 90th percentiles; asserts nothing but that each fence confirmed. Run from the
repository root:

    python bench/fence_confirm.py [-n 10] [--peers ipmi_sim,pyghmi_bmc,redfish] [--settings 3x1,2x0.3,3x0.2]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petguard.clock import SystemClock
from petguard.fencing import base, loader, procedure
from petguard.fencing.base import FenceDevice, Op, PowerState
from petguard.fencing.child import FenceRunner
from tests.functional.bmc import IpmiSim, PyghmiBmc
from tests.functional.redfish_peer import SushyEmulator, new_system

PASSWORD = "bench-pw-16bytes"
USER = "admin"
DEFAULT_SETTINGS = "3x1,2x0.3,2x0.5,3x0.2,3x0.1"


class Peer(Protocol):
    """What the bench needs of a peer: a device record, a way to power the host on again, and
    (when the peer logs them) the number of power readings the BMC has answered."""

    kind: str
    device: FenceDevice

    def power_on(self) -> None: ...

    def bmc_reads(self) -> int | None: ...


@dataclasses.dataclass
class IpmiPeer:
    sim: IpmiSim | PyghmiBmc
    kind: str = ""
    device: FenceDevice = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.kind = self.sim.kind
        self.device = FenceDevice("h", "ipmi", "127.0.0.1", self.sim.port, USER, PASSWORD)

    def power_on(self) -> None:
        self.sim.set_power(on=True)

    def bmc_reads(self) -> int | None:
        return self.sim.calls().count("get power")


@dataclasses.dataclass
class RedfishPeer:
    emulator: SushyEmulator
    system: dict[str, Any]
    kind: str = "redfish"
    device: FenceDevice = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        options = {"scheme": "http", "system": self.emulator.path(self.system)}
        self.device = FenceDevice("h", "redfish", "127.0.0.1", self.emulator.port, USER, PASSWORD, options)

    def power_on(self) -> None:
        import sushy  # the bench process only; petguard's drivers import it in the child

        client = sushy.Sushy(
            f"http://127.0.0.1:{self.emulator.port}/redfish/v1",
            auth=sushy.auth.BasicAuth(username=USER, password=PASSWORD),
        )
        client.get_system(self.emulator.path(self.system)).reset_system(sushy.ResetType.ON)

    def bmc_reads(self) -> int | None:
        return self.emulator.system_reads(self.system)


def children_cpu() -> float:
    """User + system CPU seconds of every reaped child so far (each reading is one child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stats(samples: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered) * scale:8.1f} {unit}   p90 {p90 * scale:8.1f} {unit}"


def parse_settings(text: str) -> list[tuple[int, float]]:
    pairs = []
    for item in text.split(","):
        count, interval = item.lower().split("x")
        pairs.append((int(count), float(interval)))
    return pairs


class TimedRunner:
    """Wraps the real runner and records (start, end, op, result) of every call."""

    def __init__(self, inner: FenceRunner) -> None:
        self.inner = inner
        self.calls: list[tuple[float, float, Op, PowerState | None]] = []

    def run(self, driver_name: str, device: FenceDevice, op: Op, timeout: float) -> PowerState | None:
        started = time.monotonic()
        result = self.inner.run(driver_name, device, op, timeout)
        self.calls.append((started, time.monotonic(), op, result))
        return result


def off_span(calls: list[tuple[float, float, Op, PowerState | None]], needed: int) -> float:
    """Start of the first counted OFF reading → end of the last (the final streak of ``needed``)."""
    reads = [c for c in calls if c[2] is Op.POWER_STATE]
    streak = reads[-needed:]
    return streak[-1][1] - streak[0][0]


def bench_peer(peer: Peer, runner: FenceRunner, lookup: Callable[[str], base.FenceDriver], n: int,
               settings: list[tuple[int, float]]) -> None:
    device = peer.device
    driver = lookup(device.driver)
    label = f"{peer.kind:10}"

    peer.power_on()
    reads, cpu = [], []
    for _ in range(n):
        started, used = time.monotonic(), children_cpu()
        runner.run(device.driver, device, Op.POWER_STATE, 2.0)
        reads.append(time.monotonic() - started)
        cpu.append(children_cpu() - used)
    print(f"{label} read (child process)          ", stats(reads))
    print(f"{label} read: CPU of the child        ", stats(cpu))

    inproc = []
    for _ in range(n):
        started = time.monotonic()
        driver.power_state(device, 2.0)
        inproc.append(time.monotonic() - started)
    print(f"{label} read in-process (no child)    ", stats(inproc))

    first_off, tries = [], []
    for _ in range(n):
        peer.power_on()
        runner.run(device.driver, device, Op.POWER_OFF, 2.0)
        accepted = time.monotonic()
        count = 0
        while True:
            count += 1
            if runner.run(device.driver, device, Op.POWER_STATE, 2.0) is PowerState.OFF:
                break
            if time.monotonic() - accepted > 10:
                raise SystemExit(f"{peer.kind}: no OFF reading 10 s after power-off")
        first_off.append(time.monotonic() - accepted)
        tries.append(count)
    print(f"{label} off accepted -> 1st OFF read  ", stats(first_off), f"  readings {statistics.median(tries):g}")

    for needed, interval in settings:
        policy = procedure.FencePolicy(
            attempt_timeout=2.0, deadline=15.0, poll_interval=interval, off_readings_required=needed
        )
        totals, spans, fresh = [], [], []
        for _ in range(n):
            peer.power_on()
            before = peer.bmc_reads()
            timed = TimedRunner(runner)
            outcome = procedure.fence(device, driver, timed, policy, SystemClock())
            if not outcome.confirmed:
                raise SystemExit(f"{peer.kind} {needed}x{interval:g}: not confirmed: {outcome.reason}")
            totals.append(outcome.duration_s)
            spans.append(off_span(timed.calls, needed))
            after = peer.bmc_reads()
            if before is not None and after is not None:
                # pyghmi and sushy read the system once before they send power-off: one per attempt
                fresh.append(after - before == len(outcome.readings) + outcome.attempts)
        note = f"   fresh {sum(fresh)}/{len(fresh)}" if fresh else ""
        print(f"{label} fence {needed}x{interval:<4g} total          ", stats(totals, "s ", 1.0), note)
        print(f"{label} fence {needed}x{interval:<4g} OFF span       ", stats(spans, "s ", 1.0))


@contextmanager
def started(kind: str, root: Path) -> Iterator[Peer]:
    if kind in ("ipmi_sim", "pyghmi_bmc"):
        cls = IpmiSim if kind == "ipmi_sim" else PyghmiBmc
        sim = cls(root / kind, USER, PASSWORD).start()
        try:
            yield IpmiPeer(sim)
        finally:
            sim.stop()
        return
    system = new_system("h")
    emulator = SushyEmulator(root / "sushy", [system], username=USER, password=PASSWORD).start()
    try:
        yield RedfishPeer(emulator, system)
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="runs of each measurement")
    parser.add_argument("--peers", default="ipmi_sim,pyghmi_bmc,redfish")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="NxI,...: N readings I seconds apart")
    args = parser.parse_args()
    settings = parse_settings(args.settings)
    lookup = functools.partial(loader.load_driver, enabled=["ipmi", "redfish"])
    runner = FenceRunner(lookup)
    print(f"n={args.n}  cores={os.cpu_count()}  load={os.getloadavg()[0]:.2f}  {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.peers.split(","):
            with started(kind, Path(tmp)) as peer:
                bench_peer(peer, runner, lookup, args.n, settings)
    print(f"load after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
