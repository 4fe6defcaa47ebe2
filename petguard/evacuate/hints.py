"""Evacuation target hints from the operator: where a pet should go, and which rule said so (pure).

A hint is one of ``aggregate:NAME`` (a host of that host aggregate), ``az:NAME`` (a host of that
availability zone) or ``reserved`` (a reserved failover host that petguard enables for the incident).
Sources, most specific first (``choose_hint``):

1. the server's metadata ``petguard:target``;
2. ``[evacuation] host_targets`` for the failed host by name (``cmp1=az:zone2``);
3. ``[evacuation] host_targets`` for an aggregate the failed host is in (``aggregate:rack1=reserved``);
4. the default hint (``[evacuation] use_reserved_hosts = true`` makes it ``reserved``);
5. none: the scheduler's own choice.

A hint is only a proposal: the runner resolves it to one host at request time, from fresh Nova
state, and passes that host to Nova's evacuate, whose scheduler still validates it (filters, server
group policy). When the hint cannot be met the move falls back to the scheduler's own choice and
says so. A malformed hint in a server's metadata never stops a move: it moves with no hint and a
note that says why. Malformed config is refused when the config is read (``parse_host_targets``).

No I/O here; ``plan.plan`` records the chosen hint on each ``Move``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from petguard.cloud import HintKind, TargetHint

TARGET_KEY = "petguard:target"
#: What a hint may look like, for messages.
HINT_FORMS = "aggregate:NAME, az:NAME or reserved"


class HintError(ValueError):
    """A hint that is not ``aggregate:NAME``, ``az:NAME`` or ``reserved``."""


def parse_hint(text: str) -> TargetHint:
    """``aggregate:NAME`` | ``az:NAME`` | ``reserved`` (surrounding blanks ignored) -> ``TargetHint``.

    :raises HintError: anything else, including an empty NAME.
    """
    cleaned = text.strip()
    if cleaned == HintKind.RESERVED.value:
        return TargetHint(HintKind.RESERVED)
    kind, sep, name = cleaned.partition(":")
    if sep and kind in (HintKind.AGGREGATE.value, HintKind.AZ.value) and name.strip():
        return TargetHint(HintKind(kind), name.strip())
    raise HintError(f"{text!r} is not {HINT_FORMS}")


@dataclasses.dataclass(frozen=True)
class HintRules:
    """The operator's hints from config: by failed host name, by aggregate of the failed host, default."""

    by_host: Mapping[str, TargetHint] = dataclasses.field(default_factory=dict)
    by_aggregate: Mapping[str, TargetHint] = dataclasses.field(default_factory=dict)
    default: TargetHint | None = None


AGGREGATE_PREFIX = "aggregate:"


def parse_host_targets(lines: Iterable[str], default: TargetHint | None = None) -> HintRules:
    """``[evacuation] host_targets`` lines, each ``SOURCE=HINT`` where SOURCE is a compute host name
    or ``aggregate:NAME`` (every host of that aggregate).

    :raises HintError: one message naming every bad line (config is refused, never half-read).
    """
    by_host: dict[str, TargetHint] = {}
    by_aggregate: dict[str, TargetHint] = {}
    problems: list[str] = []
    for line in lines:
        source, sep, hint_text = line.partition("=")
        source = source.strip()
        if not sep or not source:
            problems.append(f"{line!r} is not SOURCE=HINT (SOURCE: a host name or aggregate:NAME)")
            continue
        try:
            hint = parse_hint(hint_text)
        except HintError as exc:
            problems.append(f"{line!r}: {exc}")
            continue
        if source.startswith(AGGREGATE_PREFIX):
            aggregate = source[len(AGGREGATE_PREFIX) :].strip()
            if not aggregate:
                problems.append(f"{line!r}: empty aggregate name")
                continue
            by_aggregate[aggregate] = hint
        else:
            by_host[source] = hint
    if problems:
        raise HintError("[evacuation] host_targets: " + "; ".join(problems) + f" (a hint is {HINT_FORMS})")
    return HintRules(by_host, by_aggregate, default)


@dataclasses.dataclass(frozen=True)
class HintChoice:
    """The hint a pet follows (None: the scheduler's choice), which rule gave it, and any note."""

    hint: TargetHint | None
    source: str = ""  # e.g. "metadata petguard:target", "[evacuation] host_targets cmp1"
    note: str = ""  # why a hint that was asked for is not followed


NO_HINT = HintChoice(None)


def choose_hint(metadata: Mapping[str, str], host: str, host_aggregates: Iterable[str], rules: HintRules) -> HintChoice:
    """The most specific hint for a pet of the failed ``host`` (in ``host_aggregates``).

    A malformed ``petguard:target`` gives no hint and a note (the pet still moves); it does not fall
    through to the config's hint, because the owner asked for something else than the config.
    """
    raw = metadata.get(TARGET_KEY)
    if raw is not None:
        try:
            return HintChoice(parse_hint(raw), f"metadata {TARGET_KEY}")
        except HintError as exc:
            return HintChoice(None, "", f"{TARGET_KEY} {exc}; using the scheduler's choice")
    if host in rules.by_host:
        return HintChoice(rules.by_host[host], f"[evacuation] host_targets {host}")
    for aggregate in sorted(set(host_aggregates)):  # name order: deterministic when several match
        if aggregate in rules.by_aggregate:
            return HintChoice(rules.by_aggregate[aggregate], f"[evacuation] host_targets aggregate:{aggregate}")
    if rules.default is not None:
        return HintChoice(rules.default, "[evacuation] use_reserved_hosts")
    return NO_HINT


def spread_note(group_name: str, hint: str, first_member: str) -> str:
    """Why a member of an anti-affinity group does not follow its hint (``plan`` keeps one per hint)."""
    return (
        f"anti-affinity group {group_name}: {first_member} already follows hint {hint}, which proposes one "
        "host; this member goes to the scheduler's choice so that the hint never bounces a member"
    )
