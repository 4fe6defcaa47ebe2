"""A controller killed with SIGKILL leaves its member id in the coordination backend (the file backend
keeps members until they leave); restarted under the same id, it must lead again, not retry forever.
Found by the lab tier: the daemon restarted after a SIGKILL never resumed the evacuation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from oslo_config import cfg

from petguard.conf import opts
from petguard.ha import election


class _EpochStore:
    epoch = None

    def current_epoch(self) -> int:
        return 0

    def claim_epoch(self, seen: int) -> int:
        return seen + 1


@pytest.mark.fault(
    "CTL-10",
    guarantee="5",
    injected="a controller SIGKILLed leaves its member id in the coordination backend and is restarted under the same "
    "id",
    expected="it leads again (it used to retry forever)",
)
def test_restarted_controller_with_the_same_member_id_leads_again(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/coordination"
    previous = textwrap.dedent(f"""
        import time, tooz.coordination
        c = tooz.coordination.get_coordinator("{url}", b"ctl1")
        c.start(start_heart=True)
        c.join_group_create(b"petguard")
        print("joined", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", previous], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "joined"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard", default_config_files=[])
    conf.set_override("backend_url", url, group="coordination")
    conf.set_override("member_id", "ctl1", group="coordination")
    conf.set_override("leader_timeout", 2.0, group="coordination")
    leader = election.Leadership.from_conf(conf, _EpochStore(), None)
    leader.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not leader.leading():
            time.sleep(0.1)
        assert leader.leading()
    finally:
        leader.stop(timeout=5)
