"""Real coordination backends on 127.0.0.1 for the leader election tests: etcd (Debian ``etcd-server``)
and Redis (``redis-server``), each our own process on free ports with its data in a temporary
directory, started and stopped by its PID (never the machine's own servers, never by name).

``pause()``/``resume()`` SIGSTOP/SIGCONT the server: the backend is lost without the connection
being refused (what a partition looks like to a client).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.functional import procs

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    """One backend server process."""

    kind = "server"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _answers(self.port)

    def start(self, timeout: float = 20.0) -> Server:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{self.kind}.log", "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.root}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer on 127.0.0.1:{self.port} within {timeout} s")

    def pause(self) -> None:
        """SIGSTOP: the peer stops answering, its socket stays bound (a hung peer)."""
        procs.pause(self.proc)

    def resume(self) -> None:
        procs.resume(self.proc)

    def stop(self) -> None:
        procs.stop(self.proc, timeout=10)


class Etcd(Server):
    kind = "etcd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.peer_port = free_port()

    @property
    def url(self) -> str:
        return f"etcd3+http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        client, peer = f"http://{LOOPBACK}:{self.port}", f"http://{LOOPBACK}:{self.peer_port}"
        return [
            "etcd", "--name", "petguard-test", "--data-dir", str(self.root / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"petguard-test={peer}", "--log-level", "warn",
        ]  # fmt: skip

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/health", timeout=0.5) as reply:
                return b"true" in reply.read()
        except OSError:
            return False


class Redis(Server):
    kind = "redis"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            "redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
            "--dir", str(self.root),
        ]  # fmt: skip


BACKENDS = {"etcd": (Etcd, "etcd"), "redis": (Redis, "redis-server")}


def missing(kind: str) -> str | None:
    """Why ``kind`` cannot run here, or None."""
    binary = BACKENDS[kind][1]
    if shutil.which(binary) is None:
        return f"{binary} not installed (./run setup installs etcd-server and redis-server)"
    return None
