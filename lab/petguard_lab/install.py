"""`petguard-lab install`: Debian packages and the OpenStack venv ($LAB/venv).

System packages are installed with apt-get but their services are never
started by us (the lab runs its own mariadbd/rabbitmq/ipmi_sim under $LAB).
The venv is built with the constraints file shipped in
``petguard_lab/data/upper-constraints.txt``; a stamp file records what was
installed so a second ``install`` is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from petguard_lab.settings import LAB_PACKAGES, LabConfig, LabError

#: Debian package -> a file that proves it is installed.
APT_PACKAGES: dict[str, str] = {
    "mariadb-server": "/usr/sbin/mariadbd",
    "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "openipmi": "/usr/bin/ipmi_sim",
    "ipmitool": "/usr/bin/ipmitool",
}
LAB_PYTHON = "python3.11"


def data_file(name: str) -> Path:
    """Path of a file shipped in petguard_lab/data."""
    return Path(str(resources.files("petguard_lab") / "data" / name))


def _python_headers_present(python: str) -> bool:
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True, text=True, check=False,
    )
    return out.returncode == 0 and Path(out.stdout.strip(), "Python.h").exists()


def missing_apt_packages(python: str) -> list[str]:
    """Debian packages the lab needs that are not installed yet."""
    missing = [pkg for pkg, probe in APT_PACKAGES.items() if not Path(probe).exists()]
    if shutil.which("gcc") is None:
        missing.append("build-essential")
    if not _python_headers_present(python):
        missing += ["build-essential", "python3-dev"]
    return sorted(set(missing))


def apt_install(packages: list[str], log: Path) -> None:
    """apt-get install ``packages`` without starting their services."""
    if os.geteuid() != 0:
        raise LabError(
            f"Debian packages missing: {' '.join(packages)}; run as root or "
            f"`apt-get install {' '.join(packages)}` first"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # policy-rc.d exit 101 = "do not start services from maintainer scripts"
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# temporary, written by petguard-lab install\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    try:
        with log.open("a") as out:
            for cmd in (["apt-get", "update"],
                        ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
                print(f"+ {' '.join(cmd)}", file=out, flush=True)
                if subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode:
                    raise LabError(f"`{' '.join(cmd)}` failed; see {log}")
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)


def _stamp_value(constraints: Path, python: str) -> dict[str, str]:
    return {
        "packages": " ".join(LAB_PACKAGES),
        "constraints_sha256": hashlib.sha256(constraints.read_bytes()).hexdigest(),
        "python": python,
        "labfake_sha256": hashlib.sha256(data_file("labfake.py").read_bytes()).hexdigest(),
    }


def venv_site_packages(venv: Path) -> Path:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip())


def install_driver(venv: Path) -> None:
    """Copy the lab virt driver into the venv's nova/virt/ (Nova loads drivers from there)."""
    target = venv_site_packages(venv) / "nova" / "virt" / "labfake.py"
    shutil.copyfile(data_file("labfake.py"), target)


def install(cfg: LabConfig, python: str | None = None, force: bool = False) -> bool:
    """Install what the lab needs; return False when everything was already there."""
    python = python or shutil.which(LAB_PYTHON) or sys.executable
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    cfg.log.mkdir(parents=True, exist_ok=True)
    log = cfg.log / "install.log"
    did_something = False

    missing = missing_apt_packages(python)
    if missing:
        print(f"installing Debian packages: {' '.join(missing)} (log: {log})", flush=True)
        apt_install(missing, log)
        did_something = True

    constraints = data_file("upper-constraints.txt")
    stamp = cfg.venv / ".petguard-lab-installed"
    wanted = _stamp_value(constraints, python)
    if not force and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == wanted:
                return did_something
        except ValueError:
            pass
    pip_env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONWARNINGS="ignore")
    with log.open("a") as out:
        def run(cmd: list[str]) -> None:
            print(f"+ {' '.join(cmd)}", file=out, flush=True)
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=pip_env).returncode:
                raise LabError(f"`{' '.join(cmd[:4])} ...` failed; see {log}")

        if not (cfg.venv / "bin" / "python").exists():
            print(f"creating {cfg.venv} with {python}", flush=True)
            run([python, "-m", "venv", str(cfg.venv)])
        pip = str(cfg.venv / "bin" / "pip")
        print(f"installing {', '.join(LAB_PACKAGES)} into {cfg.venv} (log: {log})", flush=True)
        run([pip, "install", "-q", "-U", "pip"])
        run([pip, "install", "-q", "-c", str(constraints), *LAB_PACKAGES])
    install_driver(cfg.venv)
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return True


def check_installed(cfg: LabConfig) -> None:
    """Raise a LabError telling the user to run `install` when the venv is not ready."""
    if not (cfg.venv / ".petguard-lab-installed").exists():
        raise LabError(f"{cfg.venv} is not installed; run `petguard-lab install` first")
    for pkg, probe in APT_PACKAGES.items():
        if not Path(probe).exists():
            raise LabError(f"Debian package {pkg} is missing; run `petguard-lab install`")
    # the driver copy may be stale after a petguard-lab upgrade
    target = venv_site_packages(cfg.venv) / "nova" / "virt" / "labfake.py"
    if not target.exists() or target.read_bytes() != data_file("labfake.py").read_bytes():
        install_driver(cfg.venv)

