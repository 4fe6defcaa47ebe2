"""The capacity check: could the cloud take the pets of any one host if that host failed now? (pure domain)

Inputs, per compute host (built by the adapter ``petguard.nova.placement``): its placement
inventory of ``VCPU``, ``MEMORY_MB`` and ``DISK_GB`` (total, reserved, allocation_ratio, max_unit)
and its usage; whether it can take servers (Nova service up, enabled, not forced down, not in
petguard maintenance); whether it is a reserved failover host (``[evacuation] reserved_hosts``: kept
disabled in Nova, petguard may enable it to take pets, so its free room counts although it is
disabled); and its servers with their flavors' resources.

For each host H with pets (the servers ``petguard.evacuate.plan.plan`` would move: the same selector,
state and class rules, not a copy of them), ``check`` asks: do H's pets fit on the other hosts that
can take servers, plus the reserved hosts? Free room per host and resource is placement's own rule,
``(total - reserved) * allocation_ratio - used``, and no pet may ask more than the host's ``max_unit``.
The pets are packed **first-fit decreasing** (largest memory first, then vCPUs, then disk; each into
the first host by name with room that its hard server group allows): an approximation of Nova's
scheduler, which sees more (filters, weighers, devices) and places one server at a time in the
evacuation's order, so in tight cases either can succeed where the other fails. What FFD does not model is listed in
docs/evacuation.md ("Capacity check").

The result (``CapacityReport``) says, per host with pets, whether they fit and what is short; the
worst host (the one with the most pet resources); and a verdict: ``ok`` (every host's pets fit),
``short`` (at least one host's do not) or ``unknown`` (Nova or placement could not be read).

No I/O, no clock, no config: the caller passes the facts, the policy and ``at``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping

from petguard.cloud import GroupPolicy, Server
from petguard.evacuate.plan import EvacuationPolicy, plan

VCPU = "VCPU"
MEMORY_MB = "MEMORY_MB"
DISK_GB = "DISK_GB"
#: The resource classes the check counts, in the order they are shown.
RESOURCE_CLASSES = (VCPU, MEMORY_MB, DISK_GB)
_UNITS = {VCPU: "", MEMORY_MB: " MiB", DISK_GB: " GiB"}


class Verdict(enum.StrEnum):
    """The cloud-wide answer of one check."""

    OK = "ok"
    SHORT = "short"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one server takes from placement, or a sum of that."""

    vcpu: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def amount(self, resource_class: str) -> int:
        return {VCPU: self.vcpu, MEMORY_MB: self.memory_mb, DISK_GB: self.disk_gb}[resource_class]

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.vcpu + other.vcpu, self.memory_mb + other.memory_mb, self.disk_gb + other.disk_gb)

    def size_key(self) -> tuple[int, int, int]:
        """Bigger first in first-fit decreasing and for the worst host: memory, then vCPUs, then disk
        (memory is what usually runs out: it is rarely overcommitted, vCPUs are)."""
        return (self.memory_mb, self.vcpu, self.disk_gb)

    def describe(self) -> str:
        return f"{self.vcpu} vCPU / {_memory(self.memory_mb)} RAM / {self.disk_gb} GiB disk"


def flavor_resources(
    vcpus: int,
    ram_mb: int,
    root_gb: int,
    ephemeral_gb: int = 0,
    swap_mb: int = 0,
    *,
    boot_from_volume: bool = False,
    extra_specs: Mapping[str, str] | None = None,
) -> Resources:
    """What Nova asks placement for a server of this flavor (nova.scheduler.utils.resources_from_flavor):
    DISK_GB is root + ephemeral + swap rounded up to GiB, without the root disk for a server booted
    from a volume; a flavor extra spec ``resources:VCPU`` (``MEMORY_MB``, ``DISK_GB``) replaces the
    amount. An extra spec that is not a whole number is ignored, as Nova ignores it."""
    disk = (0 if boot_from_volume else root_gb) + ephemeral_gb + math.ceil(swap_mb / 1024)
    amounts = {VCPU: vcpus, MEMORY_MB: ram_mb, DISK_GB: disk}
    for resource_class in RESOURCE_CLASSES:
        override = (extra_specs or {}).get(f"resources:{resource_class}")
        if override is not None and override.strip().isdigit():
            amounts[resource_class] = int(override.strip())
    return Resources(amounts[VCPU], amounts[MEMORY_MB], amounts[DISK_GB])


@dataclasses.dataclass(frozen=True)
class Inventory:
    """One resource class of one resource provider, as placement reports it."""

    total: int
    reserved: int = 0
    allocation_ratio: float = 1.0
    max_unit: int | None = None  # None: as large as total

    def capacity(self) -> float:
        """What placement lets be allocated in all: (total - reserved) * allocation_ratio."""
        return (self.total - self.reserved) * self.allocation_ratio

    def largest_unit(self) -> int:
        return self.total if self.max_unit is None else self.max_unit


@dataclasses.dataclass(frozen=True)
class PlacedServer:
    """A server on a host with the resources its flavor takes."""

    server: Server
    resources: Resources


@dataclasses.dataclass(frozen=True)
class HostCapacity:
    """Everything the check knows about one compute host."""

    name: str
    inventories: Mapping[str, Inventory] = dataclasses.field(default_factory=dict)
    usage: Mapping[str, int] = dataclasses.field(default_factory=dict)
    service_up: bool = True
    enabled: bool = True
    forced_down: bool = False
    maintenance: bool = False  # petguard's maintenance state
    reserved: bool = False  # a reserved failover host ([evacuation] reserved_hosts)
    servers: tuple[PlacedServer, ...] = ()

    def free(self, resource_class: str) -> float:
        """Room left for new allocations (0 without an inventory of that class)."""
        inventory = self.inventories.get(resource_class)
        if inventory is None:
            return 0.0
        return inventory.capacity() - self.usage.get(resource_class, 0)


def unusable_reason(host: HostCapacity) -> str | None:
    """Why ``host`` cannot take the pets of a failed host, or None if it can. A reserved host may be
    disabled (petguard enables it when it needs it), nothing else."""
    if not host.service_up:
        return "its nova-compute is down"
    if host.forced_down:
        return "its nova-compute is forced down"
    if host.maintenance:
        return "it is in petguard maintenance"
    if not host.enabled and not host.reserved:
        return "its nova-compute is disabled"
    if not host.inventories:
        return "placement has no inventory for it"
    return None


def pets_of(host: HostCapacity, policy: EvacuationPolicy) -> list[PlacedServer]:
    """The servers of ``host`` its evacuation would move (``plan.plan``'s moves), with their resources."""
    moved = {move.server_id for move in plan(host.name, [s.server for s in host.servers], policy).moves}
    return [placed for placed in host.servers if placed.server.id in moved]


@dataclasses.dataclass(frozen=True)
class HostVerdict:
    """Whether the pets of one host fit elsewhere, and what is short if they do not."""

    host: str
    pets: int
    need: Resources
    unplaced: tuple[str, ...] = ()  # names of the pets first-fit decreasing found no host for
    missing: Mapping[str, int] = dataclasses.field(default_factory=dict)  # resource class -> amount

    @property
    def ok(self) -> bool:
        return not self.unplaced

    def summary(self) -> str:
        """One line, e.g. ``cmp2: 3 pets, 12 vCPU / 24 GiB RAM / 60 GiB disk; short: MEMORY_MB 8192 MiB missing``."""
        head = f"{self.host}: {self.pets} pet{'s' if self.pets != 1 else ''}, {self.need.describe()}"
        if self.ok:
            return f"{head}; fits on the other hosts"
        parts = [f"{rc} {amount}{_UNITS[rc]} missing" for rc, amount in self.missing.items()]
        if not parts:
            parts.append(
                "enough room in total, but not on any single host (max_unit, server group rules or fragmentation)"
            )
        return f"{head}; short: {', '.join(parts)}; no room for {len(self.unplaced)}: {', '.join(self.unplaced)}"


@dataclasses.dataclass(frozen=True)
class CapacityReport:
    """The result of one check (or of none yet)."""

    verdict: Verdict
    checked_at: float | None
    hosts: tuple[HostVerdict, ...] = ()  # every host with pets, by name
    worst: HostVerdict | None = None
    reason: str = ""  # unknown: why
    not_counted: Mapping[str, str] = dataclasses.field(default_factory=dict)  # host -> why it takes no pets

    @classmethod
    def unknown(cls, reason: str, at: float | None = None) -> CapacityReport:
        return cls(Verdict.UNKNOWN, at, reason=reason)

    @property
    def short(self) -> tuple[HostVerdict, ...]:
        return tuple(h for h in self.hosts if not h.ok)

    def summary(self) -> str:
        """One line for an operator: the verdict and the worst host, or what is short."""
        if self.verdict is Verdict.UNKNOWN:
            return f"unknown: {self.reason}"
        if self.verdict is Verdict.SHORT:
            return f"short: the pets of {', '.join(h.host for h in self.short)} would not all find room elsewhere"
        if self.worst is None:
            return "ok: no host has pets"
        return f"ok: the pets of any one host fit on the others; largest: {self.worst.summary()}"

    def details(self) -> str:
        """The summary, what each short host lacks, and the hosts not counted (for logs and alerts)."""
        excluded = [f"{host} ({why})" for host, why in self.not_counted.items()]
        tail = [f"not counted as room: {', '.join(excluded)}"] if excluded else []
        return "; ".join([self.summary(), *(h.summary() for h in self.short), *tail])


def fit(pets: Iterable[PlacedServer], targets: Iterable[HostCapacity]) -> tuple[list[PlacedServer], dict[str, float]]:
    """First-fit decreasing: each pet, largest first, goes to the first target (by name) where every
    resource it asks for is within max_unit and free room, and its hard server group allows it (see
    ``group_allows``). Returns the pets that found no target and the free room left on all targets
    together, per resource class."""
    bins = sorted(targets, key=lambda h: h.name)
    free = [{rc: host.free(rc) for rc in RESOURCE_CLASSES} for host in bins]
    groups = [{p.server.group.id for p in host.servers if p.server.group is not None} for host in bins]
    unplaced: list[PlacedServer] = []
    for pet in sorted(pets, key=lambda p: (tuple(-n for n in p.resources.size_key()), p.server.name, p.server.id)):
        for host, room, present in zip(bins, free, groups, strict=True):
            if group_allows(pet.server, present) and _fits(pet.resources, host, room):
                for rc in RESOURCE_CLASSES:
                    room[rc] -= pet.resources.amount(rc)
                if pet.server.group is not None:
                    present.add(pet.server.group.id)
                break
        else:
            unplaced.append(pet)
    left = {rc: sum(room[rc] for room in free) for rc in RESOURCE_CLASSES}
    return unplaced, left


def group_allows(server: Server, groups_on_target: set[str]) -> bool:
    """Nova's hard group rules for a target holding servers of ``groups_on_target``: an anti-affinity
    member never joins another member; a hard-affinity member only goes where a member is (the plan
    already leaves behind the groups whose members are all on the failed host). Soft policies only
    weigh, they never refuse."""
    group = server.group
    if group is None:
        return True
    if group.policy is GroupPolicy.ANTI_AFFINITY:
        return group.id not in groups_on_target
    if group.policy is GroupPolicy.AFFINITY:
        return group.id in groups_on_target
    return True


def _fits(need: Resources, host: HostCapacity, room: Mapping[str, float]) -> bool:
    for rc in RESOURCE_CLASSES:
        amount = need.amount(rc)
        if amount <= 0:
            continue
        inventory = host.inventories.get(rc)
        if inventory is None or amount > inventory.largest_unit() or amount > room[rc]:
            return False
    return True


def check_host(host: HostCapacity, pets: list[PlacedServer], targets: Iterable[HostCapacity]) -> HostVerdict:
    """Whether ``pets`` of ``host`` fit on ``targets``; what is missing is the unplaced pets' need
    beyond the room FFD left (zero for a resource whose room is there but split across hosts)."""
    need = sum((p.resources for p in pets), Resources())
    unplaced, left = fit(pets, targets)
    if not unplaced:
        return HostVerdict(host.name, len(pets), need)
    still = sum((p.resources for p in unplaced), Resources())
    missing = {rc: math.ceil(still.amount(rc) - max(left[rc], 0.0)) for rc in RESOURCE_CLASSES}
    return HostVerdict(
        host.name,
        len(pets),
        need,
        unplaced=tuple(p.server.name or p.server.id for p in unplaced),
        missing={rc: amount for rc, amount in missing.items() if amount > 0},
    )


def check(hosts: Iterable[HostCapacity], policy: EvacuationPolicy, at: float) -> CapacityReport:
    """For every host with pets: would they fit on the other usable hosts and the reserved hosts?"""
    hosts = sorted(hosts, key=lambda h: h.name)
    not_counted = {h.name: why for h in hosts if (why := unusable_reason(h)) is not None}
    usable = [h for h in hosts if h.name not in not_counted]
    verdicts: list[HostVerdict] = []
    for host in hosts:
        pets = pets_of(host, policy)
        if pets:
            verdicts.append(check_host(host, pets, [t for t in usable if t.name != host.name]))
    worst = max(verdicts, key=lambda v: (v.need.size_key(), v.host), default=None)
    verdict = Verdict.OK if all(v.ok for v in verdicts) else Verdict.SHORT
    return CapacityReport(verdict, at, tuple(verdicts), worst, not_counted=not_counted)


def alert_for(last_alerted: Verdict | None, report: CapacityReport) -> str | None:
    """The event kind to record for ``report`` given the verdict the last alert was about:
    ``capacity_short`` when it turns short (also on a first check), ``capacity_ok`` when a short
    cloud recovers; None otherwise. An unknown check changes nothing: it is not news about capacity."""
    if report.verdict is Verdict.SHORT and last_alerted is not Verdict.SHORT:
        return "capacity_short"
    if report.verdict is Verdict.OK and last_alerted is Verdict.SHORT:
        return "capacity_ok"
    return None


def _memory(memory_mb: int) -> str:
    """``24 GiB``, ``1.5 GiB``; below 1 GiB in MiB (``448 MiB``, not ``0.4 GiB``)."""
    if memory_mb < 1024:
        return f"{memory_mb} MiB"
    value = memory_mb / 1024
    return f"{value:.0f} GiB" if value.is_integer() else f"{value:.1f} GiB"
