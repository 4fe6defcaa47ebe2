"""systemd/*.service pass ``systemd-analyze verify`` (executables stood in for, nothing started) and start the
programs of the README's virtualenv, ``/opt/petguard/bin``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from petguard import startup

UNITS = Path(__file__).parents[3] / "systemd"
ANALYZE = shutil.which("systemd-analyze")


#: Where the units look for the programs: the README's virtualenv (tests/functional/test_packaging.py
#: checks that the README and the installed wheel agree with it).
PREFIX = "/opt/petguard"
UNIT_FILES = ("petguard.service", "petguard-agent.service")


def exec_start(unit: str) -> str:
    """The program a unit starts (the first word of ``ExecStart=``)."""
    return _settings(unit)["ExecStart"].split()[0]


def verify(unit: str, prefix: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` the unit with its programs taken from ``prefix/bin`` instead of
    ``PREFIX/bin``; fails with systemd's words."""
    assert ANALYZE is not None
    text = (UNITS / unit).read_text().replace(f"ExecStart={PREFIX}/bin/", f"ExecStart={prefix}/bin/")
    (tmp_path / unit).write_text(text)
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if unit in line or "error" in line.lower()]
    assert result.returncode == 0 and not lines, result.stdout + result.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")
@pytest.mark.parametrize("unit", UNIT_FILES)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    """With stand-in programs; test_packaging.py verifies them again with the installed wheel's."""
    stand_in = tmp_path / "prefix"
    (stand_in / "bin").mkdir(parents=True)
    for program in ("petguard-daemon", "petguard-agent"):
        exe = stand_in / "bin" / program
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    verify(unit, stand_in, tmp_path)


def test_units_start_the_programs_of_the_documented_prefix() -> None:
    programs = [exec_start(unit) for unit in UNIT_FILES]
    assert programs == [f"{PREFIX}/bin/petguard-daemon", f"{PREFIX}/bin/petguard-agent"]


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


def _settings(unit: str) -> dict[str, str]:
    """The unit's ``Key=value`` lines (the last one wins, as in systemd), comments left out."""
    found: dict[str, str] = {}
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found[key] = value
    return found


@pytest.mark.fault(
    "START-07",
    guarantee="-",
    injected="a configuration error at start (exit 78) under systemd's Restart=on-failure / Restart=always",
    expected="both units set RestartPreventExitStatus=78 (petguard.startup.CONFIG), not 75 (TEMPFAIL), and "
    "still restart on failure; the units verify (test_unit_verifies)",
)
@pytest.mark.parametrize("unit", ["petguard.service", "petguard-agent.service"])
def test_a_configuration_error_is_not_restarted_a_transient_failure_is(unit: str) -> None:
    settings = _settings(unit)
    prevented = settings.get("RestartPreventExitStatus", "").split()
    assert str(startup.CONFIG) in prevented
    assert str(startup.TEMPFAIL) not in prevented and str(startup.OK) not in prevented
    assert settings["Restart"] in ("on-failure", "always")  # 75 and a crash (1) are restarted
