"""Guarantee 7: no BMC or Keystone password in logs at any level, in the journal, or in errors.

Runs real code paths with every logger at DEBUG: the whole loop fencing through ipmi_sim (a good
BMC, one with a wrong password, one that never powers off), the Nova adapter failing against a
Keystone that does not answer, and ``petguard-manage config check`` on the same config.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.errors import PetguardError
from petguard.fencing.base import FenceDevice
from petguard.hosts import HostState
from petguard.nova import compute as nova
from tests.fakes import FakeCompute
from tests.functional.harness import Bmcs, Harness

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5", "cmp6"]  # 2 of 6 down stays under the brake
KEYSTONE_PASSWORD = "Keystone-S3cret-9f2c"
WRONG_BMC_PASSWORD = "Wrong-Bmc-S3cret-77aa"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("", "petguard", "keystoneauth", "openstack", "urllib3", "pyghmi"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections are refused


def _clouds_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n  broken:\n    auth:\n"
        f"      auth_url: http://127.0.0.1:{_closed_port()}/v3\n"
        "      username: admin\n"
        f"      password: {KEYSTONE_PASSWORD}\n"
        "      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n"
        "    region_name: RegionOne\n"
    )
    path.chmod(0o600)
    return path


def test_fencing_loop_never_logs_or_stores_bmc_passwords(tmp_path: Path, debug_logs: pytest.LogCaptureFixture) -> None:
    bmcs = Bmcs(tmp_path, HOSTS)
    try:
        compute = FakeCompute(HOSTS)
        compute.is_alive = lambda host: host not in compute.dead and bmcs.sims[host].powered_on
        compute.add_server("pet", "cmp1", metadata={"petguard:pet": "true"})
        devices = dict(bmcs.devices)
        d = devices["cmp2"]
        devices["cmp2"] = FenceDevice(d.host, d.driver, d.address, d.port, d.username, WRONG_BMC_PASSWORD)
        harness = Harness(tmp_path, compute, devices)
        try:
            harness.run_until(lambda: set(harness.store.load_hosts()) == set(HOSTS), timeout=5)
            compute.dead.update({"cmp1", "cmp2"})
            harness.run_until(
                lambda: (
                    harness.state("cmp1") is HostState.EVACUATED and harness.state("cmp2") is HostState.AWAITING_CONFIRM
                ),
                timeout=60,
            )
            stored = [e.message for e in harness.store.events()] + [t.reason for t in harness.store.transitions()]
            stored += [r.host.reason for r in harness.store.load_hosts().values()]
        finally:
            harness.close()
    finally:
        bmcs.stop()
    secrets = [WRONG_BMC_PASSWORD] + [sim.password for sim in bmcs.sims.values()]
    text = debug_logs.text + "\n".join(stored)
    assert "fence" in text  # the logs did capture the fencing
    for secret in secrets:
        assert secret not in text


def test_nova_adapter_errors_and_debug_logs_hide_keystone_password(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    compute = nova.connect("broken", str(_clouds_yaml(tmp_path)), timeout=2)
    with pytest.raises(PetguardError) as caught:
        compute.list_services()
    assert KEYSTONE_PASSWORD not in str(caught.value)
    assert KEYSTONE_PASSWORD not in repr(caught.value.context)
    assert KEYSTONE_PASSWORD not in debug_logs.text
    assert debug_logs.text  # something was logged at DEBUG


def test_config_check_output_hides_passwords(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  cmp1:\n    bmc: {{driver: ipmi, address: 127.0.0.1, port: {_closed_port()}, username: admin, "
        f"password: {WRONG_BMC_PASSWORD}}}\n"
    )
    inventory.chmod(0o600)
    conf = tmp_path / "petguard.conf"
    conf.write_text(
        f"[DEFAULT]\ndebug = true\n[nova]\ncloud = broken\nclouds_file = {_clouds_yaml(tmp_path)}\ntimeout = 2\n"
        f"[database]\nconnection = sqlite:///{tmp_path}/j.sqlite\n"
        f"[fencing]\ninventory_file = {inventory}\nattempt_timeout = 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "petguard.cmd.manage", "--config-file", str(conf), "config", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "problem" in output
    assert KEYSTONE_PASSWORD not in output
    assert WRONG_BMC_PASSWORD not in output
