"""Fixtures of the agent tier.

* ``controller``: the real WSGI app over the real journal (migrated sqlite) and the real loop
  (``Harness``, fake fence devices, the in-memory Nova of tests/fakes.py), the instance-health
  executor, and an HMAC key for agents. ``controller.agent_transport()`` reaches the app in-process;
  ``controller.serve(port)`` serves it with cheroot on 127.0.0.1.
* ``libvirtd`` (session): a real libvirtd in a private mount namespace (tests/functional/agent/
  libvirtlab.py); the tier is skipped, saying why, when the Debian packages are not installed.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from petguard.agent.events import DomainEvent
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings
from petguard.api.app import ApiSettings, make_app
from petguard.api.auth import Authenticator
from petguard.api.server import ApiServer, ServerSettings
from petguard.cloud import Server
from petguard.daemon.api_backend import StoreInbox, StoreView, snapshot
from petguard.daemon.metrics import Metrics
from petguard.fencing import fake
from petguard.fencing.base import FenceDevice
from petguard.guests.policy import HealthPolicy
from petguard.guests.restarts import InstanceHealth
from tests.fakes import FakeCompute
from tests.functional.agent import libvirtlab
from tests.functional.harness import Harness

TOKEN = "op-token-agent-tests"
HMAC_KEY = "agent-key-functional"
HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5"]
FAST_HEALTH = HealthPolicy(min_uptime=5.0, max_restarts=3, window=600.0, reset_report_interval=30.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Controller:
    harness: Harness
    compute: FakeCompute
    app: object
    executor: InstanceHealth
    servers: list[ApiServer] = dataclasses.field(default_factory=list)

    def agent_transport(self) -> httpx.WSGITransport:
        return httpx.WSGITransport(app=self.app)  # type: ignore[arg-type]

    def operator(self) -> httpx.Client:
        return httpx.Client(
            transport=self.agent_transport(), base_url="http://petguard", headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def serve(self, port: int) -> ApiServer:
        server = ApiServer(self.app, ServerSettings(bind=f"127.0.0.1:{port}")).start()
        self.servers.append(server)
        return server

    def reporter(
        self,
        buffer: Buffer,
        host: str,
        status: AgentStatus | None = None,
        *,
        urls: tuple[str, ...] = ("http://petguard",),
        in_process: bool = True,
        interval: float = 0.2,
        key: str = HMAC_KEY,
    ) -> Reporter:
        settings = ReportSettings(
            urls=urls, host=host, sender=host, key=key, heartbeat_interval=interval, timeout=2.0,
            backoff_min=0.1, backoff_max=0.5,
        )
        fixed = status or AgentStatus(True, ())
        return Reporter(
            settings, buffer, lambda: fixed, transport=self.agent_transport() if in_process else None, version="test"
        )

    def add_pet(self, uuid: str, name: str, host: str, **metadata: str) -> Server:
        server = Server(
            id=uuid, name=name, host=host, status="ACTIVE", vm_state="active", power_state=1,
            metadata={"petguard:pet": "true", **metadata},
        )
        self.compute.servers[uuid] = server
        return server

    def events(self, kind: str) -> list[str]:
        return [e.message for e in self.harness.store.events(None, None, 1000) if e.kind == kind]

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.executor.stop()
        self.harness.close()


def devices(hosts: list[str]) -> dict[str, FenceDevice]:
    return {h: FenceDevice(h, "fake", f"10.9.1.{i}", 623, "admin", "pw") for i, h in enumerate(hosts, 1)}


def make_controller(tmp_path: Path, hosts: list[str], policy: HealthPolicy = FAST_HEALTH) -> Controller:
    fake.REGISTRY.reset()
    compute = FakeCompute(hosts)
    harness = Harness(tmp_path, compute, devices(hosts))
    metrics = Metrics(lambda: snapshot(harness.store, harness.loop))
    view = StoreView(harness.store, harness.loop, tick_interval=1.0, log_level=lambda: "INFO")
    inbox = StoreInbox(harness.store, set_level=lambda level: level)
    auth = Authenticator(tokens={"alice": TOKEN}, hmac_keys={h: HMAC_KEY for h in hosts}, now=harness.clock.now)
    app = make_app(view, inbox, auth, metrics, ApiSettings())
    executor = InstanceHealth(compute, harness.store, harness.clock, policy, interval=0.1)
    return Controller(harness, compute, app, executor)


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    built = make_controller(tmp_path, HOSTS)
    try:
        yield built
    finally:
        built.close()
        fake.REGISTRY.reset()


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[libvirtlab.Libvirtd]:
    missing = libvirtlab.missing_tools()
    if missing:
        pytest.skip(
            "the libvirt tier needs Debian's libvirt-daemon-system, qemu-system-x86, libvirt-dev and gcc "
            f"(./run setup installs them) and libvirt-python; missing: {', '.join(missing)}"
        )
    daemon = libvirtlab.Libvirtd(tmp_path_factory.mktemp("virt")).prepare()
    daemon.start()
    try:
        yield daemon
    finally:
        libvirtlab.destroy_all(daemon)
        daemon.stop()


def wire_events(events: list[DomainEvent]) -> list[dict[str, object]]:
    return [e.to_wire() for e in events]
