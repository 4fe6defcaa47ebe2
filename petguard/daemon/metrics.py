"""Prometheus metrics (prometheus-client): a snapshot of the journal read at scrape time, and the
counters and histograms the loop updates as it works.

``Metrics`` is both the loop's ``reconcile.Recorder`` (ticks, fence attempts, evacuations per server)
and the API's ``Exposition`` (``GET /metrics``). It has its own ``CollectorRegistry``, so several
instances (tests) never clash. Every metric is listed in ``docs/api.md``.

At scrape time (from ``snapshot()``; nothing is cached):

* ``petguard_host_state{host,state}`` 1 for each host's current lifecycle state
* ``petguard_hosts{state}`` hosts per state (every state, zeros included)
* ``petguard_open_incidents``, ``petguard_brake_engaged`` (0/1),
  ``petguard_last_successful_tick_timestamp_seconds``, ``petguard_journal_up`` (0 when the journal
  could not be read for this scrape)
* ``petguard_fence_device_ready{host,level,device}`` 1 when the last read-only power reading of that
  fence device succeeded, 0 when it failed (``petguard.fencing.preflight``; devices not read yet are absent)
* ``petguard_capacity_ok`` 1 when the last capacity check found room for the pets of any one host,
  0 when it did not, -1 when unknown (not checked yet, Nova or placement unreadable, not the leader);
  ``petguard_capacity_missing{host,resource}`` per short host, what its pets would lack, and
  ``petguard_capacity_unplaced_pets{host}`` how many would find no room (``petguard.evacuate.capacity``; only
  short hosts, so a few series at most);
  ``petguard_capacity_checked_timestamp_seconds`` when the last check ran
* ``petguard_nova_readable`` 1 when the loop's last reading of Nova's compute services succeeded, 0
  when it failed (absent before the first reading: a follower does not read);
  ``petguard_nova_failed_readings`` failed readings in a row; ``petguard_nova_blind`` 1 once they
  reached ``[detection] blind_after`` (the ``nova_unreadable`` alert, ``petguard.sight``);
  ``petguard_nova_unreadable_since_timestamp_seconds`` when the first of them failed (absent while
  readable)
* ``petguard_moves_waiting_for_cloud{host}`` and ``petguard_moves_stuck{host}``: per host with an open
  incident (zeros included), its moves that wait for a cloud that cannot answer now, and those whose
  request Nova took and never started (``MoveRecord.waiting``, evacuate.run)

Updated by the loop: ``petguard_ticks_total{result}``, ``petguard_tick_duration_seconds``,
``petguard_fence_attempts_total{outcome}``, ``petguard_fence_duration_seconds{outcome}``,
``petguard_actions_total{action,outcome}``, ``petguard_evacuations_total{outcome}`` and
``petguard_evacuation_duration_seconds{outcome}`` (per server).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from petguard.errors import PetguardError
from petguard.evacuate.capacity import CapacityReport, Verdict
from petguard.hosts import HostState
from petguard.sight import Sight

LOG = logging.getLogger(__name__)

FENCE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300)
EVACUATION_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 3600)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the journal and the loop say now."""

    host_states: Mapping[str, HostState]
    open_incidents: int
    brake_engaged: bool
    last_ok_tick: float | None
    nova: Sight = Sight()
    #: source host of an open incident -> its moves waiting for the cloud (evacuate.outage), zeros included
    moves_waiting: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: source host of an open incident -> its moves whose request Nova took and never started
    moves_stuck: Mapping[str, int] = dataclasses.field(default_factory=dict)


class _SnapshotCollector(Collector):
    """Reads a snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("petguard_journal_up", "1 when the journal could be read for this scrape")
        try:
            snap = self._snapshot()
        except PetguardError as exc:
            LOG.warning("metrics: cannot read the journal: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        per_host = GaugeMetricFamily(
            "petguard_host_state", "1 for the current lifecycle state of each host", labels=["host", "state"]
        )
        counts = dict.fromkeys(HostState, 0)
        for host, state in sorted(snap.host_states.items()):
            per_host.add_metric([host, state.value], 1)
            counts[state] += 1
        yield per_host
        totals = GaugeMetricFamily("petguard_hosts", "Hosts in each lifecycle state", labels=["state"])
        for state, count in counts.items():
            totals.add_metric([state.value], count)
        yield totals
        yield GaugeMetricFamily("petguard_open_incidents", "Incidents not closed yet", value=snap.open_incidents)
        yield GaugeMetricFamily(
            "petguard_brake_engaged", "1 while the mass-failure brake holds every fence", value=int(snap.brake_engaged)
        )
        last = GaugeMetricFamily(
            "petguard_last_successful_tick_timestamp_seconds", "Unix time of the last tick that decided and recorded"
        )
        if snap.last_ok_tick is not None:
            last.add_metric([], snap.last_ok_tick)
        yield last
        yield from _nova_sight(snap.nova)
        yield _per_host(
            "petguard_moves_waiting_for_cloud",
            "Moves of the host's open incident waiting for a cloud that cannot answer now",
            snap.moves_waiting,
        )
        yield _per_host(
            "petguard_moves_stuck",
            "Moves of the host's open incident whose evacuation Nova took and never started (an operator must act)",
            snap.moves_stuck,
        )


def _nova_sight(sight: Sight) -> Iterator[Metric]:
    """The loop's view of Nova (``petguard.sight``)."""
    readable = GaugeMetricFamily(
        "petguard_nova_readable",
        "1 when the loop's last reading of Nova's compute services succeeded, 0 when it failed",
    )
    if sight.readable is not None:
        readable.add_metric([], int(sight.readable))
    yield readable
    yield GaugeMetricFamily(
        "petguard_nova_failed_readings",
        "Readings of Nova's compute services that failed in a row",
        value=sight.failures,
    )
    yield GaugeMetricFamily(
        "petguard_nova_blind",
        "1 while petguard is blind: [detection] blind_after readings of Nova failed in a row; it watches no host",
        value=int(sight.blind),
    )
    since = GaugeMetricFamily(
        "petguard_nova_unreadable_since_timestamp_seconds",
        "Unix time of the first of the failed readings of Nova in a row (absent while Nova is readable)",
    )
    if sight.failures and sight.since is not None:
        since.add_metric([], sight.since)
    yield since


def _per_host(name: str, documentation: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["host"])
    for host, count in sorted(counts.items()):
        gauge.add_metric([host], count)
    return gauge


#: (host, level, device, ready) per fence device, read at scrape time (``Readiness.gauge_rows``).
ReadinessRows = Callable[[], Iterable[tuple[str, str, str, bool]]]


class _ReadinessCollector(Collector):
    """Fence readiness at each scrape."""

    def __init__(self, rows: ReadinessRows) -> None:
        self._rows = rows

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "petguard_fence_device_ready",
            "1 when the fence device's power state could be read at its last readiness check, else 0",
            labels=["host", "level", "device"],
        )
        for host, level, device, ok in self._rows():
            ready.add_metric([host, level, device], int(ok))
        yield ready


class _CapacityCollector(Collector):
    """The last capacity check at each scrape."""

    def __init__(self, report: Callable[[], CapacityReport]) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report()
        value = {Verdict.OK: 1, Verdict.SHORT: 0, Verdict.UNKNOWN: -1}[report.verdict]
        yield GaugeMetricFamily(
            "petguard_capacity_ok",
            "1: the other hosts (and reserved hosts) could take the pets of any one host; 0: not; -1: unknown",
            value=value,
        )
        missing = GaugeMetricFamily(
            "petguard_capacity_missing",
            "What the pets of a host would lack if it failed now (VCPU, MEMORY_MB in MiB, DISK_GB in GiB)",
            labels=["host", "resource"],
        )
        unplaced = GaugeMetricFamily(
            "petguard_capacity_unplaced_pets",
            "How many pets of a host would find no room if it failed now (also when no single resource is short)",
            labels=["host"],
        )
        for host in report.short:
            for resource, amount in host.missing.items():
                missing.add_metric([host.host, resource], amount)
            unplaced.add_metric([host.host], len(host.unplaced))
        yield missing
        yield unplaced
        checked = GaugeMetricFamily(
            "petguard_capacity_checked_timestamp_seconds", "Unix time of the last capacity check"
        )
        if report.checked_at is not None:
            checked.add_metric([], report.checked_at)
        yield checked


class Metrics:
    """The daemon's metrics: implements ``reconcile.Recorder`` and ``api.ports.Exposition``."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot] | None = None,
        fence_readiness: ReadinessRows | None = None,
        capacity: Callable[[], CapacityReport] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if snapshot is not None:
            self.registry.register(_SnapshotCollector(snapshot))
        if fence_readiness is not None:
            self.registry.register(_ReadinessCollector(fence_readiness))
        if capacity is not None:
            self.registry.register(_CapacityCollector(capacity))
        r = self.registry
        self.ticks = Counter("petguard_ticks", "Loop ticks, by result (ok, failed)", ["result"], registry=r)
        self.tick_seconds = Histogram(
            "petguard_tick_duration_seconds", "Duration of one loop tick", buckets=TICK_BUCKETS, registry=r
        )
        self.fences = Counter(
            "petguard_fence_attempts", "Fence attempts, by outcome (confirmed, failed)", ["outcome"], registry=r
        )
        self.fence_seconds = Histogram(
            "petguard_fence_duration_seconds",
            "Duration of one fence attempt, power-off to confirmation or failure",
            ["outcome"],
            buckets=FENCE_BUCKETS,
            registry=r,
        )
        self.actions = Counter(
            "petguard_actions", "Host actions run on a lane, by action and outcome", ["action", "outcome"], registry=r
        )
        self.evacuations = Counter(
            "petguard_evacuations", "Servers whose evacuation ended, by outcome (done, failed)", ["outcome"], registry=r
        )
        self.evacuation_seconds = Histogram(
            "petguard_evacuation_duration_seconds",
            "Per server: seconds from the start of the evacuation run to the server's final state",
            ["outcome"],
            buckets=EVACUATION_BUCKETS,
            registry=r,
        )

    # -- reconcile.Recorder ------------------------------------------------------------------------
    def tick_finished(self, seconds: float, ok: bool) -> None:
        self.ticks.labels("ok" if ok else "failed").inc()
        self.tick_seconds.observe(seconds)

    def action_finished(self, host: str, action: str, outcome: str, seconds: float) -> None:
        self.actions.labels(action, outcome).inc()
        if action == "fence" and outcome in ("fence_confirmed", "fence_failed"):
            result = "confirmed" if outcome == "fence_confirmed" else "failed"
            self.fences.labels(result).inc()
            self.fence_seconds.labels(result).observe(seconds)

    def move_finished(self, host: str, server_id: str, status: str, seconds: float) -> None:
        self.evacuations.labels(status).inc()
        self.evacuation_seconds.labels(status).observe(max(seconds, 0.0))

    # -- api.ports.Exposition ----------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
