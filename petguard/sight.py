"""Whether petguard can see Nova: consecutive failed readings, and when they make petguard blind (pure domain).

Each tick reads Nova's compute services once. When that reading fails (Keystone refuses petguard's
user, nova-api answers 5xx or not at all) the tick decides nothing: no host is fenced and none is
marked up from a reading that failed. One failed tick is noise; ``blind_after`` failed ticks in a row
mean petguard is **blind**: it watches no host any more, and an operator must be told once, with why,
since when and which hosts (the ``nova_unreadable`` event). The first good reading ends it (the
``nova_readable_again`` event, with how long it lasted).

``Sight`` is the frozen value the loop carries from tick to tick; ``after_failure`` and
``after_reading`` are its pure update rules. They return the new value and the ``Change`` to
announce (at most one per transition, never one per tick). No I/O, no clock, no logging here:
``petguard.reconcile`` records the events and writes the log line.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Iterable

from petguard.hosts import Host, HostState

#: Event kinds (docs/alerts.md).
UNREADABLE = "nova_unreadable"
READABLE_AGAIN = "nova_readable_again"


class Cause(enum.StrEnum):
    """Why Nova could not be read, as far as the next step for an operator differs."""

    AUTH = "auth"  # Keystone refused petguard's credentials (401): user disabled, password changed
    FORBIDDEN = "forbidden"  # authenticated, but not allowed (403): a role was taken away
    UNAVAILABLE = "unavailable"  # Keystone or nova-api did not answer, timed out or answered 5xx
    OTHER = "other"  # any other refusal (a 4xx, TLS, the catalog)


#: What an operator should check first, per cause (the error text itself says more).
NEXT_STEP: dict[Cause, str] = {
    Cause.AUTH: (
        "check petguard's Keystone user (enabled? password changed?) and the auth section of its cloud in "
        "clouds.yaml ([nova] cloud, [nova] clouds_file), e.g. `openstack --os-cloud CLOUD compute service list` "
        "as the petguard user"
    ),
    Cause.FORBIDDEN: "give petguard's Keystone user back the admin role in the project of its cloud (clouds.yaml)",
    Cause.UNAVAILABLE: (
        "check that Keystone and nova-api answer from this controller (`openstack compute service list` with "
        "petguard's clouds.yaml), and their logs"
    ),
    Cause.OTHER: "read the error above; check petguard's clouds.yaml ([nova] cloud) and nova-api's logs",
}


class Change(enum.StrEnum):
    """What a reading changed, for the loop to announce."""

    NONE = "none"
    WENT_BLIND = "went_blind"  # blind_after failed readings in a row: record UNREADABLE once
    SEES_AGAIN = "sees_again"  # the first good reading after blindness: record READABLE_AGAIN once


@dataclasses.dataclass(frozen=True)
class Unwatched:
    """A host petguard knew from its last good reading and cannot watch while blind."""

    name: str
    state: HostState
    incident_id: int | None = None

    @classmethod
    def of(cls, host: Host) -> Unwatched:
        return cls(host.name, host.state, host.incident_id)

    def describe(self) -> str:
        """``cmp1 (up)`` or ``cmp7 (evacuating, incident 42)``."""
        incident = f", incident {self.incident_id}" if self.incident_id is not None else ""
        return f"{self.name} ({self.state.value}{incident})"


@dataclasses.dataclass(frozen=True)
class Sight:
    """What the loop knows about its own view of Nova, carried from tick to tick."""

    #: failed readings in a row (0: the last reading succeeded, or none was tried yet)
    failures: int = 0
    #: when the first of those failed readings was tried
    since: float | None = None
    #: why the latest reading failed (the Nova adapter's text: already redacted, never a secret)
    reason: str = ""
    cause: Cause = Cause.OTHER
    #: when petguard became blind (``blind_after`` failures were reached); None: not blind
    blind_at: float | None = None
    #: the hosts petguard could no longer watch when it became blind
    unwatched: tuple[Unwatched, ...] = ()
    #: when Nova was last read successfully by this controller (None: not yet)
    last_read: float | None = None

    @property
    def blind(self) -> bool:
        return self.blind_at is not None

    @property
    def readable(self) -> bool | None:
        """True when the last reading succeeded, False when it failed, None before any reading."""
        if self.failures:
            return False
        return True if self.last_read is not None else None

    def after_failure(self, reason: str, cause: Cause, at: float, blind_after: int) -> tuple[Sight, Change]:
        """One more failed reading; the ``blind_after``-th in a row makes petguard blind (once)."""
        failures = self.failures + 1
        since = self.since if self.failures and self.since is not None else at
        new = dataclasses.replace(self, failures=failures, since=since, reason=reason, cause=cause)
        if self.blind or failures < max(blind_after, 1):
            return new, Change.NONE
        return dataclasses.replace(new, blind_at=at), Change.WENT_BLIND

    def with_unwatched(self, hosts: Iterable[Host]) -> Sight:
        """The hosts petguard cannot watch: every host of its last good reading, by name."""
        return dataclasses.replace(self, unwatched=tuple(Unwatched.of(h) for h in sorted(hosts, key=_name)))

    def unannounced(self) -> Sight:
        """The same failures, not blind yet: the announcement could not be recorded and is tried again
        on the next failed tick (an unrecorded alert would be an operator never told)."""
        return dataclasses.replace(self, blind_at=None, unwatched=())

    def after_reading(self, at: float) -> tuple[Sight, Change]:
        """A good reading: failures forgotten; after blindness, SEES_AGAIN (once)."""
        change = Change.SEES_AGAIN if self.blind else Change.NONE
        return Sight(last_read=at), change

    # -- what operators read ------------------------------------------------------------------------
    def describe(self, now: float) -> str:
        """One line for /healthz, ``petguard status`` and the log: where petguard's view of Nova stands."""
        if self.readable is None:
            return "Nova not read yet"
        if not self.failures:
            return f"Nova read {now - (self.last_read or now):.1f} s ago"
        what = "blind" if self.blind else "Nova unreadable"
        return (
            f"{what} since {_when(self.since)} ({self.failures} failed reading(s) in a row, "
            f"{now - (self.since or now):.0f} s): {self.reason}"
        )

    def unwatched_text(self) -> str:
        """The hosts not watched, grouped: hosts in an incident by name, the others per state."""
        if not self.unwatched:
            return "none known (no good reading of Nova yet)"
        in_incident = [h.describe() for h in self.unwatched if h.incident_id is not None]
        per_state: dict[HostState, list[str]] = {}
        for host in self.unwatched:
            if host.incident_id is None:
                per_state.setdefault(host.state, []).append(host.name)
        parts = [f"{state.value}: {', '.join(names)}" for state, names in per_state.items()]
        if in_incident:
            parts.append(f"in an incident: {', '.join(in_incident)}")
        return f"{len(self.unwatched)} host(s): " + "; ".join(parts)


def blind_message(sight: Sight, blind_after: int) -> str:
    """The ``nova_unreadable`` event: why, since when, which hosts, what petguard does, what to do."""
    return (
        f"petguard cannot read Nova's compute services: {sight.failures} failed tick(s) in a row since "
        f"{_when(sight.since)} ([detection] blind_after = {blind_after}): {sight.reason}. petguard is blind: "
        f"it fences nobody and marks nobody up until it can read Nova again; evacuations in progress go on "
        f"where Nova answers and wait where it does not. Hosts not watched: {sight.unwatched_text()}. "
        f"Next: {NEXT_STEP[sight.cause]}"
    )


def sees_again_message(blind: Sight, at: float) -> str:
    """The ``nova_readable_again`` event: how long petguard was blind."""
    since = blind.since if blind.since is not None else at
    return (
        f"petguard reads Nova's compute services again after {at - since:.0f} s blind (since {_when(since)}, "
        f"{blind.failures} failed tick(s)); it watches its {len(blind.unwatched)} host(s) again"
    )


def _name(host: Host) -> str:
    return host.name


def _when(at: float | None) -> str:
    """UTC wall time of an epoch second (``time`` is only formatting here, no clock is read)."""
    if at is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
