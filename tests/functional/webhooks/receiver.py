"""A real HTTP receiver of alerts on 127.0.0.1 (stdlib http.server in a thread) for the tests.

It records every request, verifies signatures with the key it was given, and can answer a number of
requests with an error status first, or be taken down (its port closed) and brought back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Start with ``start()``; ``url`` is where it listens; ``stop()`` closes the port."""

    def __init__(self, secret: bytes | None = None, port: int = 0) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.fail: list[int] = []  # statuses to answer first, one per request
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner._lock:
                    owner.received.append(Received(self.path, dict(self.headers.items()), body))
                    status = owner.fail.pop(0) if owner.fail else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def ids(self) -> list[int]:
        with self._lock:
            return [r.json()["id"] for r in self.received if r.body]

    def verify(self, item: Received) -> bool:
        """Check the signature the way docs/operations.md tells receivers to."""
        assert self.secret is not None
        stamp = item.headers["X-Petguard-Timestamp"]
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + item.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, item.headers["X-Petguard-Signature"])
