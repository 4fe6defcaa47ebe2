"""A move that waits for the cloud, and one Nova took and never started, as the operator sees them:
``host show``, ``incident show`` and ``explain`` through the CLI against the real app, the real
journal and the real loop and evacuation runner (conftest.py), and the metrics read from that journal.

The in-memory Nova makes the waits happen for real: every evacuate answered 503 (the cloud cannot
answer), or a request taken and then lost between nova-api and nova-conductor (stuck).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from petguard.daemon.api_backend import snapshot
from petguard.errors import NovaUnavailable
from petguard.journal import STUCK, MoveRecord
from tests.functional.cli.conftest import Daemon
from tests.functional.harness import FAST_RECOVERY

PET = {"petguard:pet": "true"}
#: the CLI's times (UTC) and explain's (the daemon's local time)
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ?"


def _fence_cmp1(daemon: Daemon) -> int:
    result = daemon.cli("host", "fence", "cmp1", "--yes", "--reason", "kernel oops loop", "-f", "json")
    assert result.code == 0, result.err
    daemon.wait_for(lambda: daemon.harness.store.load_hosts()["cmp1"].host.incident_id is not None)
    incident_id = daemon.harness.store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None
    return incident_id


def _moves(daemon: Daemon, incident_id: int) -> dict[str, MoveRecord]:
    return {m.server_name: m for m in daemon.harness.store.moves(incident_id)}


def _moves_cell(table: str) -> str:
    """The Moves row of a ``show`` table (one move: one line)."""
    found = re.search(r"^\| Moves \| (.*?) *\|$", table, re.MULTILINE)
    return found.group(1) if found else ""


def _waiting(daemon: Daemon, incident_id: int, name: str) -> str:
    move = _moves(daemon, incident_id).get(name)
    return move.waiting if move is not None else ""


def test_a_move_waiting_for_the_cloud_is_shown_as_such(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path).start()
    try:
        daemon.compute.add_server("web1", "cmp1", metadata=PET)
        daemon.compute.evacuate_errors = [NovaUnavailable("evacuate: HTTP 503 (fake)", status=503)] * 100_000
        incident_id = _fence_cmp1(daemon)
        daemon.wait_for(lambda: bool(_waiting(daemon, incident_id, "web1")))
        move = _moves(daemon, incident_id)["web1"]
        assert move.waiting_since is not None
        line = re.compile(
            rf"web1 requesting -> -; waiting for the cloud: Nova did not take the request: evacuate: HTTP 503 "
            rf"\(fake\) \(since {WHEN}, gives up after {WHEN}\)"
        )

        shown = daemon.cli("host", "show", "cmp1", "-c", "Moves")
        assert shown.code == 0 and line.fullmatch(_moves_cell(shown.out)), shown.out
        incident = daemon.cli("incident", "show", str(incident_id), "-c", "Moves")
        assert line.fullmatch(_moves_cell(incident.out)), incident.out
        (as_json,) = daemon.cli("incident", "show", str(incident_id), "-f", "json").json()["Moves"]
        assert as_json["waiting_since"] == move.waiting_since
        assert as_json["waiting_until"] == move.waiting_since + FAST_RECOVERY.run.cloud_wait_timeout

        waiting = rf"waiting for the cloud: Nova did not take the request: .* \(since {WHEN}, gives up after {WHEN}\)"
        host_lines = daemon.cli("explain", "cmp1", "-f", "json").json()["Explanation"]
        assert any(re.fullmatch(rf"  web1 \(web1-id\): {waiting}", text) for text in host_lines), host_lines
        server_lines = daemon.cli("explain", "web1", "-f", "json").json()["Explanation"]
        assert any(re.fullmatch(waiting, text) for text in server_lines), server_lines

        snap = snapshot(daemon.harness.store, daemon.harness.loop)
        assert (snap.moves_waiting, snap.moves_stuck) == ({"cmp1": 1}, {"cmp1": 0})
    finally:
        daemon.close()


def test_a_stuck_request_is_shown_as_such(tmp_path: Path) -> None:
    recovery = dataclasses.replace(FAST_RECOVERY, run=dataclasses.replace(FAST_RECOVERY.run, stuck_after=0.5))
    daemon = Daemon(tmp_path, recovery).start()
    try:
        daemon.compute.add_server("db1", "cmp1", metadata=PET)
        daemon.compute.lose_requests = {"db1-id"}
        incident_id = _fence_cmp1(daemon)
        daemon.wait_for(lambda: _waiting(daemon, incident_id, "db1").startswith(STUCK))
        stuck = (
            rf"stuck: Nova took the request \d+ s ago and never started it \(.*\) "
            rf"\(since {WHEN}; the evacuation_stuck event says what to do\)"
        )

        shown = daemon.cli("host", "show", "cmp1", "-c", "Moves")
        assert re.fullmatch(rf"db1 accepted -> -; {stuck}", _moves_cell(shown.out)), shown.out
        as_json = daemon.cli("incident", "show", str(incident_id), "-f", "json").json()
        assert as_json["Moves"][0]["waiting_until"] is None  # waits for an operator, not for a deadline
        assert "evacuation_stuck" in [e["kind"] for e in as_json["Events"]]
        host_lines = daemon.cli("explain", "cmp1", "-f", "json").json()["Explanation"]
        assert any(re.fullmatch(rf"  db1 \(db1-id\): {stuck}", text) for text in host_lines), host_lines
        assert any(
            re.fullmatch(stuck, text) for text in daemon.cli("explain", "db1", "-f", "json").json()["Explanation"]
        )

        snap = snapshot(daemon.harness.store, daemon.harness.loop)
        assert (snap.moves_waiting, snap.moves_stuck) == ({"cmp1": 0}, {"cmp1": 1})
    finally:
        daemon.close()
