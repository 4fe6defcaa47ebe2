"""The real WSGI app over the real journal (tmp sqlite, migrated) and the real loop, stepped by the
test (``api.tick()``), reached in-process through ``httpx.WSGITransport``. Nova is the in-memory
FakeCompute; every host has a fake fence device (petguard.fencing.fake)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from petguard.api.app import ApiSettings, make_app
from petguard.api.auth import Authenticator
from petguard.daemon.api_backend import StoreInbox, StoreView, snapshot
from petguard.daemon.metrics import Metrics
from petguard.fencing import fake
from petguard.fencing.base import FenceDevice
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_RECOVERY, Harness

TOKEN = "op-token-functional"
ALERT_TOKEN = "alert-token-functional"
HMAC_KEY = "hmac-key-functional"
#: Keys bound to one host each (docs/agent.md): ``agent-<host>``, and the older ``<host>`` naming.
HOST_KEYS = {"agent-cmp1": "cmp1-key-functional", "cmp3": "cmp3-key-functional"}
HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5"]
MAX_BODY = 64 * 1024


@dataclasses.dataclass
class Api:
    harness: Harness
    compute: FakeCompute
    client: httpx.Client
    metrics: Metrics
    levels: list[str]
    view: StoreView

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.harness.loop.tick()

    def harness_device(self, host: str) -> FenceDevice:
        return devices()[host]

    def anonymous(self) -> httpx.Client:
        return httpx.Client(transport=self.client._transport, base_url="http://petguard")


def devices() -> dict[str, FenceDevice]:
    return {h: FenceDevice(h, "fake", f"10.9.0.{i}", 623, "admin", "pw") for i, h in enumerate(HOSTS, 1)}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    fake.REGISTRY.reset()
    compute = FakeCompute(HOSTS)
    harness = Harness(tmp_path, compute, devices())
    levels: list[str] = []

    def set_level(level: str) -> str:
        levels.append(level)
        return level

    metrics = Metrics(lambda: snapshot(harness.store, harness.loop))
    harness.loop.recorder = metrics
    view = StoreView(
        harness.store,
        harness.loop,
        tick_interval=1.0,
        log_level=lambda: (levels or ["INFO"])[-1],
        compute=compute,
        evacuation=FAST_RECOVERY.evacuation,
    )
    inbox = StoreInbox(harness.store, set_level=set_level)
    auth = Authenticator(
        tokens={"alice": TOKEN},
        alert_tokens={"alertmanager": ALERT_TOKEN},
        hmac_keys={"agent": HMAC_KEY, **HOST_KEYS},
        now=harness.clock.now,
    )
    app = make_app(view, inbox, auth, metrics, ApiSettings(max_body_bytes=MAX_BODY))
    client = httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url="http://petguard",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    try:
        yield Api(harness, compute, client, metrics, levels, view)
    finally:
        client.close()
        harness.close()
        fake.REGISTRY.reset()
