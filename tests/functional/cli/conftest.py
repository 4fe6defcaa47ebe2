"""A daemon in-process for the CLI: the real WSGI app (petguard.api.app) over the real journal (tmp
sqlite) and the real loop ticking in a thread, wired as petguard.daemon.api_backend wires it, reached
through ``httpx.WSGITransport`` (no socket). Nova is the in-memory FakeCompute; BMCs the fake driver.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from petguard.api.app import ApiSettings, make_app
from petguard.api.auth import Authenticator
from petguard.daemon.api_backend import StoreInbox, StoreView
from petguard.fencing.base import FenceDevice
from petguard.lanes import RecoveryPolicy
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_RECOVERY, Harness
from tests.unit.cli.runner import Result, run_cli, write_token

TOKEN = "cli-functional-token"
HOSTS = ["cmp1", "cmp2", "cmp3"]
TICK = 0.05
_NETS = itertools.count(1)  # the fake driver's BMCs are process-wide, keyed by address
_BEHAVIOURS = {"cmp3": {"fake_behaviour": "refuses_off"}}


class NoMetrics:
    """The app's metrics seam, unused by the CLI."""

    def render(self) -> tuple[bytes, str]:
        return b"", "text/plain; version=0.0.4"


class Daemon:
    """The harness's loop ticking in a thread, and the API app over its journal."""

    def __init__(self, tmp_path: Path, recovery: RecoveryPolicy = FAST_RECOVERY) -> None:
        self.compute = FakeCompute(HOSTS)
        # cmp3's BMC refuses power-off: its fence ends in awaiting_confirm (for confirm-fenced)
        self.address = f"10.{next(_NETS)}.0"
        devices = {
            h: FenceDevice(h, "fake", f"{self.address}.{i}", 623, "admin", "pw", _BEHAVIOURS.get(h, {}))
            for i, h in enumerate(HOSTS, 1)
        }
        self.harness = Harness(tmp_path, self.compute, devices, recovery=recovery)
        self.levels: list[str] = []
        wait_timeout = recovery.run.cloud_wait_timeout  # [evacuation] cloud_wait_timeout, as start_api wires it
        view = StoreView(self.harness.store, self.harness.loop, TICK, cloud_wait_timeout=wait_timeout)
        inbox = StoreInbox(self.harness.store, set_level=self._set_level)
        settings = ApiSettings(cloud_wait_timeout=wait_timeout)
        app = make_app(view, inbox, Authenticator(tokens={"operator": TOKEN}), NoMetrics(), settings)
        self.transport = httpx.WSGITransport(app=app)
        self.token_file = write_token(tmp_path, TOKEN)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop", daemon=True)

    def _set_level(self, level: str) -> str:
        self.levels.append(level)
        return level

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            if not self._paused.is_set():
                self.harness.loop.tick()

    def start(self) -> Daemon:
        self.harness.run_for(0.3)  # hosts known and up before the first command
        self._thread.start()
        return self

    def wait_for(self, done: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait (the loop thread ticks) until ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not reached within {timeout} s"
            time.sleep(TICK)

    def pause(self) -> None:
        """Stop ticking (requests stay pending)."""
        self._paused.set()

    def cli(self, *argv: str, **kwargs: object) -> Result:
        kwargs.setdefault("token_file", self.token_file)
        return run_cli(list(argv), self.transport, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.harness.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path).start()
    try:
        yield d
    finally:
        d.close()
