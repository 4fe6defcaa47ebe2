"""The host lifecycle: one transition table, and the frozen Host value that follows it (pure domain).

Every edge a compute host can take lives in ``TRANSITIONS``; the diagram in docs/lifecycle.md is
generated from it (``python -m petguard.hosts``). Safety rules are data here, where a reviewer can
see them:

* EVACUATING is reachable only from FENCED (guarantee 1: no evacuation without a confirmed fence).
* FENCED is reachable only from FENCING (power read back off) or AWAITING_CONFIRM (operator).
* A failed fence goes to AWAITING_CONFIRM and only an operator leaves it (guarantee 4).
* EVACUATED returns to UP only through RESTORING, by an operator's restore (guarantee 6).

This module does no I/O, reads no clock and no config: callers pass ``at``.
"""

from __future__ import annotations

import dataclasses
import enum

from petguard.errors import InvalidTransition


class HostState(enum.StrEnum):
    """Where a compute host is in petguard's lifecycle."""

    UP = "up"
    SUSPECT = "suspect"
    FENCING = "fencing"
    FENCED = "fenced"
    EVACUATING = "evacuating"
    EVACUATED = "evacuated"
    AWAITING_CONFIRM = "awaiting_confirm"
    RESTORING = "restoring"
    MAINTENANCE = "maintenance"


class HostEvent(enum.StrEnum):
    """What can happen to a host; each is an edge label in the table."""

    SIGNALS_DOWN = "signals_down"  # detection says the host looks down
    SIGNALS_UP = "signals_up"  # the host looks healthy again before it was fenced
    FENCE_STARTED = "fence_started"  # grace passed, brake open: start fencing
    FENCE_CONFIRMED = "fence_confirmed"  # power read back OFF enough times
    FENCE_FAILED = "fence_failed"  # every fence level failed: an operator must confirm
    OPERATOR_CONFIRMED_FENCED = "operator_confirmed_fenced"
    EVACUATION_STARTED = "evacuation_started"
    EVACUATION_FINISHED = "evacuation_finished"  # every planned move is final (done or failed)
    OPERATOR_RESTORE = "operator_restore"  # the operator returns the host to service
    SERVICE_RESTORED = "service_restored"  # Nova's service is heartbeating, unforced and enabled again
    RESTORE_FAILED = "restore_failed"  # the host did not come back: it stays out of service
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    OPERATOR_FENCE = "operator_fence"  # the operator asks to fence the host now
    OPERATOR_EVACUATE = "operator_evacuate"  # the operator asks to (re)run the evacuation of a fenced host


S, E = HostState, HostEvent

#: (state, event) -> next state. Anything not listed is refused with InvalidTransition.
TRANSITIONS: dict[tuple[HostState, HostEvent], HostState] = {
    (S.UP, E.SIGNALS_DOWN): S.SUSPECT,
    (S.SUSPECT, E.SIGNALS_UP): S.UP,
    (S.SUSPECT, E.FENCE_STARTED): S.FENCING,
    (S.FENCING, E.FENCE_CONFIRMED): S.FENCED,
    (S.FENCING, E.FENCE_FAILED): S.AWAITING_CONFIRM,
    (S.AWAITING_CONFIRM, E.OPERATOR_CONFIRMED_FENCED): S.FENCED,
    (S.FENCED, E.EVACUATION_STARTED): S.EVACUATING,
    (S.EVACUATING, E.EVACUATION_FINISHED): S.EVACUATED,
    # Restoring keeps the service forced down until every evacuation is final and the host
    # heartbeats again; only then is it unforced and enabled (guarantee 6).
    (S.EVACUATED, E.OPERATOR_RESTORE): S.RESTORING,
    (S.RESTORING, E.SERVICE_RESTORED): S.UP,
    (S.RESTORING, E.RESTORE_FAILED): S.EVACUATED,
    # Maintenance is refused while a fence or an evacuation is in flight (those finish first) and
    # while petguard holds the service forced down (restore first). A host that could not be fenced
    # and turns out to be fine leaves AWAITING_CONFIRM through maintenance.
    (S.UP, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.SUSPECT, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.AWAITING_CONFIRM, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.MAINTENANCE, E.MAINTENANCE_OFF): S.UP,
    # An operator may fence a host at any time it is not already held down; it is still confirmed
    # only by reading the power back OFF. An operator may re-run the evacuation of an evacuated host
    # (e.g. to retry pets that found no valid host): it goes back to FENCED, which it still is, so
    # EVACUATING is still reached only from FENCED.
    (S.UP, E.OPERATOR_FENCE): S.FENCING,
    (S.SUSPECT, E.OPERATOR_FENCE): S.FENCING,
    (S.AWAITING_CONFIRM, E.OPERATOR_FENCE): S.FENCING,
    (S.MAINTENANCE, E.OPERATOR_FENCE): S.FENCING,
    (S.EVACUATED, E.OPERATOR_EVACUATE): S.FENCED,
}

#: States in which the host has been (or is being) taken out of service by petguard: Nova's service
#: stays forced down and disabled until an operator restores it.
HELD_DOWN: frozenset[HostState] = frozenset({S.FENCED, S.EVACUATING, S.EVACUATED, S.RESTORING})

#: States in which an incident is open.
IN_INCIDENT: frozenset[HostState] = frozenset(
    {S.SUSPECT, S.FENCING, S.FENCED, S.EVACUATING, S.EVACUATED, S.AWAITING_CONFIRM, S.RESTORING}
)


def next_state(state: HostState, event: HostEvent) -> HostState:
    """Return the state ``event`` leads to from ``state``.

    :raises InvalidTransition: the table has no such edge.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(
            f"host lifecycle has no edge {state.value} --{event.value}-->",
            state=state.value,
            event=event.value,
        ) from None


@dataclasses.dataclass(frozen=True)
class Host:
    """A compute host as petguard sees it. Immutable: ``apply`` returns a new Host."""

    name: str
    state: HostState = HostState.UP
    since: float = 0.0
    incident_id: int | None = None
    reason: str = ""

    def apply(self, event: HostEvent, at: float, reason: str = "") -> Host:
        """Follow one edge of the table.

        :raises InvalidTransition: the edge is not in the table.
        """
        new_state = next_state(self.state, event)
        return dataclasses.replace(self, state=new_state, since=at, reason=reason)

    def with_incident(self, incident_id: int | None) -> Host:
        """The same host, attached to (or detached from) an incident."""
        return dataclasses.replace(self, incident_id=incident_id)


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid state diagram, generated from ``TRANSITIONS``."""
    lines = ["stateDiagram-v2", "    [*] --> up"]
    for (source, event), target in TRANSITIONS.items():
        lines.append(f"    {source.value} --> {target.value}: {event.value}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print docs/lifecycle.md (``python -m petguard.hosts > docs/lifecycle.md``)."""
    print("# Host lifecycle\n")
    print("Generated from `petguard.hosts.TRANSITIONS` by `python -m petguard.hosts`; do not edit.\n")
    print("EVACUATING is reachable only from FENCED. Edges not drawn are refused.\n")
    print("```mermaid")
    print(mermaid_diagram(), end="")
    print("```")
    print("\n| from | event | to |\n|---|---|---|")
    for (source, event), target in TRANSITIONS.items():
        print(f"| {source.value} | {event.value} | {target.value} |")


if __name__ == "__main__":
    main()
