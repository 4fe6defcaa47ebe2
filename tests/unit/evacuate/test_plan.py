"""Evacuation planning: which servers are pets, which stay and why, in what order, with which power goal."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from petguard.cloud import GroupPolicy, Move, PetClass, Plan, PowerGoal, Server, ServerGroup
from petguard.evacuate.plan import (
    EVACUABLE_VM_STATES,
    SELECTORS,
    ClassPolicy,
    EvacuationPolicy,
    assign_waves,
    classify,
    device_specs,
    dry_run,
    pet_reason,
    plan,
    power_goal,
    priority_of,
    skip_reason,
    tier_of,
)

ALL = EvacuationPolicy(selectors=("all",))
DEFAULT = EvacuationPolicy()


def server(
    name: str = "vm",
    *,
    vm_state: str = "active",
    status: str = "ACTIVE",
    power_state: int = 1,
    locked: bool = False,
    metadata: Mapping[str, str] | None = None,
    tags: frozenset[str] = frozenset(),
    flavor: Mapping[str, str] | None = None,
    image: Mapping[str, str] | None = None,
    sid: str | None = None,
) -> Server:
    return Server(
        id=sid or f"id-{name}",
        name=name,
        host="cmp1",
        status=status,
        vm_state=vm_state,
        power_state=power_state,
        locked=locked,
        metadata=dict(metadata or {}),
        tags=tags,
        flavor_extra_specs=dict(flavor or {}),
        image_properties=dict(image or {}),
    )


# -- selectors ------------------------------------------------------------------------------------

# (selector, server that it, and only it, selects)
SELECTED_BY = [
    ("petguard", server(metadata={"petguard:pet": "true"})),
    ("masakari", server(metadata={"HA_Enabled": "True"})),
    ("evacuable_tag", server(tags=frozenset({"evacuable"}))),
    ("evacuable_flavor", server(flavor={"evacuable": "true"})),
    ("evacuable_image", server(image={"evacuable": "true"})),
]


@pytest.mark.parametrize(("selector", "srv"), SELECTED_BY, ids=[s for s, _ in SELECTED_BY])
def test_each_selector_matches_its_own_marker_only(selector: str, srv: Server) -> None:
    assert pet_reason(srv, (selector,))
    assert skip_reason(srv, EvacuationPolicy(selectors=(selector,))) is None
    for other in SELECTORS:
        if other not in (selector, "all"):
            assert pet_reason(srv, (other,)) is None, other
    assert pet_reason(srv, ("all",))


def test_plain_server_is_a_pet_only_with_all() -> None:
    plain = server()
    for selector in SELECTORS:
        assert (pet_reason(plain, (selector,)) is not None) is (selector == "all")
    assert skip_reason(plain, DEFAULT) == (
        "not a pet (no selector matched: petguard, masakari, evacuable_tag, evacuable_flavor, evacuable_image)"
    )


def test_no_selectors_selects_nobody() -> None:
    assert skip_reason(server(metadata={"petguard:pet": "true"}), EvacuationPolicy(selectors=()))


def test_first_matching_selector_gives_the_reason() -> None:
    both = server(metadata={"HA_Enabled": "true"}, tags=frozenset({"evacuable"}))
    assert pet_reason(both, ("evacuable_tag", "masakari")) == "tag evacuable"
    assert pet_reason(both, ("masakari", "evacuable_tag")) == "metadata HA_Enabled=True"


@pytest.mark.parametrize("value", ["True", "true", "TRUE", "tRuE", " true ", "yes", "Yes", "1", "on", "ON"])
@pytest.mark.parametrize("key", ["HA_Enabled", "petguard:pet"])
def test_truthy_values(key: str, value: str) -> None:
    assert skip_reason(server(metadata={key: value}), DEFAULT) is None


@pytest.mark.parametrize("value", ["", "maybe", "2", "enabled", "truee", "y es"])
@pytest.mark.parametrize("key", ["HA_Enabled", "petguard:pet"])
def test_neither_true_nor_false_is_not_a_pet_and_not_an_opt_out(key: str, value: str) -> None:
    reason = skip_reason(server(metadata={key: value}), DEFAULT)
    assert reason is not None and reason.startswith("not a pet")
    assert skip_reason(server(metadata={key: value}), ALL) is None


@pytest.mark.parametrize("key", ["ha_enabled", "HA_ENABLED", "Ha_Enabled", "PETGUARD:PET"])
def test_metadata_keys_are_case_sensitive(key: str) -> None:
    """Nova metadata keys are case-sensitive, and so is Masakari's HA_Enabled."""
    assert skip_reason(server(metadata={key: "True"}), DEFAULT) is not None


@pytest.mark.parametrize(("spec", "pet"), [("true", True), ("True", True), ("false", False), ("", False)])
def test_flavor_and_image_values(spec: str, pet: bool) -> None:
    assert (pet_reason(server(flavor={"evacuable": spec}), ("evacuable_flavor",)) is not None) is pet
    assert (pet_reason(server(image={"evacuable": spec}), ("evacuable_image",)) is not None) is pet


def test_tag_must_be_exact() -> None:
    assert pet_reason(server(tags=frozenset({"Evacuable", "evacuable=true"})), ("evacuable_tag",)) is None


def test_unknown_selector_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        pet_reason(server(), ("nope",))


# -- explicit opt-outs ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "False", "FALSE", "no", "0", "off", " false "])
@pytest.mark.parametrize("key", ["petguard:pet", "HA_Enabled"])
@pytest.mark.parametrize("policy", [ALL, DEFAULT], ids=["all", "default"])
def test_explicit_opt_out_wins_over_every_selector(key: str, value: str, policy: EvacuationPolicy) -> None:
    srv = server(
        metadata={key: value, ("HA_Enabled" if key == "petguard:pet" else "petguard:pet"): "true"},
        tags=frozenset({"evacuable"}),
        flavor={"evacuable": "true"},
        image={"evacuable": "true"},
    )
    assert skip_reason(srv, policy) == f"opted out with metadata {key}={value}"


# -- vm_state, power_state, locks ---------------------------------------------------------------------

VM_STATES = [
    # vm_state, status, power_state, moved?, power goal
    ("active", "ACTIVE", 1, True, PowerGoal.RUNNING),
    ("active", "ACTIVE", 0, True, PowerGoal.RUNNING),  # Nova's power sync lags; vm_state wins
    ("stopped", "SHUTOFF", 4, True, PowerGoal.STOPPED),
    ("stopped", "SHUTOFF", 1, True, PowerGoal.STOPPED),
    ("error", "ERROR", 1, True, PowerGoal.RUNNING),
    ("error", "ERROR", 4, True, PowerGoal.STOPPED),
    ("error", "ERROR", 0, True, PowerGoal.STOPPED),
    ("error", "ERROR", 3, True, PowerGoal.STOPPED),  # paused guest in an ERROR server
    ("paused", "PAUSED", 3, False, None),
    ("suspended", "SUSPENDED", 7, False, None),
    ("shelved", "SHELVED", 4, False, None),
    ("shelved_offloaded", "SHELVED_OFFLOADED", 0, False, None),
    ("building", "BUILD", 0, False, None),
    ("rescued", "RESCUE", 1, False, None),
    ("resized", "VERIFY_RESIZE", 1, False, None),
    ("soft-delete", "SOFT_DELETED", 0, False, None),
    ("deleted", "DELETED", 0, False, None),
    ("ACTIVE", "ACTIVE", 1, False, None),  # the adapter passes Nova's lower-case vm_state
]


@pytest.mark.parametrize(("vm_state", "status", "power", "moved", "goal"), VM_STATES)
def test_vm_states(vm_state: str, status: str, power: int, moved: bool, goal: PowerGoal | None) -> None:
    srv = server(vm_state=vm_state, status=status, power_state=power)
    result = plan("cmp1", [srv], ALL)
    if moved:
        assert result.skipped == ()
        (move,) = result.moves
        assert (move.power_goal, move.original_status) == (goal, status)
    else:
        assert result.moves == ()
        (skip,) = result.skipped
        assert skip.reason == f"vm_state {vm_state}: Nova only evacuates active, stopped or error servers"


def test_evacuable_vm_states_are_novas() -> None:
    assert EVACUABLE_VM_STATES == {"active", "stopped", "error"}


@pytest.mark.parametrize(
    ("vm_state", "power", "goal"),
    [
        ("active", 1, PowerGoal.RUNNING),
        ("active", 4, PowerGoal.RUNNING),
        ("stopped", 4, PowerGoal.STOPPED),
        ("stopped", 1, PowerGoal.STOPPED),
        ("error", 1, PowerGoal.RUNNING),
        ("error", 4, PowerGoal.STOPPED),
        ("error", 0, PowerGoal.STOPPED),
        ("paused", 3, PowerGoal.STOPPED),
    ],
)
def test_power_goal_table(vm_state: str, power: int, goal: PowerGoal) -> None:
    assert power_goal(server(vm_state=vm_state, power_state=power)) is goal


@pytest.mark.parametrize(("evacuate_locked", "moved"), [(False, False), (True, True)])
def test_locked_servers(evacuate_locked: bool, moved: bool) -> None:
    policy = EvacuationPolicy(selectors=("all",), evacuate_locked=evacuate_locked)
    result = plan("cmp1", [server(locked=True)], policy)
    assert bool(result.moves) is moved
    if not moved:
        assert result.skipped[0].reason == "locked by its owner ([evacuation] evacuate_locked = false)"


def test_skip_reasons_come_in_order_opt_out_then_pet_then_state_then_lock() -> None:
    srv = server(metadata={"petguard:pet": "false"}, vm_state="paused", locked=True)
    assert skip_reason(srv, ALL) == "opted out with metadata petguard:pet=false"
    srv = server(vm_state="paused", locked=True)
    assert skip_reason(srv, DEFAULT) is not None and skip_reason(srv, DEFAULT).startswith("not a pet")  # type: ignore[union-attr]
    assert skip_reason(srv, ALL).startswith("vm_state paused")  # type: ignore[union-attr]


# -- priorities and order ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "priority"),
    [
        (None, 0),
        ("0", 0),
        ("5", 5),
        (" 7 ", 7),
        ("-3", -3),
        ("+2", 2),
        ("100000000000", 100000000000),
        ("", 0),
        ("high", 0),
        ("1.5", 0),
        ("1e3", 0),
        ("0x10", 0),
        ("NaN", 0),
    ],
)
def test_priority_of(raw: str | None, priority: int) -> None:
    metadata = {} if raw is None else {"petguard:priority": raw}
    assert priority_of(server(metadata=metadata)) == priority


def test_moves_are_ordered_by_priority_then_name_then_id() -> None:
    servers = [
        server("db", metadata={"petguard:priority": "10"}),
        server("web-b"),
        server("batch", metadata={"petguard:priority": "-5"}),
        server("web-a", metadata={"petguard:priority": "garbage"}),
        server("cache", metadata={"petguard:priority": "10"}),
        server("dup", sid="id-2"),
        server("dup", sid="id-1"),
        server("lb", metadata={"petguard:priority": "99"}),
    ]
    result = plan("cmp1", servers, ALL)
    assert [(m.server_name, m.priority) for m in result.moves] == [
        ("lb", 99),
        ("cache", 10),
        ("db", 10),
        ("dup", 0),
        ("dup", 0),
        ("web-a", 0),
        ("web-b", 0),
        ("batch", -5),
    ]
    assert [m.server_id for m in result.moves if m.server_name == "dup"] == ["id-1", "id-2"]


def test_order_does_not_depend_on_input_order() -> None:
    servers = [server(f"vm{i}", metadata={"petguard:priority": str(i % 3)}) for i in range(10)]
    assert plan("cmp1", servers, ALL) == plan("cmp1", list(reversed(servers)), ALL)


# -- whole plans ------------------------------------------------------------------------------------------


def test_every_server_is_either_moved_or_skipped_with_a_reason() -> None:
    servers = [
        server("pet", metadata={"petguard:pet": "true"}),
        server("masakari-pet", metadata={"HA_Enabled": "TRUE"}),
        server("cattle"),
        server("opted-out", metadata={"HA_Enabled": "False"}, tags=frozenset({"evacuable"})),
        server("paused-pet", vm_state="paused", metadata={"petguard:pet": "true"}),
        server("locked-pet", locked=True, metadata={"petguard:pet": "true"}),
        server("stopped-pet", vm_state="stopped", status="SHUTOFF", power_state=4, flavor={"evacuable": "true"}),
        server("broken-pet", vm_state="error", status="ERROR", power_state=1, image={"evacuable": "true"}),
    ]
    result = plan("cmp1", servers, DEFAULT)
    assert isinstance(result, Plan) and result.host == "cmp1"
    assert {m.server_id for m in result.moves} | {s.server_id for s in result.skipped} == {s.id for s in servers}
    assert not {m.server_id for m in result.moves} & {s.server_id for s in result.skipped}
    assert all(s.reason.strip() for s in result.skipped)
    assert [m.server_name for m in result.moves] == ["broken-pet", "masakari-pet", "pet", "stopped-pet"]
    assert [s.server_name for s in result.skipped] == ["cattle", "locked-pet", "opted-out", "paused-pet"]
    goals = {m.server_name: m.power_goal for m in result.moves}
    assert goals == {
        "broken-pet": PowerGoal.RUNNING,
        "masakari-pet": PowerGoal.RUNNING,
        "pet": PowerGoal.RUNNING,
        "stopped-pet": PowerGoal.STOPPED,
    }


@pytest.mark.parametrize(
    "policy", [ALL, DEFAULT, EvacuationPolicy(selectors=()), EvacuationPolicy(selectors=("masakari",))]
)
@pytest.mark.parametrize("vm_state", ["active", "stopped", "error", "paused", "suspended", "shelved", "building"])
@pytest.mark.parametrize("locked", [False, True])
@pytest.mark.parametrize("pet", [None, "true", "false", "junk"])
def test_every_skip_has_a_non_empty_reason(
    policy: EvacuationPolicy, vm_state: str, locked: bool, pet: str | None
) -> None:
    srv = server(vm_state=vm_state, locked=locked, metadata={} if pet is None else {"HA_Enabled": pet})
    result = plan("cmp1", [srv], policy)
    assert len(result.moves) + len(result.skipped) == 1
    for skip in result.skipped:
        assert skip.reason and skip.reason == skip_reason(srv, policy)


def test_empty_host_gives_an_empty_plan() -> None:
    assert plan("cmp1", [], ALL) == Plan("cmp1", (), ())


def test_plan_accepts_any_iterable_and_values_are_frozen() -> None:
    result = plan("cmp1", (s for s in [server("a")]), ALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.moves[0].priority = 3  # type: ignore[misc]


@pytest.mark.parametrize("value", ["t", "Y", "yes", "On", "1", "TRUE"])
def test_masakari_ha_enabled_accepts_oslo_true_spellings(value: str) -> None:
    from petguard.cloud import Server
    from petguard.evacuate.plan import EvacuationPolicy, pet_reason

    server = Server(id="s", name="s", host="h", status="ACTIVE", vm_state="active", metadata={"HA_Enabled": value})
    assert pet_reason(server, EvacuationPolicy().selectors) is not None


@pytest.mark.parametrize("value", ["f", "N", "no", "off", "0", "False"])
def test_masakari_ha_enabled_false_spellings_opt_out(value: str) -> None:
    from petguard.cloud import Server
    from petguard.evacuate.plan import opt_out_reason

    server = Server(id="s", name="s", host="h", status="ACTIVE", vm_state="active", metadata={"HA_Enabled": value})
    assert opt_out_reason(server) is not None


# -- server groups and waves ------------------------------------------------------------------------------


def grouped(name: str, policy: str, members: tuple[str, ...], **kw: object) -> Server:
    group = ServerGroup(f"g-{policy}", f"grp-{policy}", GroupPolicy(policy), frozenset(f"id-{m}" for m in members))
    return dataclasses.replace(server(name, **kw), group=group)  # type: ignore[arg-type]


def waves(result: Plan) -> dict[str, int]:
    return {m.server_name: m.wave for m in result.moves}


# (policy, members of the group, servers on the failed host, skipped ones)
AFFINITY_CASES = [
    ("affinity", ("a", "b"), ("a", "b"), {"a", "b"}),  # the whole group is on the dead host
    ("affinity", ("a",), ("a",), {"a"}),  # a group of one: its only host is the dead one
    ("affinity", ("a", "b", "c"), ("a", "b"), set()),  # c lives elsewhere: the scheduler can follow it
    ("soft-affinity", ("a", "b"), ("a", "b"), set()),
    ("anti-affinity", ("a", "b"), ("a", "b"), set()),
    ("soft-anti-affinity", ("a", "b"), ("a", "b"), set()),
]


@pytest.mark.parametrize(("policy", "members", "on_host", "skipped"), AFFINITY_CASES)
def test_hard_affinity_groups_wholly_on_the_host_are_skipped_before_trying(
    policy: str, members: tuple[str, ...], on_host: tuple[str, ...], skipped: set[str]
) -> None:
    result = plan("cmp1", [grouped(n, policy, members) for n in on_host], ALL)
    assert {s.server_name for s in result.skipped} == skipped
    assert {m.server_name for m in result.moves} == set(on_host) - skipped
    for skip in result.skipped:
        assert "hard affinity" in skip.reason and "NoValidHost" in skip.reason and "grp-affinity" in skip.reason
        assert "by hand" in skip.reason  # says what to do


def test_a_non_pet_member_on_the_host_still_pins_a_hard_affinity_group() -> None:
    pet = grouped("pet", "affinity", ("pet", "cattle"), metadata={"petguard:pet": "true"})
    cattle = grouped("cattle", "affinity", ("pet", "cattle"))
    result = plan("cmp1", [pet, cattle], DEFAULT)
    reasons = {s.server_name: s.reason for s in result.skipped}
    assert "hard affinity" in reasons["pet"] and reasons["cattle"].startswith("not a pet")


def test_anti_affinity_members_go_one_wave_each_others_share_the_first() -> None:
    servers = [
        grouped("anti-1", "anti-affinity", ("anti-1", "anti-2", "anti-3")),
        grouped("anti-2", "anti-affinity", ("anti-1", "anti-2", "anti-3")),
        grouped("anti-3", "anti-affinity", ("anti-1", "anti-2", "anti-3"), metadata={"petguard:priority": "5"}),
        grouped("soft-1", "soft-anti-affinity", ("soft-1", "soft-2")),
        grouped("soft-2", "soft-anti-affinity", ("soft-1", "soft-2")),
        grouped("aff-1", "soft-affinity", ("aff-1", "aff-2")),
        server("plain"),
    ]
    result = plan("cmp1", servers, ALL)
    # priority then name decides which member goes first; every other server shares wave 0
    assert waves(result) == {
        "anti-3": 0, "anti-1": 1, "anti-2": 2, "soft-1": 0, "soft-2": 0, "aff-1": 0, "plain": 0,
    }  # fmt: skip
    assert [m.wave for m in result.moves] == sorted(m.wave for m in result.moves)


def test_two_anti_affinity_groups_interleave_in_the_same_waves() -> None:
    a = ServerGroup("ga", "ga", GroupPolicy.ANTI_AFFINITY, frozenset({"id-a1", "id-a2"}))
    b = ServerGroup("gb", "gb", GroupPolicy.ANTI_AFFINITY, frozenset({"id-b1", "id-b2"}))
    servers = [dataclasses.replace(server(n), group=g) for n, g in (("a1", a), ("a2", a), ("b1", b), ("b2", b))]
    assert waves(plan("cmp1", servers, ALL)) == {"a1": 0, "b1": 0, "a2": 1, "b2": 1}


# (metadata petguard:tier, tier)
@pytest.mark.parametrize(
    ("raw", "tier"), [(None, 0), ("0", 0), ("2", 2), (" 3 ", 3), ("-1", -1), ("x", 0), ("1.5", 0), ("", 0)]
)
def test_tier_of(raw: str | None, tier: int) -> None:
    assert tier_of(server(metadata={} if raw is None else {"petguard:tier": raw})) == tier


def test_tiers_are_waves_in_ascending_order_and_priority_orders_inside_a_tier() -> None:
    servers = [
        server("web", metadata={"petguard:tier": "2", "petguard:priority": "50"}),
        server("app", metadata={"petguard:tier": "1"}),
        server("db", metadata={"petguard:tier": "0"}),
        server("unlabelled"),
        server("infra", metadata={"petguard:tier": "-1"}),
        server("app-urgent", metadata={"petguard:tier": "1", "petguard:priority": "9"}),
    ]
    result = plan("cmp1", servers, ALL)
    assert [(m.server_name, m.tier, m.wave) for m in result.moves] == [
        ("infra", -1, 0),
        ("db", 0, 1),
        ("unlabelled", 0, 1),
        ("app-urgent", 1, 2),
        ("app", 1, 2),
        ("web", 2, 3),  # priority never jumps a tier
    ]


def test_anti_affinity_waves_stay_inside_their_tier() -> None:
    members = ("a", "b", "c")
    servers = [
        grouped("a", "anti-affinity", members),
        grouped("b", "anti-affinity", members),
        grouped("c", "anti-affinity", members, metadata={"petguard:tier": "1"}),
        server("later", metadata={"petguard:tier": "1"}),
    ]
    # tier 0: a, then b (waves 0, 1); tier 1 starts after: c and later together (wave 2)
    assert waves(plan("cmp1", servers, ALL)) == {"a": 0, "b": 1, "c": 2, "later": 2}


def test_waves_do_not_depend_on_input_order() -> None:
    members = tuple(f"vm{i}" for i in range(6))
    servers = [grouped(n, "anti-affinity", members, metadata={"petguard:tier": str(i % 2)}) for i, n in
               enumerate(members)]  # fmt: skip
    assert plan("cmp1", servers, ALL) == plan("cmp1", list(reversed(servers)), ALL)


def test_assign_waves_without_groups_or_tiers_is_one_wave() -> None:
    moves = [(Move(f"id{i}", f"vm{i}", 0, "ACTIVE", PowerGoal.RUNNING), None) for i in range(5)]
    assert {m.wave for m in assign_waves(moves)} == {0}


# -- special pets: classes and their policies -------------------------------------------------------------

LOCAL = "img-1"  # an image id: the server booted from an image
VGPU = {"resources:VGPU": "1"}


def pet(name: str = "vm", *, image_id: str | None = None, **kw: object) -> Server:
    return dataclasses.replace(server(name, **kw), image_id=image_id)  # type: ignore[arg-type]


# (image id, flavor extra specs, shared_storage, classes)
CLASSES = [
    (None, {}, False, (PetClass.BOOT_FROM_VOLUME,)),
    (None, {}, True, (PetClass.BOOT_FROM_VOLUME,)),
    (LOCAL, {}, False, (PetClass.LOCAL_DISK,)),
    (LOCAL, {}, True, (PetClass.SHARED_DISK,)),
    (None, {"pci_passthrough:alias": "a1:2"}, False, (PetClass.BOOT_FROM_VOLUME, PetClass.DEVICES)),
    (None, VGPU, False, (PetClass.BOOT_FROM_VOLUME, PetClass.DEVICES)),
    (None, {"resources:PGPU": "1"}, False, (PetClass.BOOT_FROM_VOLUME, PetClass.DEVICES)),
    (None, {"accel:device_profile": "fpga"}, False, (PetClass.BOOT_FROM_VOLUME, PetClass.DEVICES)),
    (None, {"resources:CUSTOM_FPGA_X": "1"}, False, (PetClass.BOOT_FROM_VOLUME, PetClass.DEVICES)),
    (LOCAL, VGPU, False, (PetClass.LOCAL_DISK, PetClass.DEVICES)),
    (None, {"resources:VCPU": "2", "hw:cpu_policy": "dedicated", "evacuable": "true"}, False,
     (PetClass.BOOT_FROM_VOLUME,)),
]  # fmt: skip


@pytest.mark.parametrize(("image_id", "specs", "shared", "classes"), CLASSES)
def test_classify(image_id: str | None, specs: dict[str, str], shared: bool, classes: tuple[PetClass, ...]) -> None:
    assert classify(pet(image_id=image_id, flavor=specs), shared) == classes


DEFAULT_ALL = EvacuationPolicy(selectors=("all",))
E, IF, LEAVE = ClassPolicy.EVACUATE, ClassPolicy.EVACUATE_IF_DATA_LOSS_ALLOWED, ClassPolicy.LEAVE_AND_ALERT

# (policy, server, moved, words in the skip reason)
DECISIONS = [
    # defaults: volumes and shared disks move, local disks only with the owner's consent, devices move
    (DEFAULT_ALL, pet(), True, ()),
    (DEFAULT_ALL, pet(image_id=LOCAL), False, ("local_disk_policy = evacuate_if_data_loss_allowed",
                                                "petguard:allow_data_loss=true", "content of its disk is lost")),
    (DEFAULT_ALL, pet(image_id=LOCAL, metadata={"petguard:allow_data_loss": "true"}), True, ()),
    (DEFAULT_ALL, pet(image_id=LOCAL, metadata={"petguard:allow_data_loss": "false"}), False, ("allow_data_loss",)),
    (dataclasses.replace(DEFAULT_ALL, shared_storage=True), pet(image_id=LOCAL), True, ()),
    (DEFAULT_ALL, pet(flavor=VGPU), True, ()),
    # operators' choices
    (dataclasses.replace(DEFAULT_ALL, local_disk=E), pet(image_id=LOCAL), True, ()),
    (dataclasses.replace(DEFAULT_ALL, local_disk=LEAVE),
     pet(image_id=LOCAL, metadata={"petguard:allow_data_loss": "true"}), False,
     ("local_disk_policy = leave_and_alert",)),
    (dataclasses.replace(DEFAULT_ALL, devices=LEAVE), pet(flavor=VGPU), False,
     ("devices_policy = leave_and_alert", "resources:VGPU")),
    (dataclasses.replace(DEFAULT_ALL, boot_from_volume=LEAVE), pet(), False, ("boot_from_volume_policy",)),
    (dataclasses.replace(DEFAULT_ALL, shared_storage=True, shared_disk=IF), pet(image_id=LOCAL), False,
     ("shared_disk_policy",)),
    # every class must allow it: a local-disk vGPU pet with consent but devices left
    (dataclasses.replace(DEFAULT_ALL, devices=LEAVE),
     pet(image_id=LOCAL, flavor=VGPU, metadata={"petguard:allow_data_loss": "yes"}), False, ("devices_policy",)),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "srv", "moved", "words"), DECISIONS)
def test_class_policies(policy: EvacuationPolicy, srv: Server, moved: bool, words: tuple[str, ...]) -> None:
    result = plan("cmp1", [srv], policy)
    classes = classify(srv, policy.shared_storage)
    if moved:
        assert [m.classes for m in result.moves] == [classes] and not result.skipped
    else:
        [skip] = result.skipped
        assert not result.moves and skip.classes == classes and skip.alert
        for word in words:
            assert word in skip.reason, (word, skip.reason)
        assert "by hand" in skip.reason  # what to do


def test_only_pets_are_classified_and_only_pets_left_behind_alert() -> None:
    result = plan("cmp1", [pet("cattle", image_id=LOCAL), pet("paused", vm_state="paused")], DEFAULT)
    assert all(s.classes == () and not s.alert for s in result.skipped)
    pinned = grouped("pinned", "affinity", ("pinned",))
    [skip] = plan("cmp1", [pinned], ALL).skipped
    assert skip.alert and skip.classes == (PetClass.BOOT_FROM_VOLUME,)


def test_device_specs_are_named() -> None:
    srv = pet(flavor={"resources:VGPU": "1", "pci_passthrough:alias": "nic:1", "hw:mem_page_size": "large"})
    assert device_specs(srv) == ["pci_passthrough:alias", "resources:VGPU"]


def test_dry_run_gives_every_server_a_decision_with_its_class_group_tier_and_wave() -> None:
    servers = [
        grouped("a1", "anti-affinity", ("a1", "a2")),
        grouped("a2", "anti-affinity", ("a1", "a2"), metadata={"petguard:priority": "3"}),
        pet("local", image_id=LOCAL, metadata={"petguard:tier": "1"}),
        pet("db", metadata={"petguard:pet": "true", "petguard:tier": "1"}),
    ]
    policy = EvacuationPolicy(selectors=("petguard", "all"))
    the_plan, rows = dry_run("cmp1", servers, policy)
    assert the_plan == plan("cmp1", servers, policy)
    table = {r.server_name: (r.evacuate, r.wave, r.tier, r.priority, r.classes) for r in rows}
    assert table == {
        "a2": (True, 0, 0, 3, (PetClass.BOOT_FROM_VOLUME,)),
        "a1": (True, 1, 0, 0, (PetClass.BOOT_FROM_VOLUME,)),
        "db": (True, 2, 1, 0, (PetClass.BOOT_FROM_VOLUME,)),
        "local": (False, None, 1, 0, (PetClass.LOCAL_DISK,)),
    }
    assert [r.server_name for r in rows] == ["a2", "a1", "db", "local"]  # run order, then the ones that stay
    by_name = {r.server_name: r for r in rows}
    assert by_name["db"].reason == "metadata petguard:pet=true" and "every server is a pet" in by_name["a1"].reason
    assert by_name["a1"].group is not None and by_name["a1"].group.policy is GroupPolicy.ANTI_AFFINITY
    assert "local_disk_policy" in by_name["local"].reason
