"""Serve the API's WSGI app with cheroot (a production WSGI server) in a background thread.

``ApiServer(app, settings).start()`` binds ``127.0.0.1:8795`` by default, or a unix socket (mode
0660, so that the daemon's group may use it) when ``settings.socket`` is set; ``stop()`` closes it
and joins the thread. Binding happens in ``start()``, so an address in use is a ``ConfigError`` at
start-up, not a silent thread death.

Slow clients (SLOW-01, SLOW-02): cheroot hands a connection to a worker thread as soon as its first
bytes arrive, and the worker then blocks reading the rest of the request; a client that sends half
its headers and a byte now and then (a slowloris) resets cheroot's per-read ``timeout`` for ever and
holds that thread. So every request here also has a whole-request deadline (``request_timeout``:
request line, headers and body must all arrive within it, else the connection gets a 408 or is
closed), enforced by the socket reader under cheroot (``_DeadlineReader``), and the pool has enough
threads (``threads``) that a handful of slow clients leave others free. Measured on 127.0.0.1 in
docs/api.md ("Slow clients").

Large requests (INPUTX-04..06): cheroot reads a request line and headers of any size by default, and
after answering a request whose body the app did not read (a GET with a body, a 401, a 404) it reads
the rest of that body into memory, whole, to keep the connection: one client sending a 400 MiB body
to ``/healthz`` made the process grow by 800 MB. Here the request line and headers together are
limited to ``max_header_bytes`` (414 or 413, connection closed), and an unread body is read and
thrown away in small pieces up to ``max_body_bytes``, beyond which the connection is closed instead
(``_Request.send_headers``).

TLS (docs/api.md, "TLS"): with ``tls_cert_file`` and ``tls_key_file`` the TCP address is served over
TLS only (1.2 at least; ``petguard.tls.server_context``); a unix socket never is. cheroot's builtin
adapter would do each handshake in its one accepting thread, so a client that connects and sends
nothing, or a handshake byte now and then, would hold every other client out (TLS-05): here the
handshake is left to the worker's first read (``_TlsAdapter``), under the same whole-request deadline
as the request itself. A plain-HTTP request to the TLS port gets a 400 saying to use https.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import socket
import ssl
import stat
import threading
import time
from typing import Any

from cheroot import errors as cheroot_errors
from cheroot import makefile as cheroot_makefile
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from petguard import tls
from petguard.api.app import MAX_BODY_BYTES
from petguard.errors import ConfigError

LOG = logging.getLogger(__name__)

#: Not 8786 (Manila's) nor any other OpenStack service's default (docs/api.md, "Port"); the [api] bind
#: option, the agent's controller_urls and the CLI's DEFAULT_URL repeat it (tests/unit/test_default_port.py).
DEFAULT_PORT = 8795
DEFAULT_BIND = f"127.0.0.1:{DEFAULT_PORT}"
SOCKET_MODE = 0o660
#: Request line and headers together, in bytes: petguard's own requests need a few hundred.
MAX_HEADER_BYTES = 64 * 1024
#: Bytes read at a time when an unread body is thrown away.
DISCARD_CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Where and how to serve: ``bind`` is ``HOST:PORT``; ``socket``, when set, wins over it."""

    bind: str = DEFAULT_BIND
    socket: str | None = None
    #: Worker threads: each connection busy with a request (or being sent one slowly) holds one.
    threads: int = 32
    #: Seconds one read from a client may wait for data (cheroot's ``timeout``; also how long an
    #: idle keep-alive connection is kept).
    client_timeout: float = 5.0
    #: Seconds a client has to send one whole request (line, headers and body), however it trickles.
    request_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    #: Largest body the app reads (``[api] max_body_bytes``); an unread body over it closes the connection.
    max_body_bytes: int = MAX_BODY_BYTES
    #: Request line and headers together; more is answered 414 (line) or 413 (headers).
    max_header_bytes: int = MAX_HEADER_BYTES
    #: PEM certificate (then its chain) and its private key: both serve ``bind`` over TLS only.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context to serve ``bind`` with, or None for plain HTTP (or a unix socket).

        :raises ConfigError: one TLS file without the other, files that cannot be used together
            (``petguard.tls.server_context``), or an ``https://`` bind without them / ``http://`` with them.
        """
        if self.socket:
            if self.tls_cert_file or self.tls_key_file:
                LOG.warning("[api] tls_cert_file and tls_key_file are unused: a unix socket ([api] socket) has no TLS")
            return None
        context = tls.server_context(self.tls_cert_file, self.tls_key_file)
        scheme = bind_scheme(self.bind)
        if scheme == "https" and context is None:
            raise ConfigError(
                f"[api] bind = {self.bind} asks for TLS: set [api] tls_cert_file and tls_key_file "
                "(docs/api.md, 'TLS'), or bind HOST:PORT for plain HTTP"
            )
        if scheme == "http" and context is not None:
            raise ConfigError(
                f"[api] bind = {self.bind} asks for plain HTTP but [api] tls_cert_file is set: "
                f"bind https://{self.bind[len('http://'):]} (or HOST:PORT) to serve TLS, or unset the TLS files"
            )
        return context


def bind_scheme(bind: str) -> str | None:
    """``"http"`` or ``"https"`` when ``bind`` starts with it (``https://HOST:PORT``), else None."""
    for scheme in ("http", "https"):
        if bind.startswith(f"{scheme}://"):
            return scheme
    return None


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), optionally ``http://`` or ``https://`` first, as a tuple.

    :raises ConfigError: not HOST:PORT with a port from 0 to 65535.
    """
    scheme = bind_scheme(bind)
    address = bind[len(scheme) + 3 :] if scheme else bind
    host, sep, port = address.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"[api] bind = {bind!r} is not HOST:PORT (e.g. 127.0.0.1:8795)")
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

    @property
    def url(self) -> str:
        """The base URL clients use: ``https://HOST:PORT`` with TLS, ``http://HOST:PORT``, or ``unix://PATH``."""
        if self._settings.socket:
            return f"unix://{self.address}"
        scheme = "https" if self._server is not None and self._server.ssl_adapter is not None else "http"
        return f"{scheme}://{self.address}"

    def start(self) -> ApiServer:
        """Bind and serve in a thread.

        :raises ConfigError: the address cannot be bound (in use, no permission, bad path).
        """
        settings = self._settings
        address: Any = settings.socket if settings.socket else parse_bind(settings.bind)
        context = settings.tls_context()
        if settings.socket:
            _remove_stale_socket(settings.socket)
        server = _Server(
            address,
            self._app,
            numthreads=settings.threads,
            server_name="petguard",
            # cheroot's stubs say int; it takes any number of seconds
            timeout=settings.client_timeout,  # type: ignore[arg-type]
            shutdown_timeout=settings.shutdown_timeout,  # type: ignore[arg-type]
        )
        server.request_timeout = settings.request_timeout
        server.max_request_header_size = settings.max_header_bytes
        server.max_discard_bytes = settings.max_body_bytes
        if context is not None:
            server.ssl_adapter = _TlsAdapter(context)
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
        LOG.info(
            "HTTP API listening on %s (%d threads, %g s per read, %g s per request)",
            self.url,
            settings.threads,
            settings.client_timeout,
            settings.request_timeout,
        )
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


class _DeadlineSocketIO(socket.SocketIO):
    """A socket's raw reader that refuses to wait past a deadline (None: no deadline).

    Each read waits at most the socket's own timeout and never beyond the deadline, so a client
    trickling bytes cannot keep one request's reads going for ever.
    """

    def __init__(self, sock: socket.socket, read_timeout: float | None) -> None:
        super().__init__(sock, "rb")
        self._sock_ref = sock
        self._read_timeout = read_timeout
        self.deadline: float | None = None

    def readinto(self, buffer: Any) -> int | None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")  # cheroot's wording: answered 408 or closed quietly
            self._sock_ref.settimeout(left if self._read_timeout is None else min(left, self._read_timeout))
        try:
            return super().readinto(buffer)
        except ssl.SSLError as exc:  # the deferred TLS handshake failed (_TlsAdapter)
            raise _handshake_failed(self._sock_ref, exc) from exc
        finally:  # the response is written on the same socket: give it the normal timeout back
            self._sock_ref.settimeout(self._read_timeout)


#: The answer to a plain-HTTP request on the TLS port, with what to do.
PLAIN_HTTP_ANSWER = (
    "This port serves the petguard API over TLS only: use https:// (and the CA that signed the "
    "daemon's certificate: --ca-file, [agent] ca_file)."
)


def _handshake_failed(sock: socket.socket, exc: ssl.SSLError) -> Exception:
    """What cheroot should see of a failed handshake; a plain-HTTP client first gets a 400, in plain text."""
    if "http request" not in str(exc).lower():
        return cheroot_errors.FatalSSLAlert(*exc.args)  # closed quietly, as cheroot does
    body = PLAIN_HTTP_ANSWER.encode()
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    answer += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    try:
        socket.socket.sendall(sock, answer)  # the raw TCP socket under the SSL one: no TLS was agreed
    except OSError:
        pass
    return cheroot_errors.FatalSSLAlert(*exc.args)


class _DeadlineReader(cheroot_makefile.StreamReader):
    """cheroot's buffered socket reader over a ``_DeadlineSocketIO``."""

    def __init__(self, sock: socket.socket, read_timeout: float | None, bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        self.raw_reader = _DeadlineSocketIO(sock, read_timeout)
        # StreamReader's own __init__ builds a plain SocketIO; its base (the _pyio BufferedReader,
        # as cheroot uses) is set up directly over the deadline-keeping one instead.
        super(cheroot_makefile.StreamReader, self).__init__(self.raw_reader, bufsize)
        self.bytes_read = 0


class _Request(cheroot_server.HTTPRequest):
    """A request whose reading (line, headers, body) must end within the server's request_timeout, whose
    line and headers are limited in size, and whose unread body is never read into memory whole."""

    def parse_request(self) -> None:
        reader = getattr(self.conn, "rfile", None)
        if isinstance(reader, _DeadlineReader):
            reader.raw_reader.deadline = time.monotonic() + self.server.request_timeout
        super().parse_request()

    def send_headers(self) -> None:
        # cheroot reads what the app left of a Content-Length body with one read(remaining) before
        # answering, to keep the connection usable: throw it away in pieces instead, and close the
        # connection rather than read more than max_body_bytes (or past the request's deadline).
        remaining = getattr(self.rfile, "remaining", 0)
        if not self.close_connection and not self.chunked_read and remaining > 0:
            self.close_connection = not _discard(self.rfile, remaining, self.server.max_discard_bytes)
        if self.chunked_read and not getattr(self.rfile, "closed", True):
            # An unread chunked body: cheroot would parse its data as the next request.
            self.close_connection = True
        super().send_headers()

    def simple_response(self, status: Any, msg: Any = "") -> None:
        """cheroot's own plain-text answers, with the limit and what to do for a too-large request."""
        sock = self.conn.socket
        if isinstance(sock, ssl.SSLSocket) and sock.version() is None:
            # A TLS client that never finished its handshake (a 408 at the deadline): there is no TLS
            # session to answer in, and writing would wait for the handshake again. Closed quietly.
            raise cheroot_errors.FatalSSLAlert("the client did not finish the TLS handshake")
        code = str(status)[:3]
        limit = self.server.max_request_header_size
        if code == "414":
            msg = f"the request line is over {limit} bytes: send a shorter URL (petguard's URLs are short)"
        elif code == "413" and "header" in str(msg):
            msg = f"the request line and headers are over {limit} bytes together: send fewer or shorter headers"
        super().simple_response(status, msg)


def _discard(body: Any, remaining: int, most: int) -> bool:
    """Read and drop up to ``most`` bytes of ``body``; True when all ``remaining`` bytes were read."""
    if remaining > most:
        return False
    try:
        while remaining > 0:
            got = len(body.read(min(DISCARD_CHUNK, remaining)))
            if not got:
                return False
            remaining -= got
    except OSError:  # the deadline passed, or the client went away
        return False
    return True


class _Connection(cheroot_server.HTTPConnection):
    """cheroot's connection with a deadline-keeping reader, over a plain or a TLS socket alike."""

    RequestHandlerClass = _Request

    def __init__(
        self, http_server: Any, sock: socket.socket, makefile_factory: Any = cheroot_makefile.MakeFile
    ) -> None:
        super().__init__(http_server, sock, makefile_factory)
        self.rfile = _DeadlineReader(sock, http_server.timeout, self.rbufsize)


class _TlsAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter over petguard's context, with the handshake deferred to the worker.

    cheroot calls ``wrap`` in its accepting thread; a handshake there waits for the client, which may
    never finish it. Wrapped with ``do_handshake_on_connect=False``, OpenSSL does the handshake on the
    first read instead, in the worker thread, under the request's deadline (``_DeadlineSocketIO``).
    """

    def __init__(self, context: ssl.SSLContext) -> None:  # the context is made already: no files to load
        self.certificate = self.private_key = self.certificate_chain = self.ciphers = None
        self.private_key_password = None
        self.context = context

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class _Server(wsgi.Server):
    """cheroot's WSGI server with the deadline-keeping connections."""

    ConnectionClass = _Connection
    request_timeout: float = 10.0
    max_discard_bytes: int = MAX_BODY_BYTES
