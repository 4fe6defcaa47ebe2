"""Contract tests of the Nova adapter against the real Nova of ``petguard-lab`` (marker ``lab``).

They check that ``petguard.nova.compute.NovaCompute`` holds up the ``Compute`` contract on a real
Nova 34: services, server reads (extra specs, tags, image properties), errors with request ids, and a
whole failure: kill a compute through the lab, force it down, disable it, evacuate its servers at
microversion 2.94, follow them to the new host via the migrations, check the power state was kept,
then bring the host back (migrations ``completed``, first heartbeat, un-force, enable).

The lab, the SDK connection and the victim host come from the tier's shared fixtures
(``tests/lab/conftest.py``: a running lab is reused; one the session brought up is taken down at the
end). Every server, and the flavor and image it creates, is deleted. The victim host is
``$PETGUARD_LAB_VICTIM`` (default: the last compute). Timings are printed: run with
``pytest -m lab -s tests/lab/test_nova_contract.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openstack.connection
import pytest

from petguard.cloud import ServiceRecord
from petguard.errors import NotFound, NovaConflict
from petguard.nova import compute as nova
from tests.lab.labkit import CLOUD, TIMINGS, delete_leftovers, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

PREFIX = "pg-contract"


@pytest.fixture(scope="session")
def adapter(lab: Any) -> nova.NovaCompute:
    return nova.connect(CLOUD, str(lab.clouds_yaml), timeout=30)


@pytest.fixture(scope="session")
def flavor_and_image(sdk: openstack.connection.Connection) -> Iterator[tuple[str, str]]:
    delete_leftovers(sdk, PREFIX)
    tag = uuid.uuid4().hex[:8]
    flavor = sdk.compute.create_flavor(name=f"{PREFIX}-{tag}", ram=64, vcpus=1, disk=1)
    sdk.compute.create_flavor_extra_specs(flavor, {"evacuable": "true"})
    image = sdk.image.create_image(
        name=f"{PREFIX}-{tag}", data=b"\0" * 1024, disk_format="raw", container_format="bare",
        allow_duplicates=True, evacuable="true", petguard_contract="yes",
    )  # fmt: skip
    try:
        yield flavor.id, image.id
    finally:
        sdk.compute.delete_flavor(flavor.id, ignore_missing=True)
        sdk.image.delete_image(image.id, ignore_missing=True)


@pytest.fixture
def boot(sdk: openstack.connection.Connection, flavor_and_image: tuple[str, str]) -> Iterator[Callable[..., str]]:
    """Boot servers pinned to a host (mv 2.74 ``host``), with no network; delete them all after."""
    flavor_id, image_id = flavor_and_image
    created: list[str] = []

    def _boot(host: str, name: str, stopped: bool = False) -> str:
        body = {
            "server": {
                "name": f"{PREFIX}-{name}",
                "flavorRef": flavor_id,
                "imageRef": image_id,
                "networks": "none",
                "host": host,
                "metadata": {"petguard:pet": "true"},
                "tags": ["evacuable"],
            }
        }
        resp = sdk.compute.post("/servers", json=body, microversion="2.74")
        assert resp.status_code == 202, resp.text
        sid = str(resp.json()["server"]["id"])
        created.append(sid)
        wait_for(f"{sid} ACTIVE", lambda: _status(sdk, sid) == "ACTIVE" or None, 60)
        if stopped:
            sdk.compute.post(f"/servers/{sid}/action", json={"os-stop": None}, microversion="2.1")
            wait_for(f"{sid} SHUTOFF", lambda: _status(sdk, sid) == "SHUTOFF" or None, 60)
        return sid

    yield _boot
    for sid in created:
        sdk.compute.delete(f"/servers/{sid}", microversion="2.1")
    for sid in created:
        wait_for(f"{sid} deleted", lambda s=sid: sdk.compute.get(f"/servers/{s}").status_code == 404, 60)
    # (a run interrupted before this point is cleaned up by the next one: _delete_leftovers)


def _status(sdk: openstack.connection.Connection, sid: str) -> str:
    return str(sdk.compute.get(f"/servers/{sid}", microversion="2.47").json()["server"]["status"])


def _service(adapter: nova.NovaCompute, host: str) -> ServiceRecord:
    return next(s for s in adapter.list_services() if s.host == host)


# --------------------------------------------------------------------------------------------- reads


def test_check_is_clean(adapter: nova.NovaCompute) -> None:
    assert nova.check(adapter) == []


def test_list_services(adapter: nova.NovaCompute, lab: Any) -> None:
    started = time.monotonic()
    services = adapter.list_services()
    TIMINGS["list_services"] = time.monotonic() - started

    assert sorted(s.host for s in services) == sorted(lab.compute_names)
    for s in services:
        assert uuid.UUID(s.service_id)  # mv 2.53: service ids are uuids
        assert s.state == "up" and s.status == "enabled" and not s.forced_down
        assert s.updated_at is not None and abs(time.time() - s.updated_at) < 120  # UTC parsed right


def test_servers_on_and_get_server(adapter: nova.NovaCompute, boot: Callable[..., str], hosts: Any) -> None:
    victim, _ = hosts
    sid = boot(victim, "read")

    started = time.monotonic()
    servers = {s.id: s for s in adapter.servers_on(victim)}
    TIMINGS["servers_on (incl. one glance GET)"] = time.monotonic() - started
    assert sid in servers
    server = servers[sid]
    assert server.host == victim and server.status == "ACTIVE" and server.vm_state == "active"
    assert server.power_state == 1 and server.task_state is None and not server.locked
    assert server.metadata == {"petguard:pet": "true"}
    assert server.tags == frozenset({"evacuable"})
    assert server.flavor_extra_specs == {"evacuable": "true"}
    assert server.image_properties.get("evacuable") == "true"
    assert server.image_properties.get("petguard_contract") == "yes"
    assert server.project_id
    assert adapter.get_server(sid) == server
    assert sid not in {s.id for s in adapter.servers_on("no-such-host")}


@pytest.mark.fault(
    "LAB-03",
    guarantee="-",
    injected="Nova asked for an unknown server (404) and to evacuate a server whose compute is alive (409 'still in "
    "use')",
    expected="NotFound and NovaConflict, each carrying Nova's request id",
)
def test_errors_carry_request_ids(adapter: nova.NovaCompute, boot: Callable[..., str], hosts: Any) -> None:
    victim, _ = hosts
    with pytest.raises(NotFound) as missing:
        adapter.get_server(str(uuid.uuid4()))
    assert str(missing.value.context["request_id"]).startswith("req-")

    sid = boot(victim, "errors")
    # the source compute is alive: Nova refuses ("Compute service of ... is still in use.")
    with pytest.raises(NovaConflict) as busy:
        adapter.evacuate(sid)
    assert "still in use" in str(busy.value)
    assert str(busy.value.context["request_id"]).startswith("req-")

    # stop and start are idempotent
    assert adapter.stop_server(sid).startswith("req-")
    assert wait_for("SHUTOFF", lambda: adapter.get_server(sid).status == "SHUTOFF" or None, 60)
    assert adapter.stop_server(sid).startswith("req-")
    assert adapter.start_server(sid).startswith("req-")
    assert wait_for("ACTIVE", lambda: adapter.get_server(sid).status == "ACTIVE" or None, 60)
    assert adapter.start_server(sid).startswith("req-")


# -------------------------------------------------------------------------------------- evacuation


def test_evacuation_end_to_end(adapter: nova.NovaCompute, lab: Any, boot: Callable[..., str], hosts: Any) -> None:
    victim, survivors = hosts
    running = boot(victim, "evac-active")
    stopped = boot(victim, "evac-shutoff", stopped=True)
    service = _service(adapter, victim)
    since = time.time() - 1

    killed = time.monotonic()
    lab.fail(victim, "power")
    try:
        started = time.monotonic()
        rid_down = adapter.force_down(service)
        TIMINGS["force_down"] = time.monotonic() - started
        started = time.monotonic()
        rid_disable = adapter.disable(service, "petguard: contract test")
        TIMINGS["disable (after force_down)"] = time.monotonic() - started
        assert rid_down.startswith("req-") and rid_disable.startswith("req-")
        record = _service(adapter, victim)
        assert record.forced_down and record.state == "down" and record.status == "disabled"
        assert record.disabled_reason == "petguard: contract test"
        assert adapter.force_down(service).startswith("req-")  # idempotent

        pets = {s.id: s for s in adapter.servers_on(victim)}
        assert {running, stopped} <= set(pets)
        assert pets[stopped].status == "SHUTOFF"

        started = time.monotonic()
        rids = [adapter.evacuate(sid) for sid in (running, stopped)]
        TIMINGS["evacuate x2 (API calls)"] = time.monotonic() - started
        assert all(r.startswith("req-") for r in rids)

        def landed() -> list[Any] | None:
            done = [adapter.get_server(sid) for sid in (running, stopped)]
            # Nova shows ACTIVE/task None on the OLD host for ~0.3 s: wait for the host to change
            if all(s.host in survivors and s.task_state is None for s in done):
                return done
            return None

        moved = wait_for("servers on a surviving host", landed, 120)
        TIMINGS["kill -> both servers settled on a new host"] = time.monotonic() - killed
        by_id = {s.id: s for s in moved}
        assert by_id[running].status == "ACTIVE" and by_id[running].power_state == 1  # mv 2.94 kept it
        assert by_id[stopped].status == "SHUTOFF" and by_id[stopped].vm_state == "stopped"

        migrations = {m.server_id: m for m in adapter.evacuations_from(victim, since=since)}
        assert set(migrations) == {running, stopped}
        for sid, m in migrations.items():
            assert m.source_host == victim and m.dest_host == by_id[sid].host
            assert m.succeeded or m.status == "done", m
            assert not m.in_flight and not m.failed
            assert m.created_at >= since
        assert adapter.evacuations_from(victim, since=time.time() + 3600) == []
        assert sid not in {s.id for s in adapter.servers_on(victim)}
    finally:
        _restore(adapter, lab, victim, service, since)

    # back: the source cleaned up, so Nova marked the migrations completed
    assert all(m.status == "completed" for m in adapter.evacuations_from(victim, since=since))


def _restore(adapter: nova.NovaCompute, lab: Any, victim: str, service: ServiceRecord, since: float) -> None:
    """Bring the victim back: power on, migrations completed, un-force after the first heartbeat,
    enable. Runs even when the test failed, so that the shared lab is left as it was found."""
    healed = time.monotonic()
    lab.heal(victim)

    def cleaned_up() -> bool:
        return all(m.status != "done" for m in adapter.evacuations_from(victim, since=since))

    try:
        wait_for("evacuations from the victim completed", cleaned_up, 120)
        TIMINGS["heal -> migrations completed"] = time.monotonic() - healed
    finally:
        # the first heartbeat moves updated_at after the heal (updated_at has 1 s resolution)
        before = _service(adapter, victim).updated_at or 0.0
        wait_for("first heartbeat", lambda: (_service(adapter, victim).updated_at or 0.0) > before, 60)
        adapter.unforce_down(service)
        wait_for("victim up", lambda: _service(adapter, victim).state == "up", 60)
        adapter.enable(service)
        TIMINGS["heal -> enabled again"] = time.monotonic() - healed
    record = _service(adapter, victim)
    assert record.state == "up" and record.status == "enabled" and not record.forced_down
