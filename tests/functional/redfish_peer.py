"""A real Redfish peer on 127.0.0.1: sushy-tools' emulator with its fake systems driver.

``SushyEmulator(tmp, systems=...)`` writes the emulator's config (listen on 127.0.0.1 and a free
port, HTTP basic auth from a bcrypt htpasswd file, state in the test's directory, no random power
delay), starts it as a child process in its own session and stops it by its PID. Each system is
``{"uuid", "name", "power_state"}``; ``stuck_on`` lists uuids whose ForceOff is accepted and never
applied, ``powering_off`` those that report ``PoweringOff`` for ever after a ForceOff.
Facts: /work/shared/notes/bmc-peers.md §8.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import bcrypt

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "sushy_emulator.py"
LOOPBACK = "127.0.0.1"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def new_system(name: str, power_state: str = "On") -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "name": name, "power_state": power_state, "nics": []}


class SushyEmulator:
    """sushy-emulator on 127.0.0.1:<free port> with the given fake systems."""

    def __init__(
        self,
        root: Path,
        systems: list[dict[str, Any]],
        *,
        username: str = "admin",
        password: str = "Rf-s3cret-pw",
        stuck_on: tuple[str, ...] = (),
        powering_off: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.systems = systems
        self.username = username
        self.password = password
        self.stuck_on = stuck_on
        self.powering_off = powering_off
        self.port = free_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def path(self, system: dict[str, Any]) -> str:
        return f"/redfish/v1/Systems/{system['uuid']}"

    def system_reads(self, system: dict[str, Any]) -> int:
        """How many GETs of ``system`` the emulator has answered so far (from its request log)."""
        line = f'"GET {self.path(system)} HTTP/'
        log = self.root / "emulator.log"
        return log.read_text(errors="replace").count(line) if log.exists() else 0

    def start(self, timeout: float = 30.0) -> SushyEmulator:
        config = self._write_config()
        env = {
            **os.environ,
            "PETGUARD_SUSHY_APPLY_DELAY": "0",
            "PETGUARD_SUSHY_STUCK_ON": ",".join(self.stuck_on),
            "PETGUARD_SUSHY_POWERING_OFF": ",".join(self.powering_off),
            "TMPDIR": str(self.root),
        }
        log = (self.root / "emulator.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--config", str(config)],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_listening(timeout)
        return self

    def _write_config(self) -> Path:
        htpasswd = self.root / "htpasswd"
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{self.username}:{hashed}\n")
        state = self.root / "state"
        state.mkdir(exist_ok=True)
        config = self.root / "emulator.conf"
        config.write_text(
            f"SUSHY_EMULATOR_LISTEN_IP = {LOOPBACK!r}\n"
            f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}\n"
            f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
            "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
            f"SUSHY_EMULATOR_STATE_DIR = {str(state)!r}\n"
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {self.systems!r}\n"
        )
        return config

    def _wait_listening(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sushy-emulator exited with {self.proc.returncode}: "
                    + (self.root / "emulator.log").read_text()[-2000:]
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex((LOOPBACK, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sushy-emulator did not listen on {LOOPBACK}:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
