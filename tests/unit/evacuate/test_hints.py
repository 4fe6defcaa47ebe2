"""Target hints (pure): parsing, the precedence of their sources, and one member of an anti-affinity
group per hint."""

from __future__ import annotations

import pytest

from petguard.cloud import GroupPolicy, HintKind, Server, ServerGroup, TargetHint
from petguard.evacuate.hints import HintChoice, HintError, HintRules, choose_hint, parse_hint, parse_host_targets
from petguard.evacuate.plan import EvacuationPolicy, dry_run, plan

AGG_FAST = TargetHint(HintKind.AGGREGATE, "fast")
AZ2 = TargetHint(HintKind.AZ, "zone2")
RESERVED = TargetHint(HintKind.RESERVED)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("aggregate:fast", AGG_FAST),
        ("  az:zone2 ", AZ2),
        ("reserved", RESERVED),
        ("aggregate: fast", AGG_FAST),
        ("az:zone:with:colons", TargetHint(HintKind.AZ, "zone:with:colons")),
    ],
)
def test_parse_hint(text: str, hint: TargetHint) -> None:
    assert parse_hint(text) == hint
    assert parse_hint(str(hint)) == hint  # str() is the journal's form: it reads back


@pytest.mark.parametrize("text", ["", "foo", "aggregate:", "az: ", "host:cmp2", "Reserved", "reserved:x", "az"])
def test_parse_hint_refuses_anything_else(text: str) -> None:
    with pytest.raises(HintError, match="is not aggregate:NAME, az:NAME or reserved"):
        parse_hint(text)


def test_host_targets_by_host_and_by_aggregate() -> None:
    rules = parse_host_targets(["cmp1=az:zone2", " aggregate:rack1 = aggregate:fast", "cmp2=reserved"])
    assert rules.by_host == {"cmp1": AZ2, "cmp2": RESERVED}
    assert rules.by_aggregate == {"rack1": AGG_FAST}
    assert rules.default is None


def test_host_targets_names_every_bad_line() -> None:
    with pytest.raises(HintError) as caught:
        parse_host_targets(["cmp1=az:zone2", "cmp2", "cmp3=foo", "aggregate:=reserved", "=reserved"])
    text = str(caught.value)
    assert "'cmp2' is not SOURCE=HINT" in text and "'cmp3=foo'" in text and "empty aggregate name" in text
    assert "'=reserved' is not SOURCE=HINT" in text and "cmp1" not in text


RULES = HintRules(by_host={"cmp1": AZ2}, by_aggregate={"rack1": AGG_FAST, "rack0": RESERVED}, default=RESERVED)


@pytest.mark.parametrize(
    ("metadata", "host", "aggregates", "rules", "expected"),
    [
        # metadata first
        (
            {"petguard:target": "aggregate:fast"},
            "cmp1",
            {"rack1"},
            RULES,
            HintChoice(AGG_FAST, "metadata petguard:target"),
        ),
        # then the host by name, over its aggregates
        ({}, "cmp1", {"rack1"}, RULES, HintChoice(AZ2, "[evacuation] host_targets cmp1")),
        # then its aggregates, in name order when several match
        ({}, "cmp2", {"rack1", "rack0"}, RULES, HintChoice(RESERVED, "[evacuation] host_targets aggregate:rack0")),
        ({}, "cmp2", {"rack1", "other"}, RULES, HintChoice(AGG_FAST, "[evacuation] host_targets aggregate:rack1")),
        # then the default
        ({}, "cmp2", set(), RULES, HintChoice(RESERVED, "[evacuation] use_reserved_hosts")),
        # none: the scheduler's choice
        ({}, "cmp2", {"rack1"}, HintRules(), HintChoice(None)),
    ],
)
def test_precedence(
    metadata: dict[str, str], host: str, aggregates: set[str], rules: HintRules, expected: HintChoice
) -> None:
    assert choose_hint(metadata, host, aggregates, rules) == expected


def test_a_malformed_metadata_hint_gives_no_hint_and_says_why_without_falling_through_to_config() -> None:
    choice = choose_hint({"petguard:target": "foo"}, "cmp1", (), RULES)
    assert choice.hint is None
    assert choice.note == (
        "petguard:target 'foo' is not aggregate:NAME, az:NAME or reserved; using the scheduler's choice"
    )


def pet(name: str, target: str | None = None, group: ServerGroup | None = None, priority: int = 0) -> Server:
    metadata = {"petguard:pet": "true", "petguard:priority": str(priority)}
    if target is not None:
        metadata["petguard:target"] = target
    return Server(f"{name}-id", name, "cmp1", "ACTIVE", "active", power_state=1, metadata=metadata, group=group)


def test_the_plan_records_each_moves_hint_source_and_note() -> None:
    policy = EvacuationPolicy(hints=HintRules(by_aggregate={"rack1": AZ2}))
    the_plan = plan("cmp1", [pet("a", "aggregate:fast"), pet("b"), pet("c", "bogus")], policy, {"rack1"})
    moves = {m.server_name: m for m in the_plan.moves}
    assert (moves["a"].hint, moves["a"].hint_source) == ("aggregate:fast", "metadata petguard:target")
    assert (moves["b"].hint, moves["b"].hint_source) == ("az:zone2", "[evacuation] host_targets aggregate:rack1")
    assert moves["c"].hint == "" and "'bogus' is not" in moves["c"].hint_note
    assert len(the_plan.moves) == 3  # a malformed hint never stops a move


def test_no_hint_is_todays_plan() -> None:
    servers = [pet("a"), pet("b", priority=3)]
    the_plan = plan("cmp1", servers, EvacuationPolicy())
    assert all((m.hint, m.hint_source, m.hint_note) == ("", "", "") for m in the_plan.moves)


def group(policy: GroupPolicy, *names: str) -> ServerGroup:
    return ServerGroup("g1", "ha", policy, frozenset(f"{n}-id" for n in names))


def test_one_member_of_an_anti_affinity_group_per_hint_the_others_go_to_the_scheduler() -> None:
    anti = group(GroupPolicy.ANTI_AFFINITY, "m1", "m2", "m3", "m4")
    servers = [
        pet("m1", "reserved", anti, priority=1),
        pet("m2", "reserved", anti, priority=5),  # first in run order: keeps the hint
        pet("m3", "az:zone2", anti),  # another hint: its own proposed host
        pet("m4", "reserved", anti),
    ]
    moves = {m.server_name: m for m in plan("cmp1", servers, EvacuationPolicy()).moves}
    assert moves["m2"].hint == "reserved" and moves["m3"].hint == "az:zone2"
    for name in ("m1", "m4"):
        assert moves[name].hint == "" and moves[name].hint_source == ""
        assert moves[name].hint_note.startswith("anti-affinity group ha: m2 already follows hint reserved")
    assert sorted(m.wave for m in moves.values()) == [0, 1, 2, 3]  # still one member per wave


@pytest.mark.parametrize("policy", [GroupPolicy.AFFINITY, GroupPolicy.SOFT_ANTI_AFFINITY, GroupPolicy.SOFT_AFFINITY])
def test_other_groups_share_their_hint(policy: GroupPolicy) -> None:
    shared = group(policy, "m1", "m2", "elsewhere")  # a member on another host: hard affinity can follow it
    servers = [pet("m1", "aggregate:fast", shared), pet("m2", "aggregate:fast", shared)]
    moves = plan("cmp1", servers, EvacuationPolicy()).moves
    assert [m.hint for m in moves] == ["aggregate:fast", "aggregate:fast"]


def test_the_dry_run_shows_each_moves_hint_and_its_source() -> None:
    _, rows = dry_run(
        "cmp1", [pet("a", "az:zone2"), pet("b", "nope")], EvacuationPolicy(hints=HintRules(default=RESERVED))
    )
    by_name = {r.server_name: r for r in rows}
    assert (by_name["a"].hint, by_name["a"].hint_source) == ("az:zone2", "metadata petguard:target")
    assert by_name["b"].hint == "" and "'nope' is not" in by_name["b"].hint_note
