"""systemd/*.service pass ``systemd-analyze verify`` (executables stood in for, nothing started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[3] / "systemd"
ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")
@pytest.mark.parametrize("unit", ["petguard.service", "petguard-agent.service"])
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    text = (UNITS / unit).read_text()
    for program in ("petguard-daemon", "petguard-agent"):
        exe = stand_in / program
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
        text = text.replace(f"/usr/bin/{program}", str(exe))
    (tmp_path / unit).write_text(text)
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if unit in line or "error" in line.lower()]
    assert result.returncode == 0 and not lines, result.stdout + result.stderr


def test_service_asks_for_notify_watchdog_and_a_dedicated_user() -> None:
    text = (UNITS / "petguard.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=petguard",
        "StateDirectory=petguard",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text


@pytest.mark.fault(
    "AGENT-05",
    guarantee="8",
    injected="the agent's unit adds the libvirt group (read-write libvirt, about root) and shows it other processes",
    expected="no SupplementaryGroups; ProtectProc=invisible; StateDirectoryMode=0750; the unit still verifies",
)
def test_the_agent_runs_without_the_libvirt_group_and_sees_only_its_processes() -> None:
    lines = [line.strip() for line in (UNITS / "petguard-agent.service").read_text().splitlines()]
    settings = [line for line in lines if line and not line.startswith("#")]
    assert not [line for line in settings if line.startswith("SupplementaryGroups=")]
    for line in ("ProtectProc=invisible", "StateDirectoryMode=0750", "User=petguard", "NoNewPrivileges=yes"):
        assert line in settings
