"""Evacuation rules through the whole loop (real journal, real IPMI fencing, in-memory Nova):
server groups and tiers (docs/evacuation.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from petguard.daemon.api_backend import StoreView
from petguard.hosts import HostState
from petguard.journal import MoveStatus
from tests.fakes import FakeCompute
from tests.functional.harness import Bmcs, Harness, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4"]
PET = {"petguard:pet": "true"}



@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs, evacuation_steps=4)
    return nova


def _fail_cmp1(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> tuple[Harness, int]:
    harness = Harness(tmp_path, compute, bmcs.devices)
    harness.run_until(lambda: set(harness.store.load_hosts()) == set(HOSTS), timeout=5)
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    incident_id = harness.store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    return harness, incident_id


@pytest.mark.fault(
    "GRP-05",
    guarantee="2",
    injected="members of a hard anti-affinity group on the failed host",
    expected="one at a time, the next only after the previous arrived; every one moved by exactly one evacuation",
)
def test_anti_affinity_members_are_evacuated_one_after_another(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs
) -> None:
    members = [compute.add_server(f"anti-{i}", "cmp1", metadata=PET) for i in range(3)]
    compute.add_server("anti-elsewhere", "cmp2", metadata=PET)
    compute.add_group("ha-anti", "anti-affinity", [*members, compute.servers["anti-elsewhere-id"]])
    for i in range(3):
        compute.add_server(f"plain-{i}", "cmp1", metadata=PET)

    harness, incident_id = _fail_cmp1(tmp_path, compute, bmcs)
    try:
        assert compute.group_overlaps == []  # never two members of the group in flight at once
        order = [sid for what, sid in compute.timeline if what == "evacuate" and sid.startswith("anti-")]
        assert order == ["anti-0-id", "anti-1-id", "anti-2-id"]
        moves = {m.server_name: m for m in harness.store.moves(incident_id)}
        assert all(m.status is MoveStatus.DONE for m in moves.values())
        assert [moves[f"anti-{i}"].wave for i in range(3)] == [0, 1, 2]
        assert {moves[f"plain-{i}"].wave for i in range(3)} == {0}  # the others did not wait
        assert all(n == 1 for n in compute.evacuate_calls.values())
    finally:
        harness.close()


@pytest.mark.fault(
    "GRP-06",
    guarantee="4",
    injected="a hard affinity group whose members are all on the failed host",
    expected="reported as left behind (naming the group and NoValidHost), never sent to Nova",
)
def test_a_hard_affinity_group_on_the_dead_host_is_reported_and_not_touched(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs
) -> None:
    pinned = [compute.add_server(f"aff-{i}", "cmp1", metadata=PET) for i in range(2)]
    compute.add_group("ha-aff", "affinity", pinned)
    compute.add_server("free", "cmp1", metadata=PET)

    harness, incident_id = _fail_cmp1(tmp_path, compute, bmcs)
    try:
        assert "aff-0-id" not in compute.evacuate_calls and "aff-1-id" not in compute.evacuate_calls
        assert compute.evacuate_calls == {"free-id": 1}
        skips = {s.server_name: s.reason for s in harness.store.skips(incident_id)}
        for name in ("aff-0", "aff-1"):
            assert "hard affinity server group ha-aff" in skips[name] and "NoValidHost" in skips[name]
        assert [m.server_name for m in harness.store.moves(incident_id)] == ["free"]
        # the host has an incident: explain tells its story from the journal, no dry run
        view = StoreView(harness.store, harness.loop, 1.0, compute=compute)
        calls = compute.calls.get("servers_on", 0)
        assert not view.explain("cmp1").if_failed and compute.calls["servers_on"] == calls
    finally:
        harness.close()


def test_tiers_finish_in_order(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> None:
    tiers = {"db-a": "0", "db-b": "0", "app-a": "1", "app-b": "1", "web": "2"}
    for name, tier in tiers.items():
        compute.add_server(name, "cmp1", metadata={**PET, "petguard:tier": tier})

    harness, incident_id = _fail_cmp1(tmp_path, compute, bmcs)
    try:

        def at(what: str, name: str) -> int:
            return compute.timeline.index((what, f"{name}-id"))

        assert max(at("arrived", n) for n in ("db-a", "db-b")) < min(at("evacuate", n) for n in ("app-a", "app-b"))
        assert max(at("arrived", n) for n in ("app-a", "app-b")) < at("evacuate", "web")
        assert all(m.status is MoveStatus.DONE for m in harness.store.moves(incident_id))
    finally:
        harness.close()


def test_a_local_disk_pet_follows_its_class_policy(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> None:
    compute.add_server("volume-pet", "cmp1", metadata=PET)  # no image: boots from a volume
    compute.add_server("local-pet", "cmp1", metadata=PET, image_id="img-1")
    compute.add_server("local-ok", "cmp1", metadata={**PET, "petguard:allow_data_loss": "true"}, image_id="img-1")

    harness, incident_id = _fail_cmp1(tmp_path, compute, bmcs)
    try:
        assert compute.evacuate_calls == {"volume-pet-id": 1, "local-ok-id": 1}
        assert compute.servers["local-pet-id"].host == "cmp1"
        [skip] = harness.store.skips(incident_id)
        assert skip.server_name == "local-pet" and "local_disk_policy" in skip.reason
        alerts = [e for e in harness.store.events(incident_id=incident_id) if e.kind == "pet_left_behind"]
        assert [a.message.split(" ")[0] for a in alerts] == ["local-pet"]
        assert "petguard:allow_data_loss=true" in alerts[0].message
    finally:
        harness.close()
