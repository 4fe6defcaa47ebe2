"""`petguard-lab control-plane stop|start COMPONENT` without OpenStack.

A real short-lived process stands for the component (an HTTP server for Keystone, ``sleep`` for
nova-conductor), so the PID files, the signals, the "answers" probes and the status are exercised
for real; only ``Lab.services`` is replaced.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from petguard_lab import COMPONENTS, Lab, LabError, cli, procs
from petguard_lab.services import Service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    the_lab = Lab(tmp_path, verbose=False)
    the_lab.cfg.run.mkdir(parents=True)
    port = _free_port()
    log = the_lab.cfg.log / "nova-conductor.log"
    http = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    # the conductor writes the line with which nova-conductor starts serving, then idles
    conductor = ["sh", "-c", f"echo 'Starting conductor node' >> {log}; exec sleep 300"]
    fakes = {
        "keystone": Service("keystone", http, port, "keystone"),
        "nova-conductor": Service("nova-conductor", conductor),
    }
    monkeypatch.setattr(Lab, "services", lambda self: fakes)
    return the_lab


def _process(lab: Lab, name: str) -> dict[str, object]:
    return next(p for p in lab.status()["processes"] if p["name"] == name)


@pytest.mark.parametrize("kill", [False, True])
def test_stop_then_start_by_recorded_pid(lab: Lab, kill: bool) -> None:
    lab.start_component("keystone", timeout=20)
    pid = lab.pid("keystone")
    assert pid is not None and _process(lab, "keystone")["control_plane_stop"] is None

    lab.stop_component("keystone", kill=kill)
    assert lab.pid("keystone") is None
    assert procs.proc_state(pid) in (None, "Z")  # gone (a zombie at most)
    record = _process(lab, "keystone")
    assert record["alive"] is False
    assert record["control_plane_stop"]["signal"] == ("SIGKILL" if kill else "SIGTERM")  # type: ignore[index]
    assert record["control_plane_stop"]["pid"] == pid  # type: ignore[index]
    assert "keystone" in lab.stopped_components()

    lab.start_component("keystone", timeout=20)  # returns once it answers HTTP
    assert lab.pid("keystone") not in (None, pid)
    assert _process(lab, "keystone")["control_plane_stop"] is None
    lab.stop_component("keystone")


def test_a_nova_service_answers_with_its_start_line(lab: Lab) -> None:
    lab.start_component("nova-conductor", timeout=20)
    assert lab.pid("nova-conductor") is not None
    lab.stop_component("nova-conductor", kill=True)
    lab.stop_component("nova-conductor")  # already stopped: nothing to do, no error
    assert lab.pid("nova-conductor") is None


def test_unknown_component_says_which_exist(lab: Lab) -> None:
    with pytest.raises(LabError, match=r"unknown control-plane component 'nova'.*nova-conductor"):
        lab.stop_component("nova")


def test_the_components_of_the_issue_exist() -> None:
    assert {"keystone", "nova-api", "nova-conductor", "nova-scheduler", "placement", "database",
            "rabbitmq"} <= set(COMPONENTS)
    assert COMPONENTS["database"] == "mariadb"


def test_cli_kill_goes_with_stop_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--lab-dir", str(tmp_path), "-q", "control-plane", "start", "keystone", "--kill"]
    assert cli.main(argv) == 1
    assert "--kill goes with `control-plane stop`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--lab-dir", str(tmp_path), "control-plane", "stop", "nova"])
