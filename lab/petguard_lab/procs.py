"""Start, track and stop the lab's processes by PID file (stdlib only).

Every process is started detached in its own session (``setsid``, so its
process-group id equals its PID) through a double fork, so it is never a child
of the caller (no zombies in a long-running test process).  The PID file
``run/<name>.pid`` holds the PID on its first line and the process start time
(clock ticks since boot, from /proc) on the second; a PID is only signalled
when both still match, so a recycled PID is never killed.

This module is also executed as a plain script by the BMC's chassis_control
program (see chassis_control.py), so it must import nothing but the stdlib.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, None if it does not exist."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def proc_state(pid: int) -> str | None:
    """Single-letter state (R, S, T, Z, ...) of ``pid``, None if it does not exist."""
    fields = _proc_stat(pid)
    return fields[0] if fields else None


def read_pidfile(pidfile: Path) -> int | None:
    """The PID recorded in ``pidfile`` if that very process still runs, else None.

    Zombies and recycled PIDs (different start time) count as not running.
    """
    try:
        lines = pidfile.read_text().split()
    except OSError:
        return None
    if not lines:
        return None
    try:
        pid = int(lines[0])
        recorded = int(lines[1]) if len(lines) > 1 else None
    except ValueError:
        return None
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return None
    if recorded is not None and int(fields[19]) != recorded:
        return None
    return pid


def write_pidfile(pidfile: Path, pid: int) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = pidfile.with_name(pidfile.name + ".tmp")
    tmp.write_text(f"{pid}\n{start_time(pid) or 0}\n")
    tmp.replace(pidfile)


def spawn(
    argv: Sequence[str],
    pidfile: Path,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (new session, stdio to ``logfile``); record and return its PID."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:  # intermediate child: fork the real process and exit at once
        try:
            os.close(rfd)
            pid = os.fork()
            if pid == 0:
                os.close(wfd)
                os.setsid()  # own session and process group (pgid == pid)
                if cwd is not None:
                    os.chdir(cwd)
                devnull = os.open(os.devnull, os.O_RDONLY)
                out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(devnull, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.closerange(3, 65536)
                try:
                    os.execvpe(argv[0], list(argv), full_env)
                except OSError as exc:
                    os.write(2, f"petguard-lab: cannot exec {argv[0]}: {exc}\n".encode())
                os._exit(127)
            os.write(wfd, str(pid).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as reader:
        data = reader.read()
    os.waitpid(child, 0)
    if not data:
        raise OSError(f"could not start {argv[0]}")
    pid = int(data)
    write_pidfile(pidfile, pid)
    return pid


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid`` (falls back to the PID)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """PIDs of every live process in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop(pidfiles: Iterable[Path], timeout: float = 20.0,
         sig: int = signal.SIGTERM) -> list[Path]:
    """Stop the processes (groups) recorded in ``pidfiles`` in parallel.

    ``sig`` first (followed by SIGCONT, so a SIGSTOPped process can act on it),
    SIGKILL to whatever is left of the group after ``timeout`` seconds.
    Returns the PID files whose process group had to be SIGKILLed.
    """
    pidfiles = list(pidfiles)
    groups: dict[Path, int] = {}
    for pidfile in pidfiles:
        pid = read_pidfile(pidfile)
        if pid is None:
            pidfile.unlink(missing_ok=True)
            continue
        groups[pidfile] = pid
        signal_group(pid, sig)
        signal_group(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        time.sleep(0.1)
        groups = {f: p for f, p in groups.items() if group_members(p)}
    for pid in groups.values():
        signal_group(pid, signal.SIGKILL)
    for pidfile in pidfiles:
        pidfile.unlink(missing_ok=True)
    return list(groups)


def kill_now(pidfile: Path, sig: int = signal.SIGKILL) -> int | None:
    """Send ``sig`` to the recorded process group at once; return its PID (None if not running)."""
    pid = read_pidfile(pidfile)
    if pid is not None:
        signal_group(pid, sig)
    return pid


def port_in_use(port: int, udp: bool = False, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` cannot be bound (someone listens on it)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if not udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
