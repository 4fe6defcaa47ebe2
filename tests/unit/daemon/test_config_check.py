"""``config check``'s classification: one line per finding, exit 1 on any ERROR, and the rule that a
journal or coordination backend for one machine is an error once several controllers have led."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, cast

import pytest
from oslo_config import cfg

from petguard.conf import opts
from petguard.daemon import check, lifecycle
from petguard.ha import election
from petguard.store.sql import SqlStore


def test_a_line_per_finding_and_exit_one_on_any_error() -> None:
    out = io.StringIO()
    findings = [check.ok("database", "fine"), check.warning("api bind", "in use"), check.error("nova", "down")]
    assert check.report(findings, out) == 1
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["OK      database: fine", "WARNING api bind: in use", "ERROR   nova: down"]
    assert lines[3].startswith("1 problem(s), 1 warning(s)")


def test_a_message_of_several_lines_stays_on_one_line() -> None:
    assert check.error("nova", "first\n  second\n").line() == "ERROR   nova: first; second"


def test_warnings_alone_pass() -> None:
    out = io.StringIO()
    assert check.report([check.ok("a", "x"), check.warning("b", "y")], out) == 0
    assert out.getvalue().splitlines()[-1] == "configuration OK (1 warning(s))"


def test_the_leader_message_is_read_back() -> None:
    message = election.GAINED_MESSAGE.format(member="ctl 2", epoch=7)
    assert election.leader_of(message) == "ctl 2"
    assert election.leader_of("someone said hello") is None


class Journal:
    def __init__(self, *members: str) -> None:
        self.messages = [election.GAINED_MESSAGE.format(member=m, epoch=i) for i, m in enumerate(members, 1)]

    def event_messages(self, kind: str, limit: int = 1000) -> list[str]:
        assert kind == election.GAINED
        return self.messages


def seen(*members: str, scheme: str = "file", sqlite: bool = True, me: str = "ctl1") -> list[check.Finding]:
    settings = election.Settings(backend_url=f"{scheme}://x", member_id=me)
    return check._leaders_seen(settings, scheme, sqlite, cast(SqlStore, Journal(*members)))


@pytest.mark.parametrize(
    ("scheme", "sqlite", "level"),
    [
        ("file", True, check.Level.ERROR),
        ("file", False, check.Level.ERROR),
        ("etcd3+http", True, check.Level.ERROR),
        ("etcd3+http", False, check.Level.OK),
    ],
)
def test_two_leaders_seen_need_a_shared_journal_and_backend(scheme: str, sqlite: bool, level: Any) -> None:
    (finding,) = seen("ctl1", "ctl2", "ctl1", scheme=scheme, sqlite=sqlite)
    assert finding.level == level
    assert "ctl1, ctl2" in finding.message


def test_this_controller_counts_as_seen() -> None:
    (finding,) = seen("ctl2", me="ctl1")
    assert finding.level == check.Level.ERROR


def test_one_leader_on_one_machine_is_ok_and_says_so() -> None:
    (finding,) = seen("ctl1")
    assert finding.level == check.Level.OK
    assert "single controller only" in finding.message


@pytest.mark.fault(
    "CHECK-09",
    guarantee="-",
    injected="a typo ([DEFAULT] dryrun) added to petguard.conf, then SIGHUP to the running daemon",
    expected="one WARNING per unknown name, saying the next start refuses it; the daemon keeps running",
)
def test_a_reload_warns_about_unknown_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "petguard.conf"
    path.write_text("[DEFAULT]\ntick_interval = 2\n")
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([f"--config-file={path}"], project="petguard-test", default_config_files=[])
    path.write_text("[DEFAULT]\ntick_interval = 2\ndryrun = true\n[fenicng]\nx = 1\n")
    with caplog.at_level(logging.WARNING, logger="petguard.daemon.lifecycle"):
        lifecycle.reload_config(conf)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "did you mean dry_run?" in warnings[0] and "the next start refuses it" in warnings[0]
    assert "[fenicng]" in warnings[1]


def file_backend(url: str) -> check.Finding:
    return check._file_backend(election.Settings(backend_url=url, member_id="ctl1"))


def test_a_file_backend_directory_to_be_created_under_a_writable_parent_is_ok(tmp_path: Path) -> None:
    assert file_backend(f"file://{tmp_path}/coordination/deeper").level == check.Level.OK
    assert not (tmp_path / "coordination").exists()  # checked, not created


def test_a_file_backend_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "coordination").write_text("")
    finding = file_backend(f"file://{tmp_path}/coordination")
    assert finding.level == check.Level.ERROR
    assert "not a directory" in finding.message


def test_a_file_backend_url_without_a_path_is_an_error() -> None:
    finding = file_backend("file://")
    assert finding.level == check.Level.ERROR
    assert "names no directory" in finding.message
