"""Slow clients against the real cheroot server on 127.0.0.1: a slowloris must not stall ``/healthz``.

A slowloris opens connections, sends part of a request's headers and then trickles a byte now and
then, never finishing: each such connection holds one of the server's worker threads. The attacks
here are bounded (a handful of sockets, a few seconds) and need no credentials, as a real one would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from oslo_config import cfg

from petguard.api.server import ApiServer, ServerSettings
from petguard.conf import opts
from petguard.daemon import api_backend
from tests.functional.api.conftest import Api

#: What a slowloris sends first: a request line and one header, never the blank line that ends them.
HALF_HEADERS = b"GET /v1/hosts HTTP/1.1\r\nHost: petguard\r\nX-Slow: "


class Slowloris:
    """``count`` connections to ``address`` holding half-sent headers, trickling one byte every
    ``every`` seconds from a background thread until ``stop()`` (or until the server drops them)."""

    def __init__(self, address: str, count: int, every: float = 0.5) -> None:
        host, port = address.rsplit(":", 1)
        self.sockets = [socket.create_connection((host, int(port)), timeout=2) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(HALF_HEADERS)
        self.dropped: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, args=(every,), daemon=True)
        self._thread.start()

    def _trickle(self, every: float) -> None:
        while not self._stop.wait(every):
            for index, sock in enumerate(self.sockets):
                if index in self.dropped:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:  # the server closed it: the defence worked for this one
                    self.dropped.add(index)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@contextlib.contextmanager
def serving(api: Api, settings: ServerSettings) -> Iterator[ApiServer]:
    api.tick()
    app = api.client._transport.app  # type: ignore[attr-defined]
    server = ApiServer(app, settings).start()
    try:
        yield server
    finally:
        server.stop()


def healthz_seconds(address: str, limit: float) -> float:
    """Seconds ``GET /healthz`` took (``limit`` + the read error's time when it did not answer)."""
    started = time.monotonic()
    try:
        response = httpx.get(f"http://{address}/healthz", timeout=limit)
        assert response.status_code == 200
    except httpx.TimeoutException:
        return limit + 0.001
    return time.monotonic() - started


@pytest.mark.fault(
    "SLOW-01",
    guarantee="8",
    injected="6 unauthenticated connections hold half-sent headers, trickling a byte every 0.5 s",
    expected="/healthz answers within a second with the default [api] threads",
)
def test_six_slow_clients_do_not_stall_healthz_with_the_defaults(api: Api) -> None:
    with serving(api, ServerSettings(bind="127.0.0.1:0")) as server:
        attack = Slowloris(server.address, count=6)
        try:
            time.sleep(0.3)  # the server has handed every slow connection to a worker
            took = healthz_seconds(server.address, limit=5.0)
        finally:
            attack.stop()
    assert took < 1.0, f"/healthz took {took:.1f} s under 6 slow clients"


@pytest.mark.fault(
    "SLOW-02",
    guarantee="8",
    injected="more trickling slow clients than [api] threads, each sending a byte before the read timeout",
    expected="each is cut off at [api] request_timeout; /healthz answers within it, the slow sockets are closed",
)
def test_more_slow_clients_than_threads_are_cut_off_at_the_request_timeout(api: Api) -> None:
    settings = ServerSettings(bind="127.0.0.1:0", threads=4, client_timeout=5.0, request_timeout=2.0)
    with serving(api, settings) as server:
        attack = Slowloris(server.address, count=6, every=0.5)
        try:
            time.sleep(0.3)
            # Without a whole-request deadline the trickle resets the read timeout for ever.
            took = healthz_seconds(server.address, limit=8.0)
            deadline = time.monotonic() + 5.0
            while len(attack.dropped) < len(attack.sockets) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            attack.stop()
    assert took < settings.request_timeout + 1.5, f"/healthz took {took:.1f} s"
    assert len(attack.dropped) == len(attack.sockets), "a slow client outlived the request timeout"


def test_the_api_options_reach_the_server() -> None:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard-test")
    assert api_backend.settings(conf)[1] == ServerSettings(threads=32, client_timeout=5.0, request_timeout=10.0)
    for name, value in {"threads": 8, "client_timeout": 2.0, "request_timeout": 3.0}.items():
        conf.set_override(name, value, group="api")
    server = api_backend.settings(conf)[1]
    assert (server.threads, server.client_timeout, server.request_timeout) == (8, 2.0, 3.0)
