"""Real IPMI peers on 127.0.0.1 for petguard's functional fencing tests.

* ``IpmiSim``: OpenIPMI's ``ipmi_sim`` (Debian package ``openipmi``), one BMC per process, with
  ``ipmisim_chassis.sh`` keeping the host's power and a fault ``mode`` in files.
* ``PyghmiBmc``: pyghmi's own ``Bmc`` emulator in a child process (``pyghmi_bmc.py``, with the
  server-side fixes it needs), same files and modes.
* ``Blackhole``: a bound UDP socket that never answers (a BMC that hangs).

Each peer gets a free port, is started and stopped by its own PID (never by name), and keeps its
state in a temporary directory. Facts about the peers: /work/shared/notes/bmc-peers.md.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.functional import procs

HERE = Path(__file__).resolve().parent
CHASSIS_SCRIPT = HERE / "ipmisim_chassis.sh"
PYGHMI_BMC = HERE / "pyghmi_bmc.py"
LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody holds right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def udp_bound(port: int) -> bool:
    """True when some process has bound 127.0.0.1:port (read from /proc, no packet sent)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in table.readlines()[1:])


def wait_bound(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"BMC peer exited with {proc.returncode} before binding {port}")
        if udp_bound(port):
            return
        time.sleep(0.02)
    raise RuntimeError(f"BMC peer did not bind 127.0.0.1:{port} within {timeout} s")


class _Peer:
    """Shared handling of a simulated BMC: state files, start/stop by PID, pause/resume."""

    kind = "peer"

    def __init__(self, state: Path, username: str, password: str) -> None:
        self.state = state
        self.username = username
        self.password = password
        self.port = free_udp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        state.mkdir(parents=True, exist_ok=True)
        self.set_power(on=True)
        self.set_mode("normal")

    # --- steering and watching the simulated host -------------------------------------------
    def set_power(self, *, on: bool) -> None:
        (self.state / "power").write_text("1\n" if on else "0\n")

    def set_mode(self, mode: str) -> None:
        (self.state / "mode").write_text(mode + "\n")

    @property
    def powered_on(self) -> bool:
        return (self.state / "power").read_text().strip() == "1"

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    # --- process control, by PID only -----------------------------------------------------------
    def _spawn(self, argv: list[str], cwd: Path) -> None:
        output = (self.state / f"{self.kind}.out").open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        wait_bound(self.port, self.proc)

    def pause(self) -> None:
        """SIGSTOP: the peer stops answering, its socket stays bound (a hung peer)."""
        procs.pause(self.proc)

    def resume(self) -> None:
        procs.resume(self.proc)

    def stop(self) -> None:
        procs.stop(self.proc, timeout=5)


class IpmiSim(_Peer):
    """One OpenIPMI ipmi_sim BMC on 127.0.0.1:<free port>."""

    kind = "ipmi_sim"

    def start(self) -> IpmiSim:
        binary = shutil.which("ipmi_sim")
        if binary is None:
            raise RuntimeError("ipmi_sim not found: apt-get install -y openipmi")
        sim_dir = self.state / "sim"
        (sim_dir / "persist").mkdir(parents=True, exist_ok=True)
        (sim_dir / "lan.conf").write_text(self._lan_conf())
        (sim_dir / "sim.emu").write_text(
            "mc_setbmc 0x20\n"
            # A generic manufacturer id: pyghmi picks OEM code paths from Get Device ID.
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
            "sel_enable 0x20 50 0x0a\n"
            "mc_enable 0x20\n"
        )
        self._spawn(
            [binary, "-n", "-c", "lan.conf", "-f", "sim.emu", "-s", str(sim_dir / "persist")],
            cwd=sim_dir,
        )
        return self

    def _lan_conf(self) -> str:
        auths = "none md2 md5 straight"
        return (
            f'name "sim{self.port}"\n'
            "set_working_mc 0x20\n"
            "  startlan 1\n"
            f"    addr {LOOPBACK} {self.port}\n"
            "    priv_limit admin\n"
            f"    allowed_auths_callback {auths}\n"
            f"    allowed_auths_user {auths}\n"
            f"    allowed_auths_operator {auths}\n"
            f"    allowed_auths_admin {auths}\n"
            "    guid a123456789abcdefa123456789abcdef\n"
            "  endlan\n"
            f'  chassis_control "{CHASSIS_SCRIPT} {self.state} 0x20"\n'
            f'  user 2 true "{self.username}" "{self.password}" admin 10 {auths}\n'
        )


class PyghmiBmc(_Peer):
    """pyghmi's Bmc emulator (with server-side fixes) in its own process on 127.0.0.1."""

    kind = "pyghmi_bmc"

    def start(self) -> PyghmiBmc:
        users = self.state / "users.json"
        users.write_text(json.dumps({self.username: self.password}))
        users.chmod(0o600)
        self._spawn(
            [sys.executable, str(PYGHMI_BMC), "--port", str(self.port), "--state", str(self.state)],
            cwd=self.state,
        )
        return self


class Blackhole:
    """A UDP socket bound on 127.0.0.1 that reads nothing and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()
