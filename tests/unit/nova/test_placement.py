"""Unit tests of the capacity reads: the SDK is mocked only at the compute, image and placement proxies'
``get`` (autospec), which return real ``requests.Response`` objects with JSON shaped as Nova
(os-services 2.53, os-hypervisors/detail 2.88, servers/detail 2.47) and placement (1.0) answer it,
from their API references. No network."""

from __future__ import annotations

import copy
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any
from unittest import mock

import openstack.compute.v2._proxy
import openstack.connection
import openstack.image.v2._proxy
import openstack.placement.v1._proxy
import pytest
import requests

from petguard.errors import NovaUnavailable
from petguard.evacuate import capacity
from petguard.evacuate.capacity import DISK_GB, MEMORY_MB, VCPU, Inventory, Resources, Verdict
from petguard.evacuate.plan import EvacuationPolicy
from petguard.nova import compute as nova
from petguard.nova import placement
from tests.unit.nova.test_compute import image_ref, response

RP1 = "b1e43b5f-eec1-44e0-9f10-7b4945c0226d"
RP2 = "c7b3a2d1-1f4e-4b8a-9c1d-2e3f4a5b6c7d"


def service_json(host: str, status: str = "enabled", state: str = "up", forced_down: bool = False) -> dict[str, Any]:
    return {
        "id": f"svc-{host}-uuid",
        "binary": "nova-compute",
        "host": host,
        "zone": "nova",
        "status": status,
        "state": state,
        "forced_down": forced_down,
        "updated_at": "2024-05-01T12:00:00.000000",
        "disabled_reason": None if status == "enabled" else "reserved failover host",
    }


def hypervisor_json(rp: str, host: str) -> dict[str, Any]:
    # GET /os-hypervisors/detail at 2.88: no vcpus/memory_mb/local_gb any more; id is the compute node uuid
    return {
        "host_ip": "192.168.1.135",
        "hypervisor_hostname": f"{host}.example.org",  # not the service host: matched by uuid, not by name
        "hypervisor_type": "fake",
        "hypervisor_version": 1000,
        "id": rp,
        "service": {"disabled_reason": None, "host": host, "id": f"svc-{host}-uuid"},
        "state": "up",
        "status": "enabled",
        "uptime": None,
    }


def inventories_json(vcpu: int, memory_mb: int, disk_gb: int) -> dict[str, Any]:
    return {
        "inventories": {
            "DISK_GB": {"allocation_ratio": 1.0, "max_unit": disk_gb, "min_unit": 1, "reserved": 0,
                        "step_size": 1, "total": disk_gb},
            "MEMORY_MB": {"allocation_ratio": 1.5, "max_unit": memory_mb, "min_unit": 1, "reserved": 512,
                          "step_size": 1, "total": memory_mb},
            "VCPU": {"allocation_ratio": 16.0, "max_unit": vcpu, "min_unit": 1, "reserved": 0, "step_size": 1,
                     "total": vcpu},
            "CUSTOM_MAGIC": {"allocation_ratio": 1.0, "max_unit": 1, "min_unit": 1, "reserved": 0, "step_size": 1,
                             "total": 1},
        },
        "resource_provider_generation": 7,
    }  # fmt: skip


def usages_json(vcpu: int, memory_mb: int, disk_gb: int) -> dict[str, Any]:
    return {"resource_provider_generation": 7, "usages": {"DISK_GB": disk_gb, "MEMORY_MB": memory_mb, "VCPU": vcpu}}


def server_json(sid: str, host: str, image: Any, flavor: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"vm-{sid}",
        "status": "ACTIVE",
        "tenant_id": "proj-1",
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": f"{host}.example.org",
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:power_state": 1,
        "locked": False,
        "metadata": metadata,
        "tags": [],
        "flavor": flavor,
        "image": image,
    }


def flavor_json(vcpus: int, ram: int, disk: int, ephemeral: int = 0, swap: int | str = 0) -> dict[str, Any]:
    # the flavor embedded in a server at microversion >= 2.47
    return {"vcpus": vcpus, "ram": ram, "disk": disk, "ephemeral": ephemeral, "swap": swap,
            "original_name": "m1.test", "extra_specs": {"hw:numa_nodes": "1"}}  # fmt: skip


PET = {"petguard:pet": "true", "petguard:allow_data_loss": "true"}
SERVERS = {
    "servers": [
        server_json("s1", "cmp1", "", flavor_json(2, 4096, 20, swap=1024), PET),  # boot from volume: no root disk
        server_json("s2", "cmp1", image_ref("img-a"), flavor_json(1, 2048, 10, ephemeral=5, swap=""), PET),
        server_json("s3", "cmp2", image_ref("img-a"), flavor_json(1, 512, 1), {}),
    ]
}


GROUPS = {
    "server_groups": [
        {"id": "g-anti", "name": "ha", "policy": "anti-affinity", "rules": {}, "members": ["s1", "s3"],
         "project_id": "proj-1", "user_id": "u"},
    ]
}  # fmt: skip


class Cloud:
    """Routes each proxy's GET by path; records what was asked."""

    def __init__(self) -> None:
        self.groups = copy.deepcopy(GROUPS)
        self.conn = mock.create_autospec(openstack.connection.Connection, instance=True)
        self.conn.compute = mock.create_autospec(openstack.compute.v2._proxy.Proxy, instance=True)
        self.conn.image = mock.create_autospec(openstack.image.v2._proxy.Proxy, instance=True)
        self.conn.placement = mock.create_autospec(openstack.placement.v1._proxy.Proxy, instance=True)
        self.compute: dict[str, Callable[[dict[str, str]], requests.Response]] = {
            "/os-services": lambda q: response(
                body={"services": [service_json("cmp1"), service_json("cmp2", status="disabled"), service_json("cmp3")]}
            ),
            "/os-hypervisors/detail": self._hypervisors,
            "/servers/detail": lambda q: response(body=SERVERS, rid="req-servers"),
            "/os-server-groups": lambda q: response(body=self.groups),
        }
        self.placement = {
            f"/resource_providers/{RP1}/inventories": response(body=inventories_json(8, 16384, 100), rid="req-inv1"),
            f"/resource_providers/{RP1}/usages": response(body=usages_json(3, 6144, 31), rid="req-use1"),
            f"/resource_providers/{RP2}/inventories": response(body=inventories_json(4, 8192, 50), rid="req-inv2"),
            f"/resource_providers/{RP2}/usages": response(body=usages_json(1, 512, 1), rid="req-use2"),
        }
        self.conn.compute.get.side_effect = self._compute_get
        self.conn.placement.get.side_effect = lambda url, **kw: self.placement[url]
        self.conn.image.get.side_effect = lambda url, **kw: response(
            body={"id": "img-a", "name": "img", "status": "active", "evacuable": "true"}
        )

    def _compute_get(self, url: str, **kw: Any) -> requests.Response:
        parts = urllib.parse.urlsplit(url)
        return self.compute[parts.path](dict(urllib.parse.parse_qsl(parts.query)))

    def _hypervisors(self, query: dict[str, str]) -> requests.Response:
        # two pages: Nova's max_limit reached on the first one, a next link with the marker
        if "marker" not in query:
            link = f"http://nova/v2.1/os-hypervisors/detail?limit=1&marker={RP1}"
            return response(body={"hypervisors": [hypervisor_json(RP1, "cmp1")],
                                   "hypervisors_links": [{"href": link, "rel": "next"}]})  # fmt: skip
        assert query == {"marker": RP1}
        return response(body={"hypervisors": [hypervisor_json(RP2, "cmp2")]})


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


def test_every_host_with_its_inventory_usage_state_and_servers(cloud: Cloud) -> None:
    hosts = placement.read_capacity_inputs(nova.NovaCompute(cloud.conn), reserved_hosts={"cmp2"}, maintenance={"cmp3"})

    by_name = {h.name: h for h in hosts}
    assert sorted(by_name) == ["cmp1", "cmp2", "cmp3"]
    cmp1, cmp2, cmp3 = by_name["cmp1"], by_name["cmp2"], by_name["cmp3"]
    assert cmp1.inventories == {
        VCPU: Inventory(8, 0, 16.0, 8),
        MEMORY_MB: Inventory(16384, 512, 1.5, 16384),
        DISK_GB: Inventory(100, 0, 1.0, 100),
    }  # CUSTOM_MAGIC is not counted
    assert cmp1.usage == {VCPU: 3, MEMORY_MB: 6144, DISK_GB: 31}
    assert (cmp1.service_up, cmp1.enabled, cmp1.forced_down, cmp1.reserved, cmp1.maintenance) == (
        True, True, False, False, False,
    )  # fmt: skip
    assert not cmp2.enabled and cmp2.reserved
    assert cmp3.maintenance and cmp3.inventories == {}  # no hypervisor: nothing in placement to read
    # flavors -> what Nova allocated: s1 boots from a volume (no root disk; swap 1024 MiB = 1 GiB)
    resources = {p.server.id: p.resources for p in cmp1.servers}
    assert resources == {"s1": Resources(2, 4096, 1), "s2": Resources(1, 2048, 15)}
    assert cmp1.servers[1].server.image_properties == {"evacuable": "true"}
    assert [p.server.id for p in cmp2.servers] == ["s3"]
    # server groups come with the servers: the check keeps anti-affinity members apart
    assert cmp1.servers[0].server.group is not None and cmp1.servers[0].server.group.id == "g-anti"
    assert cmp2.servers[0].server.group == cmp1.servers[0].server.group and cmp1.servers[1].server.group is None


def test_the_calls_their_microversions_and_request_ids_in_the_log(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    placement.read_capacity_inputs(nova.NovaCompute(cloud.conn), image_properties=False)

    compute_calls = [(c.args[0], c.kwargs) for c in cloud.conn.compute.get.call_args_list]
    assert compute_calls == [
        ("/os-services?binary=nova-compute", {"microversion": "2.53"}),
        ("/os-hypervisors/detail", {"microversion": "2.88"}),
        (f"/os-hypervisors/detail?marker={RP1}", {"microversion": "2.88"}),
        ("/servers/detail?all_tenants=1", {"microversion": "2.47"}),
        ("/os-server-groups?all_projects=True&limit=1000&offset=0", {"microversion": "2.64"}),
    ]
    placement_calls = [(c.args[0], c.kwargs) for c in cloud.conn.placement.get.call_args_list]
    assert placement_calls == [
        (f"/resource_providers/{RP1}/inventories", {"microversion": "1.0"}),
        (f"/resource_providers/{RP1}/usages", {"microversion": "1.0"}),
        (f"/resource_providers/{RP2}/inventories", {"microversion": "1.0"}),
        (f"/resource_providers/{RP2}/usages", {"microversion": "1.0"}),
    ]
    assert cloud.conn.image.get.call_args_list == []  # the evacuable_image selector is off
    text = caplog.text
    assert "req-inv1" in text and "req-use1" in text and "req-servers" in text
    assert "cmp3 has no hypervisor in Nova" in text


def test_placement_that_cannot_answer_is_an_error_with_its_request_id(cloud: Cloud) -> None:
    cloud.placement[f"/resource_providers/{RP2}/usages"] = response(
        503, {"errors": [{"status": 503, "title": "Service Unavailable"}]}, rid="req-sorry"
    )
    with pytest.raises(NovaUnavailable) as caught:
        placement.read_capacity_inputs(nova.NovaCompute(cloud.conn))
    assert "req-sorry" in str(caught.value) and "placement usages of cmp2" in str(caught.value)


def test_a_reserved_host_nova_does_not_know_is_said_in_the_log(cloud: Cloud, caplog: pytest.LogCaptureFixture) -> None:
    placement.read_capacity_inputs(nova.NovaCompute(cloud.conn), reserved_hosts={"spare9"})
    assert "reserved_hosts names spare9" in caplog.text


def test_the_read_feeds_the_check(cloud: Cloud) -> None:
    """cmp1's pets can only go to cmp2, a disabled reserved host: s2 fits there; s1 would too, but s3,
    a member of s1's anti-affinity group, runs on cmp2."""
    compute = nova.NovaCompute(cloud.conn)
    policy = EvacuationPolicy()
    report = capacity.check(placement.read_capacity_inputs(compute, reserved_hosts={"cmp2"}), policy, 0.0)
    assert report.verdict is Verdict.SHORT and report.worst is not None and report.worst.host == "cmp1"
    assert report.worst.unplaced == ("vm-s1",) and report.worst.missing == {}
    cloud.groups["server_groups"][0]["members"] = ["s1"]
    report = capacity.check(placement.read_capacity_inputs(compute, reserved_hosts={"cmp2"}), policy, 0.0)
    assert report.verdict is Verdict.OK
    report = capacity.check(placement.read_capacity_inputs(compute), policy, 0.0)
    assert report.verdict is Verdict.SHORT  # cmp2 not reserved: disabled, it takes nothing


def test_a_flavor_amount_that_is_not_a_number_is_counted_as_zero_and_said(caplog: pytest.LogCaptureFixture) -> None:
    server = nova._server(SERVERS["servers"][1], {})
    assert placement.server_resources(server, {**flavor_json(1, 2048, 10), "ram": "lots"}) == Resources(1, 0, 10)
    assert "flavor's ram is 'lots', not a number: counted as 0" in caplog.text


def test_several_compute_nodes_of_one_host_are_added_up() -> None:
    combined = placement.combine(
        [{VCPU: Inventory(8, 1, 16.0, 8)}, {VCPU: Inventory(4, 0, 4.0, 4), MEMORY_MB: Inventory(1024)}]
    )
    assert combined == {VCPU: Inventory(12, 1, 4.0, 8), MEMORY_MB: Inventory(1024)}
