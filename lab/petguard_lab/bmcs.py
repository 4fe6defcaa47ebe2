"""The lab's per-host BMC simulators: one ``ipmi_sim`` per compute, its files and password.

``_write_bmc`` writes ``bmc/<host>/`` (lan.conf, sim.emu, mode, host.json) for the simulator
that `services` (services.py) starts; the simulator runs chassis.py for power actions.  The
public readers (`bmc_power`, `bmc_get_mode`, `bmc_password`) are for tests and the CLI; the
fault modes are set by faults.py.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from petguard_lab import chassis
from petguard_lab.services import PACKAGE_DIR, LabServices
from petguard_lab.settings import HOST_IP, LabError

BMC_MODES = chassis.MODES


class LabBmcs(LabServices):
    """Writing and reading the BMC simulator of each compute."""

    def _bmc_password(self, host: str) -> str:
        path = self.cfg.bmc_password_file(host)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(8) + "\n")  # IPMI: at most 16 characters
        path.chmod(0o600)
        return path.read_text().strip()

    def _write_bmc(self, host: str) -> None:
        cfg = self.cfg
        bdir = cfg.bmc_host_dir(host)
        (bdir / "state").mkdir(parents=True, exist_ok=True)
        password = self._bmc_password(host)
        program = f"{sys.executable} -I -S {PACKAGE_DIR / 'chassis.py'} {bdir}"
        guid = f"{0x50474C00 + cfg.host_index(host):08x}" + "0" * 24
        lan = f"""name "{host}"
set_working_mc 0x20
  startlan 1
    addr {HOST_IP} {cfg.bmc_port(host)}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {guid}
  endlan
  chassis_control "{program}"
  user 2 true "admin" "{password}" admin 10 none md2 md5 straight
"""
        fd = os.open(bdir / "lan.conf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(lan)
        (bdir / "sim.emu").write_text(
            "mc_setbmc 0x20\n"
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
            "sel_enable 0x20 50 0x0a\n"
            "mc_enable 0x20\n")
        if not (bdir / "mode").exists():
            chassis.set_mode(bdir, "normal")
        svc = self.services()[f"nova-compute-{host}"]
        env = self._base_env()
        (bdir / "host.json").write_text(json.dumps({
            "host": host,
            "compute_pidfile": str(self.pidfile(f"nova-compute-{host}")),
            "pidfiles": [str(self.pidfile(f"nova-compute-{host}"))],
            "argv": svc.argv,
            "env": env,
            "logfile": str(cfg.log / f"nova-compute-{host}.out"),
        }, indent=2) + "\n")

    def _bmc_dir(self, host: str) -> Path:
        self.cfg.host_index(host)  # validates the name
        bdir = self.cfg.bmc_host_dir(host)
        if not (bdir / "host.json").exists():
            raise LabError(f"no BMC state for {host}; run `petguard-lab up` first")
        return bdir

    def bmc_get_mode(self, host: str) -> str:
        """The fault mode of ``host``'s BMC."""
        return chassis.get_mode(self._bmc_dir(host))

    def bmc_power(self, host: str) -> bool:
        """The power state recorded by ``host``'s BMC."""
        return chassis.recorded_power(self._bmc_dir(host))

    def bmc_password(self, host: str) -> str:
        return self.cfg.bmc_password_file(host).read_text().strip()
