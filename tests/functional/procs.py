"""Stopping, pausing and resuming the peer processes the functional tests start (by PID only)."""

from __future__ import annotations

import os
import signal
import subprocess


def pause(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGSTOP: the peer stops answering while its socket stays bound (a hung peer)."""
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)


def resume(proc: subprocess.Popen[bytes] | None) -> None:
    assert proc is not None
    os.kill(proc.pid, signal.SIGCONT)


def stop(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGCONT (a paused peer cannot exit), SIGTERM, then SIGKILL after ``timeout``; always reaped."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
