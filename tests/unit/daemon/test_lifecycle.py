"""Lifecycle helpers without sockets: watchdog messages, log level, watchdog budget, notify addresses."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from petguard import sdnotify
from petguard.daemon import lifecycle
from petguard.reconcile import TickReport


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def __call__(self, *assignments: str) -> bool:
        self.sent.append(assignments)
        return True


def test_ready_once_then_watchdog_after_each_tick_then_stopping() -> None:
    recorder = Recorder()
    watchdog = lifecycle.Watchdog(recorder)
    watchdog.after_tick(TickReport(True, None))
    watchdog.after_tick(TickReport(False, None, "connection refused"))
    watchdog.after_tick(TickReport(True, None))
    watchdog.stopping()
    assert [s[0] for s in recorder.sent] == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    assert recorder.sent[1][1] == "STATUS=Nova unreachable: connection refused"
    assert all(s[1].startswith("STATUS=") for s in recorder.sent)


def test_status_line_is_bounded() -> None:
    recorder = Recorder()
    watchdog = lifecycle.Watchdog(recorder)
    watchdog.after_tick(TickReport(False, None, "x" * 1000))
    assert len(recorder.sent[0][1]) == 200


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    yield
    root.setLevel(before)


@pytest.mark.usefixtures("root_level")
def test_set_log_level_returns_the_level_in_force() -> None:
    logging.getLogger().setLevel(logging.INFO)
    assert lifecycle.set_log_level("debug") == "DEBUG"
    assert logging.getLogger().level == logging.DEBUG
    assert lifecycle.current_log_level() == "DEBUG"


@pytest.mark.usefixtures("root_level")
def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="use one of DEBUG, INFO"):
        lifecycle.set_log_level("loud")


@pytest.mark.parametrize(
    ("usec", "warns"),
    [(None, False), ("0", False), ("300000000", False), ("30000000", True), ("garbage", False)],
)
def test_watchdog_budget(monkeypatch: pytest.MonkeyPatch, usec: str | None, warns: bool) -> None:
    if usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    warning = lifecycle.watchdog_budget_warning(tick_interval=2.0, nova_timeout=30.0)
    assert (warning is not None) is warns
    if warning:
        assert "WatchdogSec (30 s)" in warning and "62 s" in warning


@pytest.mark.parametrize(
    ("env", "expected"),
    [(None, None), ("", None), ("/run/systemd/notify", "/run/systemd/notify"), ("@petguard/x", "\0petguard/x")],
)
def test_notify_socket_address(monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str | None) -> None:
    if env is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", env)
    assert sdnotify.address() == expected


def test_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_notify_to_a_non_unix_address_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.notify("READY=1") is False
