"""Benchmark: the real loop and journal over a large cloud, through the Compute seam.

Drives ``petguard.reconcile.Loop`` (real decide, real SqlStore on sqlite in a temporary directory)
over N hosts and M servers served by an in-memory Nova, and prints one JSON object:

* ``nova_calls_per_tick``: Nova calls made by a steady-state tick (the goal: <= 3, whatever the size);
* ``tick_cpu_ms_p50`` / ``tick_cpu_ms_p90``: CPU time of one steady-state tick (goal: <= 50 ms);
* ``first_tick_cpu_ms``: the tick that first records every host;
* ``incident_nova_calls``: Nova calls for one host failure, from detection to every pet evacuated;
* ``peak_rss_mb``: peak resident memory of the process (goal: <= 200 MB).

Usage: ``python bench/tick.py [--hosts 3200] [--servers 100000] [--ticks 50]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petguard.clock import SystemClock
from petguard.cloud import Server
from petguard.daemon import service
from petguard.decide import LoopPolicy
from petguard.detect import DetectionPolicy
from petguard.evacuate.run import RunPolicy
from petguard.hosts import HostState
from petguard.lanes import RecoveryPolicy
from petguard.store import migrate
from petguard.store.sql import SqlStore
from tests.fakes import FakeCompute


def build_cloud(hosts: int, servers: int) -> FakeCompute:
    names = [f"cmp{i:05d}" for i in range(hosts)]
    compute = FakeCompute(names, evacuation_steps=2)
    for i in range(servers):
        metadata = {"petguard:pet": "true"} if i % 3 == 0 else {}
        compute.add_server(f"vm{i:06d}", names[i % hosts], metadata=metadata)
    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3200)
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=50)
    args = parser.parse_args()

    compute = build_cloud(args.hosts, args.servers)
    # The fake's servers_on scans every server; index them per host as a real Nova's DB would.
    by_host: dict[str, list[str]] = {}
    for server in compute.servers.values():
        by_host.setdefault(server.host or "", []).append(server.id)

    def servers_on(host: str) -> list[Server]:
        compute.calls["servers_on"] = compute.calls.get("servers_on", 0) + 1
        return [compute.servers[i] for i in by_host.get(host, []) if compute.servers[i].host == host]

    compute.servers_on = servers_on  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        migrate.upgrade(url)
        store = SqlStore(url)
        stop = threading.Event()
        clock = SystemClock(stop)
        policy = LoopPolicy(
            detection=DetectionPolicy(grace_period=0.2, down_samples=2, brake_max_hosts=5), startup_blackout=0.0
        )
        recovery = RecoveryPolicy(run=RunPolicy(max_parallel=8, poll_interval=0.001), poll_interval=0.01)
        fence = lambda host: (True, "benchmark: fence assumed confirmed")  # noqa: E731
        loop = service.assemble(compute, store, fence, clock, policy, recovery, stop)

        start = time.process_time()
        loop.tick()
        first_tick_ms = (time.process_time() - start) * 1000

        samples, calls = [], []
        for _ in range(args.ticks):
            before = sum(compute.calls.values())
            start = time.process_time()
            loop.tick()
            samples.append((time.process_time() - start) * 1000)
            calls.append(sum(compute.calls.values()) - before)

        victim = "cmp00000"
        before = dict(compute.calls)
        compute.dead.add(victim)
        started = time.monotonic()
        while store.load_hosts()[victim].host.state is not HostState.EVACUATED:
            loop.tick()
            time.sleep(0.01)
            if time.monotonic() - started > 300:
                raise SystemExit("benchmark incident did not finish in 300 s")
        incident_calls = {
            k: compute.calls[k] - before.get(k, 0) for k in compute.calls if compute.calls[k] != before.get(k, 0)
        }
        stop.set()
        loop.shutdown()

    samples.sort()
    print(
        json.dumps(
            {
                "hosts": args.hosts,
                "servers": args.servers,
                "ticks": args.ticks,
                "nova_calls_per_tick": max(calls),
                "tick_cpu_ms_p50": round(statistics.median(samples), 2),
                "tick_cpu_ms_p90": round(samples[int(0.9 * (len(samples) - 1))], 2),
                "first_tick_cpu_ms": round(first_tick_ms, 1),
                "incident_nova_calls": incident_calls,
                "incident_wall_s": round(time.monotonic() - started, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
