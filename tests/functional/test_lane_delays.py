"""An evacuation lane that cannot even prepare (force the host down, plan its pets) while the cloud is
down (``Recovery.evacuate``), over the real journal (sqlite) and the in-memory Nova: the delay is
announced once per wait, not on every tick, and the pets are recovered when the cloud answers."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from petguard.evacuate.run import RunPolicy
from petguard.fencing.base import FenceResult
from petguard.lanes import Recovery, RecoveryPolicy
from petguard.store.sql import SqlStore
from tests.fakes import FakeClock, FakeCompute
from tests.functional.harness import journal_url
from tests.functional.store.store_builders import suspect_tick

POLICY = RecoveryPolicy(run=RunPolicy(max_parallel=2, poll_interval=0.01, move_timeout=60))


@pytest.mark.fault(
    "CP-11",
    guarantee="-",
    injected="Keystone down when a fenced host's evacuation starts: forcing the host down and planning fail on "
    "every tick for a while",
    expected="one evacuation_delayed event and one WARNING for the whole wait (not one per tick); the pets "
    "recovered when Nova answers",
)
def test_a_lane_that_cannot_prepare_says_so_once_per_wait(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="petguard")
    compute = FakeCompute(["cmp1", "cmp2", "cmp3"])
    compute.add_server("a", "cmp1", metadata={"petguard:pet": "true"})
    compute.dead.add("cmp1")
    store = SqlStore(journal_url(tmp_path))
    try:
        store.save_tick(suspect_tick("cmp1", at=time.time() - 5))
        incident_id = store.load_hosts()["cmp1"].host.incident_id
        assert incident_id is not None
        recovery = Recovery(lambda h: FenceResult(h, True, "fake"), compute, store, FakeClock(), POLICY)
        compute.unavailable = True  # Keystone down: every call of Nova fails
        for _ in range(5):
            assert recovery.evacuate("cmp1", incident_id) is None  # not finished: the next tick tries again
        compute.unavailable = False
        outcome = recovery.evacuate("cmp1", incident_id)
        assert outcome is not None and outcome.alert == "evacuation_finished", outcome
        delayed = [e for e in store.events(limit=100) if e.kind == "evacuation_delayed"]
        assert len(delayed) == 1, delayed
        warnings = [r for r in caplog.records if "could not prepare the evacuation" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
        assert any("prepared after" in r.getMessage() for r in caplog.records)
        assert all(server.host not in (None, "cmp1") for server in compute.servers.values())
    finally:
        store.close()
