"""A TCP proxy on 127.0.0.1 that a test can cut and restore (a database server that goes away).

``TcpProxy(upstream_port).start()`` listens on a free port of 127.0.0.1 and forwards each connection
to 127.0.0.1:``upstream_port``. ``cut()`` resets every open connection and refuses new ones (each is
closed as soon as it is accepted) until ``restore()``. Threads only, stopped by ``stop()``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

LOOPBACK = "127.0.0.1"


class TcpProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<upstream_port>, with a switch to cut it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._stopped = threading.Event()

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()
        return self

    def cut(self) -> None:
        """Reset every connection and refuse new ones."""
        with self._lock:
            self._cut = True
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._stopped.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    _reset(client)
                    continue
                try:
                    upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=2)
                except OSError:
                    _reset(client)
                    continue
                upstream.settimeout(None)
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    if sock in self._open:
                        self._open.discard(sock)
                        _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a server that went away."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
