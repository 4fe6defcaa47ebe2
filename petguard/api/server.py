"""Serve the API's WSGI app with cheroot (a production WSGI server) in a background thread.

``ApiServer(app, settings).start()`` binds ``127.0.0.1:8786`` by default, or a unix socket (mode
0660, so that the daemon's group may use it) when ``settings.socket`` is set; ``stop()`` closes it
and joins the thread. Binding happens in ``start()``, so an address in use is a ``ConfigError`` at
start-up, not a silent thread death.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import threading
from typing import Any

from cheroot import wsgi

from petguard.errors import ConfigError

LOG = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1:8786"
SOCKET_MODE = 0o660


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Where and how to serve: ``bind`` is ``HOST:PORT``; ``socket``, when set, wins over it."""

    bind: str = DEFAULT_BIND
    socket: str | None = None
    threads: int = 4
    shutdown_timeout: float = 5.0


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a tuple.

    :raises ConfigError: not HOST:PORT with a port from 0 to 65535.
    """
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"[api] bind = {bind!r} is not HOST:PORT (e.g. 127.0.0.1:8786)")
    return host, int(port)


class ApiServer:
    """cheroot serving one WSGI app in a daemon thread."""

    def __init__(self, app: Any, settings: ServerSettings | None = None) -> None:
        self._settings = settings or ServerSettings()
        self._app = app
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """Where the server listens: ``HOST:PORT`` (the real port when 0 was asked) or the socket path."""
        if self._server is None:
            raise RuntimeError("the API server is not started")
        bound = self._server.bind_addr
        if isinstance(bound, tuple):
            return f"{bound[0]}:{bound[1]}"
        return str(bound)

    def start(self) -> ApiServer:
        """Bind and serve in a thread.

        :raises ConfigError: the address cannot be bound (in use, no permission, bad path).
        """
        settings = self._settings
        address: Any = settings.socket if settings.socket else parse_bind(settings.bind)
        if settings.socket:
            _remove_stale_socket(settings.socket)
        server = wsgi.Server(address, self._app, numthreads=settings.threads, server_name="petguard")
        server.shutdown_timeout = settings.shutdown_timeout
        try:
            server.prepare()
        except OSError as exc:
            where = settings.socket or settings.bind
            raise ConfigError(f"the API cannot listen on {where}: {exc}; change [api] bind or [api] socket") from exc
        if settings.socket:
            os.chmod(settings.socket, SOCKET_MODE)
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="api", daemon=True)
        self._thread.start()
        LOG.info("HTTP API listening on %s", self.address)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (requests in hand get ``shutdown_timeout`` to finish)."""
        if self._server is None:
            return
        self._server.stop()
        if self._thread is not None:
            self._thread.join(self._settings.shutdown_timeout + 1.0)
        if self._settings.socket and os.path.exists(self._settings.socket):
            os.unlink(self._settings.socket)
        self._server = None
        self._thread = None
        LOG.info("HTTP API stopped")


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a previous run would make bind fail; anything else at that path is kept."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"[api] socket = {path} exists and is not a socket: remove it or choose another path")
    os.unlink(path)
