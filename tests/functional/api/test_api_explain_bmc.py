"""``GET /v1/explain/{host}`` shows the BMC signal: the host's latest power reading, taken read-only only while
the host looks down (real WSGI app, real journal, the fake fence driver)."""

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
from petguard.fencing.base import PowerState
from petguard.fencing.powerwatch import WatchPolicy
from tests.fakes import FakeCompute
from tests.functional.api.conftest import HOSTS, TOKEN, devices
from tests.functional.harness import FAST_DETECTION, Harness

PREFIX = "bmc power (read-only, while the host looks down): "
#: Long grace and settle: the host stays suspect while the test reads its explanation.
SLOW = dataclasses.replace(FAST_DETECTION, grace_period=60.0, bmc_settle=30.0)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Harness, FakeCompute, httpx.Client]]:
    fake.REGISTRY.reset()
    compute = FakeCompute(HOSTS)
    harness = Harness(tmp_path, compute, devices(), detection=SLOW, power=WatchPolicy(min_interval=0.1))
    view = StoreView(harness.store, harness.loop, tick_interval=1.0, log_level=lambda: "INFO")
    auth = Authenticator(tokens={"alice": TOKEN}, alert_tokens={}, hmac_keys={}, now=harness.clock.now)
    metrics = Metrics(lambda: snapshot(harness.store, harness.loop))
    app = make_app(view, StoreInbox(harness.store, set_level=lambda level: level), auth, metrics, ApiSettings())
    client = httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url="http://petguard",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    try:
        yield harness, compute, client
    finally:
        client.close()
        harness.close()
        fake.REGISTRY.reset()


def _bmc_line(client: httpx.Client, host: str) -> str:
    lines = client.get(f"/v1/explain/{host}").json()["lines"]
    (line,) = [line for line in lines if line.startswith(PREFIX)]
    return str(line[len(PREFIX) :])


def test_explain_shows_the_reading_of_a_host_that_looks_down(
    setup: tuple[Harness, FakeCompute, httpx.Client],
) -> None:
    harness, compute, client = setup
    harness.run_until(lambda: set(harness.store.load_hosts()) == set(HOSTS), timeout=5)
    assert _bmc_line(client, "cmp2").startswith("not read by this controller")
    fake.REGISTRY.script("10.9.0.2", 623, power=PowerState.OFF)
    compute.dead.add("cmp2")
    harness.run_until(lambda: _bmc_line(client, "cmp2").startswith("OFF"), timeout=5)
    assert "fake://admin@10.9.0.2:623 (host cmp2) reads off" in _bmc_line(client, "cmp2")
    assert _bmc_line(client, "cmp3").startswith("not read by this controller")  # healthy: never read
    harness.run_for(0.3)
    detection = [line for line in client.get("/v1/explain/cmp2").json()["lines"] if line.startswith("detection:")]
    assert "bmc: power reads OFF" in detection[0]
    assert harness.store.load_hosts()["cmp2"].host.state.value == "suspect"  # settle 30 s: not yet failed
