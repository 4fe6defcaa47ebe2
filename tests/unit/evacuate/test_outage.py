"""evacuate.outage: every setback judged in one place (pure, table-driven)."""

from __future__ import annotations

import pytest

from petguard.errors import NovaConflict, NovaError, NovaUnavailable
from petguard.evacuate.outage import (
    CloudHealth,
    Judgement,
    judge_before_request,
    judge_nothing_moved,
    judge_request_error,
)

HEALTHY = CloudHealth(computes_up=3)
STALE = CloudHealth(computes_up=0)
UNREADABLE = CloudHealth(computes_up=None)
NO_PLACEMENT = CloudHealth(computes_up=3, placement="ask placement: cannot reach the cloud")

WAIT, FINAL, RETRY = Judgement.WAIT, Judgement.FINAL, Judgement.RETRY


@pytest.mark.parametrize(
    ("fault", "health", "attempts", "expected"),
    [
        ("MessagingTimeout: Timed out waiting for a reply to message ID 42", HEALTHY, 1, WAIT),
        ("No valid host was found. Placement API service is not responding", HEALTHY, 1, WAIT),
        ("DBConnectionError: (pymysql.err.OperationalError) (2003, ...)", HEALTHY, 3, WAIT),
        ("No valid host was found. There are not enough hosts available.", STALE, 1, WAIT),
        ("No valid host was found.", UNREADABLE, 1, WAIT),
        ("No valid host was found.", NO_PLACEMENT, 1, WAIT),
        ("No valid host was found. There are not enough hosts available.", HEALTHY, 1, FINAL),
        ("Anti-affinity instance group policy was violated.", HEALTHY, 1, RETRY),
        ("Anti-affinity instance group policy was violated.", HEALTHY, 3, FINAL),
        ("Anti-affinity instance group policy was violated.", STALE, 3, WAIT),
        ("", HEALTHY, 1, RETRY),
        ("UnexpectedTaskStateError: something odd", HEALTHY, 3, FINAL),
    ],
)
def test_nothing_moved(fault: str, health: CloudHealth, attempts: int, expected: Judgement) -> None:
    assert judge_nothing_moved(fault, health, attempts, 3).judgement is expected


@pytest.mark.parametrize(
    ("fault", "attempts", "expected"),
    [
        ("No valid host was found. There are not enough hosts available.", 1, WAIT),
        ("", 1, WAIT),
        ("UnexpectedTaskStateError: something odd", 3, WAIT),
        ("Anti-affinity instance group policy was violated.", 1, RETRY),  # a race, not an outage
        ("Anti-affinity instance group policy was violated.", 3, FINAL),
    ],
)
def test_an_answer_made_while_the_cloud_was_sick_is_a_wait(fault: str, attempts: int, expected: Judgement) -> None:
    """Healthy when the answer is read, sick while Nova held the request: the answer says nothing."""
    verdict = judge_nothing_moved(fault, HEALTHY, attempts, 3, sick_in_flight="no other nova-compute is up")
    assert verdict.judgement is expected
    if expected is WAIT:
        assert "while Nova handled the request (no other nova-compute is up)" in verdict.reason


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NovaUnavailable("evacuate: HTTP 500: ConnectFailure", status=500), WAIT),
        (NovaUnavailable("evacuate: cannot reach the cloud: ConnectTimeout"), WAIT),
        (NovaError("evacuate: Keystone refused to authenticate", status=401), WAIT),
        (NovaError("evacuate: HTTP 403", status=403), FINAL),
        (NovaConflict("Cannot 'evacuate' instance while it is in task_state rebuilding", status=409), FINAL),
        (NovaError("evacuate: HTTP 400: the target host can't be the same one", status=400), FINAL),
    ],
)
def test_request_errors(error: Exception, expected: Judgement) -> None:
    assert judge_request_error(error).judgement is expected  # type: ignore[arg-type]


def test_a_request_is_held_only_while_the_cloud_cannot_place() -> None:
    assert judge_before_request(HEALTHY) is None
    for sick in (STALE, UNREADABLE, NO_PLACEMENT):
        held = judge_before_request(sick)
        assert held is not None and held.judgement is WAIT and held.reason == sick.problem()
