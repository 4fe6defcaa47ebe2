"""Wire shapes: converters from the journal's records, and strict request-body validation."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from petguard.api import wire
from petguard.api.wire import InvalidBody
from petguard.cloud import PowerGoal
from petguard.detect import HostHealth, Verdict
from petguard.hosts import Host, HostState
from petguard.journal import (
    AuditRecord,
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    MoveStatus,
    OperatorRequest,
    RequestKind,
    RequestStatus,
    SkipRecord,
)


def keys(shape: type) -> set[str]:
    return set(shape.__annotations__)


def test_converters_give_exactly_the_documented_keys() -> None:
    record = HostRecord(Host("cmp1", HostState.SUSPECT, 5.0, 7, "looks down"), HostHealth(Verdict.SUSPECT, detail="x"))
    host = wire.host_json(record)
    assert host == {
        "name": "cmp1",
        "state": "suspect",
        "since": 5.0,
        "incident_id": 7,
        "reason": "looks down",
        "verdict": "suspect",
        "detail": "x",
    }
    move = MoveRecord(7, "s1", "db", 10, PowerGoal.RUNNING, MoveStatus.DONE, "cmp1", "cmp2", 1, "", "req-1", 9.0)
    request = RequestStatus(OperatorRequest(3, "cmp1", RequestKind.FENCE, "why", "alice", 1.0), "done", "ok", 2.0)
    pairs: list[tuple[dict[str, Any], type]] = [
        (dict(host), wire.HostJson),
        (dict(wire.incident_json(Incident(7, "cmp1", 1.0, None, "down"))), wire.IncidentJson),
        (dict(wire.event_json(EventRecord(1, 1.0, "cmp1", 7, "fence_failed", "m"))), wire.EventJson),
        (dict(wire.move_json(move)), wire.MoveJson),
        (dict(wire.skip_json(SkipRecord(7, "s2", "web", "not a pet"))), wire.SkipJson),
        (dict(wire.request_json(request)), wire.RequestJson),
        (dict(wire.brake_json(BrakeState(True, "3 hosts", 1.0, None))), wire.BrakeJson),
        (dict(wire.audit_json(AuditRecord(1, 1.0, "alice", "host_request", "cmp1", "accepted", "d"))), wire.AuditJson),
    ]
    for value, shape in pairs:
        assert set(value) == keys(shape), shape.__name__
        json.dumps(value)  # plain JSON values only (enums become their strings)
    assert wire.move_json(move)["power_goal"] == "running" and wire.move_json(move)["status"] == "done"
    assert wire.request_json(request)["kind"] == "fence"


def test_error_shape() -> None:
    assert wire.error_json(404, "Not Found", "no host") == {
        "error": {"code": 404, "title": "Not Found", "message": "no host"}
    }


@pytest.mark.parametrize("kind", wire.HOST_REQUEST_KINDS)
def test_host_request_accepts_every_kind(kind: str) -> None:
    assert wire.host_request({"kind": kind, "reason": "r"}) == (RequestKind(kind), "r")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "fence", "reason": "r", "force": True}, "unknown field(s) in the body: force; allowed: kind, reason"),
        ({"kind": "fence"}, "missing field(s) in the body: reason"),
        ({"kind": "brake_override", "reason": "r"}, "field 'kind' is 'brake_override'; expected one of"),
        ({"kind": "reboot", "reason": "r"}, "expected one of: maintenance_on"),
        ({"kind": 3, "reason": "r"}, "field 'kind' must be a string, not a number"),
        ({"kind": "fence", "reason": None}, "field 'reason' must be a string, not null"),
        ({"kind": "fence", "reason": "x" * 1001}, "1001 characters long; at most 1000"),
        (["fence"], "the body must be a JSON object, not an array"),
        ("fence", "the body must be a JSON object, not a string"),
    ],
)
def test_host_request_refusals_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        wire.host_request(body)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the request body is empty"),
        (b"  ", "the request body is empty"),
        (b"{", "not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
        (b"\xff\xfe{", "not"),
    ],
)
def test_parse_json_refusals(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidBody, match=r"^the request body"):
        wire.parse_json(raw)
    with pytest.raises(InvalidBody) as caught:
        wire.parse_json(raw)
    assert message in str(caught.value)


def test_brake_override_and_log_level() -> None:
    assert wire.brake_override({"reason": "rack A is down"}) == "rack A is down"
    assert wire.log_level({"level": "debug"}) == "DEBUG"
    with pytest.raises(InvalidBody, match="expected one of: DEBUG, INFO, WARNING, ERROR"):
        wire.log_level({"level": "TRACE"})
    with pytest.raises(InvalidBody, match="unknown field"):
        wire.brake_override({"reason": "r", "minutes": 5})


@pytest.mark.parametrize(("value", "expected"), [(None, 50), ("1", 1), ("1000", 1000)])
def test_limit_param(value: str | None, expected: int) -> None:
    assert wire.limit_param(value, 50) == expected


@pytest.mark.parametrize("value", ["0", "1001", "-1", "ten", "1.5"])
def test_limit_param_refusals(value: str) -> None:
    with pytest.raises(InvalidBody, match="query parameter 'limit'"):
        wire.limit_param(value, 50)


def test_int_param() -> None:
    assert wire.int_param("incident", None) is None
    assert wire.int_param("incident", "12") == 12
    with pytest.raises(InvalidBody, match="query parameter 'incident' must be an integer id"):
        wire.int_param("incident", "abc")


@pytest.mark.fault(
    "INPUT-01",
    guarantee="8",
    injected="a signed heartbeat with deep nesting, a 5000-digit integer, 1e400, NaN, Infinity, buffered 10**30",
    expected="400 naming what is wrong, no database text, nothing recorded (each used to give 500)",
)
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nests arrays or objects too deeply: at most 32 levels"),
        (b"[" * 40 + b"]" * 40, "nests arrays or objects too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "has 5000 digits; at most 20"),
        (b'{"a": -' + b"9" * 21 + b"}", "has 21 digits"),
        (b'{"a": 1e400}', "the number 1e400 in the request body is too large"),
        (b'{"a": -1e309}', "too large"),
        (b'{"a": NaN}', "holds NaN, which is not a JSON number"),
        (b'{"a": [Infinity]}', "holds Infinity"),
        (b'{"a": -Infinity}', "holds -Infinity"),
        (b'{"a": "x\\u0000"}', "NUL character"),
        (b'{"\\ud83d": 1}', "lone UTF-16 surrogate"),
    ],
)
def test_parse_json_refuses_what_the_journal_cannot_hold(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidBody, match=re.escape(message)):
        wire.parse_json(raw)


def test_parse_json_keeps_what_it_can() -> None:
    assert wire.parse_json(b'{"a": [1e308, -5, 12345678901234567890, "\\ud83d\\ude00", 0.5]}') == {
        "a": [1e308, -5, 12345678901234567890, "\U0001f600", 0.5]
    }
    nested: Any = 1
    for _ in range(31):
        nested = [nested]
    assert wire.parse_json(json.dumps(nested).encode()) == nested


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, True), (1.5, True), (wire.MAX_TIME, True), (-0.1, False), (wire.MAX_TIME * 2, False),
     (float("nan"), False), (float("inf"), False), (True, False), ("1", False), (10**19, False)],
)
def test_number_field_is_finite_and_in_range(value: Any, ok: bool) -> None:
    if ok:
        assert wire.number_field({"at": value}, "at") == float(value)
    else:
        with pytest.raises(InvalidBody, match="'at' must be a number"):
            wire.number_field({"at": value}, "at")


@pytest.mark.parametrize("value", [-1, wire.MAX_COUNT + 1, 10**30, 1.5, float(wire.MAX_COUNT + 1), True, None])
def test_count_field_fits_a_database_integer(value: Any) -> None:
    with pytest.raises(InvalidBody, match=r"'buffered' must be an integer from 0 to 2147483647") as caught:
        wire.count_field({"buffered": value}, "buffered")
    assert len(str(caught.value)) < 120, "a huge value is not echoed whole"


def _waiting_move(waiting: str, since: float | None, status: MoveStatus = MoveStatus.REQUESTING) -> MoveRecord:
    return MoveRecord(
        7, "s1", "db", 10, PowerGoal.RUNNING, status, "cmp1", updated_at=9.0, waiting=waiting, waiting_since=since
    )


def test_move_json_says_why_since_when_and_until_when_a_move_waits() -> None:
    move = wire.move_json(_waiting_move("Nova does not answer: HTTP 503", 100.0), cloud_wait_timeout=1800.0)
    assert (move["waiting"], move["waiting_since"], move["waiting_until"]) == (
        "Nova does not answer: HTTP 503",
        100.0,
        1900.0,
    )
    unknown = wire.move_json(_waiting_move("placement silent", 100.0))  # the timeout not given: not said
    assert unknown["waiting_until"] is None
    stuck = wire.move_json(_waiting_move("stuck: Nova took the request 95 s ago", 50.0, MoveStatus.ACCEPTED), 1800.0)
    assert (stuck["waiting"], stuck["waiting_since"], stuck["waiting_until"]) == (
        "stuck: Nova took the request 95 s ago",
        50.0,
        None,  # a stuck move waits for an operator: no deadline
    )
    calm = wire.move_json(_waiting_move("", None), 1800.0)
    assert (calm["waiting"], calm["waiting_since"], calm["waiting_until"]) == ("", None, None)
    assert calm["resend_vouched_at"] is None
    stuck_move = _waiting_move("stuck: Nova took it", 50.0, MoveStatus.ACCEPTED)
    vouched = dataclasses.replace(stuck_move, resend_vouched_at=70.0)
    assert wire.move_json(vouched, 1800.0)["resend_vouched_at"] == 70.0


@pytest.mark.parametrize(
    ("waiting", "since", "until", "text"),
    [
        ("", None, None, ""),
        (
            "Nova does not answer: HTTP 503",
            100.0,
            1900.0,
            "waiting for the cloud: Nova does not answer: HTTP 503 (since t100, gives up after t1900)",
        ),
        ("placement silent", 100.0, None, "waiting for the cloud: placement silent (since t100)"),
        (
            "stuck: Nova took the request 95 s ago and never started it (no migration)",
            50.0,
            None,
            "stuck: Nova took the request 95 s ago and never started it (no migration) "
            "(since t50; the evacuation_stuck event says what to do)",
        ),
    ],
)
def test_waiting_text(waiting: str, since: float | None, until: float | None, text: str) -> None:
    assert wire.waiting_text(waiting, since, until, lambda at: f"t{at:g}") == text


def test_count_field_takes_an_integral_number_as_json_schema_does() -> None:
    """docs/openapi.json says ``integer``, and JSON Schema counts 7.0 as one (schemathesis sent it)."""
    assert wire.count_field({"buffered": 7.0}, "buffered") == 7
    assert type(wire.count_field({"buffered": 7.0}, "buffered")) is int
