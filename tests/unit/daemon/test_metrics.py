"""The journal-derived gauges of ``petguard.daemon.metrics`` as Prometheus' own parser reads them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from petguard.daemon.metrics import Metrics, Snapshot
from petguard.hosts import HostState


def _scrape(snap: Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    body, _ = Metrics(lambda: snap).render()
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(body.decode())
    }


def test_moves_waiting_for_the_cloud_and_stuck_per_source_host() -> None:
    snap = Snapshot(
        host_states={"cmp1": HostState.EVACUATING, "cmp2": HostState.EVACUATING, "cmp3": HostState.UP},
        open_incidents=2,
        brake_engaged=False,
        last_ok_tick=None,
        moves_waiting={"cmp1": 3, "cmp2": 0},
        moves_stuck={"cmp1": 1, "cmp2": 0},
    )
    families = _scrape(snap)
    assert families["petguard_moves_waiting_for_cloud"] == {(("host", "cmp1"),): 3.0, (("host", "cmp2"),): 0.0}
    assert families["petguard_moves_stuck"] == {(("host", "cmp1"),): 1.0, (("host", "cmp2"),): 0.0}


def test_no_open_incident_no_series() -> None:
    families = _scrape(
        Snapshot(host_states={"cmp1": HostState.UP}, open_incidents=0, brake_engaged=False, last_ok_tick=0.0)
    )
    assert families["petguard_moves_waiting_for_cloud"] == {} and families["petguard_moves_stuck"] == {}
