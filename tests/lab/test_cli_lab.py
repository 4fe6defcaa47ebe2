"""The operator's CLI end to end against real Nova: `petguard` (over the daemon's HTTP API) drives
maintenance, confirm-fenced and restore, and Nova's real state follows.

1. maintenance on: nova-compute dies, nothing is fenced or evacuated; heal, maintenance off: up.
2. a BMC that accepts power-off but keeps reporting ON: awaiting_confirm, nothing moves; the operator
   cuts the power and runs `petguard host confirm-fenced`: the pet is evacuated; the host is powered on
   again and `petguard host restore` returns it to service (un-forced, enabled).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from petguard_lab import Lab

from tests.lab.labkit import Nova, Petguard, boot, host_of, pet, wait_for

pytestmark = pytest.mark.lab

API_URL = "http://127.0.0.1:18786"  # the lab's petguard.conf: [api] bind
TIMEOUT = 120


def cli(lab: Lab, *args: str) -> dict[str, object] | list[object] | str:
    """Run the `petguard` CLI against the lab's daemon; JSON output parsed when asked for."""
    token = lab.cfg.petguard_dir / "api-token"
    done = subprocess.run(
        [sys.executable, "-m", "petguard.cli.main", "--url", API_URL, "--token-file", str(token), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"petguard {' '.join(args)}: {done.stderr}"
    if "-f" in args and "json" in args:
        parsed: dict[str, object] | list[object] = json.loads(done.stdout)
        return parsed
    return done.stdout


@pytest.mark.fault(
    "OP-02",
    guarantee="-",
    injected="nova-compute dies on a host in maintenance",
    expected="nothing fenced or evacuated; up again after the heal and maintenance off",
)
@pytest.mark.fault(
    "BMCX-02",
    guarantee="1",
    injected="an IPMI BMC accepts power-off but keeps reporting ON (stuck_on)",
    expected="never confirmed: the host goes to AWAITING_CONFIRM and nothing is evacuated",
)
@pytest.mark.fault(
    "OP-01",
    guarantee="1",
    injected="an operator's confirm-fenced on a host in AWAITING_CONFIRM (its fence could not be confirmed)",
    expected="nothing is evacuated before it; its pets are evacuated after it",
)
def test_cli_maintenance_confirm_fenced_and_restore(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    victim, _ = hosts
    ids = boot(nova, *assets, victim, [pet("cli-pet")])
    petguard.start()
    rows = cli(lab, "host", "list", "-f", "json")
    assert isinstance(rows, list) and {r["Name"] for r in rows} >= set(lab.compute_names)  # type: ignore[index]

    # 1. maintenance: a dead nova-compute is left alone
    cli(lab, "host", "maintenance", "on", victim, "--reason", "lab: kernel update")
    assert petguard.state(victim) == "maintenance"
    since = time.time()
    lab.fail(victim, "process")
    time.sleep(15)  # well past detection and grace
    assert petguard.state(victim) == "maintenance"
    assert lab.bmc_power(victim) and nova.evacuations(victim, since) == []
    lab.heal(victim, wait=True)
    cli(lab, "host", "maintenance", "off", victim, "--reason", "lab: done")
    petguard.wait_state(victim, "up", 30)

    # 2. the BMC never confirms OFF: awaiting_confirm, then the operator confirms by hand
    lab.bmc_mode(victim, "stuck_on")
    since = time.time()
    lab.fail(victim, "process")
    petguard.wait_state(victim, "awaiting_confirm", TIMEOUT)
    assert nova.evacuations(victim, since) == []
    lab.bmc_mode(victim, "normal")
    lab.fail(victim, "power")
    cli(lab, "host", "confirm-fenced", victim, "--reason", "lab: pulled the plugs", "--yes")
    petguard.wait_state(victim, "evacuated", TIMEOUT)
    server = nova.server(ids["cli-pet"])
    assert host_of(server) != victim and server["status"] == "ACTIVE"
    assert len(nova.evacuations(victim, since)) == 1
    shown = cli(lab, "host", "show", victim, "-f", "json")
    assert isinstance(shown, dict) and shown.get("State") == "evacuated", shown

    # 3. back in service through the CLI (the host heartbeats while forced down; restore waits for
    # it to clean up its evacuated guest, un-forces it and enables it)
    lab.heal(victim)
    cli(lab, "host", "restore", victim)
    petguard.wait_state(victim, "up", TIMEOUT)

    def in_service() -> bool:
        service = nova.service(victim)
        return service["state"] == "up" and service["status"] == "enabled" and not service["forced_down"]

    wait_for(f"{victim} back in service in Nova", in_service, 60)
