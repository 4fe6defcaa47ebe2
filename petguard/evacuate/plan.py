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

Moves are grouped into waves (``Move.wave``): the runner finishes every move of a wave before it
starts the next. Waves come from two rules (docs/evacuation.md):

* tiers — ``petguard:tier`` (an integer, lower first, default 0): every pet of a tier is final before
  the next tier starts;
* hard anti-affinity — members of one ``anti-affinity`` server group go in separate waves, so that they
  are evacuated one after another: evacuated in parallel, Nova's late anti-affinity check on the
  destination bounces all but one.

A member of a hard ``affinity`` group whose members are all on the failed host can never be
evacuated (the scheduler may only pick a host of the group: the dead one; NoValidHost), so it is
skipped before anything is tried, with a reason that says what to do.

Every pet is classified before it is moved (``classify``): how it boots (from a volume; from an image
onto shared storage; from an image onto the host's local disk, which an evacuation rebuilds from the
image, losing its content) and whether it needs devices (PCI passthrough, vGPU ...). Each class has a
policy (``ClassPolicy``); a pet moves only if every class it is in allows it. Pets left by a class
policy or by a hard-affinity group are "left behind": the plan marks them for an alert.

Each move records the operator's target hint it follows, if any, and which rule gave it
(``evacuate.hints``). Members of one anti-affinity group never share a hint: the first member (in run
order) keeps it, the others go to the scheduler's choice with a note, because a hint proposes one host
and Nova's scheduler would refuse a second member there.

No I/O here: the Nova adapter builds ``Server`` values, the runner carries out the ``Plan``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from petguard.cloud import GroupPolicy, Move, PetClass, Plan, PowerGoal, Server, ServerGroup, Skip
from petguard.evacuate.hints import HintChoice, HintRules, choose_hint, spread_note

PET_KEY = "petguard:pet"
PRIORITY_KEY = "petguard:priority"
TIER_KEY = "petguard:tier"
ALLOW_DATA_LOSS_KEY = "petguard:allow_data_loss"
#: Flavor extra specs that ask for a device only some hosts have (a key equal to, or starting with, one).
DEVICE_SPECS = (
    "pci_passthrough:alias",
    "resources:VGPU",
    "resources:PGPU",
    "accel:device_profile",
    "resources:CUSTOM_",
)
MASAKARI_KEY = "HA_Enabled"
EVACUABLE = "evacuable"

#: Nova only evacuates servers whose vm_state is one of these.
EVACUABLE_VM_STATES = frozenset({"active", "stopped", "error"})
#: Nova power_state 1 = RUNNING.
POWER_RUNNING = 1

SELECTORS = ("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image", "all")


class ClassPolicy(enum.StrEnum):
    """What to do with the pets of one class."""

    EVACUATE = "evacuate"
    EVACUATE_IF_DATA_LOSS_ALLOWED = "evacuate_if_data_loss_allowed"  # metadata petguard:allow_data_loss=true
    LEAVE_AND_ALERT = "leave_and_alert"


@dataclasses.dataclass(frozen=True)
class EvacuationPolicy:
    """Which servers are pets and how they are moved; built from config."""

    selectors: tuple[str, ...] = ("petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image")
    evacuate_locked: bool = False
    max_parallel: int = 4
    shared_storage: bool = False  # image-booted servers' disks are on shared storage (Ceph, NFS ...)
    boot_from_volume: ClassPolicy = ClassPolicy.EVACUATE
    shared_disk: ClassPolicy = ClassPolicy.EVACUATE
    local_disk: ClassPolicy = ClassPolicy.EVACUATE_IF_DATA_LOSS_ALLOWED
    devices: ClassPolicy = ClassPolicy.EVACUATE
    hints: HintRules = HintRules()  # the operator's target hints from config (evacuate.hints)

    def policy_for(self, pet_class: PetClass) -> ClassPolicy:
        return {
            PetClass.BOOT_FROM_VOLUME: self.boot_from_volume,
            PetClass.SHARED_DISK: self.shared_disk,
            PetClass.LOCAL_DISK: self.local_disk,
            PetClass.DEVICES: self.devices,
        }[pet_class]


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


def tier_of(server: Server) -> int:
    """``petguard:tier`` as an integer (lower tiers finish first); 0 when absent or not a number."""
    raw = server.metadata.get(TIER_KEY, "0")
    try:
        return int(raw.strip())
    except ValueError:
        return 0


def group_skip_reason(server: Server, on_host: frozenset[str]) -> str | None:
    """Why the server's group keeps it from being evacuated off the host holding ``on_host``, or None.

    Hard affinity: the scheduler may only choose a host that already holds a member. When every
    member is on the failed host, that is the failed host itself: Nova answers NoValidHost.
    """
    group = server.group
    if group is None or group.policy is not GroupPolicy.AFFINITY:
        return None
    if not (group.members | {server.id}) <= on_host:
        return None  # a member lives elsewhere: the scheduler can follow it there
    return (
        f"hard affinity server group {group.name or group.id} ({group.id}) has all its members on this host: "
        "Nova cannot evacuate any of them (NoValidHost); rebuild the group elsewhere by hand, or move "
        "such pets to a soft-affinity group"
    )


def device_specs(server: Server) -> list[str]:
    """The flavor extra specs that ask for a device (sorted)."""
    return sorted(k for k in server.flavor_extra_specs if any(k.startswith(d) for d in DEVICE_SPECS))


def classify(server: Server, shared_storage: bool) -> tuple[PetClass, ...]:
    """The pet's storage class, then DEVICES if its flavor asks for one."""
    if server.image_id is None:
        storage = PetClass.BOOT_FROM_VOLUME
    else:
        storage = PetClass.SHARED_DISK if shared_storage else PetClass.LOCAL_DISK
    return (storage, PetClass.DEVICES) if device_specs(server) else (storage,)


_CLASS_RISK = {
    PetClass.BOOT_FROM_VOLUME: "its root disk is a volume, safe to rebuild elsewhere",
    PetClass.SHARED_DISK: "its disk is on shared storage ([evacuation] shared_storage = true)",
    PetClass.LOCAL_DISK: "it boots from image onto the host's local disk: an evacuation rebuilds it from "
    "its image and the content of its disk is lost",
    PetClass.DEVICES: "it needs a host with its devices",
}


def class_skip_reason(server: Server, classes: tuple[PetClass, ...], policy: EvacuationPolicy) -> str | None:
    """Why the policy of one of the pet's classes keeps it where it is, or None."""
    for pet_class in classes:
        what = policy.policy_for(pet_class)
        risk = _CLASS_RISK[pet_class]
        if pet_class is PetClass.DEVICES:
            risk += f" ({', '.join(device_specs(server))})"
        option = f"[evacuation] {pet_class.value}_policy = {what.value}"
        if what is ClassPolicy.LEAVE_AND_ALERT:
            return f"left on the host: {risk}; {option}; bring the host back, or evacuate it by hand"
        if what is ClassPolicy.EVACUATE_IF_DATA_LOSS_ALLOWED and not _truthy(server.metadata.get(ALLOW_DATA_LOSS_KEY)):
            return (
                f"left on the host: {risk}; {option} and its metadata has no {ALLOW_DATA_LOSS_KEY}=true; "
                "bring the host back, or evacuate it by hand (`openstack server evacuate`); "
                f"{ALLOW_DATA_LOSS_KEY}=true lets petguard do it on the next failure"
            )
    return None


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


def _serialised_group(server: Server) -> str | None:
    """The group whose members must not be evacuated at the same time, if any."""
    group = server.group
    return group.id if group is not None and group.policy is GroupPolicy.ANTI_AFFINITY else None


def assign_waves(moves: Iterable[tuple[Move, str | None]]) -> list[Move]:
    """Number the waves: tiers in ascending order, and inside a tier each move in the first wave that
    holds no other member of its anti-affinity group. ``moves`` pairs each move with that group (or
    None) and must be in run order (priority, name, id) so that a group's members go in that order."""
    by_tier: dict[int, list[tuple[Move, str | None]]] = {}
    for move, group in moves:
        by_tier.setdefault(move.tier, []).append((move, group))
    result: list[Move] = []
    first = 0
    for tier in sorted(by_tier):
        waves: list[set[str]] = []  # the groups present in each wave of this tier
        for move, group in by_tier[tier]:
            index = 0
            if group is not None:
                while index < len(waves) and group in waves[index]:
                    index += 1
            if index == len(waves):
                waves.append(set())
            if group is not None:
                waves[index].add(group)
            result.append(dataclasses.replace(move, wave=first + index))
        first += len(waves)
    result.sort(key=lambda m: (m.wave, -m.priority, m.server_name, m.server_id))
    return result


def with_hint(move: Move, choice: HintChoice) -> Move:
    """The move with the hint it follows (or the note of why none)."""
    return dataclasses.replace(
        move, hint=str(choice.hint) if choice.hint else "", hint_source=choice.source, hint_note=choice.note
    )


def spread_hints(moves: list[tuple[Move, str | None]], groups: Mapping[str, ServerGroup]) -> list[Move]:
    """Keep each hint for one member of an anti-affinity group only (the first in run order); the
    others go to the scheduler's choice with a note. ``moves`` pairs each move with its anti-affinity
    group id (or None), in run order."""
    followed: dict[tuple[str, str], str] = {}  # (group id, hint) -> the member that follows it
    result = []
    for move, group_id in moves:
        if group_id is not None and move.hint:
            first = followed.setdefault((group_id, move.hint), move.server_name)
            if first != move.server_name:
                group = groups[group_id]
                note = spread_note(group.name or group.id, move.hint, first)
                move = dataclasses.replace(move, hint="", hint_source="", hint_note=note)
        result.append(move)
    return result


def plan(host: str, servers: Iterable[Server], policy: EvacuationPolicy, host_aggregates: Iterable[str] = ()) -> Plan:
    """Decide, for every server of the failed ``host``, whether it moves, in which wave and order, and
    which target hint it follows (``host_aggregates``: the aggregates the failed host is in, for
    ``[evacuation] host_targets`` by aggregate)."""
    servers = list(servers)
    aggregates = frozenset(host_aggregates)
    on_host = frozenset(s.id for s in servers)
    moves: list[tuple[Move, str | None]] = []
    groups: dict[str, ServerGroup] = {}
    skipped: list[Skip] = []
    for server in servers:
        reason = skip_reason(server, policy)
        if reason is not None:
            skipped.append(Skip(server.id, server.name, reason))
            continue
        classes = classify(server, policy.shared_storage)
        reason = group_skip_reason(server, on_host) or class_skip_reason(server, classes, policy)
        if reason is not None:
            skipped.append(Skip(server.id, server.name, reason, classes, alert=True))
            continue
        move = Move(
            server.id,
            server.name,
            priority_of(server),
            server.status,
            power_goal(server),
            tier=tier_of(server),
            classes=classes,
        )
        move = with_hint(move, choose_hint(server.metadata, host, aggregates, policy.hints))
        group_id = _serialised_group(server)
        if group_id is not None and server.group is not None:
            groups[group_id] = server.group
        moves.append((move, group_id))
    moves.sort(key=lambda pair: (-pair[0].priority, pair[0].server_name, pair[0].server_id))
    spread = spread_hints(moves, groups)
    moves = [(move, group_id) for move, (_, group_id) in zip(spread, moves, strict=True)]
    skipped.sort(key=lambda s: (s.server_name, s.server_id))
    return Plan(host=host, moves=tuple(assign_waves(moves)), skipped=tuple(skipped))


@dataclasses.dataclass(frozen=True)
class ServerDecision:
    """What the plan does with one server and why: one row of a dry run (``petguard explain HOST``)."""

    server_id: str
    server_name: str
    evacuate: bool
    reason: str  # a move: what makes it a pet; a skip: why it stays
    classes: tuple[PetClass, ...]
    group: ServerGroup | None
    tier: int
    priority: int
    wave: int | None  # None: it stays
    hint: str = ""  # the target hint a move would follow ("": the scheduler's choice)
    hint_source: str = ""  # which rule gave it
    hint_note: str = ""  # why a hint that was asked for would not be followed


def dry_run(
    host: str, servers: Iterable[Server], policy: EvacuationPolicy, host_aggregates: Iterable[str] = ()
) -> tuple[Plan, list[ServerDecision]]:
    """The plan for ``host`` if it failed now, with one decision per server: moves in run order, then
    the servers that would stay."""
    by_id = {s.id: s for s in servers}
    the_plan = plan(host, by_id.values(), policy, host_aggregates)
    rows = [
        ServerDecision(
            move.server_id,
            move.server_name,
            True,
            pet_reason(by_id[move.server_id], policy.selectors) or "",
            move.classes,
            by_id[move.server_id].group,
            move.tier,
            move.priority,
            move.wave,
            move.hint,
            move.hint_source,
            move.hint_note,
        )
        for move in the_plan.moves
    ]
    for skip in the_plan.skipped:
        server = by_id[skip.server_id]
        rows.append(
            ServerDecision(
                skip.server_id,
                skip.server_name,
                False,
                skip.reason,
                skip.classes,
                server.group,
                tier_of(server),
                priority_of(server),
                None,
            )
        )
    return the_plan, rows
