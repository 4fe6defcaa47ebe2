"""A real petguard-daemon process (against an unreachable Nova): systemd notify over a real socket,
SIGHUP turning DEBUG on, and the daemon's dispatcher delivering an event to a real receiver.

Skipped until the composition root wires ``petguard.daemon.lifecycle`` and the dispatcher in.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petguard.daemon import service
from petguard.store.sql import SqlStore
from tests.functional.daemon_conf import daemon_conf
from tests.functional.webhooks.receiver import Receiver as HttpReceiver

ROOT = Path(__file__).parents[3]
WIRED = "watchdog" in {f.name for f in dataclasses.fields(service.Daemon)}
pytestmark = pytest.mark.skipif(not WIRED, reason="petguard.daemon.service does not wire lifecycle/webhooks yet")
KEY = b"daemon-test-key"


def _wait(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver(KEY).start()
    yield http
    http.stop()


def test_notify_reload_and_alerts_from_the_daemon(tmp_path: Path, receiver: HttpReceiver) -> None:
    key = tmp_path / "ops.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    sections = (
        f"debug = false\n[webhooks]\nreceivers = ops\npoll_interval = 0.1\n"
        f"[webhook:ops]\nurl = {receiver.url}\nsecret_file = {key}\n"
    )
    conf = daemon_conf(tmp_path, extra=sections)
    log = tmp_path / "daemon.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "petguard.cmd.daemon", "--config-file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert notify.recv(4096).decode().startswith("READY=1\nSTATUS=")
        assert notify.recv(4096).decode().startswith("WATCHDOG=1\nSTATUS=Nova unreachable")

        # an event recorded in the journal reaches the receiver, signed
        store = SqlStore(conf.read_text().split("connection = ", 1)[1].split("\n", 1)[0])
        _wait("the dispatcher's cursor", lambda: store.webhook_cursor("ops", 0.0) is not None)
        time.sleep(0.3)
        store.record_event("cmp1", None, "host_suspect", "looks down: test", time.time())
        _wait("the alert", lambda: len(receiver.received) >= 1)
        assert receiver.received[0].json()["kind"] == "host_suspect" and receiver.verify(receiver.received[0])
        store.close()

        # SIGHUP with debug = true in the file: DEBUG lines from now on
        assert " DEBUG " not in log.read_text()
        conf.write_text(conf.read_text().replace("debug = false", "debug = true"))
        proc.send_signal(signal.SIGHUP)
        _wait("the reload", lambda: "log level now DEBUG" in log.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    messages = []
    notify.settimeout(0.5)
    try:
        while True:
            messages.append(notify.recv(4096).decode())
    except TimeoutError:
        pass
    notify.close()
    assert proc.returncode == 0, err
    assert any(m.startswith("STOPPING=1") for m in messages), messages
