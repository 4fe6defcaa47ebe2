"""The systemd notify protocol against a real unix datagram socket (a path, and an abstract @name)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard import sdnotify
from petguard.daemon import lifecycle
from petguard.reconcile import TickReport


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
    else:
        name = f"petguard-test-{os.getpid()}-{id(sock)}"
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    sock.settimeout(5)
    yield sock
    sock.close()


def _messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_one_datagram_per_notify(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=loaded")
    assert sdnotify.notify("WATCHDOG=1")
    assert _messages(notify_socket, 2) == ["READY=1\nSTATUS=loaded", "WATCHDOG=1"]


def test_watchdog_sequence_over_the_socket(notify_socket: socket.socket) -> None:
    watchdog = lifecycle.Watchdog()
    watchdog.after_tick(TickReport(True, None))
    watchdog.after_tick(TickReport(True, None))
    watchdog.stopping()
    assert _messages(notify_socket, 3) == [
        "READY=1\nSTATUS=watching: last tick ok",
        "WATCHDOG=1\nSTATUS=watching: last tick ok",
        "STOPPING=1\nSTATUS=stopping: finishing the steps in hand",
    ]


def test_nobody_listening_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.notify("WATCHDOG=1") is False
