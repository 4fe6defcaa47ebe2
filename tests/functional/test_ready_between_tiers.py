"""Readiness between tiers with the real prober against real listeners on 127.0.0.1 (docs/evacuation.md).

First the prober alone (``NetworkProber``: TCP connect, HTTP GET), then the whole loop (real journal,
real IPMI fencing, in-memory Nova, the prober the composition root wires by default): tier 1 is not
asked for before tier 0's pets answer — a TCP port that starts listening late, an HTTP server that
answers 503 for a while — and a tier whose pet never answers lets the next one start after the timeout,
with a ``tier_not_ready`` event.
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petguard.evacuate.probe import NetworkProber
from petguard.evacuate.ready import ReadyPolicy, parse_ready_check
from petguard.hosts import HostState
from petguard.journal import MoveStatus
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_RECOVERY, Bmcs, Harness, powered_nova

HOSTS = ["cmp1", "cmp2", "cmp3"]
PET = {"petguard:pet": "true"}


class LateTcpListener:
    """A port on 127.0.0.1 bound at once (connections are refused) that listens from ``start()`` on."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.started_at: float | None = None
        self.accepted = 0

    def start(self) -> None:
        self.sock.listen(16)
        self.started_at = time.monotonic()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class SlowHttpServer:
    """An HTTP server on 127.0.0.1 that answers ``status`` (503 until ``ready()``), and notes every path."""

    def __init__(self, status: int = 503, location: str = "") -> None:
        server = self
        self.status = status
        self.ready_at: float | None = None
        self.seen: list[tuple[str, int]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = server.status
                server.seen.append((self.path, status))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def ready(self) -> None:
        self.status = 200
        self.ready_at = time.monotonic()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tcp() -> Iterator[LateTcpListener]:
    listener = LateTcpListener()
    yield listener
    listener.close()


@pytest.fixture
def web() -> Iterator[SlowHttpServer]:
    server = SlowHttpServer()
    yield server
    server.close()


# ------------------------------------------------------------------------------------------ the prober


def probe(value: str, timeout: float = 1.0) -> tuple[bool, str]:
    result = NetworkProber().probe(parse_ready_check(value), "127.0.0.1", timeout)
    return result.answered, result.detail


def test_tcp_refused_until_the_port_listens(tcp: LateTcpListener) -> None:
    assert probe(f"tcp:{tcp.port}") == (False, "Connection refused")
    tcp.start()
    assert probe(f"tcp:{tcp.port}") == (True, "connected")


@pytest.mark.parametrize(
    ("status", "answered"), [(200, True), (204, True), (302, True), (404, False), (500, False), (503, False)]
)
def test_http_answers_2xx_and_3xx_count(status: int, answered: bool) -> None:
    server = SlowHttpServer(status, location="http://127.0.0.1:1/elsewhere" if status == 302 else "")
    try:
        assert probe(f"http:{server.port}/health?deep=1") == (answered, f"HTTP {status}")
        assert server.seen == [("/health?deep=1", status)]  # the redirect is not followed
    finally:
        server.close()


def test_http_to_a_port_nobody_listens_on(tcp: LateTcpListener) -> None:
    answered, detail = probe(f"http://127.0.0.1:{tcp.port}/")
    assert not answered and detail.startswith("ConnectError")


@pytest.mark.fault(
    "GRP-18",
    guarantee="4",
    injected="a pet's HTTP ready check accepts the connection and never answers",
    expected="not ready after the probe timeout (under 2 s)",
)
def test_http_to_a_server_that_never_answers_times_out(tcp: LateTcpListener) -> None:
    tcp.sock.listen(4)  # the kernel accepts the connection; nobody ever reads the request
    started = time.monotonic()
    assert probe(f"http:{tcp.port}/", timeout=0.3) == (False, "no answer within 0.3 s")
    assert time.monotonic() - started < 2


def test_http_goes_straight_to_the_pet_whatever_proxy_the_environment_names(
    web: SlowHttpServer, tcp: LateTcpListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{tcp.port}")  # a dead proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    web.ready()
    assert probe(f"http:{web.port}/") == (True, "HTTP 200")


# ------------------------------------------------------------------------------------- the whole loop



@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs, evacuation_steps=4)
    return nova


def harness(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs, ready: ReadyPolicy) -> Harness:
    recovery = dataclasses.replace(FAST_RECOVERY, run=dataclasses.replace(FAST_RECOVERY.run, ready=ready))
    return Harness(tmp_path, compute, bmcs.devices, recovery=recovery)


def note_evacuate_times(compute: FakeCompute) -> dict[str, float]:
    """When each server's evacuation was asked for (time.monotonic)."""
    asked: dict[str, float] = {}
    original: Callable[[str], str] = compute.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        asked[server_id] = time.monotonic()
        return original(server_id, host)

    compute.evacuate = evacuate  # type: ignore[method-assign]
    return asked


def fail_cmp1(h: Harness, compute: FakeCompute) -> int:
    h.run_until(lambda: set(h.store.load_hosts()) == set(HOSTS), timeout=5)
    compute.dead.add("cmp1")
    h.run_until(lambda: h.state("cmp1") is HostState.EVACUATED, timeout=40)
    incident_id = h.store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    return incident_id


def test_tier_1_starts_only_once_tier_0_answers(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs, tcp: LateTcpListener, web: SlowHttpServer
) -> None:
    compute.add_server("db", "cmp1", metadata={**PET, "petguard:ready_check": f"tcp:127.0.0.1:{tcp.port}"})
    compute.add_server("front", "cmp1", metadata={**PET, "petguard:ready_check": f"http://127.0.0.1:{web.port}/health"})
    compute.add_server("app", "cmp1", metadata={**PET, "petguard:tier": "1"})
    asked = note_evacuate_times(compute)

    def tier_0_wakes_up_late() -> None:
        while not {("arrived", "db-id"), ("arrived", "front-id")} <= set(compute.timeline):
            time.sleep(0.05)
        time.sleep(1.0)
        tcp.start()
        time.sleep(0.5)
        web.ready()

    threading.Thread(target=tier_0_wakes_up_late, daemon=True).start()
    h = harness(tmp_path, compute, bmcs, ReadyPolicy(timeout=30, interval=0.2, probe_timeout=0.5))
    try:
        incident_id = fail_cmp1(h, compute)
        assert all(m.status is MoveStatus.DONE for m in h.store.moves(incident_id))
        assert tcp.started_at is not None and web.ready_at is not None
        assert asked["app-id"] >= web.ready_at >= tcp.started_at  # not asked before both answered
        assert asked["app-id"] - web.ready_at < 2  # and soon after
        assert ("/health", 503) in web.seen and ("/health", 200) in web.seen  # it was asked while it said 503
        assert tcp.accepted >= 1
        assert "tier_not_ready" not in {e.kind for e in h.store.events(incident_id=incident_id)}
    finally:
        h.close()


@pytest.mark.fault(
    "GRP-17",
    guarantee="4",
    injected="a tier-0 pet whose ready check never answers (its port refuses)",
    expected="tier 1 starts after the readiness timeout with a tier_not_ready event naming the pet and why; every pet "
    "DONE",
)
def test_a_pet_that_never_answers_holds_the_next_tier_only_until_the_timeout(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs, tcp: LateTcpListener
) -> None:
    compute.add_server("db", "cmp1", metadata={**PET, "petguard:ready_check": f"tcp:127.0.0.1:{tcp.port}"})
    compute.add_server("app", "cmp1", metadata={**PET, "petguard:tier": "1"})
    asked = note_evacuate_times(compute)
    arrived: list[float] = []
    original_get = compute.get_server

    def note_arrival(server_id: str):  # type: ignore[no-untyped-def]
        server = original_get(server_id)
        if server_id == "db-id" and server.host != "cmp1" and not arrived:
            arrived.append(time.monotonic())
        return server

    compute.get_server = note_arrival  # type: ignore[method-assign]
    h = harness(tmp_path, compute, bmcs, ReadyPolicy(timeout=1.5, interval=0.2, probe_timeout=0.5))
    try:
        incident_id = fail_cmp1(h, compute)
        assert all(m.status is MoveStatus.DONE for m in h.store.moves(incident_id))
        assert asked["app-id"] - arrived[0] >= 1.5
        [event] = [e for e in h.store.events(incident_id=incident_id) if e.kind == "tier_not_ready"]
        assert f"db (tcp 127.0.0.1:{tcp.port}): Connection refused" in event.message
        assert "tier 1 starts anyway" in event.message
    finally:
        h.close()
