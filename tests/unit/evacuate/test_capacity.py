"""The capacity check (pure): free room per resource with reserved and allocation ratios, max_unit,
which hosts can take pets, reserved failover hosts, first-fit decreasing, which servers count as
pets, the verdict, the worst host, the summary lines and the alert transitions."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from petguard.cloud import GroupPolicy, Server, ServerGroup
from petguard.evacuate.capacity import (
    DISK_GB,
    MEMORY_MB,
    VCPU,
    CapacityReport,
    HostCapacity,
    HostVerdict,
    Inventory,
    PlacedServer,
    Resources,
    Verdict,
    alert_for,
    check,
    fit,
    flavor_resources,
    pets_of,
    unusable_reason,
)
from petguard.evacuate.plan import ClassPolicy, EvacuationPolicy

AT = 1_700_000_000.0
POLICY = EvacuationPolicy()
PET = {"petguard:pet": "true"}


def pet(name: str, vcpu: int = 1, memory_mb: int = 1024, disk_gb: int = 0, **fields: object) -> PlacedServer:
    server = Server(
        id=f"id-{name}",
        name=name,
        host="",
        status="ACTIVE",
        vm_state=str(fields.pop("vm_state", "active")),
        metadata=dict(fields.pop("metadata", PET)),  # type: ignore[call-overload]
        image_id=fields.pop("image_id", None),  # type: ignore[arg-type]
        group=fields.pop("group", None),  # type: ignore[arg-type]
    )
    assert not fields
    return PlacedServer(server, Resources(vcpu, memory_mb, disk_gb))


def host(
    name: str,
    vcpu: int = 8,
    memory_mb: int = 8192,
    disk_gb: int = 100,
    *,
    used: Mapping[str, int] | None = None,
    servers: tuple[PlacedServer, ...] = (),
    inventories: Mapping[str, Inventory] | None = None,
    **state: bool,
) -> HostCapacity:
    if inventories is None:
        inventories = {VCPU: Inventory(vcpu), MEMORY_MB: Inventory(memory_mb), DISK_GB: Inventory(disk_gb)}
    return HostCapacity(name, inventories, dict(used or {}), servers=servers, **state)


# -------------------------------------------------------------------------------- free room per host


def test_free_room_is_total_minus_reserved_times_ratio_minus_used() -> None:
    h = host(
        "cmp1",
        inventories={VCPU: Inventory(16, reserved=2, allocation_ratio=4.0), MEMORY_MB: Inventory(65536, 4096, 1.5)},
        used={VCPU: 10, MEMORY_MB: 60000},
    )
    assert h.free(VCPU) == (16 - 2) * 4.0 - 10 == 46
    assert h.free(MEMORY_MB) == (65536 - 4096) * 1.5 - 60000 == 32160
    assert h.free(DISK_GB) == 0  # no inventory: no room


@pytest.mark.parametrize(
    ("resource", "inventory", "used", "need", "fits"),
    [
        (VCPU, Inventory(4, allocation_ratio=4.0), 15, Resources(vcpu=1), True),  # 16 - 15 = 1
        (VCPU, Inventory(4, allocation_ratio=4.0), 16, Resources(vcpu=1), False),  # ratio spent
        (VCPU, Inventory(4, reserved=1, allocation_ratio=4.0), 12, Resources(vcpu=1), False),  # 12 - 12 = 0
        (MEMORY_MB, Inventory(4096, reserved=512), 2048, Resources(memory_mb=1536), True),  # 3584 - 2048
        (MEMORY_MB, Inventory(4096, reserved=512), 2048, Resources(memory_mb=1537), False),
        (MEMORY_MB, Inventory(4096, allocation_ratio=1.5), 4096, Resources(memory_mb=2048), True),  # 6144 - 4096
        (DISK_GB, Inventory(100, reserved=10), 80, Resources(disk_gb=10), True),
        (DISK_GB, Inventory(100, reserved=10), 80, Resources(disk_gb=11), False),
    ],
)
def test_each_resource_fits_or_is_short_by_placements_rule(
    resource: str, inventory: Inventory, used: int, need: Resources, fits: bool
) -> None:
    others = {rc: Inventory(1_000_000) for rc in (VCPU, MEMORY_MB, DISK_GB) if rc != resource}
    target = host("cmp2", inventories={resource: inventory, **others}, used={resource: used})
    unplaced, _ = fit([PlacedServer(pet("p").server, need)], [target])
    assert (not unplaced) is fits


def test_a_pet_larger_than_max_unit_fits_nowhere_even_with_room() -> None:
    target = host("cmp2", inventories={VCPU: Inventory(64, max_unit=8), MEMORY_MB: Inventory(1 << 20)})
    assert fit([pet("big", vcpu=9)], [target])[0] != []
    assert fit([pet("ok", vcpu=8)], [target])[0] == []


def test_a_pet_that_asks_for_a_resource_the_host_has_no_inventory_of_does_not_fit_there() -> None:
    no_disk = host("cmp2", inventories={VCPU: Inventory(8), MEMORY_MB: Inventory(8192)})
    assert fit([pet("disk", disk_gb=10)], [no_disk])[0] != []
    assert fit([pet("volume", disk_gb=0)], [no_disk])[0] == []  # asks for no disk: no disk inventory needed


# --------------------------------------------------------------------------- which hosts can take pets


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({}, None),
        ({"service_up": False}, "its nova-compute is down"),
        ({"forced_down": True}, "its nova-compute is forced down"),
        ({"maintenance": True}, "it is in petguard maintenance"),
        ({"enabled": False}, "its nova-compute is disabled"),
        ({"enabled": False, "reserved": True}, None),  # a reserved host is kept disabled: it counts
        ({"enabled": False, "reserved": True, "service_up": False}, "its nova-compute is down"),
        ({"reserved": True, "maintenance": True}, "it is in petguard maintenance"),
    ],
)
def test_which_hosts_can_take_pets(state: dict[str, bool], reason: str | None) -> None:
    assert unusable_reason(host("cmp2", **state)) == reason


def test_a_host_placement_knows_nothing_about_cannot_take_pets() -> None:
    assert unusable_reason(host("cmp2", inventories={})) == "placement has no inventory for it"


@pytest.mark.parametrize(
    "state", [{"service_up": False}, {"forced_down": True}, {"maintenance": True}, {"enabled": False}]
)
def test_room_on_an_unusable_host_is_not_counted(state: dict[str, bool]) -> None:
    failing = host("cmp1", servers=(pet("a", memory_mb=4096),))
    unusable = host("cmp2", memory_mb=8192, **state)
    report = check([failing, unusable], POLICY, AT)
    assert report.verdict is Verdict.SHORT
    assert report.hosts[0].missing == {VCPU: 1, MEMORY_MB: 4096}
    assert report.not_counted == {"cmp2": unusable_reason(unusable)}
    assert report.details().endswith(f"not counted as room: cmp2 ({unusable_reason(unusable)})")


def test_the_room_of_a_disabled_reserved_host_is_counted() -> None:
    failing = host("cmp1", servers=(pet("a", memory_mb=4096),))
    spare = host("spare1", enabled=False, reserved=True)
    assert check([failing, spare], POLICY, AT).verdict is Verdict.OK
    assert check([failing, host("spare1", enabled=False)], POLICY, AT).verdict is Verdict.SHORT


def test_the_failed_host_never_counts_its_own_room() -> None:
    lonely = host("cmp1", vcpu=64, memory_mb=1 << 20, servers=(pet("a"),))
    assert check([lonely], POLICY, AT).verdict is Verdict.SHORT


# ---------------------------------------------------------------------------- first-fit decreasing


def test_largest_pets_go_first_so_a_big_one_is_not_crowded_out_by_small_ones() -> None:
    # In arrival order (small ones first) the small ones would fill cmp2 and the big one fit nowhere;
    # largest first, the big one takes cmp2 and the small ones share cmp3.
    pets = [pet("s1", memory_mb=2048), pet("s2", memory_mb=2048), pet("big", memory_mb=6144)]
    targets = [host("cmp2", memory_mb=6144), host("cmp3", memory_mb=4096)]
    unplaced, left = fit(pets, targets)
    assert unplaced == []
    assert left[MEMORY_MB] == 0


def test_first_fit_fills_hosts_in_name_order_and_reports_the_room_left() -> None:
    pets = [pet("a", vcpu=2, memory_mb=1024), pet("b", vcpu=2, memory_mb=1024)]
    unplaced, left = fit(pets, [host("cmp3", vcpu=4), host("cmp2", vcpu=4)])
    assert unplaced == []
    assert left[VCPU] == 4  # both on cmp2 (first by name): cmp3's 4 left
    unplaced, _ = fit(pets + [pet("c", vcpu=4)], [host("cmp3", vcpu=4), host("cmp2", vcpu=4)])
    assert unplaced == []  # c (larger by vCPU at equal memory) went first to cmp2, a and b to cmp3


def test_room_split_across_hosts_is_reported_as_not_on_any_single_host() -> None:
    failing = host("cmp1", servers=(pet("big", memory_mb=6144),))
    report = check([failing, host("cmp2", memory_mb=4096), host("cmp3", memory_mb=4096)], POLICY, AT)
    verdict = report.hosts[0]
    assert not verdict.ok and verdict.unplaced == ("big",) and verdict.missing == {}
    assert "not on any single host" in verdict.summary()


# ------------------------------------------------------------------------------ hard server groups

ANTI = ServerGroup("g-anti", "web", GroupPolicy.ANTI_AFFINITY, frozenset({"id-w1", "id-w2", "id-w3"}))
AFFINITY = ServerGroup("g-aff", "db", GroupPolicy.AFFINITY, frozenset({"id-d1", "id-d2"}))
SOFT = ServerGroup("g-soft", "x", GroupPolicy.SOFT_ANTI_AFFINITY, frozenset({"id-s1", "id-s2"}))


def test_anti_affinity_members_never_share_a_target_nor_join_a_member() -> None:
    members = [pet("w1", group=ANTI), pet("w2", group=ANTI)]
    assert fit(members, [host("cmp2", memory_mb=65536)])[0] == [members[1]]  # room for both, not allowed
    assert fit(members, [host("cmp2"), host("cmp3")])[0] == []
    elsewhere = host("cmp3", servers=(pet("w3", group=ANTI),))  # a member already runs on cmp3
    unplaced, _ = fit(members, [host("cmp2"), elsewhere])
    assert [p.server.name for p in unplaced] == ["w2"]
    report = check([host("cmp1", servers=tuple(members)), host("cmp2", memory_mb=65536)], POLICY, AT)
    assert report.verdict is Verdict.SHORT and "server group rules" in report.hosts[0].summary()


def test_a_hard_affinity_member_only_goes_where_a_member_runs() -> None:
    d1 = pet("d1", group=AFFINITY)
    with_member = host("cmp3", memory_mb=1024, servers=(pet("d2", memory_mb=0, group=AFFINITY),))
    assert fit([d1], [host("cmp2"), with_member])[0] == []  # cmp2 comes first by name, but has no member
    full = host("cmp3", memory_mb=512, servers=(pet("d2", memory_mb=0, group=AFFINITY),))
    assert fit([d1], [host("cmp2"), full])[0] == [d1]


def test_a_hard_affinity_group_all_on_the_failed_host_is_left_behind_and_needs_no_room() -> None:
    failing = host("cmp1", servers=(pet("d1", group=AFFINITY), pet("d2", group=AFFINITY)))
    report = check([failing, host("cmp2")], POLICY, AT)
    assert report.verdict is Verdict.OK and report.hosts == ()  # plan.plan skips them: nowhere to go


def test_soft_policies_never_refuse() -> None:
    assert fit([pet("s1", group=SOFT), pet("s2", group=SOFT)], [host("cmp2")])[0] == []


# --------------------------------------------------------------------------------- which are pets


def test_only_the_servers_the_plan_would_move_count() -> None:
    servers = (
        pet("pet", memory_mb=1024),
        pet("cattle", memory_mb=99999, metadata={}),
        pet("opted-out", memory_mb=99999, metadata={"petguard:pet": "false"}),
        pet("paused", memory_mb=99999, vm_state="paused"),
        pet("local", memory_mb=99999, image_id="img-1"),  # local disk, no allow_data_loss: left behind
    )
    h = host("cmp1", servers=servers)
    assert [p.server.name for p in pets_of(h, POLICY)] == ["pet"]
    anything_goes = EvacuationPolicy(selectors=("all",), local_disk=ClassPolicy.EVACUATE)
    assert {p.server.name for p in pets_of(h, anything_goes)} == {"pet", "cattle", "local"}


def test_a_host_without_pets_is_trivially_fine_and_not_listed() -> None:
    report = check([host("cmp1", servers=(pet("cattle", metadata={}),)), host("cmp2", inventories={})], POLICY, AT)
    assert report.verdict is Verdict.OK and report.hosts == () and report.worst is None
    assert report.summary() == "ok: no host has pets"


# ---------------------------------------------------------------------------- flavor -> resources


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((2, 4096, 20), {}, Resources(2, 4096, 20)),
        ((2, 4096, 20, 10, 1025), {}, Resources(2, 4096, 32)),  # swap 1025 MiB -> 2 GiB
        ((2, 4096, 20, 10, 512), {"boot_from_volume": True}, Resources(2, 4096, 11)),  # no root disk
        ((4, 4096, 20), {"extra_specs": {"resources:VCPU": "0"}}, Resources(0, 4096, 20)),  # e.g. PCPU instead
        ((4, 4096, 20), {"extra_specs": {"resources:MEMORY_MB": "many"}}, Resources(4, 4096, 20)),
    ],
)
def test_flavor_resources_as_nova_asks_placement(
    args: tuple[int, ...], kwargs: dict[str, object], expected: Resources
) -> None:
    assert flavor_resources(*args, **kwargs) == expected  # type: ignore[arg-type]


# -------------------------------------------------------------------- verdict, worst host, summary


def test_verdict_worst_host_and_what_is_short() -> None:
    cmp1 = host(
        "cmp1", used={VCPU: 4, MEMORY_MB: 4096, DISK_GB: 20}, servers=(pet("a", 2, 2048, 10), pet("b", 2, 2048, 10))
    )
    cmp2 = host(
        "cmp2",
        used={VCPU: 4, MEMORY_MB: 4096, DISK_GB: 20},
        servers=tuple(pet(n, 4, 8192, 20) for n in ("c", "d", "e")),
    )
    cmp3 = host("cmp3", vcpu=32, memory_mb=16384, disk_gb=500)
    report = check([cmp3, cmp2, cmp1], POLICY, AT)
    assert report.verdict is Verdict.SHORT and report.checked_at == AT
    assert [h.host for h in report.hosts] == ["cmp1", "cmp2"]
    assert report.worst is not None and report.worst.host == "cmp2"
    cmp1_verdict, cmp2_verdict = report.hosts
    assert cmp1_verdict.ok
    # cmp2's three 8 GiB pets: cmp3 takes two (16 GiB), cmp1 has 4 GiB left of 8: the third lacks 4 GiB
    assert cmp2_verdict.unplaced == ("e",)
    assert cmp2_verdict.missing == {MEMORY_MB: 4096}
    assert cmp2_verdict.summary() == (
        "cmp2: 3 pets, 12 vCPU / 24 GiB RAM / 60 GiB disk; short: MEMORY_MB 4096 MiB missing; no room for 1: e"
    )
    assert report.short == (cmp2_verdict,)
    assert report.summary() == "short: the pets of cmp2 would not all find room elsewhere"
    assert report.details() == f"{report.summary()}; {cmp2_verdict.summary()}"


@pytest.mark.parametrize(
    ("resources", "text"),
    [
        (Resources(12, 24576, 60), "12 vCPU / 24 GiB RAM / 60 GiB disk"),
        (Resources(1, 1536, 0), "1 vCPU / 1.5 GiB RAM / 0 GiB disk"),
        (Resources(7, 448, 7), "7 vCPU / 448 MiB RAM / 7 GiB disk"),
    ],
)
def test_resources_read_well(resources: Resources, text: str) -> None:
    assert resources.describe() == text


def test_ok_names_the_largest_host() -> None:
    report = check([host("cmp1", servers=(pet("a", 1, 1536),)), host("cmp2", servers=(pet("b", 1, 512),))], POLICY, AT)
    assert report.verdict is Verdict.OK
    assert report.summary() == (
        "ok: the pets of any one host fit on the others; largest: "
        "cmp1: 1 pet, 1 vCPU / 1.5 GiB RAM / 0 GiB disk; fits on the other hosts"
    )


def test_unknown_says_why_and_has_no_hosts() -> None:
    report = CapacityReport.unknown("placement answered 503 (request req-1)", AT)
    assert report.verdict is Verdict.UNKNOWN and report.hosts == () and report.worst is None
    assert report.summary() == "unknown: placement answered 503 (request req-1)"


# ----------------------------------------------------------------------------------------- alerts

OK = CapacityReport(Verdict.OK, AT)
SHORT = CapacityReport(Verdict.SHORT, AT, (HostVerdict("cmp1", 1, Resources(1, 1, 1), ("a",), {VCPU: 1}),))
UNKNOWN = CapacityReport.unknown("no placement", AT)


@pytest.mark.parametrize(
    ("last_alerted", "report", "kind"),
    [
        (None, SHORT, "capacity_short"),  # the first check of a term that finds it short
        (Verdict.OK, SHORT, "capacity_short"),
        (Verdict.SHORT, SHORT, None),  # still short: alerted already
        (Verdict.SHORT, OK, "capacity_ok"),
        (None, OK, None),  # fine from the start: nothing to say
        (Verdict.OK, OK, None),
        (Verdict.SHORT, UNKNOWN, None),  # not news about capacity
        (Verdict.OK, UNKNOWN, None),
        (None, UNKNOWN, None),
    ],
)
def test_alert_only_when_the_verdict_changes_between_ok_and_short(
    last_alerted: Verdict | None, report: CapacityReport, kind: str | None
) -> None:
    assert alert_for(last_alerted, report) == kind
