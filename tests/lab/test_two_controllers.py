"""Two controllers against the real Nova: one leads and acts; the leader is SIGKILLed during the
recovery and the other takes over from the shared journal, with every pet evacuated exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from petguard_lab import Lab

from tests.lab.labkit import TIMINGS, Nova, Petguard, boot, host_of, pet, wait_for

pytestmark = pytest.mark.lab

RECOVERY_TIMEOUT = 120


class _Second(Petguard):
    """The second controller: its own PID file, log and member id, the same journal, no API port."""

    PIDFILE = "petguard-daemon-test-2.pid"

    def __init__(self, lab: Lab, workdir: Path, journal_url: str) -> None:
        self._journal_url = journal_url
        super().__init__(lab, workdir)

    def write_conf(self) -> None:
        self.url = self._journal_url
        super().write_conf()
        text = self.conf.read_text()
        text = text.replace("[api]\n", "[api]\nenabled = false\n", 1)
        text = text.replace("[coordination]\n", "[coordination]\nmember_id = controller-2\n", 1)
        self.conf.write_text(text)


@pytest.mark.fault(
    "CTL-01",
    guarantee="2",
    injected="the leading petguard-daemon SIGKILLed in the middle of an evacuation, another controller running",
    expected="another controller leads with a newer epoch and finishes it; each pet evacuated exactly once",
)
def test_leader_killed_during_recovery_the_other_controller_finishes_exactly_once(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]], tmp_path: Path
) -> None:
    victim, _ = hosts
    specs = [pet(f"p{i}", priority=i) for i in range(6)]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()  # the first controller (member id: the host name) leads
    (tmp_path / "second").mkdir()
    second = _Second(lab, tmp_path / "second", petguard.url)
    try:
        second.start(wait_watching=False)
        time.sleep(3)
        since = time.time()
        started = time.monotonic()
        lab.fail(victim, "power")
        wait_for(
            "the first evacuation migration",
            lambda: nova.evacuations(victim, since, ids.values()),
            RECOVERY_TIMEOUT,
            0.05,
        )
        assert petguard.kill() is not None  # the leader dies in the middle of the evacuation
        unfinished = [n for n, sid in ids.items() if host_of(nova.server(sid)) == victim]
        assert unfinished, "every pet had already moved at the kill: the test proved nothing"
        done = second.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)
        TIMINGS["leader SIGKILLed mid-evacuation -> the other controller finished"] = done - started
        migrations = nova.evacuations(victim, since, ids.values())
        per_server: dict[str, int] = {}
        for migration in migrations:
            server = str(migration.get("instance_uuid"))
            per_server[server] = per_server.get(server, 0) + 1
        assert sorted(per_server.values()) == [1] * len(specs), per_server
        for sid in ids.values():
            server = nova.server(sid)
            assert host_of(server) != victim and server["status"] == "ACTIVE", server
        leaders = [e for e in second.events("leader_elected")]
        assert leaders, "the second controller never took over"
    finally:
        second.stop()
        second.close()
