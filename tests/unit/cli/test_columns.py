"""Formatting: headings, human and machine forms of times, lists and the status; keys match the wire."""

from __future__ import annotations

import typing

import pytest

from petguard.api import columns, wire

T0 = 1_750_000_000.0  # 2025-06-15 15:06:40Z


def test_time_column() -> None:
    assert columns.Time(T0).human_readable() == "2025-06-15 15:06:40Z"
    assert columns.Time(T0).machine_readable() == T0
    assert columns.Time(None).human_readable() == ""


def test_row_and_headings() -> None:
    host = {"name": "cmp1", "state": "up", "since": T0, "incident_id": None, "reason": "", "verdict": "healthy"}
    assert columns.headings(columns.HOST) == ("Name", "State", "Since", "Incident", "Reason")
    row = columns.row(host, columns.HOST)
    assert row[:2] == ("cmp1", "up")
    assert row[2].human_readable() == "2025-06-15 15:06:40Z"


def test_missing_key_shows_empty() -> None:
    assert columns.row({"name": "cmp1"}, columns.HOST_LONG)[-1] is None


def test_event_move_skip_lines() -> None:
    events = [{"at": T0, "kind": "fence_confirmed", "message": "power read back OFF 3 times"}]
    moves = [{"server_name": "db1", "status": "done", "dest_host": "cmp2", "reason": ""}]
    moves.append({"server_name": "web1", "status": "failed", "dest_host": None, "reason": "No valid host"})
    skips = [{"server_name": "scratch", "reason": "not a pet"}]
    assert (
        columns.EventLines(events).human_readable()
        == "2025-06-15 15:06:40Z fence_confirmed: power read back OFF 3 times"
    )
    assert columns.MoveLines(moves).human_readable() == "db1 done -> cmp2\nweb1 failed -> - (No valid host)"
    assert columns.SkipLines(skips).human_readable() == "scratch: not a pet"
    assert columns.MoveLines(moves).machine_readable() == moves
    assert columns.Lines(None).human_readable() == ""  # type: ignore[arg-type]


def test_move_lines_say_a_wait_for_the_cloud_and_a_stuck_request() -> None:
    waiting = {"server_name": "web1", "status": "requesting", "dest_host": None, "reason": ""}
    waiting.update(waiting="Nova does not answer: HTTP 503", waiting_since=T0, waiting_until=T0 + 1800)
    stuck = {"server_name": "db1", "status": "accepted", "dest_host": None, "reason": ""}
    stuck.update(waiting="stuck: Nova took the request 95 s ago and never started it", waiting_since=T0)
    stuck["waiting_until"] = None
    assert columns.MoveLines([waiting, stuck]).human_readable() == (
        "web1 requesting -> -; waiting for the cloud: Nova does not answer: HTTP 503 "
        "(since 2025-06-15 15:06:40Z, gives up after 2025-06-15 15:36:40Z)\n"
        "db1 accepted -> -; stuck: Nova took the request 95 s ago and never started it "
        "(since 2025-06-15 15:06:40Z; the evacuation_stuck event says what to do)"
    )
    stuck["resend_vouched_at"] = T0 + 60
    assert columns.MoveLines([stuck]).human_readable() == (
        "db1 accepted -> -; stuck: Nova took the request 95 s ago and never started it "
        "(since 2025-06-15 15:06:40Z; resend vouched for at 2025-06-15 15:07:40Z: sent again once Nova's records "
        "allow it)"
    )


def test_incident_summary() -> None:
    incident = {"id": 3, "opened_at": T0, "closed_at": None, "outcome": "", "reason": "compute down 30 s"}
    assert (
        columns.IncidentSummary(incident).human_readable() == "3: opened 2025-06-15 15:06:40Z, open: compute down 30 s"
    )
    assert columns.IncidentSummary(None).human_readable() == ""


def test_status_is_flattened_and_readiness_sorted() -> None:
    status = {
        "version": "0.1",
        "leader": True,
        "brake": {"engaged": True, "reason": "4 of 5 hosts down", "since": T0, "override_until": None},
        "fence_readiness": {"cmp2": "wrong password", "cmp1": "ok"},
    }
    flat = columns.flat_status(status)
    assert "brake" not in flat
    assert (flat["brake_engaged"], flat["brake_reason"], flat["brake_since"]) == (True, "4 of 5 hosts down", T0)
    assert columns.Readiness(flat["fence_readiness"]).human_readable() == "cmp1: ok\ncmp2: wrong password"


def test_a_blind_daemon_shows_why_and_the_hosts_not_watched() -> None:
    unwatched = [
        {"host": "cmp1", "state": "up", "incident_id": None},
        {"host": "cmp2", "state": "evacuating", "incident_id": 42},
    ]
    nova = {"blind": True, "summary": "blind since ...: HTTP 401", "unwatched": unwatched}
    flat = columns.flat_status({"version": "0.1", "nova": nova})
    assert "nova" not in flat and flat["nova_summary"] == "blind since ...: HTTP 401" and flat["nova_blind"] is True
    assert columns.UnwatchedHosts(flat["nova_unwatched"]).human_readable() == "cmp1: up\ncmp2: evacuating [incident 42]"
    assert columns.flat_status({"version": "0.1"})["nova_unwatched"] == []


def test_reserved_hosts_one_per_line_with_their_incident() -> None:
    pool = [{"host": "spare1", "state": "borrowed", "incident_id": 4}, {"host": "spare2", "state": "idle"}]
    assert columns.ReservedHosts(pool).human_readable() == "spare1: borrowed [incident 4]\nspare2: idle"


@pytest.mark.parametrize(
    ("fields", "shape"),
    [
        (columns.HOST_LONG, wire.HostJson),
        (columns.INCIDENT, wire.IncidentJson),
        (columns.EVENT, wire.EventJson),
        (columns.REQUEST, wire.RequestJson),
        (columns.AUDIT, wire.AuditJson),
        (columns.EXPLAIN, wire.ExplainJson),
    ],
)
def test_every_column_is_a_wire_field(fields: tuple[columns.Field, ...], shape: type) -> None:
    assert {f.key for f in fields} <= set(typing.get_type_hints(shape))


def test_status_columns_cover_the_wire_status() -> None:
    keys = {f.key for f in columns.STATUS}
    expected = set(typing.get_type_hints(wire.StatusJson)) - {"brake", "capacity", "nova"}
    expected |= {f"brake_{k}" for k in typing.get_type_hints(wire.BrakeJson)}
    expected |= {f"nova_{k}" for k in typing.get_type_hints(wire.NovaSightJson)}
    expected |= {f"capacity_{k}" for k in typing.get_type_hints(wire.CapacityJson)}
    assert keys == expected
