"""Blindness: counting the ticks whose reading of Nova failed, and announcing it once each way (petguard.sight)."""

from __future__ import annotations

import pytest

from petguard.hosts import Host, HostState
from petguard.sight import (
    NEXT_STEP,
    Cause,
    Change,
    Sight,
    Unwatched,
    blind_message,
    sees_again_message,
)

REFUSED = "list compute services: HTTP 401: The request you have made requires authentication. (request req-1)"
HOSTS = [
    Host("cmp2", HostState.EVACUATING, incident_id=42),
    Host("cmp1"),
    Host("cmp3", HostState.MAINTENANCE),
]


def fail(sight: Sight, at: float, blind_after: int = 3, cause: Cause = Cause.AUTH) -> tuple[Sight, Change]:
    return sight.after_failure(REFUSED, cause, at, blind_after)


def run(readings: str, blind_after: int = 3) -> list[Change]:
    """``readings``: one letter per tick, ``o`` a good reading, ``x`` a failed one; the changes announced."""
    sight, changes = Sight(), []
    for at, letter in enumerate(readings, start=100):
        sight, change = sight.after_reading(float(at)) if letter == "o" else fail(sight, float(at), blind_after)
        changes.append(change)
    return changes


N, B, S = Change.NONE, Change.WENT_BLIND, Change.SEES_AGAIN

# (readings, blind_after) -> the change of each tick
COUNTING = [
    ("xx", 3, [N, N]),  # two failed ticks are noise
    ("xxx", 3, [N, N, B]),  # the third in a row makes petguard blind
    ("xxxxxx", 3, [N, N, B, N, N, N]),  # once, not once per tick
    ("xxxxo", 3, [N, N, B, N, S]),  # the first good reading ends it, once
    ("xxxxooo", 3, [N, N, B, N, S, N, N]),
    ("xxoxxo", 3, [N, N, N, N, N, N]),  # a good reading between failures starts the count again
    ("xxoxxx", 3, [N, N, N, N, N, B]),
    ("xxxoxxx", 3, [N, N, B, S, N, N, B]),  # a second episode is announced again
    ("x", 1, [B]),
    ("xo", 1, [B, S]),
    ("x", 0, [B]),  # below 1 counts as 1: a failed reading is never ignored for ever
    ("o", 3, [N]),
]


@pytest.mark.parametrize(("readings", "blind_after", "expected"), COUNTING)
@pytest.mark.fault(
    "BLIND-01",
    guarantee="4",
    injected="Nova's compute services cannot be read for several ticks in a row (the counting rule)",
    expected="blind after exactly blind_after failed ticks, announced once; the first good reading ends it, once",
)
def test_counting(readings: str, blind_after: int, expected: list[Change]) -> None:
    assert run(readings, blind_after) == expected


def test_since_is_the_first_failure_of_the_streak_and_reason_the_latest() -> None:
    sight, _ = fail(Sight(), 100.0)
    sight, _ = sight.after_failure("nova-api: HTTP 503", Cause.UNAVAILABLE, 110.0, 3)
    sight, change = fail(sight, 120.0)
    assert change is Change.WENT_BLIND
    assert (sight.failures, sight.since, sight.blind_at, sight.reason) == (3, 100.0, 120.0, REFUSED)
    assert sight.readable is False and sight.blind


def test_readable_is_unknown_before_any_reading() -> None:
    assert Sight().readable is None and not Sight().blind
    assert Sight().after_reading(5.0)[0].readable is True


def test_a_good_reading_forgets_the_failures() -> None:
    sight = Sight()
    for at in (1.0, 2.0, 3.0):
        sight, _ = fail(sight, at)
    sight, change = sight.with_unwatched(HOSTS).after_reading(9.0)
    assert change is Change.SEES_AGAIN
    assert sight == Sight(last_read=9.0)


def test_the_unwatched_hosts_keep_their_last_state_and_incident() -> None:
    sight = Sight().with_unwatched(HOSTS)
    assert sight.unwatched == (
        Unwatched("cmp1", HostState.UP),
        Unwatched("cmp2", HostState.EVACUATING, 42),
        Unwatched("cmp3", HostState.MAINTENANCE),
    )
    assert sight.unwatched_text() == (
        "3 host(s): up: cmp1; maintenance: cmp3; in an incident: cmp2 (evacuating, incident 42)"
    )
    assert Sight().unwatched_text().startswith("none known")


def test_the_blind_message_says_why_since_when_which_hosts_and_what_to_do() -> None:
    sight = Sight()
    for at in (0.0, 5.0, 10.0):
        sight, _ = fail(sight, at)
    message = blind_message(sight.with_unwatched(HOSTS), 3)
    assert REFUSED in message
    assert "since 1970-01-01 00:00:00 UTC" in message and "[detection] blind_after = 3" in message
    assert "in an incident: cmp2 (evacuating, incident 42)" in message and "up: cmp1" in message
    assert "fences nobody and marks nobody up" in message
    assert message.endswith(NEXT_STEP[Cause.AUTH])


@pytest.mark.parametrize("cause", list(Cause))
def test_every_cause_has_a_next_step(cause: Cause) -> None:
    assert NEXT_STEP[cause]


def test_the_message_when_nova_is_readable_again_says_how_long() -> None:
    sight = Sight()
    for at in (100.0, 105.0, 110.0):
        sight, _ = fail(sight, at)
    message = sees_again_message(sight.with_unwatched(HOSTS), 190.0)
    assert "after 90 s blind" in message and "3 failed tick(s)" in message and "its 3 host(s)" in message


def test_describe() -> None:
    assert Sight().describe(0.0) == "Nova not read yet"
    assert Sight(last_read=10.0).describe(12.5) == "Nova read 2.5 s ago"
    sight, _ = fail(Sight(), 0.0)
    assert sight.describe(4.0).startswith("Nova unreadable since 1970-01-01 00:00:00 UTC (1 failed reading(s)")
    for at in (1.0, 2.0):
        sight, _ = fail(sight, at)
    assert sight.describe(4.0).startswith("blind since") and sight.describe(4.0).endswith(REFUSED)
