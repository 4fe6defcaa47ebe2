"""Tests of petguard_proc without OpenStack: reading petguard-daemon's log, and a daemon process
started and stopped by its PID file (a stand-in script named like petguard's programs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from petguard_lab import petguard_proc, procs
from petguard_lab.settings import LabError


def test_parse_line() -> None:
    line = ("2026-11-26 03:29:31.678 453 INFO petguard.reconcile [-] cmp1: suspect, looks down: "
            "nova: nova-compute heartbeat missing (down for 1 s)")
    entry = petguard_proc.parse_line(line)
    assert entry is not None
    assert (entry.level, entry.logger) == ("INFO", "petguard.reconcile")
    assert entry.message.startswith("cmp1: suspect, looks down")
    expected = time.mktime(time.strptime("2026-11-26 03:29:31", "%Y-%m-%d %H:%M:%S")) + 0.678
    assert entry.at == pytest.approx(expected)
    assert petguard_proc.parse_line("Traceback (most recent call last):") is None
    assert petguard_proc.parse_line("") is None


def test_log_follower_returns_complete_new_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "petguard-daemon.log"
    log.write_text("old line\n")
    follower = petguard_proc.LogFollower(log)
    assert follower.lines() == []
    with log.open("a") as handle:
        handle.write("2026-11-26 03:29:31.678 1 INFO x [-] one\n2026-11-26 03:29:32.0")
    assert [e.message for e in follower.entries()] == ["one"]
    with log.open("a") as handle:
        handle.write("00 1 WARNING y [req-1 - - - - -] two\n")
    assert [(e.level, e.message) for e in follower.entries()] == [("WARNING", "two")]
    assert petguard_proc.LogFollower(tmp_path / "missing.log").lines() == []


def test_daemon_started_and_stopped_by_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "petguard-daemon"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(300)\n")
    script.chmod(0o755)
    monkeypatch.setattr(petguard_proc, "bin_dir", lambda: fake)
    daemon = petguard_proc.Daemon(tmp_path / "petguard.conf", tmp_path / "run" / "d.pid",
                                  tmp_path / "d.out")
    pid = daemon.start()
    assert daemon.pid == pid
    with pytest.raises(LabError, match="already runs"):
        daemon.start()
    assert daemon.stop(timeout=5) is False
    assert daemon.pid is None and not procs.group_members(pid)
    pid = daemon.start()
    assert daemon.kill() == pid
    assert daemon.pid is None and not procs.group_members(pid)


def test_missing_program_says_what_to_install(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(petguard_proc, "bin_dir", lambda: tmp_path)
    with pytest.raises(LabError, match="install petguard into the same venv"):
        petguard_proc.program("petguard-manage")
