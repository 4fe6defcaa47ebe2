"""Building blocks shared by `petguard-lab demo` and `petguard-lab bench` (stdlib only).

* ``wait``: poll a check until it holds, or raise ``LabError`` with what was awaited;
* ``Cloud``: the Nova/Glance calls of a scenario over the lab's stdlib client (servers named
  ``PREFIX*``, one flavor, one image, one server group), booting pinned servers (mv 2.74
  ``host``), deleting them again;
* ``start_daemon``: start ``petguard-daemon`` and wait until it logged its start;
  ``all_watched``: petguard sees every host up (``petguard-manage host-list``);
* ``restore_host``: power a fenced host on, ask petguard to restore it, wait until Nova shows it
  up and enabled and petguard watches it again.

petguard is never imported: its programs run as subprocesses (``petguard_proc``).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from petguard_lab import petguard_proc
from petguard_lab.lab import Lab
from petguard_lab.osapi import Glance, HttpError, Keystone, Nova
from petguard_lab.settings import LabError

#: Nova microversions: 2.74 boot with host (admin), 2.64 server groups with "policy",
#: 2.59 migrations with uuids, 2.53 services by uuid.
MV_BOOT, MV_GROUPS, MV_MIGRATIONS, MV_SERVERS = "2.74", "2.64", "2.59", "2.53"


def wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    """Poll ``check`` every ``interval`` s until it is true.

    :raises LabError: not true after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def nova_epoch(stamp: object) -> float:
    """Nova's ``2026-11-26T03:30:01.000000`` (UTC, no zone) -> epoch seconds (0 if missing)."""
    if not stamp:
        return 0.0
    return float(calendar.timegm(time.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S")))


def where(raw: dict[str, Any]) -> tuple[str, str]:
    """(host, status) of a server as Nova shows it."""
    return str(raw.get("OS-EXT-SRV-ATTR:host") or "-"), str(raw.get("status") or "?")


class Cloud:
    """A scenario's Nova/Glance calls over the lab's stdlib client (admin)."""

    def __init__(self, lab: Lab, prefix: str, flavor: str, image: str, group: str = "") -> None:
        keystone = Keystone(lab.cfg)
        self.nova = Nova(lab.cfg, keystone)
        self.glance = Glance(lab.cfg, keystone)
        self.prefix = prefix
        self.flavor_name = flavor
        self.image_name = image
        self.group_name = group

    def services(self) -> dict[str, dict[str, Any]]:
        return self.nova.compute_services()

    def servers(self) -> dict[str, dict[str, Any]]:
        """The scenario's servers (all projects) by name."""
        raw = self.nova.call("GET", f"/servers/detail?all_tenants=1&name=^{self.prefix}",
                             microversion=MV_SERVERS)["servers"]
        return {s["name"]: s for s in raw if str(s["name"]).startswith(self.prefix)}

    def evacuations(self, host: str) -> list[dict[str, Any]]:
        path = f"/os-migrations?migration_type=evacuation&source_compute={host}"
        return list(self.nova.call("GET", path, microversion=MV_MIGRATIONS)["migrations"])

    def flavor(self) -> str:
        for flavor in self.nova.call("GET", "/flavors?is_public=None")["flavors"]:
            if flavor["name"] == self.flavor_name:
                return str(flavor["id"])
        body = {"flavor": {"name": self.flavor_name, "ram": 64, "vcpus": 1, "disk": 1}}
        return str(self.nova.call("POST", "/flavors", body)["flavor"]["id"])

    def image(self) -> str:
        found = self.glance.find(self.image_name)
        return str(found["id"]) if found else self.glance.create(self.image_name, b"\0" * 1024)

    def groups(self) -> list[dict[str, Any]]:
        if not self.group_name:
            return []
        raw = self.nova.call("GET", "/os-server-groups?all_projects=True",
                             microversion=MV_GROUPS)["server_groups"]
        return [g for g in raw if g["name"] == self.group_name]

    def create_group(self, policy: str = "anti-affinity") -> str:
        body = {"server_group": {"name": self.group_name, "policy": policy}}
        return str(self.nova.call("POST", "/os-server-groups", body,
                                  microversion=MV_GROUPS)["server_group"]["id"])

    def boot(self, name: str, host: str, flavor: str, image: str,
             metadata: dict[str, str] | None = None, tags: Iterable[str] = (),
             group: str | None = None) -> str:
        """Boot one server pinned on ``host`` (no network); return its id."""
        body: dict[str, Any] = {"server": {
            "name": name, "flavorRef": flavor, "imageRef": image, "networks": "none",
            "host": host, "metadata": dict(metadata or {}), "tags": list(tags)}}
        if group:
            body["os:scheduler_hints"] = {"group": group}
        return str(self.nova.call("POST", "/servers", body, microversion=MV_BOOT)["server"]["id"])

    def wait_status(self, wanted: dict[str, str], timeout: float = 120) -> None:
        """Wait until every server named in ``wanted`` has that status (raise on ERROR)."""
        def reached() -> bool:
            servers = self.servers()
            failed = [n for n in wanted if servers.get(n, {}).get("status") == "ERROR"]
            if failed:
                raise LabError(f"Nova put {', '.join(sorted(failed))} in ERROR; see "
                               "$LAB/log/nova-*.log")
            return all(servers.get(n, {}).get("status") == s for n, s in wanted.items())

        wait(f"{len(wanted)} server(s) to be {'/'.join(sorted(set(wanted.values())))}",
             reached, timeout)

    def action(self, server_id: str, action: dict[str, Any]) -> None:
        self.nova.call("POST", f"/servers/{server_id}/action", action, microversion="2.1")

    def delete_everything(self) -> int:
        """Delete the scenario's servers and group; return how many servers there were."""
        servers = self.servers()
        for raw in servers.values():
            try:
                self.nova.call("DELETE", f"/servers/{raw['id']}", microversion="2.1")
            except HttpError as exc:
                if exc.status != 404:
                    raise
        wait(f"the {self.prefix}* servers to be deleted", lambda: not self.servers(), 180)
        for group in self.groups():
            self.nova.call("DELETE", f"/os-server-groups/{group['id']}", microversion=MV_GROUPS)
        return len(servers)

    def update_service(self, service_id: str, body: dict[str, Any]) -> None:
        self.nova.call("PUT", f"/os-services/{service_id}", body, microversion=MV_SERVERS)


# --------------------------------------------------------------------------------- petguard
def start_daemon(daemon: petguard_proc.Daemon, log_file: Path, timeout: float = 60) -> int:
    """Start ``daemon`` and wait until its log says ``petguard started``; return its PID."""
    follower = petguard_proc.LogFollower(log_file)
    pid = daemon.start()

    def started() -> bool:
        if daemon.pid is None:
            raise LabError(f"petguard-daemon exited at start; see {log_file} and "
                           f"{daemon.outfile}")
        return any("petguard started" in e.message for e in follower.entries())

    wait("petguard-daemon to start", started, timeout)
    return pid


def all_watched(conf: Path, hosts: Iterable[str]) -> bool:
    """petguard's journal has every one of ``hosts`` and sees it up."""
    rows = petguard_proc.host_list(conf)
    return all(rows.get(h) is not None and rows[h].state == "up" for h in hosts)


def restore_host(lab: Lab, cloud: Cloud, conf: Path, host: str, reason: str,
                 timeout: float = 180) -> None:
    """Power ``host`` on, ask petguard to restore it, wait until it is back in service: petguard
    watches it as up, Nova shows it up, enabled and not forced down."""
    lab.heal(host)
    petguard_proc.manage(conf, "request", host, "restore", "--reason", reason)

    def restored() -> bool:
        svc = cloud.services()[host]
        row = petguard_proc.host_list(conf).get(host)
        return bool(row and row.state == "up" and svc["state"] == "up"
                    and svc["status"] == "enabled" and not svc["forced_down"])

    wait(f"petguard to restore {host}", restored, timeout)
