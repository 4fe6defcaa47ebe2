"""Run petguard's own programs (petguard-daemon, petguard-manage) as subprocesses (stdlib only).

petguard_lab never imports petguard: the demo and the lab tests start petguard's console scripts
from the bin directory of the Python that runs petguard-lab (the same venv).  The daemon is
started detached like every lab process (``procs.spawn``: own session, PID file with start time
in ``$LAB/run/``), so ``petguard-lab down`` also stops a daemon that an interrupted run left
behind, and it is stopped by that PID only.  ``LogFollower`` reads the daemon's log as it grows.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from petguard_lab import procs
from petguard_lab.settings import LabError

DAEMON = "petguard-daemon"
MANAGE = "petguard-manage"

#: one oslo.log line: "2026-11-26 03:30:01.123 12345 INFO petguard.decide [-] cmp2: suspect, ..."
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \d+ (\w+) (\S+) (?:\[[^\]]*\] )?(.*)$")


def bin_dir() -> Path:
    """The bin directory of the venv running petguard-lab (not resolved: venv pythons are links)."""
    return Path(sys.executable).parent


def program(name: str) -> Path:
    """Path of one of petguard's console scripts next to this Python.

    :raises LabError: petguard is not installed in this venv.
    """
    path = bin_dir() / name
    if not path.exists():
        raise LabError(
            f"{name} is not installed next to {sys.executable}; install petguard into the same "
            "venv as petguard-lab (`pip install -e /path/to/petguard -e /path/to/petguard/lab`)")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    env["PATH"] = f"{bin_dir()}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def manage(conf_file: Path, *args: str, timeout: float = 120) -> str:
    """Run ``petguard-manage --config-file CONF ARGS...``; return its stdout.

    :raises LabError: non-zero exit (with petguard-manage's own message).
    """
    argv = [str(program(MANAGE)), "--config-file", str(conf_file), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(),
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`petguard-manage {' '.join(args)}` did not finish in {timeout:.0f} s"
                       ) from exc
    if done.returncode:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise LabError(f"`petguard-manage {' '.join(args)}` failed (exit {done.returncode}): "
                       f"{message[-1] if message else 'no output'}")
    return done.stdout


@dataclasses.dataclass(frozen=True)
class HostRow:
    """One line of ``petguard-manage host-list``."""

    name: str
    state: str
    incident: int | None
    reason: str


def host_list(conf_file: Path) -> dict[str, HostRow]:
    """petguard's hosts and their lifecycle state, from ``petguard-manage host-list``."""
    rows = {}
    for line in manage(conf_file, "host-list").splitlines():
        match = re.match(r"^(\S+)\s+(\S+)\s+incident=(\S+)\s*(.*)$", line)
        if match:
            name, state, incident, reason = match.groups()
            rows[name] = HostRow(name, state, int(incident) if incident.isdigit() else None, reason)
    return rows


@dataclasses.dataclass
class Daemon:
    """One petguard-daemon process, started detached and stopped by its recorded PID."""

    conf_file: Path
    pidfile: Path
    outfile: Path  # stdout/stderr (the log itself goes to the conf's log_file)
    extra_args: tuple[str, ...] = ()

    @property
    def pid(self) -> int | None:
        return procs.read_pidfile(self.pidfile)

    def start(self) -> int:
        """Start the daemon; return its PID.

        :raises LabError: one already runs on this PID file.
        """
        if self.pid is not None:
            raise LabError(f"petguard-daemon already runs (pid {self.pid}, {self.pidfile})")
        argv = [str(program(DAEMON)), "--config-file", str(self.conf_file), *self.extra_args]
        try:
            return procs.spawn(argv, self.pidfile, self.outfile, env=_env())
        except OSError as exc:
            raise LabError(f"cannot start petguard-daemon: {exc}; see {self.outfile}") from exc

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM (the daemon finishes the step in hand), SIGKILL after ``timeout`` s.

        Returns True when it had to be SIGKILLed.
        """
        return bool(procs.stop([self.pidfile], timeout=timeout))

    def kill(self, timeout: float = 10) -> int | None:
        """SIGKILL the daemon's process group at once (a crash); wait until it is gone."""
        pid = procs.kill_now(self.pidfile, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while pid is not None and procs.group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return pid


@dataclasses.dataclass(frozen=True)
class LogLine:
    """One parsed line of petguard-daemon's log."""

    at: float  # epoch seconds (local time of the log)
    level: str
    logger: str
    message: str


def parse_line(line: str) -> LogLine | None:
    """An oslo.log line of petguard-daemon, or None for anything else (tracebacks, blank)."""
    match = _LOG_LINE.match(line.rstrip("\n"))
    if not match:
        return None
    stamp, level, logger, message = match.groups()
    whole, _, fraction = stamp.partition(".")
    at = time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + float(f"0.{fraction}")
    return LogLine(at, level, logger, message)


class LogFollower:
    """Reads the lines appended to a log file since it was created (like ``tail -f``)."""

    def __init__(self, path: Path, from_end: bool = True) -> None:
        self.path = path
        self.offset = path.stat().st_size if from_end and path.exists() else 0
        self._partial = ""

    def lines(self) -> list[str]:
        """Complete lines appended since the last call."""
        try:
            with self.path.open("r", errors="replace") as handle:
                handle.seek(self.offset)
                data = handle.read()
                self.offset = handle.tell()
        except OSError:
            return []
        data = self._partial + data
        parts = data.split("\n")
        self._partial = parts.pop()
        return parts

    def entries(self) -> list[LogLine]:
        """Parsed log lines appended since the last call."""
        return [entry for entry in map(parse_line, self.lines()) if entry is not None]
