"""Unit tests of the Nova adapter: the SDK is mocked only at its public entry point, the compute and
image proxies' get/put/post (autospec), which return real ``requests.Response`` objects. No network."""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any
from unittest import mock

import keystoneauth1.exceptions as ks_exc
import openstack.compute.v2._proxy
import openstack.connection
import openstack.image.v2._proxy
import pytest
import requests

from petguard.cloud import ActionEvent, GroupPolicy, HintKind, Migration, RequestTrace, ServiceRecord, TargetHint
from petguard.errors import (
    ConfigError,
    NotFound,
    NovaConflict,
    NovaError,
    NovaUnavailable,
    Temporary,
)
from petguard.nova import compute as nova

HOST = "cmp1"
SERVICE = ServiceRecord(host=HOST, service_id="svc-uuid-1", state="down", status="enabled", forced_down=False)


def response(status: int = 200, body: Any = None, rid: str | None = "req-abc", header: str = "x-openstack-request-id"):
    r = requests.Response()
    r.status_code = status
    r._content = b"" if body is None else json.dumps(body).encode()
    r.encoding = "utf-8"
    if rid:
        r.headers[header] = rid
    return r


@pytest.fixture
def conn():
    c = mock.create_autospec(openstack.connection.Connection, instance=True)
    c.compute = mock.create_autospec(openstack.compute.v2._proxy.Proxy, instance=True)
    c.image = mock.create_autospec(openstack.image.v2._proxy.Proxy, instance=True)
    return c


@pytest.fixture
def adapter(conn):
    return nova.NovaCompute(conn, cloud="test")


def split(url: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    return parts.path, dict(urllib.parse.parse_qsl(parts.query))


def server_json(sid: str, image: Any = "", **extra: Any) -> dict[str, Any]:
    raw = {
        "id": sid,
        "name": f"vm-{sid}",
        "status": "ACTIVE",
        "tenant_id": "proj-1",
        "OS-EXT-SRV-ATTR:host": HOST,
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:power_state": 1,
        "locked": False,
        "metadata": {"petguard:pet": "true"},
        "tags": ["evacuable"],
        "flavor": {
            "original_name": "m1",
            "vcpus": 1,
            "extra_specs": {"evacuable": "true", "hw:cpu_policy": "dedicated"},
        },
        "image": image,
    }
    raw.update(extra)
    return raw


def image_ref(iid: str) -> dict[str, Any]:
    return {"id": iid, "links": [{"rel": "bookmark", "href": f"http://x/images/{iid}"}]}


# ------------------------------------------------------------------------------------------ services


def test_list_services_one_call_parsed(adapter, conn):
    conn.compute.get.return_value = response(
        body={
            "services": [
                {
                    "id": "8f1a-uuid",
                    "binary": "nova-compute",
                    "host": "cmp1",
                    "zone": "nova",
                    "status": "disabled",
                    "state": "down",
                    "forced_down": True,
                    "updated_at": "2024-05-01T12:00:00.000000",
                    "disabled_reason": "petguard: fenced",
                },
                {
                    "id": "9c2b-uuid",
                    "binary": "nova-compute",
                    "host": "cmp2",
                    "status": "enabled",
                    "state": "up",
                    "forced_down": False,
                    "updated_at": None,
                    "disabled_reason": None,
                },
            ]
        }
    )

    services = adapter.list_services()

    conn.compute.get.assert_called_once_with("/os-services?binary=nova-compute", microversion="2.53")
    assert services == [
        ServiceRecord("cmp1", "8f1a-uuid", "down", "disabled", True, 1714564800.0, "petguard: fenced"),
        ServiceRecord("cmp2", "9c2b-uuid", "up", "enabled", False, None, None),
    ]


@pytest.mark.parametrize(
    ("method", "call", "body"),
    [
        ("force_down", lambda a: a.force_down(SERVICE), {"forced_down": True}),
        ("unforce_down", lambda a: a.unforce_down(SERVICE), {"forced_down": False}),
        (
            "disable",
            lambda a: a.disable(SERVICE, "petguard: fenced"),
            {"status": "disabled", "disabled_reason": "petguard: fenced"},
        ),
        ("enable", lambda a: a.enable(SERVICE), {"status": "enabled"}),
    ],
)
def test_service_updates(adapter, conn, method, call, body):
    conn.compute.put.return_value = response(body={"service": {}}, rid="req-put", header="x-compute-request-id")

    assert call(adapter) == "req-put"

    conn.compute.put.assert_called_once_with("/os-services/svc-uuid-1", microversion="2.53", json=body)


# ------------------------------------------------------------------------------------------ servers


def test_servers_on_filters_server_side_and_follows_pages(adapter, conn):
    page1 = {
        "servers": [server_json("s1", image_ref("img-a")), server_json("s2", image_ref("img-a"))],
        "servers_links": [{"rel": "next", "href": "http://nova/v2.1/servers/detail?all_tenants=1&host=cmp1&marker=s2"}],
    }
    page2 = {"servers": [server_json("s3", ""), server_json("s4", image_ref("img-b"))]}
    conn.compute.get.side_effect = [response(body=page1), response(body=page2), response(body={"server_groups": []})]
    conn.image.get.side_effect = lambda url, **kw: response(
        body={"id": url.rsplit("/", 1)[1], "name": "img", "status": "active", "size": 10, "tags": [],
              "evacuable": "true" if url.endswith("img-a") else "false", "hw_qemu_guest_agent": "yes"}
    )  # fmt: skip

    servers = adapter.servers_on(HOST)

    calls = conn.compute.get.call_args_list[:2]
    assert len(conn.compute.get.call_args_list) == 3  # two pages of servers, one of server groups
    for c in calls:
        assert c.kwargs == {"microversion": "2.47"}
    assert split(calls[0].args[0]) == ("/servers/detail", {"all_tenants": "1", "host": HOST})
    assert split(calls[1].args[0]) == ("/servers/detail", {"all_tenants": "1", "host": HOST, "marker": "s2"})
    # one Glance GET per distinct image; none for the boot-from-volume server
    assert sorted(c.args[0] for c in conn.image.get.call_args_list) == ["/images/img-a", "/images/img-b"]
    assert [s.id for s in servers] == ["s1", "s2", "s3", "s4"]
    s1 = servers[0]
    assert s1.image_properties == {"evacuable": "true", "hw_qemu_guest_agent": "yes"}
    assert servers[2].image_properties == {}
    assert s1.image_id == "img-a" and servers[2].image_id is None  # s3 boots from a volume
    assert servers[3].image_properties["evacuable"] == "false"
    assert s1.host == HOST and s1.vm_state == "active" and s1.task_state is None and s1.power_state == 1
    assert s1.metadata == {"petguard:pet": "true"}
    assert s1.tags == frozenset({"evacuable"})
    assert s1.flavor_extra_specs == {"evacuable": "true", "hw:cpu_policy": "dedicated"}
    assert s1.project_id == "proj-1" and s1.status == "ACTIVE" and s1.name == "vm-s1" and not s1.locked


def group_json(gid: str, policy: str, members: list[str], name: str = "") -> dict[str, Any]:
    return {"id": gid, "name": name or f"grp-{gid}", "policy": policy, "rules": {}, "members": members,
            "project_id": "proj-1", "user_id": "u"}  # fmt: skip


def test_servers_on_reads_every_projects_server_groups_once(adapter, conn):
    groups = {
        "server_groups": [
            group_json("g-anti", "anti-affinity", ["s1", "s-elsewhere"]),
            group_json("g-aff", "affinity", ["s2"]),
            group_json("g-new", "some-future-policy", ["s3"]),
        ]
    }

    def get(url, **kw):
        if url.startswith("/os-server-groups"):
            return response(body=groups)
        return response(body={"servers": [server_json(s) for s in ("s1", "s2", "s3", "s4")]})

    conn.compute.get.side_effect = get

    servers = {s.id: s for s in adapter.servers_on(HOST)}

    group_calls = [c for c in conn.compute.get.call_args_list if c.args[0].startswith("/os-server-groups")]
    assert len(group_calls) == 1
    path, query = split(group_calls[0].args[0])
    assert path == "/os-server-groups" and query["all_projects"] == "True" and query["offset"] == "0"
    assert group_calls[0].kwargs == {"microversion": "2.64"}
    anti = servers["s1"].group
    assert anti is not None and anti.policy is GroupPolicy.ANTI_AFFINITY and anti.name == "grp-g-anti"
    assert anti.members == frozenset({"s1", "s-elsewhere"})
    assert servers["s2"].group is not None and servers["s2"].group.policy is GroupPolicy.AFFINITY
    assert servers["s3"].group is None  # an unknown policy is no constraint petguard can honour
    assert servers["s4"].group is None


def test_server_groups_are_paged_by_offset(adapter, conn, monkeypatch):
    monkeypatch.setattr(nova, "SERVER_GROUP_PAGE", 2)
    pages = {
        "0": [group_json("g1", "affinity", ["a"]), group_json("g2", "soft-affinity", ["b"])],
        "2": [group_json("g3", "soft-anti-affinity", ["c"])],
    }

    def get(url, **kw):
        path, query = split(url)
        if path == "/os-server-groups":
            return response(body={"server_groups": pages[query["offset"]]})
        return response(body={"servers": [server_json(s) for s in "abc"]})

    conn.compute.get.side_effect = get

    servers = {s.id: s for s in adapter.servers_on(HOST)}

    assert {sid: s.group.id for sid, s in servers.items() if s.group} == {"a": "g1", "b": "g2", "c": "g3"}


def test_no_server_group_call_for_an_empty_host(adapter, conn):
    conn.compute.get.return_value = response(body={"servers": []})

    assert adapter.servers_on(HOST) == []
    assert conn.compute.get.call_count == 1


def test_image_cache_is_per_call(adapter, conn):
    conn.compute.get.side_effect = lambda url, **kw: response(body={"servers": [server_json("s1", image_ref("img-a"))]})
    conn.image.get.side_effect = lambda url, **kw: response(body={"id": "img-a", "evacuable": "true"})

    adapter.servers_on(HOST)
    adapter.servers_on(HOST)

    assert conn.image.get.call_count == 2


def test_deleted_image_means_no_properties(adapter, conn):
    conn.compute.get.return_value = response(body={"servers": [server_json("s1", image_ref("gone"))]})
    conn.image.get.return_value = response(404, body={"message": "No image found"})

    [server] = adapter.servers_on(HOST)

    assert server.image_properties == {}


def test_get_server(adapter, conn):
    raw = server_json("s9", image_ref("img-a"), **{"OS-EXT-STS:task_state": "rebuilding", "locked": True})
    conn.compute.get.return_value = response(body={"server": raw})
    conn.image.get.return_value = response(body={"id": "img-a", "evacuable": "true"})

    server = adapter.get_server("s9")

    conn.compute.get.assert_called_once_with("/servers/s9", microversion="2.47")
    assert server.task_state == "rebuilding" and server.locked and server.image_properties == {"evacuable": "true"}


def test_server_addresses_are_the_fixed_ips_in_novas_order(adapter, conn):
    """Nova's ``addresses``: network -> entries; floating IPs are left out (readiness checks go to the first)."""
    addresses = {
        "tenant-net": [
            {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:0"},
            {"addr": "172.24.4.20", "version": 4, "OS-EXT-IPS:type": "floating"},
            {"addr": "fd00::5", "version": 6, "OS-EXT-IPS:type": "fixed"},
        ],
        "storage-net": [{"addr": "10.9.0.5", "version": 4}],  # no type: counted as fixed
    }
    conn.compute.get.return_value = response(body={"server": server_json("s9", addresses=addresses)})

    assert adapter.get_server("s9").addresses == ("10.0.0.5", "fd00::5", "10.9.0.5")


@pytest.mark.parametrize("addresses", [None, {}, [], {"net": None}, {"net": [{"OS-EXT-IPS:type": "fixed"}]}])
def test_server_without_addresses(adapter, conn, addresses):
    conn.compute.get.return_value = response(body={"server": server_json("s9", addresses=addresses)})

    assert adapter.get_server("s9").addresses == ()


def test_get_server_404_is_not_found_with_request_id(adapter, conn):
    conn.compute.get.return_value = response(
        404, body={"itemNotFound": {"code": 404, "message": "Instance s9 could not be found."}}, rid="req-404"
    )

    with pytest.raises(NotFound) as info:
        adapter.get_server("s9")

    assert info.value.context["request_id"] == "req-404"
    assert "req-404" in str(info.value) and "could not be found" in str(info.value)


# --------------------------------------------------------------------------------------- migrations


def migration_json(uid: str, created: str, status: str = "done") -> dict[str, Any]:
    return {
        "id": 7,
        "uuid": uid,
        "instance_uuid": "s1",
        "source_compute": HOST,
        "dest_compute": "cmp2",
        "status": status,
        "migration_type": "evacuation",
        "created_at": created,
        "updated_at": created,
    }


@pytest.mark.fault(
    "NOVA-11",
    guarantee="2",
    injected="an evacuation migration nobody touched since nova-api created it (its request lost: 'accepted', "
    "updated_at NULL), which Nova's changes-since filter never returns",
    expected="listed all the same (a second listing by status accepted): the runner sees Nova's request",
)
def test_evacuations_from(adapter, conn):
    lost = {**migration_json("m3", "2024-05-01T12:00:20.000000", "accepted"), "dest_compute": None, "updated_at": None}
    conn.compute.get.side_effect = [
        response(
            body={
                "migrations": [
                    migration_json("m2", "2024-05-01T12:00:10.000000", "Pre-migrating"),
                    migration_json("m1", "2024-05-01T11:00:00.000000", "completed"),
                ]
            }
        ),
        response(body={"migrations": [lost, migration_json("m0", "2024-05-01T10:00:00.000000", "accepted")]}),
    ]

    migrations = adapter.evacuations_from(HOST, since=1714564800.0)  # 12:00:00

    first, second = conn.compute.get.call_args_list
    assert first.kwargs == second.kwargs == {"microversion": "2.59"}
    assert split(first.args[0]) == (
        "/os-migrations",
        {"migration_type": "evacuation", "source_compute": HOST, "changes-since": "2024-05-01T12:00:00Z"},
    )
    assert split(second.args[0]) == (
        "/os-migrations",
        {"migration_type": "evacuation", "source_compute": HOST, "status": "accepted"},
    )
    # m1 was updated after `since` but created before it, m0 is older still: not part of this incident
    assert migrations == [
        Migration("m2", "s1", HOST, "cmp2", "pre-migrating", 1714564810.0, seq=7),
        Migration("m3", "s1", HOST, None, "accepted", 1714564820.0, seq=7),
    ]
    assert migrations[0].in_flight and migrations[1].in_flight


def test_evacuations_from_pages_without_since(adapter, conn):
    conn.compute.get.side_effect = [
        response(
            body={
                "migrations": [migration_json("m2", "2024-05-01T12:00:10")],
                "migrations_links": [{"rel": "next", "href": "http://n/v2.1/os-migrations?marker=m2&limit=1"}],
            }
        ),
        response(body={"migrations": [{**migration_json("m1", "2024-05-01T11:00:00"), "dest_compute": None}]}),
    ]

    migrations = adapter.evacuations_from(HOST)

    assert [m.id for m in migrations] == ["m2", "m1"]
    assert migrations[1].dest_host is None
    assert "changes-since" not in split(conn.compute.get.call_args_list[0].args[0])[1]
    assert split(conn.compute.get.call_args_list[1].args[0])[1]["marker"] == "m2"


# ----------------------------------------------------------------------------------------- actions


def test_evacuate_never_names_a_host_and_keeps_power_state(adapter, conn):
    conn.compute.post.return_value = response(200, rid="req-evac")

    assert adapter.evacuate("s1") == "req-evac"

    conn.compute.post.assert_called_once_with("/servers/s1/action", microversion="2.94", json={"evacuate": {}})


def test_evacuate_to_a_proposed_host_sends_it_without_force(adapter, conn):
    conn.compute.post.return_value = response(200, rid="req-evac")

    assert adapter.evacuate("s1", host="cmp3") == "req-evac"

    conn.compute.post.assert_called_once_with(
        "/servers/s1/action", microversion="2.94", json={"evacuate": {"host": "cmp3"}}
    )


def test_latest_request_reads_the_newest_evacuate_and_its_events(adapter, conn):
    listing = {
        "instanceActions": [
            {"action": "stop", "request_id": "req-stop"},
            {"action": "evacuate", "request_id": "req-new"},
            {"action": "evacuate", "request_id": "req-old"},
        ]
    }
    detail = {
        "instanceAction": {
            "action": "evacuate",
            "request_id": "req-new",
            "events": [
                {"event": "rebuild_server", "start_time": "2026-12-07T18:06:20", "finish_time": "2026-12-07T18:06:21",
                 "result": "Error", "traceback": "ConnectFailure ..."},
            ],
        }
    }
    conn.compute.get.side_effect = [response(200, listing), response(200, detail)]

    trace = adapter.latest_request("s1", "evacuate")

    assert trace == RequestTrace("req-new", "evacuate", (ActionEvent("rebuild_server", True, "Error"),))
    assert [c.args[0] for c in conn.compute.get.call_args_list] == [
        "/servers/s1/os-instance-actions?limit=50",
        "/servers/s1/os-instance-actions/req-new",
    ]


def test_latest_request_is_none_without_an_evacuate(adapter, conn):
    conn.compute.get.return_value = response(200, {"instanceActions": [{"action": "create", "request_id": "r"}]})
    assert adapter.latest_request("s1", "evacuate") is None


def test_reset_state_sets_active(adapter, conn):
    conn.compute.post.return_value = response(202, rid="req-reset")
    assert adapter.reset_state("s1") == "req-reset"
    conn.compute.post.assert_called_once_with(
        "/servers/s1/action", microversion="2.1", json={"os-resetState": {"state": "active"}}
    )


def _service_json(host: str, state: str = "up", status: str = "enabled", forced_down: bool = False) -> dict[str, Any]:
    return {"id": f"svc-{host}", "host": host, "state": state, "status": status, "forced_down": forced_down}


AGGREGATES = {
    "aggregates": [
        {"name": "fast", "hosts": ["cmp4", "cmp1", "cmp3", "cmp2", "cmp5"], "metadata": {}},
        {"name": "zone2-agg", "hosts": ["cmp3"], "metadata": {"availability_zone": "zone2"}},
    ]
}
SERVICES = {
    "services": [
        _service_json("cmp1", state="down", forced_down=True),  # the source
        _service_json("cmp2", status="disabled"),
        _service_json("cmp3"),
        _service_json("cmp4"),
        _service_json("cmp5", state="down"),
    ]
}


def test_aggregates_of_a_host(adapter, conn):
    conn.compute.get.return_value = response(body=AGGREGATES)

    assert adapter.aggregates_of("cmp3") == frozenset({"fast", "zone2-agg"})
    assert adapter.aggregates_of("cmp9") == frozenset()
    assert conn.compute.get.call_args.args[0] == "/os-aggregates"


def test_candidate_hosts_of_an_aggregate_are_usable_members_in_name_order(adapter, conn):
    conn.compute.get.side_effect = [response(body=AGGREGATES), response(body=SERVICES)]

    assert adapter.candidate_hosts(TargetHint(HintKind.AGGREGATE, "fast"), "cmp1") == ["cmp3", "cmp4"]


def test_candidate_hosts_of_a_zone_come_from_the_zone_listing(adapter, conn):
    zones = {
        "availabilityZoneInfo": [
            {"zoneName": "internal", "hosts": {"ctl": {"nova-scheduler": {}}}},
            {"zoneName": "nova", "hosts": {"cmp1": {}, "cmp2": {}, "cmp4": {}, "cmp5": {}}},
            {"zoneName": "zone2", "hosts": {"cmp3": {"nova-compute": {"active": True, "available": True}}}},
        ]
    }
    conn.compute.get.side_effect = [response(body=zones), response(body=SERVICES)]

    # the default zone is read from Nova, whatever it is called
    assert adapter.candidate_hosts(TargetHint(HintKind.AZ, "nova"), "cmp1") == ["cmp4"]
    conn.compute.get.side_effect = [response(body=zones), response(body=SERVICES)]
    assert adapter.candidate_hosts(TargetHint(HintKind.AZ, "zone2"), "cmp1") == ["cmp3"]
    assert conn.compute.get.call_args_list[0].args[0] == "/os-availability-zone/detail"
    conn.compute.get.side_effect = [response(body=zones)]
    with pytest.raises(NotFound, match="Nova lists no availability zone named 'zone9'"):
        adapter.candidate_hosts(TargetHint(HintKind.AZ, "zone9"), "cmp1")


def test_candidate_hosts_of_an_unknown_aggregate_is_not_found_and_asks_nothing_more(adapter, conn):
    # a typo in a hint must not read as "no host of the aggregate is up" (seen in the lab)
    conn.compute.get.return_value = response(body=AGGREGATES)

    with pytest.raises(NotFound, match="Nova has no host aggregate named 'nope'"):
        adapter.candidate_hosts(TargetHint(HintKind.AGGREGATE, "nope"), "cmp1")
    assert conn.compute.get.call_count == 1
    assert adapter.candidate_hosts(TargetHint(HintKind.RESERVED), "cmp1") == []
    assert conn.compute.get.call_count == 1


def test_evacuate_while_source_up_is_conflict(adapter, conn):
    conn.compute.post.return_value = response(
        400, body={"badRequest": {"code": 400, "message": "Compute service of cmp1 is still in use."}}, rid="req-x"
    )

    with pytest.raises(NovaConflict) as info:
        adapter.evacuate("s1")

    assert info.value.context["request_id"] == "req-x"
    assert "still in use" in str(info.value) and "req-x" in str(info.value)


@pytest.mark.parametrize(
    ("call", "action", "already"),
    [
        (lambda a: a.start_server("s1"), "os-start", "Cannot 'start' instance s1 while it is in vm_state active"),
        (lambda a: a.stop_server("s1"), "os-stop", "Cannot 'stop' instance s1 while it is in vm_state stopped"),
    ],
)
def test_power_actions_are_idempotent(adapter, conn, call, action, already):
    conn.compute.post.return_value = response(409, body={"conflictingRequest": {"code": 409, "message": already}})

    assert call(adapter) == "req-abc"

    conn.compute.post.assert_called_once_with("/servers/s1/action", microversion="2.1", json={action: None})


def test_power_action_conflict_in_task_state_is_raised(adapter, conn):
    msg = "Cannot 'stop' instance s1 while it is in task_state rebuilding"
    conn.compute.post.return_value = response(409, body={"conflictingRequest": {"code": 409, "message": msg}})

    with pytest.raises(NovaConflict):
        adapter.stop_server("s1")


# ------------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (500, "Unexpected API Error.", NovaUnavailable),
        (502, "Bad Gateway", NovaUnavailable),
        (503, "Service Unavailable", NovaUnavailable),
        (504, "Gateway Timeout", NovaUnavailable),
        (409, "Cannot 'evacuate' instance while it is in vm_state building", NovaConflict),
        (400, "Compute service of cmp1 is still in use.", NovaConflict),
        (400, "Instance is in an invalid state for 'evacuate'", NovaConflict),
        (400, "Invalid input for field/attribute evacuate.", NovaError),
        (403, "Policy doesn't allow os_compute_api:os-services:update to be performed.", NovaError),
        (404, "Service not found", NotFound),
        (406, "Version 2.94 is not supported by the API.", NovaError),
    ],
)
def test_http_error_table(adapter, conn, status, message, expected):
    conn.compute.put.return_value = response(status, body={"fault": {"code": status, "message": message}}, rid="req-e")

    with pytest.raises(expected) as info:
        adapter.force_down(SERVICE)

    err = info.value
    assert type(err) is expected
    assert err.context["request_id"] == "req-e" and "req-e" in err.message
    assert message in err.message
    assert isinstance(err, Temporary) == (expected is NovaUnavailable)


@pytest.mark.parametrize(
    ("exc", "expected", "hint"),
    [
        (ks_exc.ConnectFailure("Unable to establish connection to http://127.0.0.1:8774"), NovaUnavailable, "reach"),
        (ks_exc.ConnectTimeout("Request to http://127.0.0.1:8774 timed out"), NovaUnavailable, "reach"),
        (ks_exc.DiscoveryFailure("Could not find versioned identity endpoints"), NovaUnavailable, "reach"),
        (ks_exc.http.ServiceUnavailable(request_id="req-ks"), NovaUnavailable, "Service"),
        (ks_exc.http.InternalServerError(), NovaUnavailable, "Internal"),
        (ks_exc.Unauthorized("The request you have made requires authentication."), NovaError, "clouds.yaml"),
        (ks_exc.MissingRequiredOptions([]), NovaError, "clouds.yaml"),
        (ks_exc.EndpointNotFound("public endpoint for compute service not found"), NovaError, "region_name"),
        (ks_exc.SSLError("certificate verify failed"), NovaError, "cacert"),
        (openstack.exceptions.SDKException("boom"), NovaError, "boom"),
    ],
)
def test_library_error_table(adapter, conn, exc, expected, hint):
    conn.compute.get.side_effect = exc

    with pytest.raises(expected) as info:
        adapter.list_services()

    assert type(info.value) is expected
    assert info.value.__cause__ is exc
    assert hint in info.value.message
    assert "request_id" in info.value.context


def test_http_library_error_keeps_its_request_id(adapter, conn):
    conn.compute.get.side_effect = ks_exc.http.ServiceUnavailable(request_id="req-ks")

    with pytest.raises(NovaUnavailable) as info:
        adapter.list_services()

    assert info.value.context["request_id"] == "req-ks" and "req-ks" in info.value.message


def test_no_secret_in_messages(adapter, conn):
    body = {"badRequest": {"message": "bad auth {'password': 'hunter2'} token gAAAAABnotarealtokenbutlongenough123"}}
    conn.compute.get.return_value = response(400, body=body)

    with pytest.raises(NovaError) as info:
        adapter.list_services()

    assert "hunter2" not in str(info.value) and "gAAAAAB" not in str(info.value)
    assert "hunter2" not in repr(info.value.context)


def test_debug_log_line_per_call(adapter, conn, caplog):
    conn.compute.get.return_value = response(body={"services": []}, rid="req-log")

    with caplog.at_level(logging.DEBUG, logger="petguard.nova.compute"):
        adapter.list_services()

    [record] = caplog.records
    line = record.getMessage()
    for part in ("GET", "/os-services?binary=nova-compute", "200", "ms", "req-log", "mv=2.53"):
        assert part in line


# ------------------------------------------------------------------------------------ check/connect


def test_check_reports_old_nova_and_missing_admin(adapter, conn):
    conn.compute.get.side_effect = [
        response(body={"version": {"id": "v2.1", "version": "2.60", "min_version": "2.1"}}),
        response(403, body={"forbidden": {"message": "Policy doesn't allow os_compute_api:os-services:list"}}),
    ]

    problems = nova.check(adapter)

    assert len(problems) == 2
    assert "2.60" in problems[0] and "2.94" in problems[0]
    assert "admin" in problems[1]


def test_check_fine(adapter, conn):
    conn.compute.get.side_effect = [
        response(body={"version": {"id": "v2.1", "version": "2.104", "min_version": "2.1"}}),
        response(body={"services": [{"id": "u", "host": "cmp1", "state": "up", "status": "enabled"}]}),
    ]

    assert nova.check(adapter) == []


def test_check_auth_failure(adapter, conn):
    conn.compute.get.side_effect = ks_exc.Unauthorized("The request you have made requires authentication.")

    [problem] = nova.check(adapter)

    assert "clouds.yaml" in problem


CLOUDS = """
clouds:
  lab:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: admin
      password: sekrit-password
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
"""


def test_connect_is_lazy_and_sets_timeout(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(CLOUDS)
    clouds.chmod(0o600)

    adapter = nova.connect("lab", str(clouds), timeout=7.5)

    assert isinstance(adapter, nova.NovaCompute)
    assert adapter._conn.session.timeout == 7.5


def test_connect_unknown_cloud_is_config_error(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(CLOUDS)
    clouds.chmod(0o600)

    with pytest.raises(ConfigError) as info:
        nova.connect("nope", str(clouds), timeout=5)

    assert "nope" in str(info.value) and "sekrit" not in str(info.value)


@pytest.mark.fault(
    "SECRET-02",
    guarantee="7",
    injected="a Keystone password with spaces and commas in a Nova or Keystone error text",
    expected="the whole password is masked, not only up to the first space or comma",
)
def test_a_password_with_spaces_in_a_nova_error_is_masked_whole(adapter, conn):
    body = {"badRequest": {"message": "bad auth password: 'Keystone Pw,With Spaces' for admin"}}
    conn.compute.get.return_value = response(400, body=body)

    with pytest.raises(NovaError) as info:
        adapter.list_services()

    assert "Pw" not in str(info.value) and "Spaces" not in str(info.value)
    assert "Pw" not in repr(info.value.context)


@pytest.mark.fault(
    "SECRET-01",
    guarantee="7",
    injected="a YAML syntax error on an inline password: line (inventory, clouds.yaml)",
    expected="the error gives line, column and the problem; neither the line nor the password",
)
def test_a_clouds_yaml_syntax_error_is_said_without_the_password(tmp_path, caplog):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(CLOUDS.replace("password: sekrit-password", "password: *sekrit-password"))
    clouds.chmod(0o600)

    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        nova.connect("lab", str(clouds), timeout=5)

    assert "line 7, column" in str(info.value) and "not valid YAML" in str(info.value)
    assert "sekrit" not in str(info.value) and "sekrit" not in caplog.text
