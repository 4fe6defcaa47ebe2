"""The ``petguard`` CLI against the daemon's real WSGI app, journal and loop (conftest.py).

Every command's ``-f json`` output parses; requests are answered by the loop's next tick; errors
are one line on stderr with the documented exit code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from petguard.agent.events import DomainState, DomainSummary
from petguard.guests.policy import AgentHeartbeat
from petguard.hosts import HostState
from tests.functional.cli.conftest import HOSTS, Daemon
from tests.unit.cli.runner import run_cli, write_token


def test_host_list_formats(daemon: Daemon) -> None:
    table = daemon.cli("host", "list")
    assert table.code == 0, table.err
    assert "| Name | State |" in table.out
    hosts = daemon.cli("host", "list", "--long", "-f", "json").json()
    assert [h["Name"] for h in hosts] == HOSTS
    assert set(hosts[0]) == {"Name", "State", "Since", "Incident", "Reason", "Verdict", "Detail"}
    assert isinstance(hosts[0]["Since"], float)  # machine value in json, a date in tables
    assert daemon.cli("host", "list", "-f", "value", "-c", "Name", "-c", "State").out == "cmp1 up\ncmp2 up\ncmp3 up\n"
    assert daemon.cli("host", "list", "-f", "yaml", "-c", "Name").out.startswith("- Name: cmp1\n")


def test_maintenance_on_is_done_by_the_loop(daemon: Daemon) -> None:
    result = daemon.cli("host", "maintenance", "on", "cmp1", "--reason", "swap a DIMM", "-f", "json")
    assert result.code == 0, result.err
    request = result.json()
    assert (request["Kind"], request["Status"], request["Host"]) == ("maintenance_on", "done", "cmp1")
    assert "up -> maintenance" in request["Message"]
    show = daemon.cli("host", "show", "cmp1", "-f", "json").json()
    assert (show["State"], show["Reason"]) == ("maintenance", "maintenance_on by operator: swap a DIMM")
    assert show["Events"][0]["kind"] == "operator_maintenance_on"
    off = daemon.cli("host", "maintenance", "off", "cmp1", "-f", "value", "-c", "Status")
    assert (off.code, off.out) == (0, "done\n")


def test_restore_refused_with_the_loops_message(daemon: Daemon) -> None:
    result = daemon.cli("host", "restore", "cmp2")
    assert result.code == 1
    assert "| Status       | refused" in result.out
    assert result.err == "petguard: request 1 refused: restore refused: host cmp2 is up\n"


def test_no_wait_returns_the_queued_request(daemon: Daemon) -> None:
    daemon.pause()
    result = daemon.cli("host", "evacuate", "cmp3", "--yes", "--no-wait", "-f", "json")
    assert (result.code, result.json()["Status"]) == (0, "pending")
    shown = daemon.cli("request", "show", str(result.json()["ID"]), "-f", "json").json()
    assert shown["Status"] == "pending"


def test_still_pending_at_the_timeout_exits_4(daemon: Daemon) -> None:
    daemon.pause()
    result = daemon.cli("host", "maintenance", "on", "cmp1", "--reason", "x", "--timeout", "0.2", "-c", "Status")
    assert result.code == 4
    assert "pending" in result.out
    assert result.err == (
        "petguard: request 1 is still pending after 0.2 s; the daemon acts on it at a later tick "
        "(see: petguard request show 1)\n"
    )


def test_fence_then_confirm_fenced(daemon: Daemon) -> None:
    result = daemon.cli("host", "fence", "cmp3", "--yes", "--reason", "kernel oops loop", "-f", "json")
    assert result.code == 0, result.err
    assert result.json()["Status"] == "done"
    daemon.wait_for(lambda: daemon.harness.state("cmp3") is HostState.AWAITING_CONFIRM)
    explained = daemon.cli("explain", "cmp3", "-f", "json").json()
    assert explained["State"] == "awaiting_confirm"
    confirmed = daemon.cli("host", "confirm-fenced", "cmp3", "--yes", "--reason", "PDU off", "-f", "json")
    assert (confirmed.code, confirmed.json()["Status"]) == (0, "done"), confirmed.err
    assert "awaiting_confirm -> fenced" in confirmed.json()["Message"]
    incidents = daemon.cli("incident", "list", "--host", "cmp3", "-f", "json").json()
    assert len(incidents) == 1 and incidents[0]["Host"] == "cmp3"
    incident = daemon.cli("incident", "show", str(incidents[0]["ID"]), "-f", "json").json()
    assert incident["Host"] == "cmp3" and incident["Events"]
    events = daemon.cli("event", "list", "--incident", str(incidents[0]["ID"]), "-f", "json").json()
    assert all(e["Incident"] == incidents[0]["ID"] for e in events)


def test_read_commands_json(daemon: Daemon) -> None:
    daemon.cli("host", "maintenance", "on", "cmp1", "--reason", "x")
    status = daemon.cli("status", "-f", "json").json()
    assert status["Leader"] is True and status["Brake engaged"] is False
    assert isinstance(status["Last tick"], float)
    explained = daemon.cli("explain", "cmp1", "-f", "json").json()
    assert (explained["Subject"], explained["State"]) == ("host", "maintenance")
    assert isinstance(explained["Explanation"], list)
    events = daemon.cli("event", "list", "--host", "cmp1", "--limit", "5", "-f", "json").json()
    assert events[0]["Kind"] == "operator_maintenance_on"
    audit = daemon.cli("audit", "list", "-f", "json").json()
    assert audit[0]["Actor"] == "operator" and audit[0]["Target"] == "cmp1"
    assert daemon.cli("incident", "list", "-f", "json").json() == []


def test_log_level(daemon: Daemon) -> None:
    result = daemon.cli("log-level", "warning", "-f", "value")
    assert (result.code, result.out, daemon.levels) == (0, "WARNING\n", ["WARNING"])


def test_brake_override(daemon: Daemon) -> None:
    result = daemon.cli("brake", "override", "--reason", "rack 4 lost power", "--yes", "-f", "json")
    assert result.code in (0, 1), result.err
    assert result.json()["Kind"] == "brake_override"
    assert result.json()["Status"] in ("done", "refused")


def test_not_found_is_one_line(daemon: Daemon) -> None:
    result = daemon.cli("host", "show", "cmp9")
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("petguard: Not Found (404): no host 'cmp9'")
    assert result.err.count("\n") == 1


def test_bad_token_is_one_line(daemon: Daemon, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    result = daemon.cli("host", "list", token_file=write_token(other, "wrong-token"))
    assert result.code == 1
    assert result.err == (
        "petguard: Unauthorized (401): the bearer token is not valid: use a token from [api] token_file\n"
    )
    assert "wrong-token" not in result.err


def test_unknown_column(daemon: Daemon) -> None:
    result = daemon.cli("host", "list", "-c", "Nope")
    assert result.code == 1
    assert "No recognized column names in ['Nope']" in result.err


@pytest.mark.parametrize("url", ["unix:///nonexistent/petguard/api.sock", "http://127.0.0.1:9"])
def test_unreachable_daemon(tmp_path: Path, url: str) -> None:
    result = run_cli(["status"], None, url=url, token_file=write_token(tmp_path))
    assert result.code == 3
    assert result.err.startswith(f"petguard: cannot reach the petguard daemon at {url}: ")
    assert result.err.count("\n") == 1


def test_agent_list(daemon: Daemon) -> None:
    assert daemon.cli("agent", "list", "-f", "json").json() == []
    domains = (
        DomainSummary("u1", "db", DomainState.RUNNING),
        DomainSummary("u2", "web", DomainState.RUNNING),
        DomainSummary("u3", "hung", DomainState.PAUSED),
    )
    daemon.harness.store.record_heartbeat(
        AgentHeartbeat("cmp1", "agent-cmp1", 1_700_000_000.0, 1_700_000_000.0, 5.0, True, domains, 2, 0, "0.1.0")
    )
    [agent] = daemon.cli("agent", "list", "-f", "json").json()
    assert (agent["Host"], agent["Libvirt"], agent["Buffered"], agent["Version"]) == ("cmp1", True, 2, "0.1.0")
    assert agent["Last heartbeat"] == 1_700_000_000.0 and len(agent["Domains"]) == 3
    table = daemon.cli("agent", "list").out
    assert "3: 1 paused, 2 running" in table and "2023-11-14 22:13:20Z" in table


@pytest.mark.fault(
    "BLIND-02",
    guarantee="4",
    injected="Nova unreachable (every call raises NovaUnavailable) for more than blind_after ticks, then back",
    expected="one nova_unreadable event naming every host; metrics, /healthz 503 and status say blind; "
    "back: one nova_readable_again, /healthz 200",
)
def test_status_says_blind_and_which_hosts_are_not_watched(daemon: Daemon) -> None:
    daemon.compute.unavailable = True
    daemon.wait_for(lambda: daemon.cli("status", "-f", "json").json()["Nova blind"] is True)
    status = daemon.cli("status", "-f", "json").json()
    assert status["Nova"].startswith("blind since ") and "fake outage" in status["Nova"]
    assert "hosts not watched: 3 host(s): up: cmp1, cmp2, cmp3" in status["Nova"]
    assert [h["host"] for h in status["Hosts not watched"]] == HOSTS
    table = daemon.cli("status", "-c", "Hosts not watched").out
    assert "cmp1: up" in table and "cmp3: up" in table
    daemon.compute.unavailable = False
    daemon.wait_for(lambda: daemon.cli("status", "-f", "json").json()["Nova blind"] is False)
    assert daemon.cli("status", "-f", "json").json()["Nova"].startswith("Nova read ")
