"""Nova's vocabulary as petguard's own values, and the plan petguard makes for a failed host (pure).

The words every layer shares: a compute service (``ServiceRecord``), an evacuation's migration
record (``Migration``), a server and its group (``Server``, ``ServerGroup``), where an operator wants
a pet to go (``TargetHint``), and the plan for a failed host's servers (``Plan``: ``Move`` and
``Skip``). The Nova adapter (``petguard.nova``) builds them from openstacksdk objects; nothing past
the adapter ever sees an SDK object. Nothing here does I/O or imports another petguard module, so
any module may import it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping


# -- compute services -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ServiceRecord:
    """Nova's record of one nova-compute service, as the Nova adapter reads it."""

    host: str
    service_id: str
    state: str  # "up" | "down", computed by Nova from the last heartbeat (and forced_down)
    status: str  # "enabled" | "disabled"
    forced_down: bool
    updated_at: float | None = None
    disabled_reason: str | None = None


# -- evacuations ----------------------------------------------------------------------------------
#: Migration statuses after which an evacuation is final.
MIGRATION_SUCCEEDED = frozenset({"done", "completed"})
MIGRATION_FAILED = frozenset({"error", "failed", "cancelled"})
MIGRATION_IN_FLIGHT = frozenset({"accepted", "pre-migrating", "migrating", "running", "queued", "preparing"})


@dataclasses.dataclass(frozen=True)
class Migration:
    """One Nova migration record of type evacuation."""

    id: str
    server_id: str
    source_host: str
    dest_host: str | None
    status: str
    created_at: float
    #: Nova's integer id: it grows with every migration, so it orders two migrations that Nova
    #: stamped in the same second (``id`` is the uuid at the microversion petguard reads, random)
    seq: int = 0

    @property
    def in_flight(self) -> bool:
        return self.status in MIGRATION_IN_FLIGHT

    @property
    def succeeded(self) -> bool:
        return self.status in MIGRATION_SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.status in MIGRATION_FAILED


@dataclasses.dataclass(frozen=True)
class ActionEvent:
    """One event of a Nova instance action: a service's step of a request (``rebuild_server`` is
    nova-conductor's part of an evacuation, ``compute_rebuild_instance`` the destination compute's)."""

    name: str
    finished: bool
    result: str | None = None  # "Success" | "Error" once finished


@dataclasses.dataclass(frozen=True)
class RequestTrace:
    """What Nova's instance-action record (``os-instance-actions/{request_id}``) says of one request."""

    request_id: str
    action: str
    events: tuple[ActionEvent, ...] = ()
    started_at: float | None = None  # Nova's start_time of the request (Nova's clock), when it says


# -- servers --------------------------------------------------------------------------------------
class GroupPolicy(enum.StrEnum):
    """A Nova server group's policy (microversion >= 2.64 names one per group)."""

    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"


@dataclasses.dataclass(frozen=True)
class ServerGroup:
    """The server group a server belongs to (Nova allows at most one), with every member's id."""

    id: str
    name: str
    policy: GroupPolicy
    members: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Server:
    """A Nova server as the planner needs it (built by the Nova adapter, never an SDK object)."""

    id: str
    name: str
    host: str | None
    status: str  # Nova's status: ACTIVE, SHUTOFF, ERROR, PAUSED ...
    vm_state: str
    task_state: str | None = None
    power_state: int = 0
    locked: bool = False
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    flavor_extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    image_properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    project_id: str = ""
    fault: str = ""  # Nova's fault message, if any (why a server is in ERROR)
    group: ServerGroup | None = None  # filled in by ``servers_on`` only (not by ``get_server``)
    image_id: str | None = None  # the image it booted from; None: booted from a volume
    addresses: tuple[str, ...] = ()  # fixed IP addresses, in Nova's order (readiness checks go to the first)


class PowerGoal(enum.StrEnum):
    """The power state a pet must end in on its new host."""

    RUNNING = "running"
    STOPPED = "stopped"


class HintKind(enum.StrEnum):
    """What a target hint points at."""

    AGGREGATE = "aggregate"
    AZ = "az"
    RESERVED = "reserved"


@dataclasses.dataclass(frozen=True)
class TargetHint:
    """One parsed hint; ``name`` is the aggregate or zone ("" for ``reserved``)."""

    kind: HintKind
    name: str = ""

    def __str__(self) -> str:
        return self.kind.value if self.kind is HintKind.RESERVED else f"{self.kind.value}:{self.name}"


# -- the plan for a failed host's servers ----------------------------------------------------------
class PetClass(enum.StrEnum):
    """What kind of pet a server is, for its evacuation (a pet is in one storage class, maybe also DEVICES)."""

    BOOT_FROM_VOLUME = "boot_from_volume"  # root disk is a Cinder volume: safe to rebuild elsewhere
    SHARED_DISK = "shared_disk"  # boots from an image onto shared storage ([evacuation] shared_storage)
    LOCAL_DISK = "local_disk"  # boots from an image onto the host's disk: an evacuation loses its content
    DEVICES = "devices"  # PCI passthrough, vGPU, ...: needs a host that has them


@dataclasses.dataclass(frozen=True)
class Move:
    """One planned evacuation of one pet."""

    server_id: str
    server_name: str
    priority: int
    original_status: str
    power_goal: PowerGoal
    tier: int = 0
    wave: int = 0  # every move of a lower wave is final before this one starts
    classes: tuple[PetClass, ...] = ()
    hint: str = ""  # the target hint it follows ("aggregate:NAME", "az:NAME", "reserved"); "": the scheduler's
    hint_source: str = ""  # which rule gave the hint
    hint_note: str = ""  # why a hint that was asked for is not followed


@dataclasses.dataclass(frozen=True)
class Skip:
    """A server left on the failed host, and why."""

    server_id: str
    server_name: str
    reason: str
    classes: tuple[PetClass, ...] = ()  # empty for servers that are not pets
    alert: bool = False  # a pet left behind: an operator must act


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with every server of one failed host."""

    host: str
    moves: tuple[Move, ...]
    skipped: tuple[Skip, ...]
