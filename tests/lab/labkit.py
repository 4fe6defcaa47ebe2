"""Helpers of the lab tier (``tests/lab``): waiting, Nova's state through openstacksdk, booting test
servers, a petguard-daemon process under test, and putting the lab back the way a test found it.

The fixtures in ``conftest.py`` are built from these; test modules import the helpers they call
directly (``from tests.lab.labkit import wait_for``). Everything a test creates in Nova is named
``PREFIX-*`` so that an interrupted run is cleaned up by the next one.
"""

from __future__ import annotations

import calendar
import configparser
import dataclasses
import functools
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import openstack.config
import openstack.connection
from petguard_lab import Lab, petguard_proc

from petguard.journal import BrakeState, EventRecord
from petguard.store.sql import SqlStore

T = TypeVar("T")
CLOUD = "petguard-lab"
PREFIX = "pg-lab"
#: What a scenario measured, printed at the end of the session (``pytest -s``).
TIMINGS: dict[str, float] = {}
#: petguard's options for the lab tier (a copy of the lab's petguard.conf with these changed):
#: a short grace period, but longer than the spread of the heartbeats (report_interval 2 s plus
#: Nova's 1 s DATETIME truncation), or a RabbitMQ outage would fence the first host to look down
#: before the third one does and the brake engages; quicker power readings; a fence deadline
#: that a wrong BMC password reaches soon.
TEST_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "DEFAULT": {"tick_interval": "1", "startup_blackout": "0"},
    "detection": {"grace_period": "6"},
    "fencing": {"poll_interval": "0.5", "deadline": "15"},
    # the fake virt driver loses nothing in a rebuild: like instance disks on shared storage
    "evacuation": {"shared_storage": "true"},
}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def nova_epoch(stamp: object) -> float:
    """Nova's ``2026-11-26T03:30:01.000000`` (UTC, no zone, 1 s resolution) -> epoch seconds."""
    return float(calendar.timegm(time.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S")))


def connect(lab: Lab) -> openstack.connection.Connection:
    """A plain SDK connection as the lab's admin."""
    region = openstack.config.OpenStackConfig(config_files=[str(lab.clouds_yaml)]).get_one(cloud=CLOUD)
    return openstack.connection.Connection(config=region)


class Nova:
    """Nova's real state, read (and, for set-up and clean-up, changed) through openstacksdk."""

    def __init__(self, sdk: openstack.connection.Connection) -> None:
        self.sdk = sdk

    def _get(self, path: str, microversion: str) -> Any:
        response = self.sdk.compute.get(path, microversion=microversion)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def services(self) -> dict[str, dict[str, Any]]:
        return {s["host"]: s for s in self._get("/os-services?binary=nova-compute", "2.53")["services"]}

    def service(self, host: str) -> dict[str, Any]:
        return self.services()[host]

    def server(self, server_id: str) -> dict[str, Any]:
        return dict(self._get(f"/servers/{server_id}", "2.53")["server"])

    def servers(self, prefix: str = PREFIX) -> list[dict[str, Any]]:
        raw = self._get(f"/servers/detail?all_tenants=1&name=^{prefix}", "2.53")["servers"]
        return [s for s in raw if str(s["name"]).startswith(prefix)]

    def evacuations(self, host: str, since: float = 0.0, servers: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """``GET /os-migrations?migration_type=evacuation&source_compute=HOST``: created at or after
        ``since`` (whole seconds: Nova truncates), of ``servers`` if given."""
        path = f"/os-migrations?migration_type=evacuation&source_compute={host}"
        wanted = set(servers) if servers is not None else None
        return [
            m for m in self._get(path, "2.59")["migrations"]
            if nova_epoch(m["created_at"]) >= int(since) and (wanted is None or m["instance_uuid"] in wanted)
        ]  # fmt: skip

    def update_service(self, host: str, body: Mapping[str, Any]) -> None:
        response = self._put_service(host, body)
        assert response.status_code == 200, response.text

    def try_update_service(self, host: str, body: Mapping[str, Any]) -> bool:
        """``update_service``, False when Nova refuses it for now (HTTP 400: e.g. evacuations from the host
        that its nova-compute has not completed yet)."""
        response = self._put_service(host, body)
        assert response.status_code in (200, 400), response.text
        return response.status_code == 200

    def _put_service(self, host: str, body: Mapping[str, Any]) -> Any:
        sid = self.service(host)["id"]
        return self.sdk.compute.put(f"/os-services/{sid}", json=dict(body), microversion="2.53")

    def delete_servers(self, prefix: str = PREFIX) -> None:
        for raw in self.servers(prefix):
            self.sdk.compute.delete(f"/servers/{raw['id']}", microversion="2.1")
        wait_for(f"{prefix}-* servers deleted", lambda: not self.servers(prefix), 120)

    def create_server_group(self, name: str, policy: str, rules: Mapping[str, int] | None = None) -> str:
        """A server group ``PREFIX-name`` (mv 2.64: one ``policy``, optional ``rules`` such as
        ``max_server_per_host``); returns its id, for ``Spec.group``."""
        group: dict[str, Any] = {"name": f"{PREFIX}-{name}", "policy": policy}
        if rules:
            group["rules"] = dict(rules)
        response = self.sdk.compute.post("/os-server-groups", json={"server_group": group}, microversion="2.64")
        assert response.status_code == 200, response.text
        return str(response.json()["server_group"]["id"])

    def instance_quota(self, instances: int | None = None) -> int:
        """The lab project's quota of servers (Nova's default is 10); with ``instances``, set it to
        that. Returns the quota as it was before."""
        path = f"/os-quota-sets/{self.sdk.current_project_id}"
        before = int(self._get(path, "2.57")["quota_set"]["instances"])
        if instances is not None:
            response = self.sdk.compute.put(path, json={"quota_set": {"instances": instances}}, microversion="2.57")
            assert response.status_code == 200, response.text
        return before

    def create_aggregate(self, name: str, hosts: Iterable[str]) -> str:
        """A host aggregate ``PREFIX-name`` (no availability zone) holding ``hosts``; returns its id."""
        body = {"aggregate": {"name": f"{PREFIX}-{name}"}}
        response = self.sdk.compute.post("/os-aggregates", json=body, microversion="2.41")
        assert response.status_code == 200, response.text
        aggregate_id = str(response.json()["aggregate"]["id"])
        for host in hosts:
            action = {"add_host": {"host": host}}
            response = self.sdk.compute.post(f"/os-aggregates/{aggregate_id}/action", json=action, microversion="2.41")
            assert response.status_code == 200, response.text
        return aggregate_id

    def delete_aggregates(self, prefix: str = PREFIX) -> None:
        """Delete the aggregates named ``prefix*`` (Nova refuses to delete one that has hosts: empty it first)."""
        for aggregate in self._get("/os-aggregates", "2.41")["aggregates"]:
            if not str(aggregate["name"]).startswith(prefix):
                continue
            path = f"/os-aggregates/{aggregate['id']}"
            for host in aggregate.get("hosts") or ():
                self.sdk.compute.post(f"{path}/action", json={"remove_host": {"host": host}}, microversion="2.41")
            response = self.sdk.compute.delete(path, microversion="2.41")
            assert response.status_code == 200, response.text

    def delete_server_groups(self, prefix: str = PREFIX) -> None:
        for group in self._get("/os-server-groups?all_projects=True", "2.64")["server_groups"]:
            if str(group["name"]).startswith(prefix):
                self.sdk.compute.delete(f"/os-server-groups/{group['id']}", microversion="2.64")


def host_of(server: Mapping[str, Any]) -> str:
    return str(server.get("OS-EXT-SRV-ATTR:host") or "")


@dataclasses.dataclass(frozen=True)
class Spec:
    """A test server: its name (after ``PREFIX-``), metadata, whether it is booted stopped, and the
    server group it is booted into (an id; the scheduler hint ``group``)."""

    name: str
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    stopped: bool = False
    group: str | None = None

    @property
    def pet(self) -> bool:
        return self.metadata.get("petguard:pet") == "true" or self.metadata.get("HA_Enabled") == "True"


def pet(name: str, stopped: bool = False, priority: int | None = None) -> Spec:
    """A pet by petguard's own metadata (``petguard:pet=true``, optional ``petguard:priority``)."""
    metadata = {"petguard:pet": "true"}
    if priority is not None:
        metadata["petguard:priority"] = str(priority)
    return Spec(name, metadata, stopped)


def boot(nova: Nova, flavor_id: str, image_id: str, host: str, specs: Iterable[Spec]) -> dict[str, str]:
    """Boot ``specs`` on ``host`` (mv 2.74 ``host``, no network; the scheduler still runs its filters,
    server group policies included) all at once; stop the stopped ones; return name -> id once every
    one is ACTIVE or SHUTOFF as asked."""
    specs = list(specs)
    ids: dict[str, str] = {}
    for spec in specs:
        body = {"server": {
            "name": f"{PREFIX}-{spec.name}", "flavorRef": flavor_id, "imageRef": image_id,
            "networks": "none", "host": host, "metadata": dict(spec.metadata),
        }}  # fmt: skip
        if spec.group is not None:
            body["os:scheduler_hints"] = {"group": spec.group}
        response = nova.sdk.compute.post("/servers", json=body, microversion="2.74")
        assert response.status_code == 202, response.text
        ids[spec.name] = str(response.json()["server"]["id"])

    def status_is(wanted: Mapping[str, str]) -> bool:
        servers = {s["id"]: s for s in nova.servers()}
        errors = [n for n, sid in ids.items() if servers.get(sid, {}).get("status") == "ERROR"]
        assert not errors, f"Nova could not boot {errors}"
        return all(servers.get(ids[n], {}).get("status") == status for n, status in wanted.items())

    wait_for("test servers ACTIVE", lambda: status_is({s.name: "ACTIVE" for s in specs}), 120)
    for spec in specs:
        if spec.stopped:
            nova.sdk.compute.post(f"/servers/{ids[spec.name]}/action", json={"os-stop": None}, microversion="2.1")
    wanted = {s.name: "SHUTOFF" if s.stopped else "ACTIVE" for s in specs}
    wait_for("stopped test servers SHUTOFF", lambda: status_is(wanted), 60)
    return ids


#: Evacuation migrations that moved the server, and those after which Nova moved nothing: ended by
#: a failure, or a request Nova lost (still 'accepted', no destination: petguard sent it again).
MOVED = ("done", "completed")
NOTHING_MOVED = ("error", "failed", "cancelled")


def assert_recovered(
    nova: Nova, ids: Mapping[str, str], specs: list[Spec], victim: str, since: float, *, setbacks: bool = False
) -> dict[str, dict[str, Any]]:
    """Every pet on another host in its original state, every non-pet untouched on the victim,
    exactly one evacuation migration per pet and none for the others. Returns the servers.

    ``setbacks``: a control-plane outage may end some evacuations with nothing moved (a
    ``MessagingTimeout``, a request Nova lost); each pet then has exactly one migration that moved it
    to where it is, and every other one of its migrations moved nothing."""
    servers = {name: nova.server(sid) for name, sid in ids.items()}
    migrations = nova.evacuations(victim, since, ids.values())
    moved: dict[str, int] = {}
    for m in migrations:
        assert m["migration_type"] == "evacuation" and m["source_compute"] == victim
        if m["status"] in MOVED:
            moved[m["instance_uuid"]] = moved.get(m["instance_uuid"], 0) + 1
            assert m["dest_compute"] == host_of(next(s for s in servers.values() if s["id"] == m["instance_uuid"]))
        else:
            lost = m["status"] == "accepted" and not m["dest_compute"]
            assert setbacks and (m["status"] in NOTHING_MOVED or lost), m
    touched = {m["instance_uuid"] for m in migrations}
    for spec in specs:
        server = servers[spec.name]
        if spec.pet:
            assert host_of(server) not in ("", victim), server
            assert server["status"] == ("SHUTOFF" if spec.stopped else "ACTIVE"), server
            assert server["OS-EXT-STS:task_state"] is None
            assert moved.get(ids[spec.name]) == 1, f"{spec.name}: {migrations}"
        else:
            assert host_of(server) == victim and server["status"] == "ACTIVE", server
            assert ids[spec.name] not in touched
    return servers


def assert_held_by_petguard(nova: Nova, victim: str) -> None:
    service = nova.service(victim)
    assert service["forced_down"] is True and service["state"] == "down", service
    assert service["status"] == "disabled", service
    assert str(service["disabled_reason"]).startswith("petguard: incident "), service
    assert f"`petguard-manage request {victim} restore" in str(service["disabled_reason"]), service


# ------------------------------------------------------------------------------------ petguard


class Petguard:
    """A petguard-daemon under test: its own conf (a copy of the lab's with ``TEST_OPTIONS``, then a
    test's own ``options``), a fresh journal in ``workdir``, started and stopped by PID (the PID file
    is in the lab's run directory, so ``petguard-lab down`` stops one that a crashed test run left
    behind)."""

    PIDFILE = "petguard-daemon-test.pid"

    def __init__(
        self,
        lab: Lab,
        workdir: Path,
        inventory: Path | None = None,
        options: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.lab = lab
        self.options = options or {}
        self.workdir = workdir
        self.conf = workdir / "petguard.conf"
        self.log = workdir / "petguard-daemon.log"
        self.url = f"sqlite:///{workdir / 'petguard.sqlite'}"
        self.inventory = inventory or lab.inventory_file
        self.daemon = petguard_proc.Daemon(self.conf, lab.cfg.run / self.PIDFILE, workdir / "petguard-daemon.out")
        self._store: SqlStore | None = None
        self.write_conf()

    def write_conf(self) -> None:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(self.lab.conf_file)
        for section, options in [*TEST_OPTIONS.items(), *self.options.items()]:
            if section != "DEFAULT" and not parser.has_section(section):
                parser.add_section(section)
            for key, value in options.items():
                parser.set(section, key, value)
        parser.set("DEFAULT", "log_file", str(self.log))
        parser.set("database", "connection", self.url)
        parser.set("fencing", "inventory_file", str(self.inventory))
        with self.conf.open("w") as handle:
            parser.write(handle)

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            self._store = SqlStore(self.url)
        return self._store

    @property
    def pid(self) -> int | None:
        return self.daemon.pid

    def start(self, wait_watching: bool = True) -> int:
        """db-upgrade (idempotent), start the daemon, wait until it watches every compute as up."""
        petguard_proc.manage(self.conf, "db-upgrade")
        follower = petguard_proc.LogFollower(self.log)
        pid = self.daemon.start()

        def started() -> bool:
            assert self.daemon.pid is not None, f"petguard-daemon exited; see {self.log} and {self.daemon.outfile}"
            return any("petguard started" in e.message for e in follower.entries())

        wait_for("petguard-daemon started", started, 60)
        if wait_watching:
            wait_for("petguard watching every compute", self._all_up, 30)
        return pid

    def _all_up(self) -> bool:
        hosts = self.store.load_hosts()
        return all(h in hosts and hosts[h].host.state.value == "up" for h in self.lab.compute_names)

    def stop(self) -> None:
        self.daemon.stop()

    def kill(self) -> int | None:
        return self.daemon.kill()

    def state(self, host: str) -> str:
        record = self.store.load_hosts().get(host)
        return record.host.state.value if record else "unknown"

    def wait_state(self, host: str, state: str | Collection[str], timeout: float, interval: float = 0.25) -> float:
        """Wait until ``host`` is in ``state`` (or one of them) in the journal; return when (monotonic)."""
        states = {state} if isinstance(state, str) else set(state)

        def reached() -> bool:
            assert self.daemon.pid is not None, f"petguard-daemon died; see {self.log}"
            return self.state(host) in states

        what = f"{host} {'/'.join(sorted(states))} in petguard's journal (log: {self.log})"
        wait_for(what, reached, timeout, interval)
        return time.monotonic()

    def manage(self, *args: str) -> str:
        return petguard_proc.manage(self.conf, *args)

    def request(self, host: str, kind: str, reason: str = "lab test") -> str:
        return self.manage("request", host, kind, "--reason", reason)

    def events(self, kind: str | None = None) -> list[EventRecord]:
        return [e for e in self.store.events(limit=1000) if kind is None or e.kind == kind]

    def brake(self) -> BrakeState:
        return self.store.load_brake()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# ----------------------------------------------------------------------------------- clean-up


def delete_leftovers(sdk: openstack.connection.Connection, prefix: str = PREFIX) -> None:
    """Remove what an interrupted earlier run left behind: servers, server groups, aggregates, flavors and images
    named ``prefix*`` (this module's ``PREFIX``; the contract tests use ``pg-contract``)."""
    Nova(sdk).delete_servers(prefix)
    Nova(sdk).delete_server_groups(prefix)
    Nova(sdk).delete_aggregates(prefix)
    for flavor in sdk.compute.flavors():
        if str(flavor.name).startswith(prefix):
            sdk.compute.delete_flavor(flavor.id, ignore_missing=True)
    for image in sdk.image.images():
        if str(image.name).startswith(prefix):
            sdk.image.delete_image(image.id, ignore_missing=True)


def lab_ready(lab: Lab) -> bool:
    """The lab runs and every compute is up, enabled, not forced down."""
    if not Path(lab.state_file).exists() or lab.pid("nova-api") is None:
        return False
    status = lab.status()
    return not status["nova_error"] and all(
        c["service_state"] == "up" and c["service_status"] == "enabled" and c["forced_down"] is False
        and c["bmc_power"] == "on" and c["bmc_mode"] == "normal"
        for c in status["computes"]
    )  # fmt: skip


#: nova-compute restarts that restore_lab allows a host to complete the evacuations from it.
COMPLETION_RESTARTS = 6


def _force_up(lab: Lab, nova: Nova, host: str) -> None:
    """Un-force ``host``. Nova refuses while evacuations from it are 'done' and not yet 'completed', which
    only its nova-compute does, at start (sometimes after its first heartbeat), and for ONE evacuation
    per server per start (Nova 34 ``_destroy_evacuated_instances`` keeps one migration per instance): a
    server asked for again after a request died inside Nova (CP-12, CP-15) leaves several, so nova-compute
    is restarted until Nova agrees."""
    unforce = functools.partial(nova.try_update_service, host, {"forced_down": False})
    for _ in range(COMPLETION_RESTARTS):
        try:
            wait_for(f"Nova to let {host} be forced up", unforce, 30, 2)
            return
        except AssertionError:
            restarted = time.time()
            lab.fail(host, "process")  # kills nova-compute only: the BMC keeps the power on
            lab.heal(host)
            lab.wait_computes_up([host], timeout=120, since=restarted, accept_forced_down=True)
    wait_for(f"Nova to let {host} be forced up", unforce, 30, 2)


def restore_lab(lab: Lab, nova: Nova) -> None:
    """Put every compute back the way the tests expect it: RabbitMQ running, BMCs normal and powered
    on, nova-compute running, services un-forced and enabled (after a fresh heartbeat, or Nova keeps
    the COMPUTE_STATUS_DISABLED trait for a minute). Run with no petguard-daemon running."""
    for component in lab.stopped_components():  # a control-plane outage that a test left behind
        lab.start_component(component)
    started = time.time()
    for host in lab.compute_names:
        if lab.bmc_get_mode(host) != "normal":
            lab.bmc_mode(host, "normal")
        if not lab.bmc_power(host) or lab.pid(f"nova-compute-{host}") is None:
            lab.heal(host)
    services = nova.services()
    held = [h for h in lab.compute_names if services[h]["forced_down"] or services[h]["status"] != "enabled"]
    if held:
        wait_for(
            f"a heartbeat of {held}",
            lambda: all(nova_epoch(nova.service(h)["updated_at"]) >= int(started) for h in held), 60,
        )  # fmt: skip
        for host in held:
            _force_up(lab, nova, host)
            nova.update_service(host, {"status": "enabled"})
    lab.wait_computes_up(timeout=120)
