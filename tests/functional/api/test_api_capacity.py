"""The capacity check through the real app, journal and loop: ``GET /v1/status``, ``/metrics``, the
events (the webhooks' outbox) and ``petguard status``.

Nova is the in-memory FakeCompute; placement has no in-memory peer, so the watch's ``read`` seam builds
each host's facts from FakeCompute's services and servers (8 vCPU / 8 GiB / 100 GiB per host, usage =
its servers) and from the journal's maintenance states, as the daemon's reader does."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from petguard.api.app import make_app
from petguard.api.auth import Authenticator
from petguard.daemon import service
from petguard.daemon.api_backend import StoreInbox, StoreView, snapshot
from petguard.daemon.metrics import Metrics
from petguard.evacuate.capacity import DISK_GB, MEMORY_MB, VCPU, HostCapacity, Inventory, PlacedServer, Resources
from petguard.evacuate.capacity_duty import CapacityWatch
from petguard.fencing import fake
from tests.fakes import FakeCompute
from tests.functional.api.conftest import HOSTS, TOKEN, devices
from tests.functional.harness import FAST_RECOVERY, Harness
from tests.unit.cli.runner import run_cli, write_token

PET = {"petguard:pet": "true"}
INVENTORY = {VCPU: Inventory(8), MEMORY_MB: Inventory(8192), DISK_GB: Inventory(100)}
SIZES = {"db": Resources(2, 4096, 20), "app": Resources(2, 4096, 20), "busy": Resources(1, 4096, 10)}


@dataclasses.dataclass
class World:
    harness: Harness
    compute: FakeCompute
    watch: CapacityWatch
    client: httpx.Client
    token_file: Path

    def read(self) -> list[HostCapacity]:
        maintenance = service.hosts_in_maintenance(self.harness.store)
        hosts = []
        for record in self.compute.list_services():
            servers = tuple(PlacedServer(s, SIZES[s.name]) for s in self.compute.servers_on(record.host))
            used = sum((p.resources for p in servers), Resources())
            hosts.append(
                HostCapacity(
                    record.host,
                    INVENTORY,
                    {VCPU: used.vcpu, MEMORY_MB: used.memory_mb, DISK_GB: used.disk_gb},
                    service_up=record.state == "up",
                    enabled=record.status == "enabled",
                    forced_down=record.forced_down,
                    maintenance=record.host in maintenance,
                    servers=servers,
                )
            )
        return hosts

    def maintenance(self, host: str, on: bool) -> None:
        kind = "maintenance_on" if on else "maintenance_off"
        answer = self.client.post(f"/v1/hosts/{host}/requests", json={"kind": kind, "reason": "capacity test"})
        assert answer.status_code == 202
        self.harness.loop.tick()

    def metric(self, text: str, name: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(name)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    fake.REGISTRY.reset()
    compute = FakeCompute(HOSTS)
    harness = Harness(tmp_path, compute, devices())
    holder: list[World] = []
    watch = CapacityWatch(
        lambda: holder[0].read(), FAST_RECOVERY.evacuation, harness.clock, harness.store.record_event, interval=300
    )
    view = StoreView(harness.store, harness.loop, tick_interval=1.0, capacity=watch.report)
    metrics = Metrics(lambda: snapshot(harness.store, harness.loop), capacity=watch.report)
    app = make_app(view, StoreInbox(harness.store), Authenticator(tokens={"alice": TOKEN}), metrics)
    client = httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://petguard", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    holder.append(World(harness, compute, watch, client, write_token(tmp_path, TOKEN)))
    try:
        yield holder[0]
    finally:
        client.close()
        harness.close()
        fake.REGISTRY.reset()


def test_status_metrics_events_and_cli_follow_the_check(world: World) -> None:
    c = world.client
    world.compute.add_server("db", "cmp1", metadata=PET)
    world.compute.add_server("app", "cmp1", metadata=PET)
    world.compute.add_server("busy", "cmp2")  # not a pet: it only takes room
    world.harness.loop.tick()

    # before the first check: unknown, not checked yet
    capacity = c.get("/v1/status").json()["capacity"]
    assert capacity == {
        "verdict": "unknown",
        "checked_at": None,
        "summary": "unknown: not checked yet",
        "worst": None,
        "short": [],
        "not_counted": {},
    }
    assert world.metric(c.get("/metrics").text, "petguard_capacity_ok ") == ["petguard_capacity_ok -1.0"]

    # cmp3..cmp5 in maintenance: only cmp2 (4 GiB free) could take cmp1's two 4 GiB pets
    for host in ("cmp3", "cmp4", "cmp5"):
        world.maintenance(host, on=True)
    world.watch.check_once()
    capacity = c.get("/v1/status").json()["capacity"]
    assert capacity["verdict"] == "short" and isinstance(capacity["checked_at"], float)
    assert capacity["summary"] == "short: the pets of cmp1 would not all find room elsewhere"
    (short,) = capacity["short"]
    assert short == {
        "host": "cmp1",
        "pets": 2,
        "vcpu": 4,
        "memory_mb": 8192,
        "disk_gb": 40,
        "ok": False,
        "missing": {"MEMORY_MB": 4096},
        "unplaced": ["db"],
        "summary": "cmp1: 2 pets, 4 vCPU / 8 GiB RAM / 40 GiB disk; short: MEMORY_MB 4096 MiB missing; "
        "no room for 1: db",
    }
    assert capacity["worst"] == short
    maintenance = "it is in petguard maintenance"
    assert capacity["not_counted"] == {"cmp3": maintenance, "cmp4": maintenance, "cmp5": maintenance}
    scrape = c.get("/metrics").text
    assert world.metric(scrape, "petguard_capacity_ok ") == ["petguard_capacity_ok 0.0"]
    assert world.metric(scrape, "petguard_capacity_missing{") == [
        'petguard_capacity_missing{host="cmp1",resource="MEMORY_MB"} 4096.0'
    ]
    assert world.metric(scrape, "petguard_capacity_unplaced_pets{") == [
        'petguard_capacity_unplaced_pets{host="cmp1"} 1.0'
    ]
    events = c.get("/v1/events").json()["events"]
    assert [e["kind"] for e in events if e["kind"].startswith("capacity")] == ["capacity_short"]

    cli = run_cli(["status", "-f", "json"], world.client._transport, token_file=world.token_file)
    assert cli.code == 0, cli.err
    shown = json.loads(cli.out)
    assert shown["Capacity"] == "short" and shown["Capacity worst host"] == short["summary"]
    assert shown["Capacity short"] == [short["summary"]] and shown["Capacity checked at"] == capacity["checked_at"]
    table = run_cli(["status"], world.client._transport, token_file=world.token_file)
    assert "MEMORY_MB 4096 MiB missing" in table.out and "Capacity checked at" in table.out
    assert "cmp4: it is in petguard maintenance" in table.out

    # a host back from maintenance: room again, one capacity_ok
    world.maintenance("cmp3", on=False)
    world.watch.check_once()
    world.watch.check_once()
    capacity = c.get("/v1/status").json()["capacity"]
    assert capacity["verdict"] == "ok" and capacity["short"] == [] and capacity["worst"]["host"] == "cmp1"
    scrape = c.get("/metrics").text
    assert world.metric(scrape, "petguard_capacity_ok ") == ["petguard_capacity_ok 1.0"]
    assert world.metric(scrape, "petguard_capacity_missing{") == []
    assert world.metric(scrape, "petguard_capacity_unplaced_pets{") == []
    events = c.get("/v1/events").json()["events"]
    assert [e["kind"] for e in events if e["kind"].startswith("capacity")] == ["capacity_short", "capacity_ok"]
