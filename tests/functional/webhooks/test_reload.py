"""SIGHUP re-reads the config file and oslo.log applies ``debug`` at once, in a real process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

CHILD = Path(__file__).with_name("hup_child.py")


def _wait_for(path: Path, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text() if path.exists() else '(missing)'}")


def test_sighup_turns_debug_on_and_off(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    conf = tmp_path / "child.conf"
    conf.write_text(f"[DEFAULT]\nlog_file = {log}\ndebug = false\n")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "--config-file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    try:
        _wait_for(log, "started")
        time.sleep(0.3)
        assert "tick at debug" not in log.read_text()

        conf.write_text(f"[DEFAULT]\nlog_file = {log}\ndebug = true\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(log, "tick at debug")
        _wait_for(log, "log level now DEBUG")

        conf.write_text(f"[DEFAULT]\nlog_file = {log}\ndebug = false\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(log, "log level now INFO")
        time.sleep(0.3)
        size = log.read_text().count("tick at debug")
        time.sleep(0.3)
        assert log.read_text().count("tick at debug") == size  # quiet again
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped" in log.read_text()
