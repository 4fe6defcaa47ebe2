"""Evacuation planning: which servers of a fenced host are pets, in what order, and why the rest stay (pure).

A server is a pet when any configured selector matches it and no explicit opt-out does:

* ``petguard`` — server metadata ``petguard:pet`` = true (false is an explicit opt-out);
* ``masakari`` — server metadata ``HA_Enabled`` = True (Masakari's convention; False opts out);
* ``evacuable_tag`` / ``evacuable_flavor`` / ``evacuable_image`` — Red Hat's instance-HA convention:
  a server tag ``evacuable``, a flavor extra spec ``evacuable`` = true, an image property
  ``evacuable`` = true;
* ``all`` — every server is a pet (for clouds that want everything back).

Pets are ordered by ``petguard:priority`` (an integer, higher first), then by name. Every server that
is not moved gets a reason. The plan also records the power state each pet must end in, because
Nova (microversion >= 2.95) leaves an evacuated server stopped, and ERROR servers come back running.

No I/O here: the Nova adapter builds ``Server`` values, the runner carries out the ``Plan``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

PET_KEY = "petguard:pet"
PRIORITY_KEY = "petguard:priority"
MASAKARI_KEY = "HA_Enabled"
EVACUABLE = "evacuable"

#: Nova only evacuates servers whose vm_state is one of these.
EVACUABLE_VM_STATES = frozenset({"active", "stopped", "error"})
#: Nova power_state 1 = RUNNING.
POWER_RUNNING = 1

SELECTORS = ("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image", "all")


class PowerGoal(enum.StrEnum):
    """The power state a pet must end in on its new host."""

    RUNNING = "running"
    STOPPED = "stopped"


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


@dataclasses.dataclass(frozen=True)
class EvacuationPolicy:
    """Which servers are pets and how they are moved; built from config."""

    selectors: tuple[str, ...] = ("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image")
    evacuate_locked: bool = False
    max_parallel: int = 4


@dataclasses.dataclass(frozen=True)
class Move:
    """One planned evacuation of one pet."""

    server_id: str
    server_name: str
    priority: int
    original_status: str
    power_goal: PowerGoal


@dataclasses.dataclass(frozen=True)
class Skip:
    """A server left on the failed host, and why."""

    server_id: str
    server_name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with every server of one failed host."""

    host: str
    moves: tuple[Move, ...]
    skipped: tuple[Skip, ...]


def _truthy(value: str | None) -> bool:
    # The spellings oslo's bool_from_string accepts, as Masakari reads HA_Enabled.
    return value is not None and value.strip().lower() in {"true", "t", "yes", "y", "1", "on"}


def _falsy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"false", "f", "no", "n", "0", "off"}


def pet_reason(server: Server, selectors: Iterable[str]) -> str | None:
    """Which selector makes ``server`` a pet (a short reason), or None if it is not one."""
    checks: dict[str, tuple[bool, str]] = {
        "petguard": (_truthy(server.metadata.get(PET_KEY)), f"metadata {PET_KEY}=true"),
        "masakari": (_truthy(server.metadata.get(MASAKARI_KEY)), f"metadata {MASAKARI_KEY}=True"),
        "evacuable_tag": (EVACUABLE in server.tags, "tag evacuable"),
        "evacuable_flavor": (_truthy(server.flavor_extra_specs.get(EVACUABLE)), "flavor extra spec evacuable=true"),
        "evacuable_image": (_truthy(server.image_properties.get(EVACUABLE)), "image property evacuable=true"),
        "all": (True, "every server is a pet ([evacuation] pet_selectors = all)"),
    }
    for name in selectors:
        matched, why = checks[name]
        if matched:
            return why
    return None


def opt_out_reason(server: Server) -> str | None:
    """An explicit opt-out in the server's metadata wins over every selector."""
    for key in (PET_KEY, MASAKARI_KEY):
        if _falsy(server.metadata.get(key)):
            return f"opted out with metadata {key}={server.metadata[key]}"
    return None


def priority_of(server: Server) -> int:
    """``petguard:priority`` as an integer (higher moves first); 0 when absent or not a number."""
    raw = server.metadata.get(PRIORITY_KEY, "0")
    try:
        return int(raw.strip())
    except ValueError:
        return 0


def power_goal(server: Server) -> PowerGoal:
    """The power state the pet had on its old host, which it must have again on the new one."""
    if server.vm_state == "active":
        return PowerGoal.RUNNING
    if server.vm_state == "error" and server.power_state == POWER_RUNNING:
        return PowerGoal.RUNNING
    return PowerGoal.STOPPED


def skip_reason(server: Server, policy: EvacuationPolicy) -> str | None:
    """Why ``server`` is not moved, or None if it is a pet that Nova can evacuate."""
    opted_out = opt_out_reason(server)
    if opted_out:
        return opted_out
    if pet_reason(server, policy.selectors) is None:
        return f"not a pet (no selector matched: {', '.join(policy.selectors)})"
    if server.vm_state not in EVACUABLE_VM_STATES:
        return f"vm_state {server.vm_state}: Nova only evacuates active, stopped or error servers"
    if server.locked and not policy.evacuate_locked:
        return "locked by its owner ([evacuation] evacuate_locked = false)"
    return None


def plan(host: str, servers: Iterable[Server], policy: EvacuationPolicy) -> Plan:
    """Decide, for every server of the failed ``host``, whether and in which order it moves."""
    moves: list[Move] = []
    skipped: list[Skip] = []
    for server in servers:
        reason = skip_reason(server, policy)
        if reason is not None:
            skipped.append(Skip(server.id, server.name, reason))
            continue
        moves.append(Move(server.id, server.name, priority_of(server), server.status, power_goal(server)))
    moves.sort(key=lambda m: (-m.priority, m.server_name, m.server_id))
    skipped.sort(key=lambda s: (s.server_name, s.server_id))
    return Plan(host=host, moves=tuple(moves), skipped=tuple(skipped))
