"""Fakes of petguard's own seams for tests: a clock that moves only when told, and an in-memory Nova.

``FakeCompute`` implements ``petguard.compute.Compute`` with Nova's semantics that matter to
petguard (measured on a real Nova 34, see ../shared/notes/nova-lab.md):

* a compute service is "down" when its host is dead or it is forced down; a live host's ``updated_at``
  moves on every reading, unless its heartbeat ``stalled`` (a hung nova-compute, a stuck conductor):
  then it stands still while Nova still reports the service up (its service_down_time not yet passed);
* evacuate is refused while the source service is up; it is accepted for a server that is already
  being evacuated (and that breaks it: the server ends in ERROR), so tests can catch a double
  evacuation;
* an evacuation goes through steps (task_state rebuilding, ACTIVE on the old host for a moment, then
  on the new host) as ``get_server`` is polled; the power state is kept (microversion 2.94);
* migrations of type evacuation are recorded with their status;
* evacuate with a ``host`` records it as the migration's destination (as Nova's API does) and the
  scheduler validates it later: a host that is down, disabled, in ``refuse_targets`` or holding a
  member of the server's anti-affinity group ends the migration ``error`` with the server ERROR on
  the source ("No valid host was found"); an unknown host or the source is refused at once;
* ``late_group_check_bounces`` makes the destination's late server-group check refuse a server's
  next evacuations (migration ``failed``, the server ERROR on the source, "Anti-affinity instance
  group policy was violated."), as Nova does when its scheduler chose from a stale view;
* host aggregates (``add_aggregate``, with an optional availability zone; hosts in no zone aggregate
  are in zone "nova") back ``aggregates_of`` and ``candidate_hosts``;
* server groups (``add_group``) are attached to servers by ``servers_on`` only, as the adapter does;
  ``group_overlaps`` records every evacuate of a group member while another member of its group is
  still being evacuated, and ``timeline`` the order of evacuate calls and arrivals.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable

from petguard.cloud import (
    ActionEvent,
    GroupPolicy,
    HintKind,
    Migration,
    RequestTrace,
    Server,
    ServerGroup,
    ServiceRecord,
    TargetHint,
)
from petguard.compute import usable_hosts
from petguard.errors import NotFound, NovaConflict, NovaError, NovaUnavailable


class FakeClock:
    """Time advances only through ``sleep``/``advance``; ``sleep`` never blocks."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclasses.dataclass
class _Service:
    host: str
    id: str
    status: str = "enabled"
    forced_down: bool = False
    disabled_reason: str | None = None


@dataclasses.dataclass
class _Evacuation:
    migration: Migration
    steps_left: int
    broken: bool = False
    lost: bool = False  # nova-conductor never got it: no progress, ever
    requested_host: str | None = None


#: Nova's default availability zone (hosts in no aggregate with an availability_zone are in it).
DEFAULT_ZONE = "nova"


class FakeCompute:
    """An in-memory Nova at petguard's Compute seam. Thread-safe."""

    def __init__(self, hosts: list[str], evacuation_steps: int = 3) -> None:
        self._lock = threading.RLock()
        self.services = {h: _Service(h, f"svc-{h}") for h in hosts}
        self.dead: set[str] = set()
        self.is_alive: Callable[[str], bool] | None = None  # overrides ``dead`` (e.g. a BMC's power)
        self.servers: dict[str, Server] = {}
        self.evacuations: dict[str, _Evacuation] = {}
        self.migrations: list[Migration] = []
        self.evacuate_calls: dict[str, int] = {}
        self.reboots: list[tuple[str, bool]] = []
        self.calls: dict[str, int] = {}
        self.evacuation_steps = evacuation_steps
        self.unavailable = False  # every call raises NovaUnavailable (control-plane outage)
        self.lose_evacuate_response = False  # evacuate is accepted, then the reply is lost
        self._ids = itertools.count(1)
        self._next_target = 0
        self.groups: dict[str, ServerGroup] = {}
        self.group_overlaps: list[tuple[str, str, str]] = []  # (group id, server evacuated, member in flight)
        self.timeline: list[tuple[str, str]] = []  # ("evacuate" | "arrived", server id), in order
        self.aggregates: dict[str, tuple[frozenset[str], str | None]] = {}  # name -> (hosts, zone)
        self.refuse_targets: set[str] = set()  # hosts the scheduler refuses as a requested target
        # server id -> how many more of its evacuations the destination's late server-group check
        # bounces (the scheduler chose from a stale view of where the group's members are)
        self.late_group_check_bounces: dict[str, int] = {}
        self.evacuate_hosts: list[tuple[str, str | None]] = []  # (server id, host asked for), in order
        # control-plane faults (evacuate.outage): placement silent; the next N evacuate requests
        # answered with this error (nova-api's 500 while Keystone is down); the scheduler's step of
        # the next evacuations ending with this fault (nova-conductor's MessagingTimeout); requests
        # taken and then lost between nova-api and nova-conductor (migration 'accepted' for ever)
        self.placement_down = False
        #: host -> its updated_at, standing still while Nova still reports it up (a hung nova-compute or a
        #: stuck conductor, within Nova's service_down_time)
        self.stalled: dict[str, float] = {}
        self.admin_updates: dict[str, float] = {}  # host -> when its service was last changed by an API call
        self.evacuate_errors: list[Exception] = []
        self.scheduler_faults: list[str] = []
        self.lose_requests: set[str] = set()
        # servers whose next evacuate nova-conductor fails (Keystone gone: ConnectFailure) after
        # nova-api took it: migration 'accepted' and task 'rebuilding' for ever, the instance
        # action's conductor event 'rebuild_server' finished with Error, no compute event
        self.conductor_failures: set[str] = set()
        self.actions: dict[str, list[RequestTrace]] = {}  # server id -> Nova's record of each request, oldest first
        self.resets: list[str] = []  # servers reset with os-resetState, in order

    # -- test helpers -----------------------------------------------------------------------------
    def add_server(
        self,
        name: str,
        host: str,
        *,
        vm_state: str = "active",
        metadata: dict[str, str] | None = None,
        **fields: object,
    ) -> Server:
        status = {"active": "ACTIVE", "stopped": "SHUTOFF", "error": "ERROR", "paused": "PAUSED"}.get(
            vm_state, vm_state.upper()
        )
        power = 1 if vm_state == "active" else 4
        server = Server(
            id=f"{name}-id",
            name=name,
            host=host,
            status=status,
            vm_state=vm_state,
            power_state=power,
            metadata=metadata or {},
            **fields,
        )  # type: ignore[arg-type]
        self.servers[server.id] = server
        return server

    def add_group(self, name: str, policy: str, members: list[Server]) -> ServerGroup:
        """A server group of ``members`` (Nova's group id ``<name>-gid``)."""
        group = ServerGroup(f"{name}-gid", name, GroupPolicy(policy), frozenset(m.id for m in members))
        self.groups[group.id] = group
        return group

    def add_aggregate(self, name: str, hosts: list[str], zone: str | None = None) -> None:
        self.aggregates[name] = (frozenset(hosts), zone)

    def _zone_of(self, host: str) -> str:
        zones = sorted(z for hosts, z in self.aggregates.values() if z is not None and host in hosts)
        return zones[0] if zones else DEFAULT_ZONE

    def _group_of(self, server_id: str) -> ServerGroup | None:
        return next((g for g in self.groups.values() if server_id in g.members), None)

    def alive(self, host: str) -> bool:
        if self.is_alive is not None:
            return self.is_alive(host)
        return host not in self.dead

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.unavailable:
            raise NovaUnavailable("nova is unreachable (fake outage)")

    def _req(self) -> str:
        return f"req-{next(self._ids):08d}"

    def _up(self, host: str) -> bool:
        service = self.services[host]
        return self.alive(host) and not service.forced_down

    # -- Compute -----------------------------------------------------------------------------------
    def list_services(self) -> list[ServiceRecord]:
        with self._lock:
            self._count("list_services")
            return [
                ServiceRecord(
                    host=s.host,
                    service_id=s.id,
                    state="up" if self._up(s.host) else "down",
                    status=s.status,
                    forced_down=s.forced_down,
                    # a dead host's record changes only with an operator's (petguard's) update, as in Nova
                    updated_at=self._updated_at(s.host),
                    disabled_reason=s.disabled_reason,
                )
                for s in self.services.values()
            ]

    def _updated_at(self, host: str) -> float | None:
        """A live host heartbeats (unless stalled); a dead one's record changes only with an API update."""
        admin = self.admin_updates.get(host)
        if not self.alive(host):
            return admin
        if host in self.stalled:
            return max(self.stalled[host], admin or 0.0)
        return time.time()

    def servers_on(self, host: str) -> list[Server]:
        with self._lock:
            self._count("servers_on")
            return [dataclasses.replace(s, group=self._group_of(s.id)) for s in self.servers.values() if s.host == host]

    def get_server(self, server_id: str) -> Server:
        with self._lock:
            self._count("get_server")
            if server_id not in self.servers:
                raise NotFound(f"server {server_id} not found")
            self._progress(server_id)
            return self.servers[server_id]

    def evacuations_from(self, host: str, since: float | None = None) -> list[Migration]:
        with self._lock:
            self._count("evacuations_from")
            self._clean_up_returned_sources()
            return [m for m in self.migrations if m.source_host == host and (since is None or m.created_at >= since)]

    def force_down(self, service: ServiceRecord) -> str:
        with self._lock:
            self._count("force_down")
            self.admin_updates[service.host] = time.time()
            self.services[service.host].forced_down = True
            return self._req()

    def unforce_down(self, service: ServiceRecord) -> str:
        with self._lock:
            self._count("unforce_down")
            self._clean_up_returned_sources()
            if any(m.source_host == service.host and m.status == "done" for m in self.migrations):
                # Nova 34 refuses while the source has not cleaned up its evacuated guests.
                raise NovaError(f"Compute service of {service.host} has 'done' evacuation migrations (HTTP 400)")
            self.services[service.host].forced_down = False
            return self._req()

    def disable(self, service: ServiceRecord, reason: str) -> str:
        with self._lock:
            self._count("disable")
            svc_now = self.services[service.host]
            if not svc_now.forced_down and not self.alive(service.host):
                # Nova still believes a freshly dead compute is up and calls it synchronously.
                raise AssertionError(
                    "disable of a dead service that is not forced down blocks for 60 s: force it down first"
                )
            svc = self.services[service.host]
            self.admin_updates[service.host] = time.time() + 0.001
            svc.status, svc.disabled_reason = "disabled", reason
            return self._req()

    def enable(self, service: ServiceRecord) -> str:
        with self._lock:
            self._count("enable")
            svc = self.services[service.host]
            svc.status, svc.disabled_reason = "enabled", None
            return self._req()

    def check_placement(self) -> str:
        with self._lock:
            self._count("check_placement")
            if self.placement_down:
                raise NovaUnavailable("ask placement whether it answers: cannot reach the cloud (fake)")
            return self._req()

    def aggregates_of(self, host: str) -> frozenset[str]:
        with self._lock:
            self._count("aggregates_of")
            return frozenset(name for name, (hosts, _) in self.aggregates.items() if host in hosts)

    def candidate_hosts(self, hint: TargetHint, source: str) -> list[str]:
        with self._lock:
            self._count("candidate_hosts")
            if hint.kind is HintKind.AGGREGATE:
                if hint.name not in self.aggregates:
                    raise NotFound(f"Nova has no host aggregate named {hint.name!r} (fake)")
                members = set(self.aggregates[hint.name][0])
            elif hint.kind is HintKind.AZ:
                members = {h for h in self.services if self._zone_of(h) == hint.name}
                if not members:
                    raise NotFound(f"Nova lists no availability zone named {hint.name!r} (fake)")
            else:
                return []
            return usable_hosts(members, self.list_services(), source)

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        with self._lock:
            self._count("evacuate")
            server = self.servers[server_id]
            assert server.host is not None
            if self._up(server.host):
                raise NovaConflict(f"Compute service of {server.host} is still in use.")
            if host is not None and host not in self.services:
                raise NotFound(f"Compute host {host} could not be found. (HTTP 404) (fake)")
            if host == server.host:
                raise NovaError("The target host can't be the same one. (HTTP 400) (fake)", status=400)
            if self.evacuate_errors:
                raise self.evacuate_errors.pop(0)
            self.evacuate_hosts.append((server_id, host))
            self.evacuate_calls[server_id] = self.evacuate_calls.get(server_id, 0) + 1
            if server_id in self.evacuations and self.evacuations[server_id].steps_left > 0:
                self.evacuations[server_id].broken = True  # what a real Nova does with a 2nd evacuate
            group = self._group_of(server_id)
            if group is not None:
                for other in sorted(group.members - {server_id}):
                    if other in self.evacuations and self.evacuations[other].steps_left > 0:
                        self.group_overlaps.append((group.id, server_id, other))
            self.timeline.append(("evacuate", server_id))
            seq = next(self._ids)
            migration = Migration(f"mig-{seq}", server_id, server.host, host, "accepted", time.time(), seq=seq)
            self.migrations.append(migration)
            self.evacuations[server_id] = _Evacuation(migration, self.evacuation_steps, requested_host=host)
            if server_id in self.lose_requests:
                self.lose_requests.discard(server_id)
                self.evacuations[server_id].lost = True
            events: tuple[ActionEvent, ...] = (
                ActionEvent("rebuild_server", True, "Success"),
                ActionEvent("compute_rebuild_instance", False),
            )
            if server_id in self.conductor_failures:
                self.conductor_failures.discard(server_id)
                self.evacuations[server_id].lost = True
                events = (ActionEvent("rebuild_server", True, "Error"),)
            elif self.evacuations[server_id].lost:
                events = ()  # nova-conductor never got it: only nova-api's record of the action
            self.servers[server_id] = dataclasses.replace(server, task_state="rebuilding")
            request_id = self._req()
            self.actions.setdefault(server_id, []).append(RequestTrace(request_id, "evacuate", events))
            if self.lose_evacuate_response:
                raise NovaUnavailable("timed out waiting for Nova's reply (fake)")
            return request_id

    def latest_request(self, server_id: str, action: str) -> RequestTrace | None:
        with self._lock:
            self._count("latest_request")
            if server_id not in self.servers:
                raise NotFound(f"server {server_id} not found")
            return next((t for t in reversed(self.actions.get(server_id, [])) if t.action == action), None)

    def reset_state(self, server_id: str) -> str:
        with self._lock:
            self._count("reset_state")
            self.resets.append(server_id)
            s = self.servers[server_id]
            self.servers[server_id] = dataclasses.replace(s, vm_state="active", status="ACTIVE", task_state=None)
            return self._req()

    def start_server(self, server_id: str) -> str:
        with self._lock:
            self._count("start_server")
            s = self.servers[server_id]
            self.servers[server_id] = dataclasses.replace(s, vm_state="active", status="ACTIVE", power_state=1)
            return self._req()

    def stop_server(self, server_id: str) -> str:
        with self._lock:
            self._count("stop_server")
            s = self.servers[server_id]
            self.servers[server_id] = dataclasses.replace(s, vm_state="stopped", status="SHUTOFF", power_state=4)
            return self._req()

    def reboot_server(self, server_id: str, hard: bool = True) -> str:
        with self._lock:
            self._count("reboot_server")
            s = self.servers[server_id]
            self.reboots.append((server_id, hard))
            self.servers[server_id] = dataclasses.replace(s, vm_state="active", status="ACTIVE", power_state=1)
            return self._req()

    def _clean_up_returned_sources(self) -> None:
        """A source host that is alive again destroys its evacuated guests: 'done' -> 'completed'."""
        for i, migration in enumerate(self.migrations):
            if migration.status == "done" and self.alive(migration.source_host):
                self.migrations[i] = dataclasses.replace(migration, status="completed")
                for evac in self.evacuations.values():
                    if evac.migration.id == migration.id:
                        evac.migration = self.migrations[i]

    # -- evacuation progress ------------------------------------------------------------------------
    def _set_migration(self, evac: _Evacuation, status: str, dest: str | None) -> None:
        old = evac.migration
        new = dataclasses.replace(old, status=status, dest_host=dest)
        self.migrations[self.migrations.index(old)] = new
        evac.migration = new

    def _pick_target(self, source: str) -> str | None:
        if self.placement_down:  # the scheduler's NoValidHost: "Placement API service is not responding"
            return None
        candidates = sorted(
            h for h, s in self.services.items() if h != source and self._up(h) and s.status == "enabled"
        )
        if not candidates:
            return None
        self._next_target += 1
        return candidates[self._next_target % len(candidates)]

    def _scheduler_takes(self, server_id: str, host: str) -> bool:
        """The scheduler's filters on a requested host: ComputeFilter (up, enabled), the test's own
        refusals, and ServerGroupAntiAffinityFilter (no other member of the group on it)."""
        if not self._up(host) or self.services[host].status != "enabled" or host in self.refuse_targets:
            return False
        group = self._group_of(server_id)
        if group is None or group.policy is not GroupPolicy.ANTI_AFFINITY:
            return True
        return not any(self.servers[m].host == host for m in group.members - {server_id} if m in self.servers)

    def _progress(self, server_id: str) -> None:
        evac = self.evacuations.get(server_id)
        if evac is None or evac.steps_left <= 0 or evac.lost:
            return
        evac.steps_left -= 1
        server = self.servers[server_id]
        if evac.broken:
            self.servers[server_id] = dataclasses.replace(
                server,
                vm_state="error",
                status="ERROR",
                task_state=None,
                fault="UnexpectedTaskStateError: double evacuation",
            )
            self._set_migration(evac, "failed", None)
            evac.steps_left = 0
            return
        if evac.steps_left == 1 and self.late_group_check_bounces.get(server_id, 0) > 0:
            self.late_group_check_bounces[server_id] -= 1
            self.servers[server_id] = dataclasses.replace(
                server,
                vm_state="error",
                status="ERROR",
                task_state=None,
                fault="Anti-affinity instance group policy was violated.",
            )
            self._set_migration(evac, "failed", self._pick_target(evac.migration.source_host))
            evac.steps_left = 0
            return
        if evac.steps_left == 1 and self.scheduler_faults:
            fault = self.scheduler_faults.pop(0)
            self.servers[server_id] = dataclasses.replace(
                server, vm_state="error", status="ERROR", task_state=None, fault=fault
            )
            self._set_migration(evac, "error", None)
            evac.steps_left = 0
            return
        if evac.steps_left == 1:
            if evac.requested_host is not None:
                target = evac.requested_host if self._scheduler_takes(server_id, evac.requested_host) else None
            else:
                target = self._pick_target(evac.migration.source_host)
            if target is None:
                self.servers[server_id] = dataclasses.replace(
                    server, vm_state="error", status="ERROR", task_state=None, fault="No valid host was found."
                )
                self._set_migration(evac, "error", None)
                evac.steps_left = 0
                return
            # Nova shows the server ACTIVE on the OLD host for a moment before it moves.
            state = server.vm_state if server.vm_state != "error" else "active"
            self.servers[server_id] = dataclasses.replace(
                server, task_state=None, vm_state=state, status={"active": "ACTIVE", "stopped": "SHUTOFF"}[state]
            )
            self._set_migration(evac, "pre-migrating", target)
        elif evac.steps_left == 0:
            target = evac.migration.dest_host
            self.servers[server_id] = dataclasses.replace(server, host=target)
            self._set_migration(evac, "done", target)
            self.timeline.append(("arrived", server_id))
