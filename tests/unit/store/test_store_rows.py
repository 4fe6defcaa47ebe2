"""The storage edge's conversions and error mapping, without a database (pure)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from petguard.cloud import Move, PowerGoal, Skip
from petguard.detect import HostHealth, Verdict
from petguard.errors import ConfigError, Permanent, Temporary
from petguard.hosts import Host, HostEvent, HostState
from petguard.journal import BrakeState, HostRecord, MoveRecord, MoveStatus, SkipRecord, Transition
from petguard.store import rows
from petguard.store.engine import (
    StoreRefused,
    StoreUnavailable,
    check_sqlite_directory,
    is_transient,
    login_refused,
    map_error,
    map_open_error,
    parse_url,
)

AT = 1_712_345_678.25


@pytest.mark.parametrize(
    "record",
    [
        HostRecord(Host("cmp1"), HostHealth()),
        HostRecord(
            Host("cmp2", HostState.EVACUATING, since=AT, incident_id=7, reason="fenced by ipmi"),
            HostHealth(Verdict.FAILED, down_streak=9, up_streak=0, down_since=AT - 60, detail="heartbeat missing"),
        ),
    ],
)
def test_host_round_trip(record: HostRecord) -> None:
    assert rows.host_from_row(rows.host_to_row(record)) == record  # type: ignore[arg-type]


def test_enums_are_stored_as_their_values() -> None:
    row = rows.host_to_row(HostRecord(Host("cmp1", HostState.AWAITING_CONFIRM), HostHealth(Verdict.SUSPECT)))
    assert (row["state"], row["verdict"]) == ("awaiting_confirm", "suspect")


def test_unknown_stored_value_fails_loudly() -> None:
    row = rows.host_to_row(HostRecord(Host("cmp1"), HostHealth())) | {"state": "exploded"}
    with pytest.raises(ValueError, match="exploded"):
        rows.host_from_row(row)  # type: ignore[arg-type]


def test_transition_round_trip() -> None:
    edge = Transition("cmp1", HostState.FENCING, HostState.FENCED, HostEvent.FENCE_CONFIRMED, "power off x3", AT)
    assert rows.transition_from_row(rows.transition_to_row(edge)) == edge  # type: ignore[arg-type]


def test_brake_round_trip() -> None:
    state = BrakeState(engaged=True, reason="3 hosts", since=AT, override_until=None)
    assert rows.brake_from_row({"id": 1, **rows.brake_to_row(state)}) == state  # type: ignore[arg-type]
    assert rows.brake_from_row({**rows.brake_to_row(state), "engaged": 1}).engaged is True  # type: ignore[arg-type]


def test_planned_move_and_skip_rows() -> None:
    move = Move("srv-1", "db-1", 5, "SHUTOFF", PowerGoal.STOPPED)
    row = rows.move_to_row(3, "cmp1", move, 0, AT)
    assert rows.move_from_row(row) == MoveRecord(  # type: ignore[arg-type]
        3, "srv-1", "db-1", 5, PowerGoal.STOPPED, MoveStatus.PLANNED, "cmp1", updated_at=AT
    )
    skip_row = rows.skip_to_row(3, Skip("srv-2", "web-2", "not a pet"), 1)
    assert rows.skip_from_row(skip_row) == SkipRecord(3, "srv-2", "web-2", "not a pet")  # type: ignore[arg-type]


class _MysqlError(Exception):
    """Looks like pymysql's errors: ``args[0]`` is the server's error number."""


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("could not serialize access")
        self.sqlstate = sqlstate


def _wrapped(cls: Any, orig: Exception) -> Any:
    return cls("UPDATE moves ...", {}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_wrapped(OperationalError, sqlite3.OperationalError("database is locked")), True),
        (_wrapped(OperationalError, _MysqlError(1213, "Deadlock found")), True),
        (_wrapped(OperationalError, _MysqlError(1205, "Lock wait timeout exceeded")), True),
        (_wrapped(OperationalError, _PgError("40001")), True),
        (_wrapped(OperationalError, _MysqlError(2003, "Can't connect")), False),
        (_wrapped(IntegrityError, sqlite3.IntegrityError("NOT NULL constraint failed")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_transient_errors_are_the_retryable_conflicts(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_database_errors_map_into_petguards_tree() -> None:
    locked = map_error(_wrapped(OperationalError, sqlite3.OperationalError("database is locked")), "save a tick")
    assert isinstance(locked, StoreUnavailable) and isinstance(locked, Temporary)
    refused = map_error(_wrapped(IntegrityError, sqlite3.IntegrityError("NOT NULL")), "save a tick")
    assert isinstance(refused, StoreRefused) and isinstance(refused, Permanent)
    broken = map_error(_wrapped(ProgrammingError, sqlite3.ProgrammingError("no such table")), "load")
    assert isinstance(broken, Permanent) and not isinstance(broken, StoreRefused)


_PG_ROLE = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "x" does not exist'
_PG_PASSWORD = 'connection failed: ... FATAL:  password authentication failed for user "petguard"'
_PG_DOWN = 'connection failed: connection to server at "127.0.0.1", port 5433 failed: Connection refused'


@pytest.mark.parametrize(
    ("orig", "refused"),
    [
        (_MysqlError(1045, "Access denied for user 'petguard'@'10.0.0.5' (using password: YES)"), True),
        (_MysqlError(1044, "Access denied for user 'petguard'@'%' to database 'petguard'"), True),
        (_MysqlError(1049, "Unknown database 'petgaurd'"), True),
        (_MysqlError(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"), False),
        (_MysqlError(1040, "Too many connections"), False),
        (_MysqlError(1213, "Deadlock found"), False),
        (sqlite3.OperationalError(_PG_ROLE), True),
        (sqlite3.OperationalError(_PG_PASSWORD), True),
        (sqlite3.OperationalError(_PG_DOWN), False),
        (_PgError("28P01"), True),
        (_PgError("57P03"), False),  # the database system is starting up
    ],
)
def test_a_refused_login_is_told_from_an_outage(orig: Exception, refused: bool) -> None:
    error = _wrapped(OperationalError, orig)
    assert login_refused(error) is refused
    at_open = map_open_error(error, "read the schema revision")
    assert isinstance(at_open, ConfigError if refused else StoreUnavailable)
    assert isinstance(map_error(error, "save a tick"), StoreUnavailable)  # while running: an outage, retried


def test_bad_url_and_missing_directory_are_config_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError):
        parse_url("::nonsense::")
    with pytest.raises(ConfigError, match="create"):
        check_sqlite_directory(parse_url(f"sqlite:///{tmp_path}/nope/petguard.sqlite"))
    check_sqlite_directory(parse_url(f"sqlite:///{tmp_path}/petguard.sqlite"))
    check_sqlite_directory(parse_url("sqlite://"))
    check_sqlite_directory(parse_url("postgresql+psycopg://db.example/petguard"))
