"""``petguard-manage config check`` against a real etcd and Redis of our own: a backend that answers is
OK; a hung one (SIGSTOP: its port stays bound, nothing answers) is an ERROR within the check's deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from petguard.ha import election
from tests.functional.coordination.peers import Server
from tests.functional.test_config_check import _check, _errors, _good, _write


def _coordination_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if " coordination:" in line and "controllers" not in line]
    return line


def test_a_backend_that_answers_is_ok(server: Server, tmp_path: Path) -> None:
    sections = _good(tmp_path)
    sections["coordination"]["backend_url"] = server.url
    _, output = _check(_write(tmp_path, sections), stdout_only=True)
    assert _coordination_line(output).startswith("OK "), output
    assert "coordination" not in _errors(output)


@pytest.mark.fault(
    "CHECK-11",
    guarantee="5",
    injected="the coordination backend (etcd, Redis) hung (SIGSTOP) while config check runs",
    expected="config check: ERROR on coordination ('no answer' or the client's timeout) within its "
    "deadline, instead of hanging",
)
def test_a_hung_backend_is_an_error_within_the_deadline(server: Server, tmp_path: Path) -> None:
    sections = _good(tmp_path)
    sections["coordination"]["backend_url"] = server.url
    conf = _write(tmp_path, sections)
    server.pause()
    started = time.monotonic()
    rc, output = _check(conf, stdout_only=True)
    took = time.monotonic() - started
    assert rc == 1
    assert _coordination_line(output).startswith("ERROR "), output
    assert took < 30, took  # Nova and the BMC take their own 1 s timeouts; the backend at most 3 s


@pytest.mark.fault(
    "START-11",
    guarantee="5",
    injected="a sqlite journal with a shared etcd/Redis backend in whose petguard group another controller (ctl2) "
    "is a member: each controller keeps a journal of its own",
    expected="config check: ERROR on coordination naming ctl2 and the sqlite journal; the same backend with a "
    "member of this controller's id only is OK",
)
def test_a_sqlite_journal_beside_other_members_of_the_group_is_an_error(server: Server, tmp_path: Path) -> None:
    sections = _good(tmp_path)  # a sqlite journal
    sections["coordination"]["backend_url"] = server.url
    sections["coordination"]["member_id"] = "ctl1"
    conf = _write(tmp_path, sections)
    _, alone = _check(conf, stdout_only=True)
    assert "coordination" not in _errors(alone), alone

    other = election.connect(election.Settings(backend_url=server.url, member_id="ctl2"))
    try:
        other.join_group_create(b"petguard")
        rc, output = _check(conf, stdout_only=True)
    finally:
        other.stop()
    assert rc == 1
    (line,) = [line for line in output.splitlines() if line.startswith("ERROR   coordination:") and "ctl2" in line]
    assert "sqlite" in line and "docs/controllers.md" in line, line
