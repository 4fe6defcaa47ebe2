"""Tests of petguard-lab without OpenStack: settings, generated files, BMC power actions.

The BMC tests start real short-lived processes (``sleep``) standing for a
compute, so they exercise the PID-file and process-group handling for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from petguard_lab import chassis, procs
from petguard_lab.petguard_files import write_petguard_files
from petguard_lab.settings import LabConfig, LabError


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = LabConfig(lab_dir=tmp_path, computes=5, report_interval=1, service_down_time=4)
    cfg.save()
    data = json.loads((tmp_path / "lab.json").read_text())
    assert data["computes"] == ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5"]
    assert data["bmc"]["cmp2"]["port"] == 16232
    assert data["ports"]["mariadb"] == 13306
    loaded = LabConfig.load(tmp_path)
    assert (loaded.computes, loaded.report_interval, loaded.service_down_time) == (5, 1, 4)


@pytest.mark.parametrize("kwargs", [
    {"computes": 7}, {"computes": 0}, {"report_interval": 5, "service_down_time": 5},
    {"ports": {"mariadb": 5000, "keystone": 5000}}, {"ports": {"nope": 1}},
])
def test_config_rejects(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(LabError):
        LabConfig(lab_dir=tmp_path, **kwargs).validate()  # type: ignore[arg-type]


def test_petguard_files(tmp_path: Path) -> None:
    cfg = LabConfig(lab_dir=tmp_path, computes=2, service_down_time=12)
    write_petguard_files(cfg)
    conf = cfg.conf_file.read_text()
    assert f"clouds_file = {tmp_path}/clouds.yaml" in conf
    assert "grace_period = 12" in conf
    assert "fence_rate_max = 10\nfence_rate_window = 600\n" in conf
    assert f"connection = sqlite:///{tmp_path}/petguard/petguard.sqlite" in conf
    inventory = cfg.inventory_file.read_text()
    assert "  cmp2:\n    bmc:\n      driver: ipmi\n      address: 127.0.0.1\n      port: 16232\n" \
        in inventory
    assert f"password_file: {tmp_path}/petguard/bmc-cmp1.password" in inventory
    clouds = cfg.clouds_yaml.read_text()
    assert "  petguard-lab:\n" in clouds and "  petguard-lab-demo:\n" in clouds
    assert cfg.clouds_yaml.stat().st_mode & 0o077 == 0


@pytest.fixture
def bmc(tmp_path: Path) -> Path:
    bdir = tmp_path / "bmc"
    bdir.mkdir()
    pidfile = tmp_path / "run" / "host.pid"
    (bdir / "host.json").write_text(json.dumps({
        "host": "cmp1", "compute_pidfile": str(pidfile), "pidfiles": [str(pidfile)],
        "argv": ["sleep", "300"], "env": {"PATH": "/usr/bin:/bin"},
        "logfile": str(tmp_path / "host.out")}))
    yield bdir
    procs.stop([pidfile], timeout=2)


def _control(bdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(chassis.__file__)
    return subprocess.run([sys.executable, "-I", "-S", str(script), str(bdir), *args],
                          capture_output=True, text=True, timeout=30)


def test_chassis_power_cycle(bmc: Path) -> None:
    pidfile = Path(json.loads((bmc / "host.json").read_text())["compute_pidfile"])
    assert _control(bmc, "set", "power", "1").returncode == 0
    pid = procs.read_pidfile(pidfile)
    assert pid is not None and _control(bmc, "get", "power").stdout == "power:1\n"
    assert _control(bmc, "set", "power", "0").returncode == 0
    assert procs.read_pidfile(pidfile) is None
    assert _control(bmc, "get", "power").stdout == "power:0\n"
    assert _control(bmc, "set", "power", "1").returncode == 0
    assert procs.read_pidfile(pidfile) not in (None, pid)


def test_chassis_fault_modes(bmc: Path) -> None:
    chassis.power_on(bmc)
    pidfile = chassis.host_pidfiles(bmc)[0]
    chassis.set_mode(bmc, "stuck_on")
    assert _control(bmc, "set", "power", "0").returncode == 0
    assert procs.read_pidfile(pidfile) is not None
    assert _control(bmc, "get", "power").stdout == "power:1\n"
    chassis.set_mode(bmc, "fail_set")
    assert _control(bmc, "set", "power", "0").returncode == 1
    chassis.set_mode(bmc, "fail_get")
    assert _control(bmc, "get", "power").returncode == 1
    with pytest.raises(ValueError):
        chassis.set_mode(bmc, "bogus")


def test_stop_reaches_a_stopped_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "p.pid"
    pid = procs.spawn(["sleep", "300"], pidfile, tmp_path / "p.out")
    procs.kill_now(pidfile, 19)  # SIGSTOP
    time.sleep(0.1)
    assert procs.proc_state(pid) == "T"
    assert procs.stop([pidfile], timeout=5) == []
    assert procs.read_pidfile(pidfile) is None
